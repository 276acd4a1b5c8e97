"""Opening history.db: WAL mode, named migrations, refusal of newer or foreign files."""

from __future__ import annotations

import os
import sqlite3
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from peewee import DatabaseError, OperationalError, SqliteDatabase

from localpipe.errors import DAMAGED, StateError, damaged
from localpipe.state.layout import Layout, relocatable
from localpipe.state.models import RETIRED_IDS, Tables, all_models, define_tables
from localpipe.state.schema import MIGRATION_NAMES, SCHEMA_VERSION

# What an operation raises when history.db cannot be written (a full disk, a read-only file, a lock
# held past busy_timeout): peewee's class, named here so that no layer above imports peewee.
WriteFailed = OperationalError

PRAGMAS = {
    "journal_mode": "wal",
    "synchronous": "normal",  # durable at each checkpoint; WAL keeps the file consistent at a crash
    "foreign_keys": 1,
    "busy_timeout": 10_000,
    "temp_store": "memory",  # statement journals: on a file, one submission wrote thousands of pages to /var/tmp
}


def write_failure(exc: Exception) -> str:
    """One line on why history.db could not be written and what to do."""
    if "locked" in str(exc):
        return (
            f"history.db could not be written ({exc}): another process held its write lock for more than "
            f"{PRAGMAS['busy_timeout'] / 1000:g} s (an open transaction in a database tool?): end it and try again"
        )
    return f"history.db could not be written ({exc}): free disk space (localpipe gc, localpipe du) and try again"


def _initial(db: SqliteDatabase, t: Tables) -> None:
    later = (t.ResourceClaim, t.DatasetUse, t.ModelVersion, t.ModelDataset)
    db.create_tables([model for model in all_models(t) if model not in later])


def _resource_claims(db: SqliteDatabase, t: Tables) -> None:
    db.create_tables([t.ResourceClaim])


def _dataset_lineage(db: SqliteDatabase, t: Tables) -> None:
    from playhouse.migrate import SqliteMigrator, migrate

    present = {column.name for column in db.get_columns("dataset_version")}
    migrator = SqliteMigrator(db)
    migrate(
        *(
            migrator.add_column("dataset_version", name, getattr(t.DatasetVersion, name))
            for name in ("kind", "options", "description", "tags")
            if name not in present
        )
    )
    db.create_tables([t.DatasetUse])


def _git_info(db: SqliteDatabase, t: Tables) -> None:
    from playhouse.migrate import SqliteMigrator, migrate

    if "git" not in {column.name for column in db.get_columns("pipeline_run")}:
        migrate(SqliteMigrator(db).add_column("pipeline_run", "git", t.PipelineRun.git))


def _output_files(db: SqliteDatabase, t: Tables) -> None:
    from playhouse.migrate import SqliteMigrator, migrate

    if "files" not in {column.name for column in db.get_columns("step_output")}:
        migrate(SqliteMigrator(db).add_column("step_output", "files", t.StepOutput.files))


def _environment_builds(db: SqliteDatabase, t: Tables) -> None:
    from playhouse.migrate import SqliteMigrator, migrate

    if "environment" not in {column.name for column in db.get_columns("step_run")}:
        migrate(SqliteMigrator(db).add_column("step_run", "environment", t.StepRun.environment))
    db.create_tables([t.EnvironmentBuild])


def _workspace_settings(db: SqliteDatabase, t: Tables) -> None:
    db.create_tables([t.WorkspaceSetting])


def _model_registry(db: SqliteDatabase, t: Tables) -> None:
    db.create_tables([t.ModelVersion, t.ModelDataset])


def _run_properties(db: SqliteDatabase, t: Tables) -> None:
    from playhouse.migrate import SqliteMigrator, migrate

    added = {
        "experiment": ("tags",),
        "pipeline_run": ("properties", "display_name", "description"),
        "step_run": ("properties",),
    }
    models = {"experiment": t.Experiment, "pipeline_run": t.PipelineRun, "step_run": t.StepRun}
    migrator = SqliteMigrator(db)
    for table, names in added.items():
        present = {column.name for column in db.get_columns(table)}
        migrate(*(migrator.add_column(table, n, getattr(models[table], n)) for n in names if n not in present))


def _add_columns(db: SqliteDatabase, table: str, model, names: tuple[str, ...]) -> None:
    from playhouse.migrate import SqliteMigrator, migrate

    present = {column.name for column in db.get_columns(table)}
    fields = [getattr(model, name) for name in names]
    migrator = SqliteMigrator(db)
    # By column name: given another, the migrator renames the model's own field (a foreign key's is NAME_id).
    migrate(*(migrator.add_column(table, f.column_name, f) for f in fields if f.column_name not in present))


def _child_runs(db: SqliteDatabase, t: Tables) -> None:
    _add_columns(db, "step_run", t.StepRun, ("parent", "display_name"))


def _experiment_archive(db: SqliteDatabase, t: Tables) -> None:
    _add_columns(db, "experiment", t.Experiment, ("archived_at",))


def _environment_labels(db: SqliteDatabase, t: Tables) -> None:
    _add_columns(db, "environment", t.EnvironmentRecord, ("labels",))


def _datastore_url(db: SqliteDatabase, t: Tables) -> None:
    _add_columns(db, "datastore", t.DatastoreRecord, ("url",))


def _publishing(db: SqliteDatabase, t: Tables) -> None:
    # 0001 made published_pipeline and schedule as placeholders nothing ever wrote: made anew.
    if "published_id" not in {column.name for column in db.get_columns("published_pipeline")}:
        db.drop_tables([t.Schedule, t.PublishedPipeline])
    db.create_tables([t.PublishedPipeline, t.PipelineEndpoint, t.EndpointVersion, t.Schedule, t.ScheduleFire])


def _pipeline_drafts(db: SqliteDatabase, t: Tables) -> None:
    db.create_tables([t.PipelineDraft])


def _saved_datasets(db: SqliteDatabase, t: Tables) -> None:
    db.create_tables([t.SavedDataset])


def _modules(db: SqliteDatabase, t: Tables) -> None:
    db.create_tables([t.ModuleRecord, t.ModuleVersionRecord])


def _saved_dataset_relative_paths(db: SqliteDatabase, t: Tables) -> None:
    """Saved datasets' paths inside the workspace, written absolute before, made relative to it."""
    root = Path(db.database).resolve().parent.parent  # the folder holding .localpipe/history.db
    for row in t.SavedDataset.select():
        stored = relocatable(row.definition, root)
        if stored != row.definition:
            t.SavedDataset.update(definition=stored).where(t.SavedDataset.id == row.id).execute()


def _step_ran_because(db: SqliteDatabase, t: Tables) -> None:
    _add_columns(db, "step_run", t.StepRun, ("ran_because",))


def _retired_ids(db: SqliteDatabase, t: Tables) -> None:
    """The highest id each run table ever held, kept as its rows are deleted (gc, Experiment.delete),
    so that a new run is never given the id of a forgotten one (``models.next_id``)."""
    db.execute_sql(f'CREATE TABLE IF NOT EXISTS "{RETIRED_IDS}" ("name" TEXT PRIMARY KEY, "max_id" INTEGER NOT NULL)')
    for table in ("pipeline_run", "step_run"):
        db.execute_sql(
            f'CREATE TRIGGER IF NOT EXISTS "{table}_retires_its_ids" AFTER DELETE ON "{table}" '
            f'WHEN OLD."id" > coalesce((SELECT "max_id" FROM "{RETIRED_IDS}" WHERE "name" = \'{table}\'), 0) '
            f'BEGIN INSERT INTO "{RETIRED_IDS}" ("name", "max_id") VALUES (\'{table}\', OLD."id") '
            'ON CONFLICT ("name") DO UPDATE SET "max_id" = excluded."max_id"; END'
        )


# Named, ordered, append-only: each runs once, in one transaction, and is recorded by name.
# 0001 creates the tables as the models are now; later ones bring older files up and are no-ops
# on a file 0001 made.
MIGRATIONS = list(
    zip(  # (strict=True is Python 3.10's: checked below)
        MIGRATION_NAMES,
        (
            _initial,
            _resource_claims,
            _dataset_lineage,
            _git_info,
            _output_files,
            _environment_builds,
            _workspace_settings,
            _model_registry,
            _run_properties,
            _child_runs,
            _experiment_archive,
            _environment_labels,
            _datastore_url,
            _publishing,
            _pipeline_drafts,
            _saved_datasets,
            _modules,
            _saved_dataset_relative_paths,
            _step_ran_because,
            _retired_ids,
        ),
    )
)
# A step in an older Python imports this module too (Model.get_model_path reads the registry).
if len(MIGRATIONS) != len(MIGRATION_NAMES):
    raise RuntimeError(
        "state/db.py's MIGRATIONS and state/schema.py's MIGRATION_NAMES differ: name each migration once"
    )


@dataclass(frozen=True)
class Database:
    """An open history.db: its peewee handle, the tables bound to it, and the workspace's layout."""

    layout: Layout
    db: SqliteDatabase
    tables: Tables

    def write(self) -> AbstractContextManager:
        """A write transaction (``BEGIN IMMEDIATE``: SQLite serialises them between processes), or
        the one this thread is already in, which the operations then join."""
        return nullcontext() if self.db.in_transaction() else self.db.atomic("IMMEDIATE")


def open_database(layout: Layout) -> Database:
    """The workspace's history.db, migrated to this version of localpipe, and its tables bound to it."""
    if not layout.state_dir.is_dir():
        raise StateError(f"{layout.state_dir} does not exist: run `localpipe init` in {layout.root}")
    path = str(layout.history)
    db = SqliteDatabase(path, pragmas=PRAGMAS, check_same_thread=False)
    tables = define_tables(db)
    try:
        _migrate(db, tables, path)
    except (DatabaseError, sqlite3.DatabaseError) as exc:
        db.close()
        if "disk is full" in str(exc):
            raise StateError(
                f"{path} could not be written: the disk is full: free space (localpipe gc, localpipe du) and try again"
            ) from None
        if not os.access(layout.state_dir, os.W_OK):
            raise StateError(
                f"workspace {layout.state_dir} is read-only: make it writable, or use another workspace (-w)"
            ) from None
        if DAMAGED in str(exc):
            raise StateError(damaged(exc, path)) from None
        raise StateError(
            f"{path} is not a localpipe history database ({exc}): move it away "
            "and run `localpipe init` to start a new one"
        ) from None
    return Database(layout, db, tables)


def _migrate(db: SqliteDatabase, tables: Tables, path: str) -> None:
    db.connect(reuse_if_open=True)
    version = db.execute_sql("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StateError(
            f"{path} was written by a newer localpipe (schema {version}, this one knows "
            f"{SCHEMA_VERSION}): upgrade localpipe"
        )
    if version == SCHEMA_VERSION:
        return
    with db.atomic("IMMEDIATE"):
        # Re-read under the write lock: another process may have migrated meanwhile.
        version = db.execute_sql("PRAGMA user_version").fetchone()[0]
        for name, apply in MIGRATIONS[version:]:
            apply(db, tables)
            tables.Migration.create(name=name)
        db.execute_sql(f"PRAGMA user_version = {SCHEMA_VERSION}")
