"""Registered models: versions numbered per name, files kept read-only in the object store, lineage.

Registering copies the model's file or folder into one tree holding it under its own name (with
``child_paths``, only those files of the folder) and commits that tree to the object store, as a
dataset version's files are; identical files are stored once. Then one write transaction (the
``BEGIN IMMEDIATE`` lock every scheduler of the workspace takes) gives the registration the next
version of its name: registrations from any number of processes at once, steps included, get
distinct versions, and the caller gets its version back at once, as the SDK's does. Unlike a
dataset's, a model's version is not fixed by its content: each registration is a new version, and
a deleted version's number is never given again (``retired_id``), as in Azure's registry.

A version is returned as a plain record (``_record``): its name, version, digest and entry (the
model's path in the store is ``store.path(digest) / entry``), what the SDK keeps (tags, properties,
description, framework, created time, run id, experiment), its lineage (run, step) and datasets.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from peewee import JOIN

from localpipe.errors import ModelPathNotFoundException, StateError, WebserviceException
from localpipe.state.datasets import copy_files
from localpipe.state.db import Database
from localpipe.state.models import RETIRED_IDS
from localpipe.state.reader import STEP_KIND, step_run_id, step_run_numbers
from localpipe.state.store import COMMIT_ATTEMPTS, ObjectStore


class ModelRecords:
    """The ``model_version`` and ``model_dataset`` tables, and the models' trees in the object store."""

    def __init__(self, database: Database):
        self.database = database
        self.t = database.tables
        self.store = ObjectStore(database.layout.objects)

    # -- registering ---------------------------------------------------------------------------
    def register(self, name: str, path: str, child_paths: list[str] | None, fields: dict, datasets: list[dict]) -> dict:
        """Keep the files at ``path`` as the next version of model ``name``; returns its record.

        ``fields``: description, tags, properties, framework, framework_version,
        resource_configuration, and the lineage: run_id and run_kind (the run object that registers
        it), experiment, pipeline_run, step, step_run. ``datasets``:
        ``{"role", "scenario", "name", "version", "paths"}`` each (name and version of a registered
        dataset, else its paths).
        """
        t = self.t
        for _ in range(COMMIT_ATTEMPTS):
            digest, entry, size, files = self._commit_copy(path, child_paths)
            with self.database.write():
                if not self.store.has(digest):
                    continue  # collected by a gc since it was committed: commit it again
                latest = t.ModelVersion.select(t.ModelVersion.version).where(t.ModelVersion.name == name)
                latest = latest.order_by(t.ModelVersion.version.desc()).scalar() or 0
                version = max(latest, self._deleted_version(name)) + 1  # never a deleted one's, as Azure
                row = t.ModelVersion.create(
                    name=name, version=version, digest=digest, entry=entry, size=size, files=files, **fields
                )
                self._link_datasets(row.id, datasets)
            return self.get(name, version)
        raise StateError(
            f'model "{name}": its files were removed by a concurrent gc {COMMIT_ATTEMPTS} times: register again'
        )

    def _link_datasets(self, model_version_id: int, datasets: list[dict]) -> None:
        t = self.t
        for link in datasets:
            version_id = None
            if link.get("name") is not None:
                version_id = (
                    t.DatasetVersion.select(t.DatasetVersion.id)
                    .where(t.DatasetVersion.name == link["name"], t.DatasetVersion.version == link["version"])
                    .scalar()
                )
                if version_id is None:
                    raise WebserviceException(
                        f'dataset "{link["name"]}" version {link["version"]} is not registered in this workspace: '
                        "register it (dataset.register(ws, name)) before naming it in datasets="
                    )
            t.ModelDataset.create(
                model_version=model_version_id,
                role=link["role"],
                scenario=link.get("scenario"),
                dataset_version=version_id,
                paths=None if version_id else list(link.get("paths") or ()),
            )

    def _commit_copy(self, path: str, child_paths: list[str] | None) -> tuple[str, str, int, int]:
        """Copy the model into a tree holding it under its own name and commit it; returns the
        tree's digest, that name, and the bytes and count of its files."""
        source = os.path.abspath(path)
        entry = os.path.basename(source)
        folder = self.database.layout.tmp / f"model-{os.getpid()}-{time.time_ns()}"
        try:
            folder.mkdir(parents=True)
            if child_paths:
                for child in child_paths:
                    target = folder / entry / os.path.normpath(child)
                    target.parent.mkdir(parents=True, exist_ok=True)
                    _copy(os.path.join(source, child), target, self.database.layout.state_dir)
            else:
                _copy(source, folder / entry, self.database.layout.state_dir)
            tree = self.store.commit(folder)
        finally:
            if folder.exists():
                shutil.rmtree(folder)
        if not tree.files:
            raise ModelPathNotFoundException(
                f'model path "{path}" holds no files: write the model into it, or give the path of its file'
            )
        return tree.digest, entry, tree.size, len(tree.files)

    # -- reading -------------------------------------------------------------------------------
    def get(self, name: str, version: int) -> dict:
        """Version ``version`` of model ``name``; WebserviceException (ModelNotFound) when there is none."""
        t = self.t
        row = t.ModelVersion.get_or_none(t.ModelVersion.name == name, t.ModelVersion.version == version)
        if row is None:
            raise WebserviceException(_not_found(f"name {name}, version {version}", self._names()))
        return self._records([row])[0]

    def find(self, filters: dict, latest: bool = False) -> list[dict]:
        """The versions matching ``filters`` (name, tags, properties, run_id, framework, dataset),
        newest first; with ``latest``, only the newest of each name.

        ``tags`` and ``properties`` are lists of ``key`` or ``[key, value]`` (as the SDK takes them):
        a version matches when it has every key, with that value where one is given.
        """
        t = self.t
        query = t.ModelVersion.select().order_by(t.ModelVersion.created_at.desc(), t.ModelVersion.id.desc())
        if filters.get("name") is not None:
            query = query.where(t.ModelVersion.name == filters["name"])
        if filters.get("run_id") is not None:  # a run's id ("12", or a step run's "12_17"), or its number
            run_id, step = filters["run_id"], step_run_numbers(filters["run_id"])
            if step is not None:
                by_run = (t.ModelVersion.run_kind == STEP_KIND) & (t.ModelVersion.pipeline_run == step[0])
                query = query.where(by_run & (t.ModelVersion.run_id == step[1]))
            else:
                number = int(run_id) if str(run_id).isascii() and str(run_id).isdigit() else -1
                query = query.where((t.ModelVersion.run_kind != STEP_KIND) & (t.ModelVersion.run_id == number))
        if filters.get("framework") is not None:
            query = query.where(t.ModelVersion.framework == filters["framework"])
        if filters.get("dataset") is not None:
            name, version = filters["dataset"]
            linked = t.ModelDataset.select(t.ModelDataset.model_version).join(t.DatasetVersion)
            linked = linked.where(t.DatasetVersion.name == name)
            if version is not None:
                linked = linked.where(t.DatasetVersion.version == version)
            query = query.where(t.ModelVersion.id.in_(linked))
        rows = [
            row
            for row in query
            if _matches(row.tags, filters.get("tags")) and _matches(row.properties, filters.get("properties"))
        ]
        if latest:
            newest: dict[str, object] = {}
            for row in rows:
                if row.version > getattr(newest.get(row.name), "version", 0):
                    newest[row.name] = row
            rows = [row for row in rows if newest[row.name] is row]
        return self._records(rows)

    def _names(self) -> list[str]:
        t = self.t
        return [
            n for (n,) in t.ModelVersion.select(t.ModelVersion.name).distinct().order_by(t.ModelVersion.name).tuples()
        ]

    # -- changing ------------------------------------------------------------------------------
    def update(self, name: str, version: int, changes: dict) -> dict:
        """Replace the fields in ``changes`` (tags, properties, description, resource_configuration)
        and add its ``datasets`` links; returns the version's record."""
        t = self.t
        with self.database.write():
            row = t.ModelVersion.get_or_none(t.ModelVersion.name == name, t.ModelVersion.version == version)
            if row is None:
                raise WebserviceException(_not_found(f"name {name}, version {version}", self._names()))
            fields = {k: v for k, v in changes.items() if k != "datasets"}
            if fields:
                t.ModelVersion.update(**fields).where(t.ModelVersion.id == row.id).execute()
            self._link_datasets(row.id, changes.get("datasets", []))
        return self.get(name, version)

    def delete(self, name: str, version: int) -> None:
        """Forget the version (its files stay in the store until ``localpipe gc``)."""
        t = self.t
        with self.database.write():
            deleted = (
                t.ModelVersion.delete().where(t.ModelVersion.name == name, t.ModelVersion.version == version).execute()
            )
            if deleted:  # its number is never given again (register): "name:version" names these bytes only
                self.database.db.execute_sql(
                    f'INSERT INTO "{RETIRED_IDS}" ("name", "max_id") VALUES (?, ?) '
                    'ON CONFLICT ("name") DO UPDATE SET "max_id" = max("max_id", excluded."max_id")',
                    (_retired_name(name), version),
                )
        if not deleted:
            raise WebserviceException(_not_found(f"name {name}, version {version}", self._names()))

    def _deleted_version(self, name: str) -> int:
        """The highest version of ``name`` ever deleted (0 when none was)."""
        found = self.database.db.execute_sql(
            f'SELECT "max_id" FROM "{RETIRED_IDS}" WHERE "name" = ?', (_retired_name(name),)
        ).fetchone()
        return found[0] if found else 0

    # -- records -------------------------------------------------------------------------------
    def _records(self, rows: list) -> list[dict]:
        t = self.t
        links: dict[int, list[dict]] = {}
        ids = [row.id for row in rows]
        if ids:
            query = (
                t.ModelDataset.select(t.ModelDataset, t.DatasetVersion)
                .join(t.DatasetVersion, join_type=JOIN.LEFT_OUTER)
                .where(t.ModelDataset.model_version.in_(ids))
                .order_by(t.ModelDataset.id)
            )
            for link in query:
                links.setdefault(link.model_version_id, []).append(self._dataset(link))
        return [self._record(row, links.get(row.id, [])) for row in rows]

    def _dataset(self, link) -> dict:
        found = {"role": link.role, "scenario": link.scenario}
        if link.dataset_version_id is None:
            return {**found, "name": None, "version": None, "kind": "file", "options": {}, "paths": link.paths or []}
        version = link.dataset_version
        root = self.store.path(version.digest)
        paths = [str(root) if entry == "." else str(root / entry) for entry in version.paths]
        return {
            **found,
            "name": version.name,
            "version": version.version,
            "kind": version.kind,
            "options": version.options,
            "paths": paths,
        }

    def _record(self, row, datasets: list[dict]) -> dict:
        return {
            "name": row.name,
            "version": row.version,
            "digest": row.digest,
            "entry": row.entry,
            "path": str(self.store.path(row.digest) / row.entry),
            "size": row.size,
            "files": row.files,
            "description": row.description,
            "tags": row.tags,
            "properties": row.properties,
            "framework": row.framework,
            "framework_version": row.framework_version,
            "resource_configuration": row.resource_configuration,
            "run_id": _run_id(row),
            "run_kind": row.run_kind,
            "experiment": row.experiment,
            "pipeline_run": row.pipeline_run,
            "step": row.step,
            "step_run": row.step_run_id,
            "created_at": row.created_at,
            "datasets": datasets,
        }


def _run_id(row) -> str | None:
    """``Model.run_id``: the id of the run that registered the version, as the SDK hands it out."""
    if row.run_id is None:
        return None
    return step_run_id(row.pipeline_run, row.run_id) if row.run_kind == STEP_KIND else str(row.run_id)


def _retired_name(name: str) -> str:
    """The ``retired_id`` row of model ``name``'s deleted versions (the run tables' rows are named after them)."""
    return f"model_version:{name}"


def _copy(source: str, target: Path, state_dir: Path) -> None:
    if not os.path.exists(source):
        raise ModelPathNotFoundException(
            f'model path "{source}" does not exist: write the model there, or fix the path'
        )
    copy_files(source, target, state_dir)  # as a dataset's files, without the workspace's state


def _matches(values: dict, wanted: list | None) -> bool:
    """Whether ``values`` has every key of ``wanted`` (``key`` or ``[key, value]`` each)."""
    for item in wanted or ():
        if isinstance(item, (list, tuple)):
            key, value = item
            if key not in values or str(values[key]) != str(value):
                return False
        elif item not in values:
            return False
    return True


def _not_found(what: str, names: list[str]) -> str:
    """The SDK's words (``ModelNotFound: Model with ...``, which code written for Azure looks for), then
    what the workspace has and what to do."""
    known = f"registered models: {', '.join(names)}" if names else "no model is registered"
    return (
        f"ModelNotFound: Model with {what} not found in provided workspace ({known}): "
        "register it with Model.register(ws, model_path, model_name) or run.register_model(model_name, model_path)"
    )
