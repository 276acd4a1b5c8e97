"""Registered datasets: versions fixed by content, kept read-only in the object store, with lineage.

Registering copies the files into the object store (once per distinct content) so that a
version always means the same bytes, whatever happens later at the original path; mounting a
registered dataset is then a read-only path with no copy.
"""

from __future__ import annotations

import os
import shutil

from localpipe.errors import NotFoundError, UsageError
from localpipe.state import models as m
from localpipe.state.db import open_history
from localpipe.state.layout import objects_dir, tmp_dir
from localpipe.state.store import ObjectStore


def register_dataset(ws, name: str, dataset, description: str | None = None, tags: dict | None = None,
                     create_new_version: bool = True, produced_by: int | None = None):
    """Register ``dataset``'s files as a version of ``name``; returns the registered dataset."""
    store = ObjectStore(objects_dir(ws))
    digest, entries = _commit_copy(ws, store, list(dataset.paths))
    return record_version(ws, name, digest, entries, dataset, description, tags, create_new_version, produced_by)


def record_version(ws, name: str, digest: str, entries: list[str], dataset=None, description=None, tags=None,
                   create_new_version: bool = True, produced_by: int | None = None):
    """The version of ``name`` for the tree ``digest``: the latest if its content is the same, else a new one."""
    from localpipe.sdk.data import TabularDataset

    db = open_history(ws)
    tabular = isinstance(dataset, TabularDataset)
    with db.atomic("IMMEDIATE"):
        latest = _versions(name).first()
        if latest is not None and latest.digest == digest:
            return _dataset(ws, latest)
        if latest is not None and not create_new_version:
            raise UsageError(f'dataset "{name}" exists with other content (version {latest.version}): '
                             "pass create_new_version=True to add a version")
        record = m.DatasetVersion.create(
            name=name, version=(latest.version + 1) if latest else 1, digest=digest, paths=entries,
            produced_by=produced_by, kind="tabular" if tabular else "file",
            options={"separator": dataset.separator, "header": dataset.header} if tabular else {},
            description=description, tags=tags or {})
    return _dataset(ws, record)


def get_dataset(ws, name: str, version: int | str = "latest"):
    """A registered version of ``name`` (``"latest"``, or a number)."""
    open_history(ws)
    query = _versions(name)
    if version != "latest":
        try:
            query = query.where(m.DatasetVersion.version == int(version))
        except (TypeError, ValueError):
            raise UsageError(f'dataset version "{version}" is not a number or "latest"') from None
    record = query.first()
    if record is None:
        known = _versions(name).count()
        what = f"has no version {version} (it has {known})" if known else "is not registered"
        raise NotFoundError(f'dataset "{name}" {what}: register it with dataset.register(ws, "{name}")')
    return _dataset(ws, record)


def list_datasets(ws, name: str | None = None) -> list[dict]:
    """Every version (of ``name``, or of all), newest first, with the step runs that made and used it."""
    open_history(ws)
    query = m.DatasetVersion.select().order_by(m.DatasetVersion.name, m.DatasetVersion.version.desc())
    if name is not None:
        query = query.where(m.DatasetVersion.name == name)
    versions = list(query)
    if name is not None and not versions:
        raise NotFoundError(f'dataset "{name}" is not registered: see `localpipe datasets`')
    uses: dict[int, list[dict]] = {}
    rows = (m.DatasetUse.select(m.DatasetUse.dataset_version, m.StepRun.run, m.StepRun.name).join(m.StepRun)
            .where(m.DatasetUse.dataset_version.in_([v.id for v in versions])).tuples())
    for version_id, run_id, step in rows:
        uses.setdefault(version_id, []).append({"run": run_id, "step": step})
    producers = {s.id: {"run": s.run_id, "step": s.name} for s in
                 m.StepRun.select().where(m.StepRun.id.in_([v.produced_by_id for v in versions if v.produced_by_id]))}
    return [{"name": v.name, "version": v.version, "digest": v.digest, "kind": v.kind, "created_at": v.created_at,
             "description": v.description, "produced_by": producers.get(v.produced_by_id),
             "consumed_by": uses.get(v.id, [])} for v in versions]


def record_uses(step_run_id: int, datasets: list[dict]) -> None:
    """Note that a step run consumed these registered datasets ({"name", "version"} each)."""
    for dataset in datasets:
        version = (m.DatasetVersion.select(m.DatasetVersion.id)
                   .where(m.DatasetVersion.name == dataset["name"], m.DatasetVersion.version == dataset["version"])
                   .scalar())
        if version is not None:
            m.DatasetUse.create(step_run=step_run_id, dataset_version=version)


def _versions(name: str):
    return m.DatasetVersion.select().where(m.DatasetVersion.name == name).order_by(m.DatasetVersion.version.desc())


def _dataset(ws, record: m.DatasetVersion):
    from localpipe.sdk.data import FileDataset, TabularDataset

    root = ObjectStore(objects_dir(ws)).path(record.digest)
    paths = tuple(str(root) if entry == "." else str(root / entry) for entry in record.paths)
    if record.kind == "tabular":
        return TabularDataset(paths=paths, name=record.name, version=record.version, **record.options)
    return FileDataset(paths=paths, name=record.name, version=record.version)


def _commit_copy(ws, store: ObjectStore, paths: list[str]) -> tuple[str, list[str]]:
    """Copy ``paths`` into one tree and commit it; returns its digest and the paths inside it."""
    for path in paths:
        if not os.path.exists(path):
            raise UsageError(f'dataset path "{path}" does not exist: create it or fix the path')
    folder = tmp_dir(ws) / f"dataset-{os.getpid()}-{id(paths)}"
    try:
        if len(paths) == 1 and os.path.isdir(paths[0]):
            shutil.copytree(paths[0], folder, symlinks=False)
            entries = ["."]
        else:
            folder.mkdir(parents=True)
            entries = []
            for path in paths:
                entry = os.path.basename(os.path.normpath(path))
                if entry in entries:
                    raise UsageError(f'dataset paths share the name "{entry}": register them separately')
                (shutil.copytree if os.path.isdir(path) else shutil.copyfile)(path, folder / entry)
                entries.append(entry)
        tree = store.commit(folder)
    finally:
        if folder.exists():
            shutil.rmtree(folder)
    return tree.digest, entries
