"""Checking the object store as `git fsck` checks a repository: every object rehashed against its name.

``check`` reads every object and says which are damaged and what refers to them, and which
objects registered dataset and model versions need are missing. ``repair`` moves the damaged objects out
of the store into ``.localpipe/quarantine/`` and, in one write transaction, drops the cache
entries whose outputs they were, so that the next submission computes those steps again
instead of reusing them. An object a registered dataset or model version holds cannot be
repaired (its files must be registered again): it stays where it is, and stays reported.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field

from localpipe.state.gc import stored_objects
from localpipe.state.history import History
from localpipe.state.store import ObjectStore, remove_tree


@dataclass
class Damaged:
    """A damaged object: its digest, what is wrong, and what refers to it."""

    digest: str
    problem: str
    outputs: list[dict] = field(default_factory=list)  # {"run", "step", "output"} of the step runs that made it
    datasets: list[dict] = field(default_factory=list)  # {"name", "version"} of registered versions
    models: list[dict] = field(default_factory=list)  # {"name", "version"} of registered model versions

    @property
    def repairable(self) -> bool:
        """Whether recomputing can replace it: no registered dataset or model version holds it."""
        return not self.datasets and not self.models


@dataclass
class FsckReport:
    checked: int
    damaged: list[Damaged]


def check(history: History) -> FsckReport:
    """Rehash every object of the store; nothing is changed."""
    store = ObjectStore(history.layout.objects)
    objects = stored_objects(history.layout.objects)
    damaged = []
    for digest in sorted(objects):
        problem = store.verify(digest)
        if problem is not None:
            damaged.append(Damaged(digest, problem))
    t = history.tables
    held = {d for (d,) in t.DatasetVersion.select(t.DatasetVersion.digest).tuples()}
    held.update(d for (d,) in t.ModelVersion.select(t.ModelVersion.digest).tuples())
    for digest in sorted(held - set(objects)):
        damaged.append(Damaged(digest, "it is missing from the store"))
    _referrers(history, damaged)
    return FsckReport(len(objects), damaged)


def repair(history: History, damaged: list[Damaged]) -> int:
    """Quarantine the damaged objects and drop the cache entries that serve them; returns how many
    entries were dropped."""
    t, layout = history.tables, history.layout
    quarantine = layout.state_dir / "quarantine"
    quarantine.mkdir(exist_ok=True)
    digests = [d.digest for d in damaged if d.repairable]
    with history.write():
        step_runs = t.StepOutput.select(t.StepOutput.step_run).where(t.StepOutput.digest.in_(digests))
        dropped = t.CacheEntry.delete().where(t.CacheEntry.step_run.in_(step_runs)).execute()
        for digest in digests:
            source, target = ObjectStore(layout.objects).path(digest), quarantine / digest
            if stat.S_ISDIR(os.lstat(source).st_mode):
                os.chmod(source, 0o700)  # moving a folder rewrites its "..": a read-only one refuses
            remove_tree(target)
            os.rename(source, target)
    return dropped


def _referrers(history: History, damaged: list[Damaged]) -> None:
    t = history.tables
    by_digest = {d.digest: d for d in damaged}
    if not by_digest:
        return
    rows = (
        t.StepOutput.select(t.StepOutput.digest, t.StepRun.run, t.StepRun.name, t.StepOutput.name)
        .join(t.StepRun)
        .where(t.StepOutput.digest.in_(list(by_digest)))
        .order_by(t.StepRun.id)
        .tuples()
    )
    for digest, run, step, output in rows:
        by_digest[digest].outputs.append({"run": run, "step": step, "output": output})
    versions = (
        t.DatasetVersion.select(t.DatasetVersion.digest, t.DatasetVersion.name, t.DatasetVersion.version)
        .where(t.DatasetVersion.digest.in_(list(by_digest)))
        .tuples()
    )
    for digest, name, version in versions:
        by_digest[digest].datasets.append({"name": name, "version": version})
    models = (
        t.ModelVersion.select(t.ModelVersion.digest, t.ModelVersion.name, t.ModelVersion.version)
        .where(t.ModelVersion.digest.in_(list(by_digest)))
        .tuples()
    )
    for digest, name, version in models:
        by_digest[digest].models.append({"name": name, "version": version})
