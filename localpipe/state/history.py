"""The one owner of a workspace's history.db: every query localpipe makes goes through a History.

``History.open(layout)`` gives the workspace's history, opened (and migrated) once per process
and file. It holds its own database handle and its own model classes (``state/models.py``), so
two workspaces open in one process never cross. Its operations are grouped by what they own:

- ``runs``: pipeline runs as a submission records them and a scheduler starts and ends them,
  recovery of runs whose scheduler died, and the readers behind `runs`, `show`, `outputs`;
- ``steps``: the scheduler's writes to step runs (status changes, outputs, metrics, tags);
- ``cache``: cache keys and entries, the earlier runs a decision compares with, snapshots, and
  steps of other runs computing the same key;
- ``claims``: CPUs, memory and GPUs held by running steps, across every scheduler;
- ``registry``: datastores, compute targets, environments and experiments a user registers;
- ``datasets``: registered dataset versions and their lineage;
- ``models``: registered model versions, their lineage and datasets;
- ``environments``: the built environments the workspace's steps ran in;
- ``publishing``: published pipelines, pipeline endpoints, schedules and the claims on their fires;
- ``drafts``: pipeline drafts;
- ``modules``: modules and their versions.

Every operation returns plain values (numbers, strings, dicts, small dataclasses), never a
model instance. ``write()`` groups several operations into one write transaction, the one lock
every scheduler of the workspace serialises on.
"""

from __future__ import annotations

import os
import socket
import threading
from contextlib import AbstractContextManager
from functools import cached_property, lru_cache
from typing import TYPE_CHECKING

from localpipe.errors import StateError
from localpipe.state import reader
from localpipe.state.db import open_database
from localpipe.state.layout import Layout

if TYPE_CHECKING:
    from localpipe.state.cache import CacheRecords
    from localpipe.state.claims import ClaimRecords
    from localpipe.state.datasets import DatasetRecords
    from localpipe.state.drafts import DraftRecords
    from localpipe.state.environments import EnvironmentRecords
    from localpipe.state.model_registry import ModelRecords
    from localpipe.state.modules import ModuleRecords
    from localpipe.state.publishing import PublishingRecords
    from localpipe.state.registry import Registry
    from localpipe.state.runs import RunRecords
    from localpipe.state.steps import StepRecords

_open: dict[str, History] = {}
_lock = threading.Lock()
# Set in the environment of a step run on a Ray node: the machine whose history.db the workspace's is.
MACHINE_ENV = "LOCALPIPE_HISTORY_MACHINE"


class History:
    """The history.db of the workspace at ``layout``; use ``History.open`` to share one per file."""

    def __init__(self, layout: Layout):
        self.layout = layout
        owner = os.environ.get(MACHINE_ENV)
        if owner and owner != machine_id():
            raise StateError(
                f"{layout.history} is the history of a scheduler on another machine: a step on a Ray node "
                "cannot open it (SQLite cannot share a database between machines); make this call "
                "(register_model, Dataset.register, run.experiment.workspace) from the submitting machine "
                "after the run (docs/scale-out.md)"
            )
        self.database = open_database(layout)
        self.db, self.tables = self.database.db, self.database.tables
        self.identity = _identity(layout)

    # Each part is imported when first used: `localpipe runs` needs one of them, a scheduler all.
    @cached_property
    def runs(self) -> RunRecords:
        from localpipe.state.runs import RunRecords

        return RunRecords(self.database)

    @cached_property
    def steps(self) -> StepRecords:
        from localpipe.state.steps import StepRecords

        return StepRecords(self.database)

    @cached_property
    def cache(self) -> CacheRecords:
        from localpipe.state.cache import CacheRecords

        return CacheRecords(self.database)

    @cached_property
    def claims(self) -> ClaimRecords:
        from localpipe.state.claims import ClaimRecords

        return ClaimRecords(self.database)

    @cached_property
    def registry(self) -> Registry:
        from localpipe.state.registry import Registry

        return Registry(self.database)

    @cached_property
    def datasets(self) -> DatasetRecords:
        from localpipe.state.datasets import DatasetRecords

        return DatasetRecords(self.database)

    @cached_property
    def models(self) -> ModelRecords:
        from localpipe.state.model_registry import ModelRecords

        return ModelRecords(self.database)

    @cached_property
    def environments(self) -> EnvironmentRecords:
        from localpipe.state.environments import EnvironmentRecords

        return EnvironmentRecords(self.database)

    @cached_property
    def publishing(self) -> PublishingRecords:
        from localpipe.state.publishing import PublishingRecords

        return PublishingRecords(self.database)

    @cached_property
    def drafts(self) -> DraftRecords:
        from localpipe.state.drafts import DraftRecords

        return DraftRecords(self.database)

    @cached_property
    def modules(self) -> ModuleRecords:
        from localpipe.state.modules import ModuleRecords

        return ModuleRecords(self.database)

    @classmethod
    def open(cls, layout: Layout) -> History:
        """The history of ``layout``'s workspace: opened and migrated on first use in this process,
        and again if its file is not the one opened then (the workspace was made anew)."""
        key = str(layout.history)
        history = _open.get(key)
        if history is None or history.identity != _identity(layout):
            with _lock:
                history = _open.get(key)
                if history is None or history.identity != _identity(layout):
                    if history is not None:
                        history.close()
                    history = _open[key] = cls(layout)
        return history

    def write(self) -> AbstractContextManager:
        """A write transaction (``BEGIN IMMEDIATE``: SQLite serialises them between processes), or
        the one this thread is already in, which the operations then join."""
        return self.database.write()

    def savepoint(self) -> AbstractContextManager:
        """A part of the write transaction in progress that is undone alone when it raises."""
        return self.db.atomic()

    def close(self) -> None:
        """Close the calling thread's connection (each thread opens its own); others stay open."""
        self.db.close()

    def __repr__(self) -> str:
        return f"History({str(self.layout.history)!r})"


@lru_cache(maxsize=None)  # functools.cache is 3.9's: a step on Python 3.8 imports this
def machine_id() -> str:
    """This machine, as long as it runs: its kernel's boot id (processes in containers on one kernel
    share it, and may share a database file), else its host name."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as found:
            return found.read().strip()
    except OSError:
        return socket.gethostname()


def _identity(layout: Layout) -> tuple[int, int] | None:
    """Which file history.db is (device and inode), or None when there is none."""
    try:
        st = os.stat(layout.history)
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


def close_all() -> None:
    """Close every history.db this process opened (tests and forked children call this)."""
    with _lock:
        for history in _open.values():
            history.close()
        _open.clear()
    reader.close_all()


def delete_workspace(layout: Layout) -> None:
    """Remove the workspace's state (``.localpipe/``: history.db, the object store, run folders),
    refused while a run is active. The workspace's own files and the machine's cache are kept."""
    from localpipe.errors import UsageError
    from localpipe.state.store import remove_tree

    history = History.open(layout)
    active = [run["id"] for run in history.runs.active()]
    if active:
        raise UsageError(
            f"workspace {layout.root} has active runs ({', '.join(map(str, active))}): cancel them "
            "(localpipe cancel RUN) and delete it again"
        )
    with _lock:
        _open.pop(str(layout.history), None)
        history.close()
    reader.close_all()
    remove_tree(layout.state_dir)
