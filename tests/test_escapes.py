"""Reproductions of issue 12, defects 10-13: data and names escaping where they belong.

10: an output destination through a symlink inside a datastore;
11: path_on_compute of a dataset leaving the step folder (refused at launch, not at submit), and
    PipelineData.as_download(path_on_compute=...) ignored;
12: a secret_env value logged with run.log / run.tag is recorded verbatim;
13: step names "a/b" and "a_b" share one step folder.

Each test states the behaviour the fix must give; on the code of the issue each one fails.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests.defect_helpers import assert_nothing_recorded, query, refused, step_rows

WRITE = """
import os, sys
open(os.path.join(sys.argv[1], "res.txt"), "w").write("result\\n")
"""

# -- defect 10: a destination through a symlink that leaves its datastore -------------------------

DESTINATION = """
from localpipe import Datastore, OutputFileDatasetConfig, Pipeline, PythonScriptStep, Workspace
ws = Workspace.from_config()
ds = Datastore.register_local(ws, "mine", {store!r}) if {store!r} else ws.get_default_datastore()
out = OutputFileDatasetConfig("res", destination=(ds, {dest!r}))
pipeline = Pipeline(ws, [PythonScriptStep("w.py", name="write", source_directory="src", arguments=[out])])
"""


def snapshot(folder: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every entry under ``folder`` (itself included): its mode and, for files, its bytes."""
    found = {".": (stat.S_IMODE(folder.stat().st_mode), None)}
    for path in folder.rglob("*"):
        found[str(path.relative_to(folder))] = (
            stat.S_IMODE(path.lstat().st_mode),
            path.read_bytes() if path.is_file() else None,
        )
    return found


@pytest.mark.timeout(60)
@pytest.mark.parametrize("datastore", ["registered", "workspaceblobstore"])
@pytest.mark.parametrize("dest", ["link/res", "link"])
def test_a_destination_through_a_symlink_leaving_the_datastore_is_refused(
    ws, project, localpipe, tmp_path, datastore, dest
):
    """Defect 10: `destination=(ds, "link/res")`, where `link` is a symlink in the datastore to a
    folder outside it, wrote outside the datastore; with `(ds, "link")` the outside folder was
    chmod'ed. The pipeline is refused before anything runs: exit 2, one `error:` line naming the
    destination, nothing recorded; the outside folder is untouched (no new file, mode unchanged)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine\n")
    os.chmod(outside, 0o755)
    before = snapshot(outside)
    if datastore == "registered":
        store = tmp_path / "store"
        store.mkdir()
    else:
        store = ws.state_dir / "datastores" / "workspaceblobstore"
        store.mkdir(parents=True, exist_ok=True)
    os.symlink(outside, store / "link")
    project("src/w.py", WRITE)
    project("p.py", DESTINATION.format(store=str(store) if datastore == "registered" else "", dest=dest))

    proc = localpipe("submit", "p.py", timeout=45)
    after = snapshot(outside)
    assert after == before, f"the folder outside the datastore changed: {before} -> {after}"
    line = refused(proc)
    assert f'"{dest}"' in line or f"'{dest}'" in line, line
    assert_nothing_recorded(ws.root)


# -- defect 11: path_on_compute --------------------------------------------------------------

DATASET_DOWNLOAD = """
from localpipe import Dataset, Pipeline, PythonScriptStep, Workspace
ws = Workspace.from_config()
raw = Dataset.File.from_files([{data!r}]).as_named_input("raw").as_download(path_on_compute={where!r})
pipeline = Pipeline(ws, [PythonScriptStep("r.py", name="read", source_directory="src", inputs=[raw])])
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("where", ["absolute", "../../x"])
def test_a_dataset_path_on_compute_leaving_the_step_folder_is_refused_at_submit(
    ws, project, localpipe, tmp_path, where
):
    """Defect 11: `as_download(path_on_compute="/tmp/x")` (or "../../x") was refused only at
    launch: the scheduler crashed and a run was recorded. `localpipe submit` must exit 2 with one
    `error:` line naming the input and the path_on_compute, with nothing recorded."""
    target = str(tmp_path / "x") if where == "absolute" else where
    data = project("data/raw.csv", "a,b\n1,2\n")
    project("src/r.py", "print('read')\n")
    project("p.py", DATASET_DOWNLOAD.format(data=str(data), where=target))
    proc = localpipe("submit", "p.py", timeout=45)
    line = refused(proc)
    assert_nothing_recorded(ws.root)
    assert '"raw"' in line and target in line, line
    assert not (tmp_path / "x").exists()


def test_a_mounted_datasets_absolute_path_on_compute_is_not_refused(ws, project, run_pipeline, tmp_path):
    """The batch-scoring tutorial's side input, `label_ds.as_named_input("labels_input").as_mount("/tmp/<uuid>")`
    in the step's arguments, was refused as "leaving the step's folder" (errors.md row 72), though a
    mount is never placed at its path_on_compute here (the step reads the data where it is, as its
    argument says): it runs, reads the files, and nothing is made at that path."""
    from localpipe import Dataset, Pipeline, PythonScriptStep

    labels = project("labels/labels.txt", "cat\ndog\n").parent
    project("src/r.py", "import os, sys\nprint(open(os.path.join(sys.argv[2], 'labels.txt')).read().split())\n")
    where = str(tmp_path / "mounted-here")
    label_config = Dataset.File.from_files(str(labels)).as_named_input("labels_input").as_mount(where)
    step = PythonScriptStep(
        "r.py", name="read", source_directory=str(ws.root / "src"), arguments=["--labels_dir", label_config]
    )
    run_id, status, steps = run_pipeline(Pipeline(ws, [step]))
    assert status.value == "Completed", steps
    assert (ws.root / ".localpipe" / "runs" / str(run_id) / "read" / "stdout.log").read_text() == "['cat', 'dog']\n"
    assert not os.path.exists(where)


PIPELINE_DATA_DOWNLOAD = """
from localpipe import Pipeline, PipelineData, PythonScriptStep, Workspace
data = PipelineData("data")
make = PythonScriptStep("make.py", name="make", source_directory="make", arguments=[data])
use = PythonScriptStep("use.py", name="use", source_directory="use",
                       arguments=[data.as_download(path_on_compute="sub/here"), {report!r}])
pipeline = Pipeline(Workspace.from_config(), [use])
"""

MAKE = """
import os, sys
open(os.path.join(sys.argv[1], "data.txt"), "w").write("the data\\n")
"""

# Notes the path it was given and what it finds there.
USE = """
import json, os, sys
path = os.path.join(sys.argv[1], "data.txt")
found = open(path).read() if os.path.exists(path) else None
json.dump({"path": sys.argv[1], "data": found}, open(sys.argv[2], "w"))
"""


@pytest.mark.timeout(60)
def test_pipeline_data_as_download_honours_path_on_compute(ws, project, localpipe, tmp_path):
    """Defect 11: `PipelineData.as_download(path_on_compute="sub/here")` was ignored. The path
    the consumer receives ends with sub/here, and the data is there."""
    report = tmp_path / "report.json"
    project("make/make.py", MAKE)
    project("use/use.py", USE)
    project("p.py", PIPELINE_DATA_DOWNLOAD.format(report=str(report)))
    proc = localpipe("submit", "p.py", timeout=45)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    seen = json.loads(report.read_text())
    assert seen["path"].rstrip("/").endswith("sub/here"), seen
    assert seen["data"] == "the data\n", seen


# -- defect 12: a secret logged as a metric or a tag ----------------------------------------------

SECRET = "s3cr3t-value-42"

LOGS_SECRET = """
import os
from localpipe import Run
run = Run.get_context()
token = os.environ["API_TOKEN"]
run.log("token", token)
run.log("plain", 1.5)
run.tag("token_tag", token)
print("logged")
"""

SECRET_PIPELINE = """
from localpipe import Pipeline, PythonScriptStep, Workspace
pipeline = Pipeline(Workspace.from_config(), [
    PythonScriptStep("s.py", name="s", source_directory="src", secret_env=["API_TOKEN"])])
"""


@pytest.mark.timeout(60)
def test_a_secret_logged_as_a_metric_or_a_tag_is_never_recorded(ws, project, localpipe):
    """Defect 12: a secret_env value passed to run.log / run.tag was stored verbatim in
    history.db and shown by `localpipe metrics`. It appears nowhere in history.db (its bytes, the
    metric values, step_run.tags) nor in `localpipe metrics RUN`; `***` appears instead."""
    project("src/s.py", LOGS_SECRET)
    project("p.py", SECRET_PIPELINE)
    proc = localpipe("submit", "p.py", env={"API_TOKEN": SECRET}, timeout=45)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)

    metrics = localpipe("metrics", "1", timeout=30)
    assert metrics.returncode == 0, (metrics.stdout, metrics.stderr)
    values = query(ws.root, "SELECT name, value FROM metric")
    tags = query(ws.root, "SELECT tags FROM step_run")
    assert "plain" in {name for name, _ in values}  # the metrics were recorded
    assert SECRET not in repr(values), values
    assert SECRET not in repr(tags), tags
    assert SECRET not in metrics.stdout + metrics.stderr, metrics.stdout
    assert "***" in metrics.stdout, metrics.stdout
    for name in ("history.db", "history.db-wal", "history.db-shm"):
        path = ws.state_dir / name
        if path.exists():
            assert SECRET.encode() not in path.read_bytes(), f"{name} holds the secret"


# -- defect 13: step names "a/b" and "a_b" -----------------------------------------------------

SAY = """
import os
print("I am step", os.environ["LOCALPIPE_STEP_NAME"])
"""

SLASHED_NAMES = """
from localpipe import Pipeline, PythonScriptStep, Workspace
pipeline = Pipeline(Workspace.from_config(), [
    PythonScriptStep("say.py", name="a/b", source_directory="one"),
    PythonScriptStep("say.py", name="a_b", source_directory="two")])
"""


@pytest.mark.timeout(60)
def test_steps_named_a_slash_b_and_a_underscore_b_each_have_their_folder(ws, project, localpipe):
    """Defect 13: steps "a/b" and "a_b" shared the step folder runs/N/a_b: the snapshot was
    wiped and both failed. Both complete, each with its own folder and its own logs."""
    project("one/say.py", SAY)
    project("two/say.py", SAY + "# the other copy\n")
    project("p.py", SLASHED_NAMES)
    proc = localpipe("submit", "p.py", timeout=45)
    steps = step_rows(ws.root, 1)
    assert {name: status for name, (status, _) in steps.items()} == {"a/b": "Completed", "a_b": "Completed"}, steps
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    for name, other in (("a/b", "a_b"), ("a_b", "a/b")):
        logs = localpipe("logs", "1", name, timeout=30)
        assert logs.returncode == 0, (logs.stdout, logs.stderr)
        assert f"I am step {name}\n" in logs.stdout and f"I am step {other}\n" not in logs.stdout, logs.stdout
    stdout_logs = sorted((ws.state_dir / "runs" / "1").rglob("stdout.log"))
    contents = sorted(path.read_text() for path in stdout_logs)
    assert contents == ["I am step a/b\n", "I am step a_b\n"], {str(p): p.read_text() for p in stdout_logs}


# -- found by the hostile review --------------------------------------------------------------------

PRINTS_SECRETS = """
import os, sys, time
from localpipe import Run
run = Run.get_context()
print("long", os.environ["SB"])                        # holds the shorter secret SA
print("multi", os.environ["SM"])                       # a secret with a line break in it
sys.stdout.write("x" * (1114112 - 3) + os.environ["SB"][:3]); sys.stdout.flush()
time.sleep(0.3)
sys.stdout.write(os.environ["SB"][3:] + "\\n"); sys.stdout.flush()  # one secret, split across a long line
run.log("token", os.environ["SB"])
run.log("number", 12345.0)                             # the value of SN, as a float
"""


@pytest.mark.timeout(60)
def test_secrets_that_overlap_span_lines_or_end_a_long_line_are_masked_whole(ws, project, localpipe):
    secrets = {"SA": "hunter", "SB": "hunter2secret", "SM": "line1pass\nline2pass", "SN": "12345"}
    project("src/s.py", PRINTS_SECRETS)
    project(
        "p.py",
        "from localpipe import Pipeline, PythonScriptStep, Workspace\n"
        "pipeline = Pipeline(Workspace.from_config(), [PythonScriptStep('s.py', name='s', source_directory='src', "
        "secret_env=['SA', 'SB', 'SM', 'SN'])])\n",
    )
    proc = localpipe("submit", "p.py", env=secrets, timeout=45)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    log = (ws.state_dir / "runs" / "1" / "s" / "stdout.log").read_text()
    for leaked in ("hunter", "2secret", "line1pass", "line2pass"):
        assert leaked not in log
    assert "long ***\nmulti ***\n" in log and log.endswith("x***\n")
    values = dict(query(ws.root, "SELECT name, value FROM metric"))
    assert values == {"token": '"***"', "number": '"***"'}


@pytest.mark.timeout(60)
def test_step_folders_are_distinct_whatever_the_names(ws, project, localpipe):
    """A hundred-character name of three-byte letters, and a plain name equal to another's folder."""
    project("one/say.py", SAY)
    names = ["日" * 100, "a/b", "a_b+0da3cfa5f8b7", "a_b-0da3cfa5f8b7"]
    project(
        "p.py",
        "from localpipe import Pipeline, PythonScriptStep, Workspace\n"
        "pipeline = Pipeline(Workspace.from_config(), [PythonScriptStep('say.py', name=n, source_directory='one') "
        f"for n in {names!r}])\n",
    )
    proc = localpipe("submit", "p.py", timeout=45)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    logs = sorted(path.read_text() for path in (ws.state_dir / "runs" / "1").rglob("stdout.log"))
    assert logs == sorted(f"I am step {name}\n" for name in names)
