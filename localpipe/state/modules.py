"""Modules and their versions (``Module``, ``ModuleVersion``; docs/modules.md): a ``module`` row per
module, a ``module_version`` row per version naming the object that holds its source snapshot, so
that gc keeps it."""

from __future__ import annotations

from localpipe.errors import NotFoundError, UserErrorException
from localpipe.state.db import Database
from localpipe.state.models import now

STATUSES = ("Active", "Deprecated", "Disabled")


class ModuleRecords:
    """The ``module`` and ``module_version`` tables."""

    def __init__(self, database: Database):
        self.database = database
        self.t = database.tables

    def create(self, module_id: str, name: str, description: str | None) -> dict:
        """Record a module; a name another module has is refused with one line."""
        t = self.t
        with self.database.write():
            other = t.ModuleRecord.get_or_none(t.ModuleRecord.name == name)
            if other is not None:
                raise UserErrorException(
                    f'a module named "{name}" exists (id {other.module_id}): get it with '
                    f'Module.get(ws, name="{name}"), or create one under another name'
                )
            t.ModuleRecord.create(module_id=module_id, name=name, description=description)
        return self.module(module_id)

    def module(self, module_id: str | None = None, name: str | None = None) -> dict:
        """The module with ``module_id`` (else ``name``) and its ``versions`` (oldest first: ``version``,
        ``module_version_id``); NotFoundError when the workspace has none."""
        t = self.t
        where = t.ModuleRecord.module_id == str(module_id) if module_id is not None else t.ModuleRecord.name == name
        row = t.ModuleRecord.select().where(where).dicts().first()
        if row is None:
            what = f'id "{module_id}"' if module_id is not None else f'the name "{name}"'
            raise NotFoundError(f"no module has {what}: create it with Module.create(ws, name, description)")
        versions = (
            t.ModuleVersionRecord.select(t.ModuleVersionRecord.version, t.ModuleVersionRecord.module_version_id)
            .where(t.ModuleVersionRecord.module == row["id"])
            .order_by(t.ModuleVersionRecord.id)
            .dicts()
        )
        return {**row, "versions": list(versions)}

    def modules(self) -> list[dict]:
        """Every module by name, each with its ``versions`` (oldest first: every column but the
        interface, arguments and runconfig)."""
        t = self.t
        versions: dict[int, list[dict]] = {}
        columns = [t.ModuleVersionRecord.module, t.ModuleVersionRecord.module_version_id, t.ModuleVersionRecord.version,
                   t.ModuleVersionRecord.description, t.ModuleVersionRecord.status, t.ModuleVersionRecord.script_name,
                   t.ModuleVersionRecord.created_at]  # fmt: skip
        for row in t.ModuleVersionRecord.select(*columns).order_by(t.ModuleVersionRecord.id).dicts():
            versions.setdefault(row.pop("module"), []).append(row)
        modules = t.ModuleRecord.select().order_by(t.ModuleRecord.name).dicts()
        return [{**row, "versions": versions.get(row["id"], [])} for row in modules]

    def update(self, module_id: str, **changes) -> None:
        """Change the module's ``name``, ``description``, ``status`` or ``default_version``; a name
        another module has, or a default version it does not have, is refused with one line."""
        t = self.t
        with self.database.write():
            module = self.module(module_id)
            if "name" in changes:
                other = t.ModuleRecord.get_or_none(t.ModuleRecord.name == changes["name"])
                if other is not None and other.module_id != module_id:
                    raise UserErrorException(f'a module named "{changes["name"]}" exists: choose another name')
            if "default_version" in changes:
                known = [v["version"] for v in module["versions"]]
                if changes["default_version"] not in known:
                    raise UserErrorException(
                        f'module "{module["name"]}" has no version "{changes["default_version"]}" (it has '
                        f"{', '.join(map(str, known)) or 'none'}): publish it first, or pass one of those"
                    )
            _check_status(changes.get("status"))
            t.ModuleRecord.update(updated_at=now(), **changes).where(t.ModuleRecord.module_id == module_id).execute()

    def add_version(self, module_id: str, row: dict) -> dict:
        """Record a version of the module (``row``: its columns, ``module_version_id`` included); a
        version the module has is refused with one line. The version's record."""
        t = self.t
        with self.database.write():
            module = self.module(module_id)
            if row["version"] is not None and any(v["version"] == row["version"] for v in module["versions"]):
                raise UserErrorException(
                    f'module "{module["name"]}" has a version "{row["version"]}" already: publish under '
                    "another version, or leave version= out"
                )
            t.ModuleVersionRecord.create(module=module["id"], **row)
            t.ModuleRecord.update(updated_at=now()).where(t.ModuleRecord.id == module["id"]).execute()
        return self.version(row["module_version_id"])

    def version(self, module_version_id: str) -> dict:
        """The version ``module_version_id`` with its module's ``module_id``, ``module_name`` and
        ``module_status``; NotFoundError when there is none."""
        t = self.t
        row = (
            t.ModuleVersionRecord.select(
                t.ModuleVersionRecord,
                t.ModuleRecord.module_id,
                t.ModuleRecord.name.alias("module_name"),
                t.ModuleRecord.status.alias("module_status"),
            )
            .join(t.ModuleRecord)
            .where(t.ModuleVersionRecord.module_version_id == str(module_version_id))
            .dicts()
            .first()
        )
        if row is None:
            raise NotFoundError(
                f'no module version has id "{module_version_id}": see Module.get(ws, name=...).module_version_list()'
            )
        row.pop("module")  # the row id of its module: module_id names it
        return row

    def update_version(self, module_version_id: str, **changes) -> None:
        """Change the version's ``description`` or ``status``."""
        t = self.t
        _check_status(changes.get("status"))
        with self.database.write():
            self.version(module_version_id)
            query = t.ModuleVersionRecord.update(updated_at=now(), **changes)
            query.where(t.ModuleVersionRecord.module_version_id == module_version_id).execute()


def _check_status(status: str | None) -> None:
    if status is not None and status not in STATUSES:
        raise UserErrorException(f"status {status!r} is not one of {', '.join(STATUSES)}")
