"""Reproductions of issue 12, defects 5, 7 and 8: the object store's integrity.

5: a damaged object is reused for ever (and the new `localpipe fsck [--repair]`);
7: an absolute symlink to a file of the same output is stored as a link into the run folder;
8: a file hard-linked from outside the workspace is chmod'ed and shared with the store; a FIFO
   or a socket in an output.

Each test states the behaviour the fix must give; on the code of the issue each one fails.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from pathlib import Path

import pytest

from tests.defect_helpers import objects, query, step_rows

# -- defect 5: a corrupted object is permanent --------------------------------------------------

CONTENT = "".join(f"line {i:05d} of the data\n" for i in range(2000))  # 46,000 bytes

MAKE = """
import os, sys
with open(os.path.join(sys.argv[1], "data.txt"), "w") as f:
    f.write("".join(f"line {i:05d} of the data\\n" for i in range(2000)))
with open(os.path.join(sys.argv[1], "small.txt"), "w") as f:
    f.write("small\\n")
"""

# The consumer copies what it reads into a report file outside the workspace; it never reuses, so
# each submission shows what the store serves now.
USE = """
import os, shutil, sys
shutil.copyfile(os.path.join(sys.argv[1], "data.txt"), sys.argv[2])
"""

OTHER = """
import os, sys
open(os.path.join(sys.argv[1], "other.txt"), "w").write("an intact object\\n")
"""

PRODUCER_CONSUMER = """
from localpipe import Pipeline, PipelineData, PythonScriptStep, Workspace
data = PipelineData("data")
make = PythonScriptStep("make.py", name="make", source_directory="make", arguments=[data])
use = PythonScriptStep("use.py", name="use", source_directory="use", arguments=[data.as_input(), {report!r}],
                       allow_reuse=False)
other = PythonScriptStep("other.py", name="other", source_directory="other", arguments=[PipelineData("kept")])
pipeline = Pipeline(Workspace.from_config(), [use, other])
"""


@pytest.fixture
def produced(ws, project, localpipe, tmp_path):
    """A completed run 1 of make -> use (+ other); returns (report file, digest of make's output)."""
    report = tmp_path / "report.txt"
    project("make/make.py", MAKE)
    project("use/use.py", USE)
    project("other/other.py", OTHER)
    project("p.py", PRODUCER_CONSUMER.format(report=str(report)))
    localpipe("submit", "p.py", check=True)
    assert report.read_text() == CONTENT
    return report, output_digest(ws.root, 1, "make")


def output_digest(root: Path, run_id: int, step: str) -> str:
    (digest,) = query(
        root,
        "SELECT o.digest FROM step_output o JOIN step_run s ON s.id = o.step_run_id WHERE s.run_id = ? AND s.name = ?",
        run_id,
        step,
    )[0]
    return digest


def object_path(root: Path, digest: str) -> Path:
    return Path(root) / ".localpipe" / "objects" / digest[:2] / digest


def truncate(path: Path, size: int = 100) -> None:
    """`truncate -s 100` a read-only file of the store (made writable for the moment)."""
    mode = stat.S_IMODE(path.stat().st_mode)
    os.chmod(path, mode | stat.S_IWUSR)
    os.truncate(path, size)
    os.chmod(path, mode)


def remove(path: Path) -> None:
    """Delete one file of a read-only object folder."""
    folder = path.parent
    mode = stat.S_IMODE(folder.stat().st_mode)
    os.chmod(folder, mode | stat.S_IWUSR)
    path.unlink()
    os.chmod(folder, mode)


def damage(root: Path, digest: str, how: str) -> None:
    if how == "truncated":
        truncate(object_path(root, digest) / "data.txt")
    else:
        remove(object_path(root, digest) / "small.txt")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["truncated", "file-removed"])
def test_a_damaged_output_is_not_reused(ws, produced, localpipe, how):
    """Defect 5: after `truncate -s 100` of a file of a committed object (or removing one of its
    files), the next submission reused it silently and the consumer read 100 bytes. A step whose
    stored output's size or file count no longer matches what was recorded is not reused: it
    reruns (its reason says its outputs are damaged or missing), and the consumer reads the full,
    correct content."""
    report, digest = produced
    damage(ws.root, digest, how)
    proc = localpipe("submit", "p.py", timeout=60)
    steps = step_rows(ws.root, 2)
    status, reason = steps["make"]
    assert status == "Completed" and not reason.startswith("reused"), (
        f'step "make" of run 2 is {status} ({reason}) although its output {digest} is {how}'
    )
    assert re.search(r"damaged|missing|corrupt", reason), reason
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert report.read_text() == CONTENT


@pytest.mark.timeout(60)
def test_regenerate_outputs_replaces_a_damaged_object(ws, produced, localpipe):
    """Defect 5: rerunning the producer with --regenerate-outputs wrote the same digest, found the
    damaged folder of that digest in the store and kept it: the consumer still read 100 bytes.
    The regenerated output must replace the damaged object."""
    report, digest = produced
    truncate(object_path(ws.root, digest) / "data.txt")
    proc = localpipe("submit", "p.py", "--regenerate-outputs", timeout=60)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    assert step_rows(ws.root, 2)["make"][0] == "Completed"
    assert len(report.read_text()) == len(CONTENT), f"the consumer read {len(report.read_text())} bytes"
    assert report.read_text() == CONTENT
    assert (object_path(ws.root, digest) / "data.txt").read_text() == CONTENT


def fsck(localpipe, *args):
    return localpipe("fsck", *args, timeout=60)


@pytest.mark.timeout(60)
def test_fsck_of_an_intact_store_exits_0(ws, produced, localpipe):
    """Defect 5: `localpipe fsck` (new) rehashes every object and exits 0 when all are intact."""
    proc = fsck(localpipe)
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)


@pytest.mark.timeout(60)
@pytest.mark.parametrize("how", ["truncated", "file-removed"])
def test_fsck_names_each_damaged_object_and_exits_1(ws, produced, localpipe, how):
    """Defect 5: `localpipe fsck` prints one line per damaged object, holding its digest (the
    object's folder name), and exits 1; intact objects are not named."""
    _, digest = produced
    intact = output_digest(ws.root, 1, "other")
    damage(ws.root, digest, how)
    proc = fsck(localpipe)
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    lines = (proc.stdout + proc.stderr).splitlines()
    assert len([line for line in lines if digest in line]) == 1, lines
    assert not [line for line in lines if intact in line], lines


@pytest.mark.timeout(90)
def test_fsck_repair_quarantines_the_damaged_object_and_the_next_submit_recomputes_it(ws, produced, localpipe):
    """Defect 5: `localpipe fsck --repair` moves each damaged object out of .localpipe/objects/,
    drops the cache entries that point at it and exits 0; the next submit computes the producer
    again (its reason is not "reused ...") and completes, and the consumer reads the right bytes."""
    report, digest = produced
    truncate(object_path(ws.root, digest) / "data.txt")
    proc = fsck(localpipe, "--repair")
    assert proc.returncode == 0, (proc.returncode, proc.stdout, proc.stderr)
    assert not object_path(ws.root, digest).exists()
    assert digest not in [obj.name for obj in objects(ws.root)]
    assert query(
        ws.root,
        "SELECT COUNT(*) FROM cache_entry c JOIN step_output o ON o.step_run_id = c.step_run_id WHERE o.digest = ?",
        digest,
    ) == [(0,)]
    again = localpipe("submit", "p.py", timeout=60)
    assert again.returncode == 0, (again.stdout, again.stderr)
    status, reason = step_rows(ws.root, 2)["make"]
    assert status == "Completed" and not reason.startswith("reused"), (status, reason)
    assert report.read_text() == CONTENT
    assert fsck(localpipe).returncode == 0


# -- defect 7: an absolute symlink to a file of the same output -----------------------------------

ABSOLUTE_LINK = """
import os, sys
out = os.path.abspath(sys.argv[1])
with open(os.path.join(out, "data.txt"), "w") as f:
    f.write("the data\\n")
os.symlink(os.path.join(out, "data.txt"), os.path.join(out, "link"))
"""

READ_LINK = """
import os, sys
open(sys.argv[2], "w").write(open(os.path.join(sys.argv[1], "link")).read())
"""

LINK_PIPELINE = """
from localpipe import Pipeline, PipelineData, PythonScriptStep, Workspace
data = PipelineData("data")
make = PythonScriptStep("make.py", name="make", source_directory="make", arguments=[data])
use = PythonScriptStep("use.py", name="use", source_directory="use", arguments=[data.as_input(), {report!r}])
pipeline = Pipeline(Workspace.from_config(), [use])
"""


@pytest.mark.timeout(60)
def test_an_absolute_symlink_to_a_file_of_the_same_output_reads_the_data(ws, project, localpipe, tmp_path):
    """Defect 7: `out/link -> /abs/path/of/out/data.txt` was stored as a link into the old run
    folder, dangling once the output moved into the store. A consumer reading `link` from its
    input gets the data's content, and no link in the store points into .localpipe/runs/."""
    report = tmp_path / "report.txt"
    project("make/make.py", ABSOLUTE_LINK)
    project("use/use.py", READ_LINK)
    project("p.py", LINK_PIPELINE.format(report=str(report)))
    proc = localpipe("submit", "p.py", timeout=60)
    runs_dir = str(ws.root / ".localpipe" / "runs")
    stored_links = {
        str(path): os.readlink(path) for obj in objects(ws.root) for path in obj.rglob("*") if path.is_symlink()
    }
    assert proc.returncode == 0, (proc.stdout, proc.stderr, f"links in the store: {stored_links}")
    assert report.read_text() == "the data\n"
    assert not [target for target in stored_links.values() if target.startswith(runs_dir)], (
        f"links in the store point into the run folders: {stored_links}"
    )


# -- defect 8: hard links from outside, FIFOs and sockets -----------------------------------------

HARD_LINK = """
import os, sys
os.link(sys.argv[2], os.path.join(sys.argv[1], "f.txt"))
"""

HARD_LINK_PIPELINE = """
from localpipe import Pipeline, PipelineData, PythonScriptStep, Workspace
data = PipelineData("data")
pipeline = Pipeline(Workspace.from_config(), [
    PythonScriptStep("make.py", name="make", source_directory="make", arguments=[data, {outside!r}])])
"""


@pytest.mark.timeout(60)
def test_a_file_hard_linked_from_outside_keeps_its_mode_and_does_not_share_the_stored_object(
    ws, project, localpipe, tmp_path
):
    """Defect 8: a file of an output hard-linked from outside the workspace: the commit chmod'ed
    the outside file to 0444 and shared its inode with the object. After the run the outside file's
    mode is unchanged (writable), and writing to it does not change the stored object."""
    outside = tmp_path / "outside" / "mine.txt"
    outside.parent.mkdir()
    outside.write_text("original bytes\n")
    os.chmod(outside, 0o644)
    project("make/make.py", HARD_LINK)
    project("p.py", HARD_LINK_PIPELINE.format(outside=str(outside)))
    proc = localpipe("submit", "p.py", timeout=60)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    mode = stat.S_IMODE(outside.stat().st_mode)
    assert mode == 0o644, f"the outside file's mode became {oct(mode)}"
    stored = object_path(ws.root, output_digest(ws.root, 1, "make")) / "f.txt"
    assert not os.path.samefile(stored, outside), "the stored object shares its inode with the outside file"
    with open(outside, "w") as f:
        f.write("changed outside\n")
    assert stored.read_text() == "original bytes\n"


SPECIAL_FILE = """
import os, socket, sys
out = sys.argv[1]
open(os.path.join(out, "fine.txt"), "w").write("fine\\n")
if sys.argv[2] == "fifo":
    os.mkfifo(os.path.join(out, "special"))
else:
    os.chdir(out)  # a relative name: a socket's path is limited to 108 bytes
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind("special")
    sock.close()
"""

QUICK = """
import os, sys, time
time.sleep(1)
open(os.path.join(sys.argv[1], "ok.txt"), "w").write("ok\\n")
"""

SPECIAL_PIPELINE = """
from localpipe import Pipeline, PipelineData, PythonScriptStep, Workspace
pipeline = Pipeline(Workspace.from_config(), [
    PythonScriptStep("make.py", name="make", source_directory="make", arguments=[PipelineData("data"), {kind!r}]),
    PythonScriptStep("quick.py", name="quick", source_directory="quick", arguments=[PipelineData("fine")])])
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", ["fifo", "socket"])
def test_a_fifo_or_a_socket_in_an_output_fails_that_step_with_its_path(ws, project, localpipe, kind):
    """Defect 8: a FIFO or a UNIX socket in an output must fail that step with a reason naming
    the path (the other step completes, the submit exits 1); it must not hang or crash the
    scheduler."""
    project("make/make.py", SPECIAL_FILE)
    project("quick/quick.py", QUICK)
    project("p.py", SPECIAL_PIPELINE.format(kind=kind))
    proc = localpipe("submit", "p.py", timeout=45)
    steps = step_rows(ws.root, 1)
    assert steps["make"][0] == "Failed", (steps, proc.stdout, proc.stderr)
    assert "special" in (steps["make"][1] or ""), steps["make"]
    assert steps["quick"][0] == "Completed", steps
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    ((status, error),) = query(ws.root, "SELECT status, error FROM pipeline_run")
    assert status == "Failed" and "scheduler" not in (error or ""), (status, error)


@pytest.mark.timeout(60)
def test_fsck_repair_leaves_a_registered_datasets_object_and_keeps_saying_so(ws, localpipe, tmp_path):
    """Found by the hostile review: --repair quarantined the object a registered dataset version
    holds, and the next fsck said all was well while the dataset pointed at nothing."""
    from localpipe import Dataset

    raw = tmp_path / "raw"
    raw.mkdir()
    (raw / "values.csv").write_text("a,b\n1,2\n")
    Dataset.File.from_files(str(raw)).register(ws, "raw")
    (obj,) = objects(ws.root)
    target = obj / "values.csv"
    mode = stat.S_IMODE(target.stat().st_mode)
    os.chmod(target, mode | stat.S_IWUSR)
    target.write_text("a,b\n9,9\n")  # the same size: only fsck can tell
    os.chmod(target, mode)
    for _ in range(2):
        proc = fsck(localpipe, "--repair")
        assert proc.returncode == 1, (proc.stdout, proc.stderr)
        assert f"damaged object {obj.name}" in proc.stdout
        assert 'dataset "raw" version 1 is in it: register its files again' in proc.stdout
        assert obj.is_dir()  # left where it is
    os.chmod(obj, 0o700)
    shutil.rmtree(obj)  # gone altogether: fsck says the dataset needs it
    proc = fsck(localpipe)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert f"damaged object {obj.name}: it is missing from the store" in proc.stdout
