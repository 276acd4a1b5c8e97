"""Workspace: a folder holding `.localpipe/` (history.db, object store, run folders, datastores)."""

from __future__ import annotations

import contextvars
import os
from pathlib import Path

from localpipe.errors import WorkspaceNotFoundError

STATE_DIR = ".localpipe"

# Set by the CLI while it loads a pipeline file, so that `Workspace.from_config()` inside
# that file answers with the workspace the command already chose.
current_workspace: contextvars.ContextVar[Workspace | None] = contextvars.ContextVar(
    "current_workspace", default=None
)


class Workspace:
    """A local workspace rooted at ``root``; its state lives in ``root/.localpipe``."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()
        self.state_dir = self.root / STATE_DIR

    # -- finding and creating -------------------------------------------------------------
    @classmethod
    def from_config(cls, path: str | os.PathLike | None = None, **_ignored) -> Workspace:
        """The nearest workspace walking up from ``path`` (default: the current directory)."""
        if path is None and (ws := current_workspace.get()) is not None:
            return ws
        start = Path(path or os.getcwd()).resolve()
        for folder in (start, *start.parents):
            if (folder / STATE_DIR).is_dir():
                return cls(folder)
        raise WorkspaceNotFoundError(
            f"no localpipe workspace in {start} or any parent: run `localpipe init` there first"
        )

    @classmethod
    def create(cls, path: str | os.PathLike = ".", exist_ok: bool = True, **_ignored) -> Workspace:
        """Create (or, with ``exist_ok``, open) the workspace at ``path``."""
        from localpipe.state.layout import create_layout

        ws = cls(path)
        if ws.state_dir.exists() and not exist_ok:
            raise WorkspaceNotFoundError(f"a workspace already exists at {ws.root}: pass exist_ok=True")
        create_layout(ws)
        return ws

    @property
    def name(self) -> str:
        return self.root.name

    # -- views of the workspace's records -------------------------------------------------
    def get_default_datastore(self):
        """The default datastore, ``workspaceblobstore``."""
        from localpipe.sdk.data import Datastore

        return Datastore(self, "workspaceblobstore")

    @property
    def datastores(self) -> dict:
        """Every datastore by name: the two built-in ones and those registered."""
        from localpipe.sdk.data import Datastore
        from localpipe.state import records

        names = ["workspaceblobstore", "workspacefilestore", *records.datastore_names(self)]
        return {name: Datastore(self, name) for name in names}

    @property
    def experiments(self) -> dict:
        """Every experiment that has runs, by name."""
        from localpipe.client.experiment import Experiment
        from localpipe.state import records

        return {name: Experiment(self, name) for name in records.experiment_names(self)}

    @property
    def compute_targets(self) -> dict:
        """Compute targets by name; ``local`` (the whole machine) is always there."""
        from localpipe.sdk.compute import compute_targets

        return compute_targets(self)

    @property
    def environments(self) -> dict:
        """Registered environments by name (their latest version)."""
        from localpipe.state import records

        return records.environments(self)

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Workspace) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)
