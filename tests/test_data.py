"""Data with real files: registered datasets and their versions, mounts, downloads, write-backs,
tabular data, lineage, concurrent metrics, and the data commands."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from localpipe import (
    Dataset,
    Datastore,
    OutputFileDatasetConfig,
    Pipeline,
    PipelineData,
    PythonScriptStep,
)
from localpipe.errors import UsageError
from localpipe.state import reader
from localpipe.state.history import close_all
from localpipe.state.layout import Layout

SEE = """
import json, os, sys
from localpipe import Run
path = sys.argv[1]
target = os.path.join(path, "values.csv") if os.path.isdir(path) else path
st = os.stat(target)
inputs = {k: str(v) for k, v in Run.get_context().input_datasets.items()}
json.dump({"path": path, "inode": st.st_ino, "inputs": inputs}, open(os.path.join(sys.argv[2], "seen.json"), "w"))
"""


def seen(ws, steps, step="see"):
    from localpipe.state.store import ObjectStore

    return json.loads(
        (ObjectStore(ws.state_dir / "objects").path(steps[step]["outputs"]["out"]) / "seen.json").read_text()
    )


def test_a_registered_dataset_gets_a_new_version_exactly_when_its_content_changes(ws, project):
    folder = project("data/raw/values.csv", "a,b\n1,2\n").parent
    first = Dataset.File.from_files(str(folder)).register(ws, "raw")
    again = Dataset.File.from_files(str(folder)).register(ws, "raw")
    assert (first.version, again.version) == (1, 1)
    project("data/raw/values.csv", "a,b\n1,2\n3,4\n")
    second = Dataset.File.from_files(str(folder)).register(ws, "raw", create_new_version=True)
    assert second.version == 2
    assert Dataset.get_by_name(ws, "raw").version == 2
    old = Dataset.get_by_name(ws, "raw", version=1)
    assert open(os.path.join(old.paths[0], "values.csv")).read() == "a,b\n1,2\n"  # fixed by content
    with pytest.raises(UsageError, match="create_new_version=True"):  # the SDK's default refuses a new version
        project("data/raw/values.csv", "changed\n")
        Dataset.File.from_files(str(folder)).register(ws, "raw")
    with pytest.raises(Exception, match='dataset "raw" has no version 9'):
        Dataset.get_by_name(ws, "raw", version=9)


def test_the_same_files_registered_as_another_dataset_are_another_version(ws, project):
    # Only the content used to decide: a table over the files of a FileDataset version, or the same
    # table read with another separator, or the file where the folder was, came back as that version.
    path = project("data/t/values.csv", "a;b\n1;2\n")
    as_files = Dataset.File.from_files(str(path)).register(ws, "t")
    as_table = Dataset.Tabular.from_delimited_files(str(path), separator=";")
    with pytest.raises(UsageError, match="create_new_version=True"):
        as_table.register(ws, "t")
    table = as_table.register(ws, "t", create_new_version=True)
    assert (as_files.version, table.version, type(table).__name__) == (1, 2, "TabularDataset")
    assert table.to_pandas_dataframe().to_dict("records") == [{"a": 1, "b": 2}]
    assert as_table.register(ws, "t").version == 2  # the same definition again: the same version
    commas = Dataset.Tabular.from_delimited_files(str(path), separator=",").register(ws, "t", create_new_version=True)
    assert (commas.version, commas.separator) == (3, ",")
    folder = Dataset.File.from_files(str(path.parent)).register(ws, "t", create_new_version=True)
    assert folder.version == 4 and os.path.isdir(folder.paths[0])
    assert Dataset.get_by_name(ws, "t", version=1).paths[0].endswith("values.csv")


def test_a_version_an_older_localpipe_recorded_without_todays_unset_options_is_the_same_definition(ws, project):
    """A pipeline file registering its table at each submission must not be refused after an upgrade
    because the version it registered lacks an option added since (unset in both)."""
    path = project("data/t/values.csv", "a,b\n1,2\n")
    table = Dataset.Tabular.from_delimited_files(str(path))
    assert table.register(ws, "t").version == 1
    close_all()
    with sqlite3.connect(ws.state_dir / "history.db") as conn:  # as a localpipe before timestamps wrote it
        (stored,) = conn.execute("SELECT options FROM dataset_version").fetchone()
        options = {k: v for k, v in json.loads(stored).items() if k not in ("timestamp", "partition_timestamp")}
        conn.execute("UPDATE dataset_version SET options = ?", (json.dumps(options),))
    assert table.register(ws, "t").version == 1
    assert (
        Dataset.Tabular.from_delimited_files(str(path), header=False).register(ws, "t", create_new_version=True).version
        == 2
    )


def test_mount_is_zero_copy_and_read_only_and_download_copies(ws, project, run_pipeline):
    folder = project("data/raw/values.csv", "a,b\n1,2\n").parent
    dataset = Dataset.File.from_files(str(folder)).register(ws, "raw")
    project("src/see/see.py", SEE)
    store_file = os.path.join(dataset.paths[0], "values.csv")
    assert not os.stat(store_file).st_mode & 0o222

    mount, copy = PipelineData("out"), PipelineData("out")
    steps = {}
    for mode, out in (("mount", mount), ("download", copy)):
        consumed = dataset.as_named_input("raw")
        consumed = consumed.as_mount() if mode == "mount" else consumed.as_download()
        step = PythonScriptStep("see.py", name="see", source_directory=ws.root / "src/see", arguments=[consumed, out])
        _, _, steps[mode] = run_pipeline(Pipeline(ws, [step]))
    mounted, downloaded = seen(ws, steps["mount"]), seen(ws, steps["download"])
    assert mounted["path"] == dataset.paths[0] and mounted["inode"] == os.stat(store_file).st_ino
    assert downloaded["inode"] != os.stat(store_file).st_ino
    assert downloaded["path"].startswith(str(ws.state_dir / "runs"))


def test_a_step_writing_into_its_mounted_input_fails_and_never_corrupts_what_is_served(ws, project, run_pipeline):
    folder = project("data/raw/values.csv", "a,b\n1,2\n").parent
    dataset = Dataset.File.from_files(str(folder)).register(ws, "raw")
    project(
        "src/w/w.py",
        """
        import os, sys
        path = os.path.join(sys.argv[1], "values.csv")
        os.chmod(path, 0o644)  # what a careless script might do; as root it even succeeds
        open(path, "a").write("garbage\\n")
    """,
    )
    step = PythonScriptStep(
        "w.py", name="w", source_directory=ws.root / "src/w", arguments=[dataset.as_named_input("raw").as_mount()]
    )
    _, status, steps = run_pipeline(Pipeline(ws, [step]))
    assert status.value == "Failed"
    if os.geteuid() == 0:
        assert (
            steps["w"]["reason"]
            == 'the step wrote into its read-only input "raw": use as_download() for a writable copy'
        )
        assert not os.path.exists(dataset.paths[0])  # the damaged object is no longer served
    else:
        assert "Permission denied" in steps["w"]["log_tail"]


def test_output_file_dataset_config_lands_at_its_destination_only_after_success(ws, project, run_pipeline):
    store = Datastore(ws, "workspaceblobstore")
    project(
        "src/p/p.py",
        """
        import os, sys
        open(os.path.join(sys.argv[1], "rows.csv"), "w").write("x,y\\n1,2\\n")
        sys.exit(int(sys.argv[2]))
    """,
    )
    project(
        "src/c/c.py",
        """
        import sys
        from localpipe import Run
        table = Run.get_context().input_datasets["rows"]
        frame = table.to_pandas_dataframe()
        print(list(frame.columns), len(frame))
    """,
    )

    def pipeline(exit_code):
        out = OutputFileDatasetConfig("prepared", destination=(store, "exports/{run-id}/{output-name}"))
        out.register_on_complete("prepared_rows")
        produce = PythonScriptStep(
            "p.py", name="produce", source_directory=ws.root / "src/p", arguments=[out, exit_code], allow_reuse=False
        )
        consume = PythonScriptStep(
            "c.py",
            name="consume",
            source_directory=ws.root / "src/c",
            arguments=[out.read_delimited_files().as_input("rows")],
        )
        return Pipeline(ws, [consume, produce])

    failed_run, status, _ = run_pipeline(pipeline(1))
    assert status.value == "Failed"
    assert not (store.folder / "exports" / str(failed_run)).exists()
    assert records_versions(ws) == []

    run_id, status, steps = run_pipeline(pipeline(0))
    assert status.value == "Completed", steps
    landed = store.folder / "exports" / str(run_id) / "prepared" / "rows.csv"
    assert landed.read_text() == "x,y\n1,2\n"
    assert (ws.state_dir / "runs" / str(run_id) / "consume" / "stdout.log").read_text() == "['x', 'y'] 1\n"
    versions = records_versions(ws)
    assert versions == [{"version": 1, "produced_by": {"run": run_id, "step": "produce"}}]
    assert Dataset.get_by_name(ws, "prepared_rows").paths[0].startswith(str(ws.state_dir / "objects"))


def records_versions(ws):
    from localpipe.client.workspace import history_of

    return [{"version": v["version"], "produced_by": v["produced_by"]} for v in history_of(ws).datasets.list()]


def test_a_table_view_of_an_output_is_the_producers_output_and_registers_a_tabular_dataset(ws, project, run_pipeline):
    """Azure's OutputFileDatasetConfig(...).read_delimited_files() (an OutputTabularDatasetConfig) is
    an output a step writes files into, and its register_on_complete makes a TabularDataset read the
    same way: it raised "pass ... .as_input()" in the producer, and AttributeError on register_on_complete."""
    pytest.importorskip("pandas")
    project(
        "src/p/p.py",
        """
        import os, sys
        os.makedirs(sys.argv[1], exist_ok=True)
        rows = "".join(f"{n}\\t{n * 2}\\n" for n in range(1, 21))
        open(os.path.join(sys.argv[1], "rows.tsv"), "w").write("x\\ty\\n" + rows)
        open(os.path.join(sys.argv[1], "notes.txt"), "w").write("not a row\\n")
    """,
    )
    project(
        "src/c/c.py",
        """
        from azureml.core import Run
        tables = Run.get_context().input_datasets
        frame = tables["rows"].to_pandas_dataframe()
        print(list(frame.columns), len(frame), int(frame["y"].sum()))
        first, second = (tables[n].to_pandas_dataframe() for n in ("prepared_1", "prepared_2"))
        print(list(first.columns), sorted([*first["y"], *second["y"]]) == sorted(frame["y"]), 0 < len(first) < 20)
    """,
    )
    table = (
        OutputFileDatasetConfig("prepared")
        .read_delimited_files(separator="\t", path_glob="*.tsv")
        .register_on_complete("prepared_table", description="rows", tags={"k": "v"})
    )
    produce = PythonScriptStep("p.py", name="produce", source_directory=ws.root / "src/p", arguments=[table])
    first, second = table.keep_columns("y").random_split(0.5, seed=7)  # named prepared_1 and prepared_2
    consume = PythonScriptStep(
        "c.py",
        name="consume",
        source_directory=ws.root / "src/c",
        arguments=[table.as_input("rows"), first.as_input(), second.as_input()],
    )
    run_id, status, steps = run_pipeline(Pipeline(ws, [consume, produce]))
    assert status.value == "Completed", steps
    printed = (ws.state_dir / "runs" / str(run_id) / "consume" / "stdout.log").read_text()
    assert printed == "['x', 'y'] 20 420\n['y'] True True\n"
    registered = Dataset.get_by_name(ws, "prepared_table")
    assert type(registered).__name__ == "TabularDataset"
    assert registered.to_pandas_dataframe().to_dict("list") == {"x": list(range(1, 21)), "y": list(range(2, 42, 2))}
    assert (registered.version, registered.description, registered.tags) == (1, "rows", {"k": "v"})
    assert records_versions(ws) == [{"version": 1, "produced_by": {"run": run_id, "step": "produce"}}]


def test_tabular_datasets_read_as_a_dataframe_and_lineage_names_consumers(ws, project, run_pipeline, invoke):
    csv = project("data/table.csv", "a;b\n1;2\n3;4\n")
    table = Dataset.Tabular.from_delimited_files(str(csv), separator=";")
    assert table.to_pandas_dataframe().to_dict("list") == {"a": [1, 3], "b": [2, 4]}
    registered = table.register(ws, "table")
    project(
        "src/t/t.py",
        """
        from localpipe import Run
        frame = Run.get_context().input_datasets["table"].to_pandas_dataframe()
        print(int(frame["a"].sum()))
    """,
    )
    step = PythonScriptStep(
        "t.py", name="t", source_directory=ws.root / "src/t", inputs=[registered.as_named_input("table")]
    )
    run_id, _, _ = run_pipeline(Pipeline(ws, [step]))
    assert (ws.state_dir / "runs" / str(run_id) / "t" / "stdout.log").read_text() == "4\n"
    shown = invoke("datasets", "table").output
    assert "table version 1  tabular" in shown and f'consumed by run {run_id} (step "t")' in shown
    assert json.loads(invoke("datasets", "--json").output)[0]["consumed_by"] == [{"run": run_id, "step": "t"}]


def test_eight_concurrent_loggers_lose_no_metric(ws, project, run_pipeline, monkeypatch):
    monkeypatch.setenv("LOCALPIPE_CPUS", "8")
    project(
        "src/m/m.py",
        """
        from localpipe import Run
        run = Run.get_context()
        for i in range(1000):
            run.log("value", i)
    """,
    )
    steps = [
        PythonScriptStep("m.py", name=f"m{i}", source_directory=ws.root / "src/m", arguments=[i]) for i in range(8)
    ]
    run_id, status, _ = run_pipeline(Pipeline(ws, steps))
    assert status.value == "Completed"
    found = reader.metrics(Layout.of(ws.state_dir), run_id)
    assert len(found) == 8000
    for i in range(8):
        assert [r["value"] for r in found if r["step"] == f"m{i}"] == list(range(1000))


def test_metrics_of_a_running_step_are_visible_while_it_runs(ws, project):
    from localpipe import Experiment
    from tests.conftest import wait_for

    gate = ws.root / "gate"
    project(
        "src/m/m.py",
        f"""
        import os, time
        from localpipe import Run
        Run.get_context().log("progress", 0.5)
        while not os.path.exists({str(gate)!r}):
            time.sleep(0.02)
    """,
    )
    run = Experiment(ws, "live").submit(
        Pipeline(ws, [PythonScriptStep("m.py", name="m", source_directory=ws.root / "src/m")])
    )
    try:
        assert (
            wait_for(lambda: reader.metrics(Layout.of(ws.state_dir), run.id), what="the metric of the running step")[0][
                "value"
            ]
            == 0.5
        )
        assert run.find_step_run("m")[0].get_status() == "Running"  # held by the gate: still running
    finally:
        gate.write_text("")
    assert run.wait_for_completion() == "Completed"


def test_upload_datastores_outputs_and_download_commands(ws, project, run_pipeline, invoke, tmp_path):
    source = project("incoming/a/x.txt", "x").parent.parent
    store = Datastore(ws, "workspaceblobstore")
    store.upload(source, "landing")
    project("incoming/a/x.txt", "changed")
    store.upload(source, "landing")  # kept: overwrite=False
    assert (store.folder / "landing/a/x.txt").read_text() == "x"
    store.upload(source, "landing", overwrite=True)
    assert (store.folder / "landing/a/x.txt").read_text() == "changed"
    with pytest.raises(UsageError, match="leaves the datastore"):
        store.upload(source, "../../escape")
    rows = json.loads(invoke("datastores", "--json").output)
    assert {r["name"]: r["files"] for r in rows}["workspaceblobstore"] == 1

    project("src/o/o.py", "import sys\nopen(sys.argv[1] + '/f.txt', 'w').write('out')\n")
    run_id, _, _ = run_pipeline(
        Pipeline(
            ws,
            [
                PythonScriptStep(
                    "o.py", name="o", source_directory=ws.root / "src/o", arguments=[PipelineData("result")]
                )
            ],
        )
    )
    listed = json.loads(invoke("outputs", run_id, "--json").output)
    assert [(r["step"], r["name"], r["size"]) for r in listed] == [("o", "result", 3)]
    result = invoke("download", run_id, "o", "result", tmp_path / "dl")
    assert result.exit_code == 0
    assert (tmp_path / "dl" / "result" / "f.txt").read_text() == "out"
    assert invoke("download", run_id, "o", "nope", tmp_path / "dl").exit_code == 2
    project("src/f/f.py", "raise SystemExit(1)\n")
    failed = PythonScriptStep("f.py", name="f", source_directory=ws.root / "src/f", arguments=[PipelineData("r")])
    failed_id, _, _ = run_pipeline(Pipeline(ws, [failed]))
    shown = invoke("outputs", failed_id, "f").output  # a bare table header before
    assert shown == f'step "f" of run {failed_id} has no outputs\n'
