"""history.db and the object store: creation, migration, refusals, atomic commits, hashing rules."""

from __future__ import annotations

import os
import sqlite3

import pytest

from localpipe import Workspace
from localpipe.client.workspace import history_of
from localpipe.content.hashing import hash_tree
from localpipe.errors import StateError, UsageError, WorkspaceNotFoundError
from localpipe.state.history import close_all
from localpipe.state.schema import SCHEMA_VERSION
from localpipe.state.store import ObjectStore


def test_history_db_is_created_in_wal_mode_with_every_table(ws):
    conn = sqlite3.connect(ws.state_dir / "history.db")
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {
        "experiment",
        "pipeline_graph",
        "pipeline_run",
        "step_run",
        "step_output",
        "cache_entry",
        "snapshot",
        "edge",
        "metric",
        "datastore",
        "dataset_version",
        "compute_target",
        "environment",
        "published_pipeline",
        "pipeline_endpoint",
        "endpoint_version",
        "schedule",
        "schedule_fire",
        "migration",
        "resource_claim",
        "dataset_use",
        "cache_key",
        "environment_build",
        "workspace_setting",
        "model_version",
        "model_dataset",
        "pipeline_draft",
        "saved_dataset",
        "module",
        "module_version",
    } <= tables
    assert [r[0] for r in conn.execute("SELECT name FROM migration")] == [
        "0001_initial",
        "0002_resource_claims",
        "0003_dataset_lineage",
        "0004_git_info",
        "0005_output_files",
        "0006_environment_builds",
        "0007_workspace_settings",
        "0008_model_registry",
        "0009_run_properties",
        "0010_child_runs",
        "0011_experiment_archive",
        "0012_environment_labels",
        "0013_datastore_url",
        "0014_publishing",
        "0015_pipeline_drafts",
        "0016_saved_datasets",
        "0017_modules",
        "0018_saved_dataset_relative_paths",
        "0019_step_ran_because",
        "0020_retired_ids",
    ]


def test_state_folder_is_private(ws):
    assert (ws.state_dir.stat().st_mode & 0o777) == 0o700


def test_a_history_db_from_a_newer_localpipe_is_refused(ws):
    close_all()
    conn = sqlite3.connect(ws.state_dir / "history.db")
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.commit()
    conn.close()
    with pytest.raises(StateError, match="newer localpipe .* upgrade localpipe"):
        history_of(ws)


def test_a_history_db_that_is_not_a_database_is_refused(ws):
    close_all()
    (ws.state_dir / "history.db").write_bytes(b"this is not sqlite" * 100)
    for suffix in ("-wal", "-shm"):
        (ws.state_dir / f"history.db{suffix}").unlink(missing_ok=True)
    with pytest.raises(StateError, match="not a localpipe history database.*move it away"):
        history_of(ws)


def test_two_workspaces_in_one_process_never_cross(tmp_path):
    """Each workspace's history has its own database handle and models: while a run goes on in one
    (its scheduler in a thread), registrations and reads in the other land in the other."""
    import threading

    from localpipe import Datastore, Experiment, Pipeline, PythonScriptStep
    from localpipe.engine.submit import prepare_run, run_prepared

    one, two = Workspace.create(tmp_path / "one"), Workspace.create(tmp_path / "two")
    (one.root / "src").mkdir()
    (one.root / "src" / "s.py").write_text("import time\nfor _ in range(20):\n    time.sleep(0.02)\n")
    steps = [PythonScriptStep("s.py", name=f"s{i}", source_directory=one.root / "src", arguments=[i]) for i in range(4)]
    prepared = prepare_run(history_of(one), Pipeline(one, steps), "in-one")
    thread = threading.Thread(target=run_prepared, args=(history_of(one), prepared))
    thread.start()
    (tmp_path / "data").mkdir()
    while thread.is_alive():
        Datastore.register_local(two, "data", tmp_path / "data")
        assert history_of(two).runs.list() == [] and two.experiments == {}
    thread.join()
    assert [r["status"] for r in history_of(one).runs.list()] == ["Completed"]
    assert set(one.experiments) == {"in-one"} and set(one.datastores) == {"workspaceblobstore", "workspacefilestore"}
    assert set(two.datastores) == {"workspaceblobstore", "workspacefilestore", "data"}
    assert history_of(one).tables.StepRun is not history_of(two).tables.StepRun
    assert isinstance(one.experiments["in-one"], Experiment)


def test_a_workspace_made_anew_in_the_same_process_is_opened_anew(tmp_path):
    """Found by the hostile review: a history.db deleted and made again while a process had it open
    kept being used through the old handle (runs went into the deleted file)."""
    import shutil

    from localpipe import Datastore

    ws = Workspace.create(tmp_path / "w")
    (tmp_path / "data").mkdir()
    Datastore.register_local(ws, "old", tmp_path / "data")
    shutil.rmtree(ws.state_dir)
    ws = Workspace.create(tmp_path / "w")
    assert set(ws.datastores) == {"workspaceblobstore", "workspacefilestore"}
    Datastore.register_local(ws, "new", tmp_path / "data")
    conn = sqlite3.connect(ws.state_dir / "history.db")
    assert conn.execute("SELECT name FROM datastore").fetchall() == [("new",)]
    conn.close()


def test_from_config_walks_up_and_says_init_when_there_is_none(ws, tmp_path):
    deep = ws.root / "a" / "b"
    deep.mkdir(parents=True)
    assert Workspace.from_config(deep) == ws
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with pytest.raises(WorkspaceNotFoundError, match="localpipe init"):
        Workspace.from_config(elsewhere)


def test_commit_moves_a_folder_into_the_store_once_per_content(tmp_path):
    store = ObjectStore(tmp_path / "objects")
    for attempt in range(2):
        folder = tmp_path / f"out{attempt}"
        (folder / "sub").mkdir(parents=True)
        (folder / "sub" / "f.txt").write_text("same")
        tree = store.commit(folder)
        assert not folder.exists()
    assert store.has(tree.digest)
    assert len(list((tmp_path / "objects").rglob("f.txt"))) == 1
    committed = store.path(tree.digest) / "sub" / "f.txt"
    assert not committed.stat().st_mode & 0o222
    store.remove(tree.digest)
    assert not store.has(tree.digest)


def test_hash_tree_covers_names_content_and_the_executable_bit(tmp_path):
    (tmp_path / "run.sh").write_text("echo hi\n")
    first = hash_tree(tmp_path).digest
    os.chmod(tmp_path / "run.sh", 0o755)
    assert hash_tree(tmp_path).digest != first
    (tmp_path / "run.sh").rename(tmp_path / "go.sh")
    assert set(hash_tree(tmp_path).files) == {"go.sh"}


def test_symlinks_inside_are_followed_and_outside_or_loops_are_refused(tmp_path):
    root = tmp_path / "src"
    (root / "real").mkdir(parents=True)
    (root / "real" / "f.txt").write_text("x")
    os.symlink(root / "real" / "f.txt", root / "link.txt")
    assert hash_tree(root).files["link.txt"] == hash_tree(root).files["real/f.txt"]

    (tmp_path / "secret.txt").write_text("s")
    os.symlink(tmp_path / "secret.txt", root / "escape.txt")
    with pytest.raises(UsageError, match="points outside"):
        hash_tree(root)
    os.unlink(root / "escape.txt")

    os.symlink(root / "real", root / "real" / "again")
    with pytest.raises(UsageError, match="loop"):
        hash_tree(root)


def test_file_names_that_are_not_utf8_are_refused(tmp_path):
    os.close(os.open(os.path.join(os.fsencode(tmp_path), b"bad\xff.txt"), os.O_CREAT | os.O_WRONLY))
    with pytest.raises(UsageError, match="not UTF-8: rename it"):
        hash_tree(tmp_path)


def test_stat_cache_answers_for_unchanged_files_without_reading_them(tmp_path):
    from localpipe.content.statcache import StatCache

    path = tmp_path / "f.txt"
    path.write_text("one")
    old = path.stat().st_mtime - 60
    os.utime(path, (old, old))  # older than the racy window, so it is remembered
    cache = StatCache(tmp_path / "statcache.bin")
    digest = hash_tree(tmp_path, ignore=False, stat_cache=cache).files["f.txt"]
    cache.save()
    reloaded = StatCache(tmp_path / "statcache.bin")
    assert reloaded.lookup(str(path), path.stat()) == digest
    path.write_text("two")
    assert reloaded.lookup(str(path), path.stat()) is None


def test_a_history_db_of_the_release_before_builds_is_migrated(ws, project, run_pipeline):
    """A file written before migration 0006 (no environment_build table, no step_run.environment,
    no workspace_setting) gets them, keeping its rows, the first time a newer localpipe opens it."""
    from localpipe import Pipeline, PythonScriptStep

    project("src/a.py", "print('a')\n")
    run_pipeline(Pipeline(ws, [PythonScriptStep("a.py", name="a", source_directory=str(ws.root / "src"))]))
    close_all()
    conn = sqlite3.connect(ws.state_dir / "history.db")
    with conn:
        conn.execute("DROP TABLE environment_build")
        conn.execute("DROP TABLE workspace_setting")
        conn.execute("ALTER TABLE step_run DROP COLUMN environment")
        conn.execute("DELETE FROM migration WHERE name >= '0006'")  # and the later ones: a file of 0005
        conn.execute("PRAGMA user_version = 5")
    conn.close()
    assert history_of(ws).runs.details(1)["steps"][0]["environment"] is None
    conn = sqlite3.connect(ws.state_dir / "history.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert "environment" in {row[1] for row in conn.execute("PRAGMA table_info(step_run)")}
    assert conn.execute("SELECT COUNT(*) FROM environment_build").fetchone() == (0,)
    assert conn.execute("SELECT COUNT(*) FROM workspace_setting").fetchone() == (0,)
    assert conn.execute("SELECT COUNT(*) FROM step_run").fetchone() == (1,)
    conn.close()


def test_a_history_db_of_the_release_before_run_properties_is_migrated(ws, project, run_pipeline):
    """A file written before migration 0009 (no properties, display names, experiment tags) gets
    them, keeping its rows; its runs read with empty properties."""
    from localpipe import Pipeline, PythonScriptStep

    project("src/a.py", "print('a')\n")
    run_pipeline(Pipeline(ws, [PythonScriptStep("a.py", name="a", source_directory=str(ws.root / "src"))]))
    close_all()
    conn = sqlite3.connect(ws.state_dir / "history.db")
    with conn:
        for table, column in [("pipeline_run", "properties"), ("pipeline_run", "display_name"),
                              ("pipeline_run", "description"), ("step_run", "properties"),
                              ("experiment", "tags")]:  # fmt: skip
            conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        conn.execute("DELETE FROM migration WHERE name >= '0009'")  # and the later ones: a file of 0008
        conn.execute("PRAGMA user_version = 8")
    conn.close()
    assert history_of(ws).runs.get(1)["properties"] == {}
    assert history_of(ws).runs.steps(1)[0]["properties"] == {}
    conn = sqlite3.connect(ws.state_dir / "history.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert "display_name" in {row[1] for row in conn.execute("PRAGMA table_info(pipeline_run)")}
    conn.close()


def test_a_history_db_of_the_release_before_child_runs_is_migrated(ws, project, run_pipeline):
    """A file of 0009 gains a step run's display name, an experiment's archive time and environment
    labels (0010-0012), keeping its rows."""
    from localpipe import Pipeline, PythonScriptStep

    project("src/a.py", "print('a')\n")
    run_pipeline(Pipeline(ws, [PythonScriptStep("a.py", name="a", source_directory=str(ws.root / "src"))]))
    close_all()
    conn = sqlite3.connect(ws.state_dir / "history.db")
    with conn:
        for table, column in [("step_run", "display_name"), ("experiment", "archived_at"), ("environment", "labels")]:
            conn.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
        conn.execute("DELETE FROM migration WHERE name >= '0010'")
        conn.execute("PRAGMA user_version = 9")
    conn.close()
    step = history_of(ws).runs.steps(1)[0]
    assert step["display_name"] is None and history_of(ws).runs.children(step["id"]) == []
    assert history_of(ws).registry.experiments()[0]["archived_at"] is None
    conn = sqlite3.connect(ws.state_dir / "history.db")
    assert "labels" in {row[1] for row in conn.execute("PRAGMA table_info(environment)")}
    conn.close()


def test_a_history_db_before_public_blob_containers_is_migrated(ws, tmp_path):
    """A file of 0012 gains the datastore's url (0013, a public blob container's address), keeping
    its local datastores."""
    from localpipe import Datastore

    (tmp_path / "data").mkdir()
    Datastore.register_local(ws, "local", tmp_path / "data")
    close_all()
    conn = sqlite3.connect(ws.state_dir / "history.db")
    with conn:
        conn.execute("ALTER TABLE datastore DROP COLUMN url")
        conn.execute("DELETE FROM migration WHERE name >= '0013'")
        conn.execute("PRAGMA user_version = 12")
    conn.close()
    assert Datastore.get(ws, "local").folder == tmp_path / "data" and Datastore.get(ws, "local").url is None
    public = Datastore.register_azure_blob_container(ws, "public", "sampledata", "pipelinedata")
    assert Datastore.get(ws, "public").url == public.url == "https://pipelinedata.blob.core.windows.net/sampledata"


def test_a_history_db_of_the_release_before_publishing_is_migrated(ws, project, run_pipeline):
    """A file of 0013 holds the placeholder published_pipeline and schedule tables 0001 made then
    (never written): 0014 makes them anew with the endpoint and fire tables, keeping every run."""
    from localpipe import Pipeline, PythonScriptStep

    project("src/a.py", "print('a')\n")
    run_pipeline(Pipeline(ws, [PythonScriptStep("a.py", name="a", source_directory=str(ws.root / "src"))]))
    close_all()
    conn = sqlite3.connect(ws.state_dir / "history.db")
    with conn:
        for table in ("schedule_fire", "schedule", "endpoint_version", "pipeline_endpoint", "published_pipeline"):
            conn.execute(f"DROP TABLE {table}")
        conn.execute(
            'CREATE TABLE "published_pipeline" ("id" INTEGER NOT NULL PRIMARY KEY, "name" TEXT NOT NULL, '
            '"description" TEXT, "version" TEXT, "pipeline_id" INTEGER NOT NULL, "created_at" REAL NOT NULL)'
        )
        conn.execute(
            'CREATE TABLE "schedule" ("id" INTEGER NOT NULL PRIMARY KEY, "name" TEXT NOT NULL, "published_id" '
            'INTEGER NOT NULL, "experiment_name" TEXT NOT NULL, "recurrence" TEXT, "status" TEXT NOT NULL, '
            '"created_at" REAL NOT NULL)'
        )
        conn.execute("DELETE FROM migration WHERE name >= '0014'")
        conn.execute("PRAGMA user_version = 13")
    conn.close()
    assert history_of(ws).publishing.published_list(active_only=False) == []
    conn = sqlite3.connect(ws.state_dir / "history.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert "declaration" in {row[1] for row in conn.execute("PRAGMA table_info(published_pipeline)")}
    assert "path_on_datastore" in {row[1] for row in conn.execute("PRAGMA table_info(schedule)")}
    assert conn.execute("SELECT COUNT(*) FROM schedule_fire").fetchone() == (0,)
    assert conn.execute("SELECT COUNT(*) FROM step_run").fetchone() == (1,)
    conn.close()


def test_a_history_db_before_relative_saved_paths_has_them_rewritten_and_the_workspace_moves(tmp_path):
    """A file of schema 0017 holds its saved datasets' paths absolute: opened, those inside the workspace
    become relative to it (those outside stay), so that the workspace moved still finds them."""
    import json
    import shutil

    from localpipe.state.history import History
    from localpipe.state.layout import Layout
    from localpipe.state.schema import MIGRATION_NAMES

    workspace = tmp_path / "ws"
    layout = Layout.of(workspace / ".localpipe")
    layout.state_dir.mkdir(parents=True)
    History(layout).close()
    before = MIGRATION_NAMES.index("0018_saved_dataset_relative_paths")
    inside = {
        "kind": "file",
        "paths": [f"{workspace}/data/*.csv"],
        "root": f"{workspace}/data",
        "partition_format": None,
    }
    outside = {"kind": "file", "paths": ["/elsewhere/b.csv"], "root": None, "partition_format": None}
    with sqlite3.connect(layout.history) as conn:
        conn.execute("DELETE FROM migration WHERE name >= ?", (MIGRATION_NAMES[before],))
        conn.execute(f"PRAGMA user_version = {before}")
        for saved_id, definition in (("in", inside), ("out", outside)):
            conn.execute(
                "INSERT INTO saved_dataset (saved_id, definition, created_at) VALUES (?, ?, 0)",
                (saved_id, json.dumps(definition)),
            )
    conn.close()

    History(layout).close()

    with sqlite3.connect(layout.history) as conn:
        stored = dict(conn.execute("SELECT saved_id, definition FROM saved_dataset"))
    conn.close()
    assert json.loads(stored["in"]) == {**inside, "paths": ["data/*.csv"], "root": "data"}
    assert json.loads(stored["out"]) == outside
    shutil.move(workspace, tmp_path / "moved")
    history = History(Layout.of(tmp_path / "moved" / ".localpipe"))
    found = history.datasets.by_id("in")["definition"]
    assert (found["paths"], found["root"]) == ([f"{tmp_path}/moved/data/*.csv"], f"{tmp_path}/moved/data")
    assert history.datasets.by_id("out")["definition"] == outside
    history.close()


def test_a_history_db_before_saved_datasets_gains_the_table_and_saves(tmp_path):
    """A file written before migration 0016 (no saved_dataset table) is brought up when opened."""
    from localpipe.state.history import History
    from localpipe.state.layout import Layout
    from localpipe.state.schema import MIGRATION_NAMES, SCHEMA_VERSION

    layout = Layout.of(tmp_path / ".localpipe")
    layout.state_dir.mkdir()
    History(layout).close()
    saved = MIGRATION_NAMES.index("0016_saved_datasets")
    with sqlite3.connect(layout.history) as conn:
        conn.execute("DROP TABLE saved_dataset")
        conn.execute("DELETE FROM migration WHERE name >= ?", (MIGRATION_NAMES[saved],))
        conn.execute(f"PRAGMA user_version = {saved}")
    conn.close()
    history = History(layout)
    definition = {"kind": "file", "paths": ["/data/a.csv"], "root": None, "partition_format": None}
    history.datasets.save("a-guid", definition)
    history.datasets.save("a-guid", definition)  # recorded once
    assert history.datasets.by_id("a-guid") == {"id": "a-guid", "definition": definition}
    history.close()
    with sqlite3.connect(layout.history) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
