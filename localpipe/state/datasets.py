"""Registered datasets: versions fixed by content, kept read-only in the object store, with lineage.

Registering copies the files into the object store (once per distinct content) so that a
version always means the same bytes, whatever happens later at the original path; mounting a
registered dataset is then a read-only path with no copy. A version is returned as a plain
record: ``{"id", "name", "version", "digest", "kind", "options", "paths", "description", "tags",
"created_at"}``, its paths absolute paths in the store (the SDK makes a FileDataset or
TabularDataset of it).

A version's ``id`` is a GUID, as the SDK's dataset ids are: derived from its name, version, content
digest and registration time, so that it never changes and a name registered again after
``unregister_all_versions`` gets new ids.

A dataset a submission uses without being registered is saved, as Azure saves it: its definition
(kind, paths, how they are read; no copy of the files) under a GUID derived from that definition
(``sdk/data/datasets.py``), so that ``Dataset.get_by_id`` and a REST call's
``SavedDataSetReference`` find it by ``dataset.id``.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

from localpipe.errors import NotFoundError, StateError, UsageError, UserErrorException
from localpipe.state.db import Database
from localpipe.state.layout import located, relocatable, within
from localpipe.state.models import now
from localpipe.state.store import COMMIT_ATTEMPTS, ObjectStore


class DatasetRecords:
    """The ``dataset_version`` and ``dataset_use`` tables, and the copies in the object store."""

    def __init__(self, database: Database):
        self.database = database
        self.t = database.tables
        self.store = ObjectStore(database.layout.objects)

    def register(
        self,
        name: str,
        paths: list[str],
        kind: str = "file",
        options: dict | None = None,
        description: str | None = None,
        tags: dict | None = None,
        create_new_version: bool = True,
        root: str | None = None,
    ) -> dict:
        """Register the files at ``paths`` as a version of ``name``; returns the version's record. With
        ``root``, the version is one folder holding each path at its place below ``root``."""
        for _ in range(COMMIT_ATTEMPTS):
            digest, entries = self._commit_copy(paths, root)
            found = self.record_version(
                name, digest, entries, kind, options, description, tags, create_new_version, committed_here=True
            )
            if found is not None:
                return found
        raise StateError(
            f'dataset "{name}": its files were removed by a concurrent gc {COMMIT_ATTEMPTS} times: register again'
        )

    def record_version(
        self,
        name: str,
        digest: str,
        entries: list[str],
        kind: str = "file",
        options: dict | None = None,
        description: str | None = None,
        tags: dict | None = None,
        create_new_version: bool = True,
        produced_by: int | None = None,
        committed_here: bool = False,
    ) -> dict | None:
        """The version of ``name`` for the stored tree ``digest``: the latest if its definition is the
        same (its content, the paths inside it, its kind and how it is read), else a new one. None
        when ``committed_here`` (by ``register``, outside this transaction) and a gc removed it since."""
        t = self.t
        with self.database.write():
            if committed_here and not self.store.has(digest):
                return None
            latest = self._versions(name).first()
            if latest is not None and (latest.digest, latest.paths, latest.kind, _set(latest.options)) == (
                digest,
                entries,
                kind,
                _set(options),
            ):
                return self._record(latest)
            if latest is not None and not create_new_version:
                other = "other content" if latest.digest != digest else "another definition of the same files"
                raise UsageError(
                    f'dataset "{name}" exists with {other} (version {latest.version}): '
                    "pass create_new_version=True to add a version"
                )
            row = t.DatasetVersion.create(
                name=name,
                version=(latest.version + 1) if latest else 1,
                digest=digest,
                paths=entries,
                produced_by=produced_by,
                kind=kind,
                options=options or {},
                description=description,
                tags=tags or {},
            )
        return self._record(row)

    def get(self, name: str, version: int | str = "latest") -> dict:
        """A registered version of ``name`` (``"latest"``, or a number)."""
        t = self.t
        query = self._versions(name)
        if version != "latest":
            try:
                query = query.where(t.DatasetVersion.version == int(version))
            except (TypeError, ValueError):
                raise UsageError(f'dataset version "{version}" is not a number or "latest"') from None
        row = query.first()
        if row is None:
            known = self._versions(name).count()
            what = f"has no version {version} (it has {known})" if known else "is not registered"
            raise NotFoundError(f'dataset "{name}" {what}: register it with dataset.register(ws, "{name}")')
        return self._record(row)

    def by_id(self, dataset_id: str) -> dict:
        """The registered version whose ``id`` is ``dataset_id``, or else the dataset saved under it
        (``{"id", "definition"}``). A lookup writes nothing: gc keeps a saved dataset, and the copy it
        reads, for an hour after it forgot the last run naming it (``state/gc.py``), which leaves that
        hour to a submission of what was found."""
        t = self.t
        for row in t.DatasetVersion.select():
            if version_id(row) == dataset_id:
                return self._record(row)
        saved = t.SavedDataset.get_or_none(t.SavedDataset.saved_id == dataset_id)
        if saved is None:
            raise UserErrorException(f'Cannot find dataset with id "{dataset_id}" in the workspace.')
        definition = located(saved.definition, self.database.layout.root)
        for path in definition["paths"]:
            if within(Path(path), self.store.root) and not os.path.lexists(path):
                # Written before gc kept what a saved definition names (or removed by hand).
                raise UserErrorException(
                    f'dataset "{dataset_id}" is an unregistered version whose copy in the object store is gone '
                    f"({path}): register its files again to use them"
                )
        return {"id": saved.saved_id, "definition": definition}

    def save(self, saved_id: str, definition: dict) -> None:
        """Record the dataset ``definition`` (plain data) under ``saved_id`` (the SDK derives it from
        the definition: recorded once), its paths inside the workspace relative to it, so that the
        workspace moved or cloned still finds them. Saved again, its ``created_at`` is now: gc leaves
        a row saved within the hour to the run about to name it."""
        t = self.t
        stored = relocatable(definition, self.database.layout.root)
        with self.database.write():
            t.SavedDataset.insert(saved_id=saved_id, definition=stored).on_conflict(
                conflict_target=[t.SavedDataset.saved_id], update={t.SavedDataset.created_at: now()}
            ).execute()

    def latest(self) -> list[dict]:
        """The latest version of every registered name, by name."""
        t = self.t
        rows = t.DatasetVersion.select().order_by(t.DatasetVersion.name, t.DatasetVersion.version.desc())
        newest: dict[str, dict] = {}
        for row in rows:
            if row.name not in newest:
                newest[row.name] = self._record(row)
        return list(newest.values())

    def update(self, name: str, version: int, description: str | None, tags: dict | None) -> dict:
        """Set a version's ``description`` and ``tags`` (each left as it is when None); its record."""
        t = self.t
        with self.database.write():
            row = self._versions(name).where(t.DatasetVersion.version == version).first()
            if row is None:
                raise NotFoundError(f'dataset "{name}" has no version {version}: see `localpipe datasets {name}`')
            if description is not None:
                row.description = description
            if tags is not None:
                row.tags = dict(tags)
            row.save()
        return self._record(row)

    def unregister(self, name: str) -> int:
        """Forget every version of ``name``; returns how many. Their copies in the object store stay until
        ``localpipe gc``; a model that named one keeps its paths instead of the link. Each version stays
        a saved dataset under its id, as on Azure (unregistering removes the name, not the dataset): the
        runs that consumed it still list it, and ``Dataset.get_by_id`` finds it."""
        t = self.t
        with self.database.write():
            rows = list(self._versions(name))
            for row in rows:
                record = self._record(row)
                t.ModelDataset.update(paths=record["paths"]).where(t.ModelDataset.dataset_version == row.id).execute()
                self.save(record["id"], _definition(record))
            t.DatasetVersion.delete().where(t.DatasetVersion.name == name).execute()
        return len(rows)

    def list(self, name: str | None = None) -> list[dict]:
        """Every version (of ``name``, or of all), newest first, with the step runs that made and used it."""
        t = self.t
        query = t.DatasetVersion.select().order_by(t.DatasetVersion.name, t.DatasetVersion.version.desc())
        if name is not None:
            query = query.where(t.DatasetVersion.name == name)
        versions = list(query)
        if name is not None and not versions:
            raise NotFoundError(f'dataset "{name}" is not registered: see `localpipe datasets`')
        uses: dict[int, list[dict]] = {}
        rows = (
            t.DatasetUse.select(t.DatasetUse.dataset_version, t.StepRun.run, t.StepRun.name)
            .join(t.StepRun)
            .where(t.DatasetUse.dataset_version.in_([v.id for v in versions]))
            .tuples()
        )
        for version_id, run_id, step in rows:
            uses.setdefault(version_id, []).append({"run": run_id, "step": step})
        producers = {
            s.id: {"run": s.run_id, "step": s.name}
            for s in t.StepRun.select().where(
                t.StepRun.id.in_([v.produced_by_id for v in versions if v.produced_by_id])
            )
        }
        return [
            {
                "name": v.name,
                "version": v.version,
                "digest": v.digest,
                "kind": v.kind,
                "created_at": v.created_at,
                "description": v.description,
                "produced_by": producers.get(v.produced_by_id),
                "consumed_by": uses.get(v.id, []),
            }
            for v in versions
        ]

    def add_uses(self, step_run_id: int, datasets: list[dict]) -> None:
        """Note that a step run consumed these registered datasets ({"name", "version"} each)."""
        t = self.t
        for dataset in datasets:
            version = (
                t.DatasetVersion.select(t.DatasetVersion.id)
                .where(t.DatasetVersion.name == dataset["name"], t.DatasetVersion.version == dataset["version"])
                .scalar()
            )
            if version is not None:
                t.DatasetUse.create(step_run=step_run_id, dataset_version=version)

    def _versions(self, name: str):
        t = self.t
        return t.DatasetVersion.select().where(t.DatasetVersion.name == name).order_by(t.DatasetVersion.version.desc())

    def _record(self, row) -> dict:
        root = self.store.path(row.digest)
        paths = [str(root) if entry == "." else str(root / entry) for entry in row.paths]
        return {
            "id": version_id(row),
            "name": row.name,
            "version": row.version,
            "digest": row.digest,
            "kind": row.kind,
            "options": row.options,
            "paths": paths,
            "description": row.description,
            "tags": dict(row.tags or {}),
            "created_at": row.created_at,
        }

    def _commit_copy(self, paths: list[str], root: str | None = None) -> tuple[str, list[str]]:
        """Copy ``paths`` into one tree and commit it; returns its digest and the paths inside it."""
        for path in paths:
            if not os.path.exists(path):
                raise UsageError(f'dataset path "{path}" does not exist: create it or fix the path')
        folder = self.database.layout.tmp / f"dataset-{os.getpid()}-{id(paths)}"
        try:
            if len(paths) == 1 and os.path.isdir(paths[0]):
                copy_files(paths[0], folder, self.database.layout.state_dir)
                entries = ["."]
            elif root is not None:  # a selection of files (a glob, take, skip ...) keeps its layout
                for path in paths:
                    dest = folder / os.path.relpath(path, root)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    copy_files(path, dest, self.database.layout.state_dir)
                folder.mkdir(parents=True, exist_ok=True)
                entries = ["."]
            else:
                folder.mkdir(parents=True)
                entries = []
                for path in paths:
                    entry = os.path.basename(os.path.normpath(path))
                    if entry in entries:
                        raise UsageError(f'dataset paths share the name "{entry}": register them separately')
                    copy_files(path, folder / entry, self.database.layout.state_dir)
                    entries.append(entry)
            tree = self.store.commit(folder)
        finally:
            if folder.exists():
                shutil.rmtree(folder)
        return tree.digest, entries


def copy_files(source: str | os.PathLike, target: str | os.PathLike, state_dir: Path | None = None) -> None:
    """Copy the file ``source``, or the files below the folder ``source``, to ``target``: the files a
    dataset names (``FileDataset.files``). A link to a file is copied as that file; a linked folder is
    not entered (it may hold the folder itself), and a dangling link, a fifo or a socket is no file:
    they are left out. So is the workspace's own ``state_dir`` (history.db, the object store, and the
    copy being made, in its tmp/), when ``source`` holds it."""
    if not os.path.isdir(source):
        shutil.copyfile(source, target)
        return
    os.makedirs(target, exist_ok=True)
    with os.scandir(source) as found:
        entries = list(found)
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if state_dir is None or not os.path.samefile(entry.path, state_dir):
                copy_files(entry.path, os.path.join(target, entry.name), state_dir)
        elif entry.is_file():  # follows a link; False for a dangling one, a fifo, a socket
            shutil.copyfile(entry.path, os.path.join(target, entry.name))


def _set(options: dict | None) -> dict:
    """The options given a value, as a row reads them back: a version an older localpipe recorded
    lacks those added since, which were unset then (each one's default is None, False or empty)."""
    return {
        key: value
        for key, value in json.loads(json.dumps(options or {})).items()
        if value not in (None, False, [], {}, "")
    }


def _definition(record: dict) -> dict:
    """A registered version's record as a saved dataset's definition (``FileDataset.definition()``)."""
    options = record["options"] or {}
    definition = {"kind": record["kind"], "paths": record["paths"], "root": None}
    definition["partition_format"] = options.get("partition_format")
    return {**definition, "options": options} if record["kind"] == "tabular" else definition


# Ids are GUIDs in a namespace of localpipe's own, so that none equals an Azure dataset's id by chance.
ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://localpipe/datasets")


def version_id(row) -> str:
    """The GUID of a registered version (see the module's docstring)."""
    return str(uuid.uuid5(ID_NAMESPACE, f"{row.name}:{row.version}:{row.digest}:{row.created_at!r}"))
