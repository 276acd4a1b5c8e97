"""A hostile review of where steps, datasets and datastores may write (what it found, each fixed).

The standard: every path a step writes stays inside the workspace, and what localpipe writes or
reads for a step after it ends never follows a link the step made out of its folder. A step in a
Docker container sees only its own folder (docs/docker.md), yet a link it makes there names any
path of this machine, where the scheduler, outside the container, would follow it. The steps
below run in the local executor, through the same code.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from tests.defect_helpers import query

PIPELINE = """
from localpipe import Pipeline, PipelineData, PythonScriptStep, RunConfiguration, Workspace
config = RunConfiguration()
config.max_retries = {retries}
pipeline = Pipeline(Workspace.from_config(), [PythonScriptStep(
    "s.py", name="s", source_directory="src", runconfig=config, arguments=[PipelineData("data"), {outside!r}])])
"""


def outside_folder(tmp_path: Path) -> Path:
    """A folder out of the workspace holding what the scheduler would find through each link."""
    outside = tmp_path / "outside"
    for rel, text in {
        "data/victim.txt": "victim\n",
        "outputs/victim.txt": "victim\n",
        "keep.txt": "keep\n",
        "stderr.log": "a secret of the machine's\n",
        "reason.txt": "a secret of the machine's\n",
    }.items():
        (outside / rel).parent.mkdir(parents=True, exist_ok=True)
        (outside / rel).write_text(text)
    return outside


def snapshot(folder: Path) -> dict[str, tuple[int, bytes | None]]:
    """Every entry under ``folder`` (itself included): its mode and, for files, its bytes."""
    found = {".": (stat.S_IMODE(folder.lstat().st_mode), None)}
    for path in sorted(folder.rglob("*")):
        found[str(path.relative_to(folder))] = (
            stat.S_IMODE(path.lstat().st_mode),
            path.read_bytes() if path.is_file() else None,
        )
    return found


# Each replaces something of its step folder by a link to the outside folder, then exits as said.
REPLACE = """
import os, shutil, sys
out, outside = sys.argv[1], sys.argv[2]
root = os.environ["LOCALPIPE_STEP_DIR"]
what = {what!r}
open(os.path.join(out, "mine.txt"), "w").write("mine")
if what == "step folder":  # then fails: its retry empties the folder again
    if os.path.islink(root):
        sys.exit(0)
    os.rename(root, f"{{root}}.moved{{os.getpid()}}")
    os.symlink(outside, root)
    sys.exit(1)
if what == "outputs":  # its output folder's parent: the commit would move outside/data into the store
    os.rename(os.path.dirname(out), os.path.join(root, "moved"))
elif what == "snapshot":  # its working folder: the run files' collection would move outside/outputs
    os.rename(os.getcwd(), os.path.join(root, "moved"))
elif what in ("files", "files/outputs"):  # its run files: ./outputs/victim.txt would overwrite outside's
    os.makedirs("outputs", exist_ok=True)
    open("outputs/victim.txt", "w").write("overwritten")
    shutil.rmtree(os.path.join(root, "files"), ignore_errors=True)
    if what == "files/outputs":
        os.makedirs(os.path.join(root, "files"))
        outside = os.path.join(outside, "outputs")
elif what in ("stderr.log", "reason.txt"):  # read into history.db as the failed step's log tail or reason
    if os.path.exists(os.path.join(root, what)):
        os.unlink(os.path.join(root, what))
os.symlink(outside, os.path.join(root, what))
sys.exit(1 if what in ("stderr.log", "reason.txt") else 0)
"""

# The end of the reason of a step that replaced something of its folder (engine/workdir.py).
REPLACED_FIX = ": localpipe follows no link and opens no FIFO, socket or device of a step's folder: write files there"

REPLACED = ["step folder", "outputs", "snapshot", "files", "files/outputs", "stderr.log", "reason.txt"]


@pytest.mark.timeout(60)
@pytest.mark.parametrize("what", REPLACED)
def test_a_step_folder_path_the_step_replaced_by_a_link_is_not_followed(ws, project, localpipe, tmp_path, what):
    """Found by this review: the scheduler followed links a step left in place of what it reads and
    writes in the step's folder once the step ends. Through its output folder's parent the commit
    moved a folder outside into the store (read-only); through its working folder or its run files
    the run files' collection moved or overwrote files outside; through the step folder itself a
    retry emptied the outside folder; through its stderr.log or reason.txt a file outside was read
    into history.db. Now the link is removed, not followed, and the step fails naming it; the
    folder outside is exactly as it was, and nothing of it is in history.db."""
    outside = outside_folder(tmp_path)
    before = snapshot(outside)
    target = outside if what != "stderr.log" else outside / "stderr.log"
    target = outside / "reason.txt" if what == "reason.txt" else target
    project("src/s.py", REPLACE.format(what=what))
    project("p.py", PIPELINE.format(retries=1 if what == "step folder" else 0, outside=str(target)))
    proc = localpipe("submit", "p.py", timeout=45)
    assert snapshot(outside) == before, (proc.stdout, proc.stderr)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    (status, reason, tail), *_ = query(ws.root, "SELECT status, reason, log_tail FROM step_run ORDER BY id DESC")
    assert status == "Failed", (status, reason)
    assert "secret" not in f"{reason} {tail}", (reason, tail)
    name = "its folder" if what == "step folder" else what
    assert reason == f"the step replaced {name} by a link{REPLACED_FIX}"
    assert not any(path.name == "victim.txt" for path in (ws.state_dir / "objects").rglob("*"))


# Links its log (or the file holding its log's tail) to the outside file before printing anything.
LOG_LINK = """
import os, sys
root = os.environ["LOCALPIPE_STEP_DIR"]
os.symlink(sys.argv[2], os.path.join(root, {name!r}))
os.write(1, b"x" * 3000 + b"\\\\n")
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("name", ["stdout.log", "stdout.log.tail"])
def test_a_log_the_step_replaced_by_a_link_is_not_written_through(ws, project, localpipe, tmp_path, name):
    """Found by this review: the step's log (created when the step first prints), or the file that
    holds its tail when it is long, was opened through a link the step made in its place: the
    step's output was appended to a file outside (a container's step to any file of the machine),
    or that file was truncated and overwritten. Now neither is opened through a link; the step
    fails naming it, and the file outside is as it was."""
    outside = outside_folder(tmp_path)
    before = snapshot(outside)
    project("src/s.py", LOG_LINK.format(name=name))
    project("p.py", PIPELINE.format(retries=0, outside=str(outside / "keep.txt")))
    proc = localpipe("submit", "p.py", timeout=45, env={"LOCALPIPE_MAX_LOG_BYTES": "1024"})
    assert snapshot(outside) == before, (proc.stdout, proc.stderr)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    status, reason = query(ws.root, "SELECT status, reason FROM step_run")[0]
    assert (status, reason) == ("Failed", f"the step replaced {name} by a link{REPLACED_FIX}")


# Links its metrics file to the outside one, waits for the scheduler to read it (about once a
# second while the step runs), then puts its folder back as it was.
METRICS_LINK = """
import os, sys, time
root = os.environ["LOCALPIPE_STEP_DIR"]
metrics = os.path.join(root, "metrics.jsonl")
if {folder!r}:
    os.rename(root, root + ".moved")
    os.symlink(os.path.dirname(sys.argv[2]), root)
else:
    os.symlink(sys.argv[2], metrics)
time.sleep(2.5)
if {folder!r}:
    os.unlink(root)
    os.rename(root + ".moved", root)
else:
    os.unlink(metrics)
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("folder", [False, True], ids=["metrics file", "step folder"])
def test_a_metrics_file_the_step_replaced_by_a_link_is_not_read(ws, project, localpipe, tmp_path, folder):
    """Found by this review: while a step runs, its metrics file was read through a link the step
    put in its place (or in place of its folder): what a file outside held (another workspace's
    metrics, say) was recorded in history.db as the step's metrics. Now nothing is read through one."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "metrics.jsonl").write_text('{"kind": "scalar", "name": "stolen", "value": 1}\n')
    project("src/s.py", METRICS_LINK.format(folder=folder))
    project("p.py", PIPELINE.format(retries=0, outside=str(outside / "metrics.jsonl")))
    proc = localpipe("submit", "p.py", timeout=45)
    assert query(ws.root, "SELECT name FROM metric") == [], (proc.stdout, proc.stderr)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)


UPLOAD = """
from localpipe import Datastore, Pipeline, PythonScriptStep, Workspace
ws = Workspace.from_config()
store = Datastore.register_local(ws, "mine", "store")
store.{call}
pipeline = Pipeline(ws, [PythonScriptStep("s.py", name="s", source_directory="src")])
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "call, into",
    [
        ('upload("up", overwrite=True)', "link/new.txt"),
        ('upload("up", overwrite=True)', "flink.txt"),
        ('upload_files(["up/a.txt", "up/link/new.txt"], relative_root="up")', "link/new.txt"),
    ],
)
def test_an_upload_through_a_link_out_of_its_datastore_is_refused(ws, project, localpipe, tmp_path, call, into):
    """Found by this review: Datastore.upload refused a target_path leaving the datastore, but not
    a file reaching out of it through a link inside the datastore (a folder ``link`` to a folder
    outside, or ``flink.txt`` to a file outside, with overwrite=True): it wrote there. Now the
    upload is refused before it copies anything: one `error:` line naming the file and where the
    link leads, exit 2, the folder outside as it was, nothing of the upload in the datastore."""
    outside = outside_folder(tmp_path)
    before = snapshot(outside)
    store = ws.root / "store"
    store.mkdir()
    (store / "link").symlink_to(outside)
    (store / "flink.txt").symlink_to(outside / "keep.txt")
    project("up/a.txt", "a\n")
    project(f"up/{into}", "overwritten\n")
    project("src/s.py", "print('hi')\n")
    project("p.py", UPLOAD.format(call=call))
    proc = localpipe("submit", "p.py", timeout=45)
    assert snapshot(outside) == before, (proc.stdout, proc.stderr)
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    real = outside / "new.txt" if into == "link/new.txt" else outside / "keep.txt"
    assert proc.stderr == (
        f'error: upload to datastore "mine": {into} would be written to {real}, out of the datastore, '
        "through a link: remove the link, or upload to another target_path\n"
    )
    assert sorted(path.name for path in store.iterdir()) == ["flink.txt", "link"]


NAMED_OUTPUT = """
from localpipe import OutputFileDatasetConfig, Pipeline, PipelineData, PythonScriptStep, Workspace
pipeline = Pipeline(Workspace.from_config(), [PythonScriptStep(
    "s.py", name="s", source_directory="src", arguments=[{kind}({name})])])
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["PipelineData", "OutputFileDatasetConfig"])
@pytest.mark.parametrize(
    "name, said",
    [
        ('"x" * 256', f'output name "{"x" * 59}…" is 256 characters long: use at most 255'),
        ('"a\\n"', 'output name "a\\n" is not allowed: use letters, digits, "_", "-" and "." with no "/" or ".."'),
        (
            '"a\\x00b"',
            'output name "a\\u0000b" is not allowed: use letters, digits, "_", "-" and "." with no "/" or ".."',
        ),
    ],
    ids=["256 characters", "a newline", "a NUL"],
)
def test_an_output_name_no_folder_can_have_is_refused_at_submit(ws, project, localpipe, kind, name, said):
    """Found by this review: an output name of 256 characters passed the checks and failed its
    step at run time (`File name too long`, exit 1, a run recorded); a name ending in a newline
    passed (the pattern's `$` matches before a last newline) and was made a folder; a NUL was
    printed as it is in the one `error:` line. Each is refused at submit, on one line that shows
    the name's control characters escaped: exit 2, nothing recorded."""
    project("src/s.py", "print('hi')\n")
    project("p.py", NAMED_OUTPUT.format(kind=kind, name=name))
    proc = localpipe("submit", "p.py", timeout=45)
    assert (proc.returncode, proc.stderr) == (2, f'error: the pipeline is invalid: step "s": {said}\n'), proc.stdout
    assert query(ws.root, "SELECT COUNT(*) FROM pipeline_run") in ([], [(0,)])


REGISTER = """
from localpipe import Model, Pipeline, PythonScriptStep, Workspace
ws = Workspace.from_config()
Model.register(ws, model_path="models/m", model_name="m", child_paths=["a.pkl", {child!r}])
pipeline = Pipeline(ws, [PythonScriptStep("s.py", name="s", source_directory="src")])
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("child", ["../up.txt", "../../../up.txt", "ABSOLUTE"])
def test_a_model_child_path_leaving_the_model_folder_is_refused(ws, project, localpipe, tmp_path, child):
    """Found by this review: Model.register's child_paths were joined to the model folder, and to
    the folder it is copied into, as they came: "../up.txt" stored a file from beside the model
    (and its version could not be downloaded: commonpath() of no files), a path climbing as far
    from the copy as from the model wrote a file into .localpipe/ outside the copy, and an
    absolute one failed with a bare SameFileError. Each is refused on one line naming the path,
    exit 2, no model registered, nothing left in .localpipe/tmp."""
    child = str(tmp_path / "up.txt") if child == "ABSOLUTE" else child
    (tmp_path / "up.txt").write_text("beside\n")
    project("up.txt", "beside\n")
    project("models/up.txt", "beside\n")
    project("models/m/a.pkl", "model\n")
    project("src/s.py", "print('hi')\n")
    project("p.py", REGISTER.format(child=child))
    proc = localpipe("submit", "p.py", timeout=45)
    assert (proc.returncode, proc.stderr) == (
        2,
        f'error: pipeline file p.py raised WebserviceException: Error, provided child path "{child}" leaves '
        '"models/m": give a path relative to it, inside it (line 3): fix the file, or use --debug for the traceback\n',
    ), proc.stdout
    assert query(ws.root, "SELECT COUNT(*) FROM model_version") in ([], [(0,)])
    assert list((ws.state_dir / "tmp").iterdir()) == []
    assert not (ws.state_dir / "up.txt").exists()


STATE_DESTINATION = """
from localpipe import Datastore, OutputFileDatasetConfig, Pipeline, PythonScriptStep, Workspace
ws = Workspace.from_config()
ds = Datastore.register_local(ws, "around", {folder!r})
out = OutputFileDatasetConfig("o", destination=(ds, {dest!r}))
pipeline = Pipeline(ws, [PythonScriptStep("w.py", name="w", source_directory="src", arguments=[out])])
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "folder, dest",
    [(".", ".localpipe"), (".", ".localpipe/objects"), (".", ".localpipe/datastores"), ("..", "ws")],
    ids=["state folder", "object store", "datastores folder", "workspace"],
)
def test_a_destination_replacing_the_workspaces_own_state_is_refused(ws, project, localpipe, folder, dest):
    """Found by this review: with a datastore registered on the workspace's folder (or a folder
    above it), an output's destination ".localpipe" (or one of its folders, or the workspace
    itself) was inside the datastore, so it was allowed, and the write-back replaced the
    workspace's history.db, object store and run folders by the output. It is refused at submit:
    one `error:` line naming the destination, exit 2, nothing recorded, history.db intact."""
    from tests.defect_helpers import assert_nothing_recorded, refused

    project("src/w.py", "import os, sys\nopen(os.path.join(sys.argv[1], 'history.db'), 'w').write('garbage')\n")
    project("p.py", STATE_DESTINATION.format(folder=folder, dest=dest))
    line = refused(localpipe("submit", "p.py", timeout=45))
    assert line == (
        f'error: the pipeline is invalid: step "w": destination "{dest}" of output "o" would replace the '
        "workspace's own state (its .localpipe folder, or a part of it): choose a path outside .localpipe"
    )
    assert_nothing_recorded(ws.root)
    assert localpipe("runs").returncode == 0


# Makes the link its destination then goes through, after planning: to the workspace's object store.
LINKS_DESTINATION = """
import os, sys
open(os.path.join(sys.argv[1], "o.txt"), "w").write("o")
os.symlink(os.path.join(os.environ["LOCALPIPE_WORKSPACE"], ".localpipe", "objects"), "../../../../../link")
"""


@pytest.mark.timeout(60)
def test_a_destination_made_a_link_to_the_workspaces_state_after_planning_fails_its_step(ws, project, localpipe):
    """The same, through a link made after planning (by the step itself, here): the write-back
    would have replaced the object store. The step fails naming the link; the store is intact."""
    project("src/w.py", LINKS_DESTINATION)
    project("p.py", STATE_DESTINATION.format(folder=".", dest="link"))
    proc = localpipe("submit", "p.py", timeout=45)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    status, reason = query(ws.root, "SELECT status, reason FROM step_run")[0]
    assert (status, reason) == (
        "Failed",
        f"could not write an output to its destination: {ws.root}/link leads to {ws.state_dir}/objects, which would "
        "replace the workspace's own state (its .localpipe folder, or a part of it): remove the link, or choose "
        "another path",
    )
    assert (ws.state_dir / "objects").is_dir() and not (ws.state_dir / "objects").is_symlink()
    assert localpipe("runs").returncode == 0


UPLOAD_STATE = """
from localpipe import Datastore, Pipeline, PythonScriptStep, Workspace
ws = Workspace.from_config()
Datastore.register_local(ws, "proj", ".").upload("up", target_path={target!r}, overwrite=True)
pipeline = Pipeline(ws, [PythonScriptStep("s.py", name="s", source_directory="src")])
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("target", [".localpipe", "link"])
def test_an_upload_into_the_workspaces_own_state_is_refused(ws, project, localpipe, target):
    """Found by this review: a datastore registered on the workspace's folder took an upload to
    target_path ".localpipe" (or to a link in it leading there) with overwrite=True, and the
    uploaded history.db replaced the workspace's. It is refused before anything is copied: one
    `error:` line, exit 2, history.db intact."""
    (ws.root / "link").symlink_to(ws.state_dir)
    project("up/history.db", "garbage\n")
    project("up/notes.txt", "notes\n")
    project("src/s.py", "print('hi')\n")
    project("p.py", UPLOAD_STATE.format(target=target))
    proc = localpipe("submit", "p.py", timeout=45)
    assert (proc.returncode, proc.stderr) == (
        2,
        f'error: upload to datastore "proj": .localpipe/history.db would be written to {ws.state_dir}/history.db, '
        "into the workspace's own state (its .localpipe folder): upload to another target_path\n",
    ), proc.stdout
    assert not (ws.state_dir / "notes.txt").exists()
    assert localpipe("runs").returncode == 0


@pytest.mark.timeout(60)
@pytest.mark.parametrize("entry", ["digests", "family"])
def test_gc_never_follows_a_link_in_the_parallel_cache(ws, localpipe, tmp_path, entry):
    """Found by this review: .localpipe/parallel-cache/ is bound read-write into a ParallelRunStep's
    container, where its step can put a link naming any folder of the machine. `localpipe gc` read
    through `digests` (a link) and removed every file of the folder it led to (a family's folder
    that is a link was already removed as a link). Now a link there is removed itself, never
    followed: the folder outside is as it was."""
    outside = outside_folder(tmp_path)
    before = snapshot(outside)
    cache = ws.state_dir / "parallel-cache"
    cache.mkdir()
    (cache / ("digests" if entry == "digests" else "0123abcd")).symlink_to(outside)
    proc = localpipe("gc", timeout=45)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert snapshot(outside) == before, proc.stdout
    assert list(cache.iterdir()) == [], proc.stdout


INPUT_NAMED = """
from localpipe import Dataset, Pipeline, PythonScriptStep, Workspace
data = Dataset.File.from_files("data").as_named_input({name}).as_download({where})
step = PythonScriptStep("s.py", name="s", source_directory="src", arguments=[data])
pipeline = Pipeline(Workspace.from_config(), [step])
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "name, where, said",
    [
        (
            '"../../../evil"',
            "",
            "input name '../../../evil' cannot name its folder in the step's inputs folder: use a plain name "
            '(letters, digits, "_", "-", "."), or give path_on_compute',
        ),
        (
            '"/abs"',
            "",
            "input name '/abs' cannot name its folder in the step's inputs folder: use a plain name "
            '(letters, digits, "_", "-", "."), or give path_on_compute',
        ),
        (
            '"x" * 256',
            "",
            f"input name '{'x' * 56}... cannot name its folder in the step's inputs folder: use a plain name "
            '(letters, digits, "_", "-", "."), or give path_on_compute',
        ),
        (
            '"raw"',
            'path_on_compute="a/" + "x" * 256',
            'input "raw": path_on_compute \'a/' + "x" * 54 + "... has a part longer than a file name can be "
            "(255 bytes): shorten it",
        ),
    ],
    ids=["climbing", "absolute", "too long", "path_on_compute too long"],
)
def test_an_input_name_that_cannot_be_its_folder_is_refused_at_submit(ws, project, localpipe, name, where, said):
    """Found by this review: a downloaded input is put in a folder of its name, and its name was not
    checked when planning: "../../../evil" and "/abs" failed the step at run time, with a reason
    blaming a path_on_compute the pipeline did not give (exit 1, a run recorded), as did a name, or
    a path_on_compute, too long for a file name (`File name too long`). Each is refused at submit:
    one `error:` line naming the input, exit 2, nothing recorded."""
    from tests.defect_helpers import assert_nothing_recorded, refused

    project("data/a.csv", "a\n1\n")
    project("src/s.py", "print('hi')\n")
    project("p.py", INPUT_NAMED.format(name=name, where=where))
    line = refused(localpipe("submit", "p.py", timeout=45))
    assert line == f'error: the pipeline is invalid: step "s": {said}'
    assert_nothing_recorded(ws.root)


# Leaves a link among its run files (./outputs is moved into them when it ends) to the outside folder.
RUN_FILE_LINK = """
import os, sys
os.makedirs("outputs", exist_ok=True)
open("outputs/model.txt", "w").write("model")
os.symlink(sys.argv[2], "outputs/elsewhere")
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("call", ["upload_file", "upload_folder"])
def test_a_run_file_upload_through_a_link_the_step_left_is_refused(ws, project, run_pipeline, tmp_path, call):
    """Found by this review: a step's run files may hold a link it left in ./outputs (to any path
    of the machine, from a container), and Run.upload_file("outputs/elsewhere/new.txt") on its
    step run, from the user's notebook, wrote through it into the folder it led to. The upload is
    refused, naming the file; the folder outside is as it was."""
    from localpipe import Pipeline, PipelineData, PythonScriptStep
    from localpipe.errors import UserErrorException

    outside = outside_folder(tmp_path)
    before = snapshot(outside)
    project("src/s.py", RUN_FILE_LINK)
    mine = project("mine/new.txt", "mine\n")
    source = str(ws.root / "src")
    step = PythonScriptStep("s.py", name="s", source_directory=source, arguments=[PipelineData("data"), str(outside)])
    run_id, status, _ = run_pipeline(Pipeline(ws, [step]))
    assert status == "Completed"
    from localpipe import PipelineRun

    step_run = PipelineRun.get(ws, run_id).find_step_run("s")[0]
    assert "outputs/model.txt" in step_run.get_file_names()
    with pytest.raises(UserErrorException) as refused:
        if call == "upload_file":
            step_run.upload_file("outputs/elsewhere/new.txt", str(mine))
        else:
            step_run.upload_folder("outputs/elsewhere", str(mine.parent))
    assert str(refused.value) == (
        '"outputs/elsewhere/new.txt" would be written through the link outputs/elsewhere, out of the run\'s files: '
        "upload under another name"
    )
    assert snapshot(outside) == before


# Leaves a FIFO where the scheduler, or the step supervisor, opens a file of its folder.
FIFO = """
import os, sys, time
root = os.environ["LOCALPIPE_STEP_DIR"]
os.mkfifo(os.path.join(root, {name!r}))
if {name!r} == "stdout.log":
    print("the supervisor opens its log now")
time.sleep(1.5)  # the scheduler reads the metrics file of a running step about once a second
sys.exit(1 if {name!r} in ("stderr.log", "reason.txt") else 0)
"""


@pytest.mark.timeout(90)
@pytest.mark.parametrize("name", ["stderr.log", "reason.txt", "stdout.log", "metrics.jsonl"])
def test_a_fifo_in_place_of_a_file_of_the_step_folder_does_not_hang_the_run(ws, project, localpipe, name):
    """Found by this review: a step that left a FIFO where its stderr.log, reason.txt or metrics
    file is hung its scheduler for ever (opening a FIFO waits for a writer; SIGTERM and Ctrl-C did
    not end it, Python retries the open), and one in place of the stdout.log it had not written
    yet hung the step supervisor. A container's step can make one in its folder. The FIFO is
    removed, never opened for reading or waited on, and the step fails naming it."""
    project("src/s.py", FIFO.format(name=name))
    project("p.py", PIPELINE.format(retries=0, outside="unused"))
    proc = localpipe("submit", "p.py", timeout=60)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    status, reason = query(ws.root, "SELECT status, reason FROM step_run")[0]
    assert (status, reason) == ("Failed", f"the step replaced {name} by a FIFO{REPLACED_FIX}")


PARALLEL_FIFOS = """
import os
folder = os.path.join(os.environ["LOCALPIPE_STEP_DIR"], "parallel_run")
os.makedirs(folder)
for name in ("progress.json", "cache.json"):
    os.mkfifo(os.path.join(folder, name))
"""


@pytest.mark.timeout(90)
def test_a_fifo_in_a_steps_parallel_run_folder_hangs_neither_show_nor_gc(ws, project, localpipe):
    """Found by this review: `localpipe show` reads every step's parallel_run/progress.json, and
    `localpipe gc` every kept step's parallel_run/cache.json; a step (any step, in a container too)
    that left a FIFO there made each wait for ever. A FIFO is not read: show and gc end."""
    project("src/s.py", PARALLEL_FIFOS)
    project("p.py", PIPELINE.format(retries=0, outside="unused"))
    assert localpipe("submit", "p.py", timeout=45).returncode == 0
    shown = localpipe("show", "1", timeout=30)
    assert shown.returncode == 0 and "parallel run" not in shown.stdout, (shown.stdout, shown.stderr)
    collected = localpipe("gc", timeout=30)
    assert collected.returncode == 0, (collected.stdout, collected.stderr)


FOLLOWED = """
import os, time
root = os.environ["LOCALPIPE_STEP_DIR"]
os.mkfifo(os.path.join(root, "stdout.log"))
time.sleep(2)
"""


@pytest.mark.timeout(90)
def test_following_the_logs_of_a_step_that_made_its_log_a_fifo_ends(ws, project, localpipe):
    """Found by this review: `localpipe logs -f` (and `wait_for_completion(show_output=True)`)
    opened a running step's stdout.log, which the step (in a container too) had made a FIFO: the
    open waited for a writer, for ever, even once the run had ended. The FIFO is not read: the
    follower ends with the run."""
    from tests.defect_helpers import popen_localpipe

    project("src/s.py", FOLLOWED)
    project("p.py", PIPELINE.format(retries=0, outside="unused"))
    submitted = popen_localpipe(ws.root, "submit", "p.py", "--detach")
    assert submitted.wait(timeout=30) == 0, submitted.communicate()
    followed = localpipe("logs", "1", "-f", timeout=40)
    assert followed.returncode == 0, (followed.stdout, followed.stderr)


@pytest.mark.parametrize("unique", [True, False])
def test_register_pandas_dataframe_through_a_link_out_of_its_datastore_is_refused(ws, tmp_path, unique):
    """Found by this review: Dataset.Tabular.register_pandas_dataframe checked its target's path as
    text only, so with (datastore, "link") where `link` leads out of the datastore it made a folder
    and wrote the Parquet file there (with make_target_path_unique=False, over a file there). It is
    refused, as Datastore.upload is, before anything is written."""
    pandas = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    from localpipe import Dataset, Datastore
    from localpipe.errors import UsageError

    outside = outside_folder(tmp_path)
    before = snapshot(outside)
    (ws.root / "store").mkdir()
    (ws.root / "store" / "link").symlink_to(outside)
    store = Datastore.register_local(ws, "mine", str(ws.root / "store"))
    frame = pandas.DataFrame({"a": [1, 2]})
    with pytest.raises(UsageError) as refused:
        Dataset.Tabular.register_pandas_dataframe(frame, (store, "link"), "df", make_target_path_unique=unique)
    said = str(refused.value)
    assert said.startswith('Dataset.Tabular.register_pandas_dataframe: path "link') and said.endswith(
        'out of datastore "mine", through a link: remove the link, or choose another path'
    ), said
    assert f" leads to {outside}" in said, said
    assert snapshot(outside) == before


@pytest.mark.parametrize(
    "name, said",
    [
        (
            "outputs/a/b",
            '"outputs/a/b": run file outputs/a is a file, which holds no others: upload under another name',
        ),
        ("outputs", '"outputs" is a folder of run files: upload under a file name such as "outputs/model.pkl"'),
        (
            "user_logs/std_out.txt",
            '"user_logs/std_out.txt" is the step\'s stdout among its files: upload under another name',
        ),
    ],
    ids=["below a file", "a folder", "a log"],
)
def test_a_run_file_name_that_collides_is_refused_in_one_line(ws, project, run_pipeline, name, said):
    """Found by this review: Run.upload_file under a name below an uploaded file, or the name of a
    folder of run files, failed with a bare FileExistsError or IsADirectoryError; under the name of
    the step's stdout among its files it was kept but never listed or downloaded (the log was). Each
    is refused on one line naming the file; the run files are as they were."""
    import io

    from localpipe import Pipeline, PipelineRun, PythonScriptStep
    from localpipe.errors import UserErrorException

    project("src/s.py", "print('the log')\n")
    step = PythonScriptStep("s.py", name="s", source_directory=str(ws.root / "src"))
    run_id, status, _ = run_pipeline(Pipeline(ws, [step]))
    step_run = PipelineRun.get(ws, run_id).find_step_run("s")[0]
    step_run.upload_file("outputs/a", io.BytesIO(b"a"))
    before = step_run.get_file_names()
    with pytest.raises(UserErrorException) as refused:
        step_run.upload_file(name, io.BytesIO(b"x"))
    assert str(refused.value) == said
    assert step_run.get_file_names() == before


def test_datastore_download_of_a_dotted_prefix_copies_its_files(ws, tmp_path):
    """Found by this review: Datastore.download took its prefix with every leading "." and "/"
    stripped (str.lstrip("./")), so prefix ".config" looked for "config": nothing was copied, and
    it said so as if there were nothing there."""
    from localpipe import Datastore

    store = ws.root / "store"
    (store / ".config").mkdir(parents=True)
    (store / ".config" / "a.txt").write_text("a\n")
    (store / "config.txt").write_text("not wanted\n")
    mine = Datastore.register_local(ws, "mine", str(store))
    assert mine.download(tmp_path / "got", prefix=".config", show_progress=False) == 1
    assert mine.download(tmp_path / "again", prefix="./.config/", show_progress=False) == 1
    assert sorted(p.relative_to(tmp_path).as_posix() for f in ("got", "again") for p in (tmp_path / f).rglob("*")) == [
        "again/.config",
        "again/.config/a.txt",
        "got/.config",
        "got/.config/a.txt",
    ]


def test_a_step_folder_that_is_a_link_is_unlinked_not_emptied_for_a_new_attempt(tmp_path):
    """Found by this review: a step folder made ready for a new attempt (a retry, a run resumed after
    its scheduler died with the step running) was emptied through a link the step had put in its
    place: every file of the folder it led to went. The link goes, and a fresh folder is made."""
    from localpipe.engine.workdir import StepFolder

    outside = outside_folder(tmp_path)
    before = snapshot(outside)
    (tmp_path / "run").mkdir()
    folder = StepFolder(tmp_path / "run" / "step")
    folder.root.symlink_to(outside)
    folder.reset()
    assert snapshot(outside) == before
    assert folder.root.is_dir() and not folder.root.is_symlink() and list(folder.root.iterdir()) == []
