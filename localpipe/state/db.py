"""Opening history.db: WAL mode, named migrations, refusal of newer or foreign files.

``open_history(ws)`` returns the workspace's database with every model bound to it. It is
cheap to call again: connections are kept per file, and migrations only run when the file's
``user_version`` is behind.
"""

from __future__ import annotations

import functools
import os
import sqlite3

from peewee import DatabaseError, SqliteDatabase

from localpipe.errors import StateError
from localpipe.state import models, reader
from localpipe.state.layout import history_path
from localpipe.state.reader import MIGRATION_NAMES, SCHEMA_VERSION


LATER_TABLES = (models.ResourceClaim, models.DatasetUse)


def _initial(db: SqliteDatabase) -> None:
    db.create_tables([model for model in models.MODELS if model not in LATER_TABLES])


def _resource_claims(db: SqliteDatabase) -> None:
    db.create_tables([models.ResourceClaim])


def _dataset_lineage(db: SqliteDatabase) -> None:
    from playhouse.migrate import SqliteMigrator, migrate

    present = {column.name for column in db.get_columns("dataset_version")}
    migrator = SqliteMigrator(db)
    migrate(*(migrator.add_column("dataset_version", name, getattr(models.DatasetVersion, name))
              for name in ("kind", "options", "description", "tags") if name not in present))
    db.create_tables([models.DatasetUse])


def _git_info(db: SqliteDatabase) -> None:
    from playhouse.migrate import SqliteMigrator, migrate

    if "git" not in {column.name for column in db.get_columns("pipeline_run")}:
        migrate(SqliteMigrator(db).add_column("pipeline_run", "git", models.PipelineRun.git))


# Named, ordered, append-only: each runs once, in one transaction, and is recorded by name.
# 0001 creates the tables as the models are now; later ones bring older files up and are no-ops
# on a file 0001 made.
MIGRATIONS = list(zip(MIGRATION_NAMES, (_initial, _resource_claims, _dataset_lineage, _git_info), strict=True))

PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "normal",  # durable at each checkpoint; WAL keeps the file consistent at a crash
    "foreign_keys": 1,
    "busy_timeout": 10_000,
}

_open: dict[str, SqliteDatabase] = {}


def open_history(ws) -> SqliteDatabase:
    """The workspace's history.db, migrated to this version of localpipe and bound to the models."""
    path = str(history_path(ws))
    db = _open.get(path)
    if db is None:
        if not ws.state_dir.is_dir():
            raise StateError(f"{ws.state_dir} does not exist: run `localpipe init` in {ws.root}")
        db = SqliteDatabase(path, pragmas=PRAGMAS, check_same_thread=False)
        try:
            _migrate(db, path)
        except (DatabaseError, sqlite3.DatabaseError) as exc:
            db.close()
            if not os.access(ws.state_dir, os.W_OK):
                raise StateError(f"workspace {ws.state_dir} is read-only: make it writable, or use another "
                                 "workspace (-w)") from None
            raise StateError(f"{path} is not a localpipe history database ({exc}): move it away "
                             "and run `localpipe init` to start a new one") from None
        _open[path] = db
    db.bind(models.MODELS, bind_refs=False, bind_backrefs=False)
    return db


def insert_rows(model, rows: list[dict]) -> None:
    """Insert ``rows`` (dicts of the same fields) into ``model``'s table with one prepared statement.

    The ORM builds SQL row by row; for the thousands of rows of a large pipeline a prepared
    ``executemany`` is an order of magnitude faster. Fields left out take their defaults.
    """
    if not rows:
        return
    fields = model._meta.fields
    names = list(rows[0])
    defaults = [f for f in fields.values() if f.name not in names and f.default is not None and not f.primary_key]
    columns = [fields[n] for n in names] + defaults
    quoted = ", ".join(f'"{c.column_name}"' for c in columns)
    sql = f'INSERT INTO "{model._meta.table_name}" ({quoted}) VALUES ({", ".join("?" * len(columns))})'
    params = [[fields[n].db_value(row[n]) for n in names]
              + [c.db_value(c.default() if callable(c.default) else c.default) for c in defaults] for row in rows]
    model._meta.database.cursor().executemany(sql, params)


def update_rows(model, changes: list[tuple[int, dict]]) -> None:
    """Apply ``(row id, {field: value})`` changes with one prepared UPDATE per set of fields.

    Faster than the ORM by an order of magnitude, which matters on the scheduler's hot path.
    """
    fields = model._meta.fields
    shapes: dict[tuple[str, ...], list[list]] = {}
    for row_id, values in changes:
        columns = tuple(sorted(values))
        shapes.setdefault(columns, []).append([fields[c].db_value(values[c]) for c in columns] + [row_id])
    cursor = model._meta.database.cursor()
    for columns, params in shapes.items():
        cursor.executemany(_update_statement(model, columns), params)


@functools.cache
def _update_statement(model, columns: tuple[str, ...]) -> str:
    fields = model._meta.fields
    assignments = ", ".join(f'"{fields[c].column_name}" = ?' for c in columns)
    return f'UPDATE "{model._meta.table_name}" SET {assignments} WHERE "id" = ?'


def close_all() -> None:
    """Close every open history.db (tests and forked children call this)."""
    for db in _open.values():
        db.close()
    _open.clear()
    reader.close_all()


def _migrate(db: SqliteDatabase, path: str) -> None:
    db.connect(reuse_if_open=True)
    version = db.execute_sql("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StateError(f"{path} was written by a newer localpipe (schema {version}, this one knows "
                         f"{SCHEMA_VERSION}): upgrade localpipe")
    if version == SCHEMA_VERSION:
        return
    db.bind(models.MODELS, bind_refs=False, bind_backrefs=False)
    with db.atomic("IMMEDIATE"):
        # Re-read under the write lock: another process may have migrated meanwhile.
        version = db.execute_sql("PRAGMA user_version").fetchone()[0]
        for name, apply in MIGRATIONS[version:]:
            apply(db)
            models.Migration.create(name=name)
        db.execute_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")
