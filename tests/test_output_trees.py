"""Reproduction of issue 12, defect 6: a step output that the store cannot hold safely.

A symlink to /etc/passwd, a symlink to /etc, a dangling symlink, or a file name that is not
UTF-8 in an output crashed the scheduler. Only that step must fail, with a reason naming the
offending path; an independent step of the same run completes; the run is Failed (not
"scheduler exited"); the submit exits 1; /etc/passwd is not copied into the store.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.defect_helpers import query

BAD_OUTPUT = """
import os, sys
out = sys.argv[1]
kind = sys.argv[2]
open(os.path.join(out, "fine.txt"), "w").write("fine\\n")
if kind == "link-to-passwd":
    os.symlink("/etc/passwd", os.path.join(out, "offender"))
elif kind == "link-to-etc":
    os.symlink("/etc", os.path.join(out, "offender"))
elif kind == "dangling-link":
    os.symlink(os.path.join(out, "nothing-here"), os.path.join(out, "offender"))
else:
    os.close(os.open(os.path.join(os.fsencode(out), b"offender\\xffname"), os.O_CREAT | os.O_WRONLY, 0o644))
"""

# An independent step that is still running when the bad one ends.
GOOD = """
import os, sys, time
time.sleep(1.5)
open(os.path.join(sys.argv[1], "ok.txt"), "w").write("ok\\n")
"""

PIPELINE = """
from localpipe import Pipeline, PipelineData, PythonScriptStep, Workspace
pipeline = Pipeline(Workspace.from_config(), [
    PythonScriptStep("bad.py", name="bad", source_directory="bad", arguments=[PipelineData("data"), {kind!r}]),
    PythonScriptStep("good.py", name="good", source_directory="good", arguments=[PipelineData("fine")])])
"""

KINDS = ["link-to-passwd", "link-to-etc", "dangling-link", "name-not-utf8"]


def stored_regular_files(root: Path) -> list[Path]:
    store = Path(root) / ".localpipe" / "objects"
    found = []
    for dirpath, _, filenames in os.walk(store):  # links are not followed
        for name in filenames:
            path = Path(dirpath, name)
            if path.is_file() and not path.is_symlink():
                found.append(path)
    return found


@pytest.mark.timeout(60)
@pytest.mark.parametrize("kind", KINDS)
def test_an_output_the_store_cannot_hold_fails_only_its_step(ws, project, localpipe, kind):
    """Defect 6: the step with the offending output fails with a reason naming the path; the
    independent step completes; the run is Failed, not "scheduler exited"; exit code 1; the
    content of /etc/passwd is not copied into the store."""
    project("bad/bad.py", BAD_OUTPUT)
    project("good/good.py", GOOD)
    project("p.py", PIPELINE.format(kind=kind))
    proc = localpipe("submit", "p.py", timeout=45)

    shown = localpipe("show", "1", "--json", timeout=30)
    assert shown.returncode == 0, (shown.stdout, shown.stderr)
    run = json.loads(shown.stdout)
    steps = {step["name"]: step for step in run["steps"]}
    summary = {name: (step["status"], step["reason"]) for name, step in steps.items()}
    assert (run["status"], run["error"]) != ("Failed", "scheduler exited"), (
        f"the scheduler crashed: {summary}",
        proc.stdout[-2000:],
        proc.stderr[-3000:],
    )
    assert steps["bad"]["status"] == "Failed", summary
    assert "offender" in (steps["bad"]["reason"] or ""), summary
    assert steps["good"]["status"] == "Completed", summary
    assert run["status"] == "Failed", (run["status"], run["error"])
    assert proc.returncode == 1, (proc.returncode, proc.stdout[-2000:], proc.stderr[-3000:])
    assert query(
        ws.root, "SELECT COUNT(*) FROM step_output o JOIN step_run s ON s.id = o.step_run_id WHERE s.name = 'bad'"
    ) == [(0,)]
    passwd = Path("/etc/passwd").read_bytes()
    copies = [str(path) for path in stored_regular_files(ws.root) if path.read_bytes() == passwd]
    assert copies == [], f"/etc/passwd was copied into the store: {copies}"


LINKED_OUTPUT = """
import os, sys
os.rmdir(sys.argv[1])
os.symlink(sys.argv[2], sys.argv[1])
"""


@pytest.mark.timeout(60)
def test_an_output_folder_replaced_by_a_link_fails_its_step_and_changes_nothing_outside(
    ws, project, localpipe, tmp_path
):
    """Found by the hostile review: a step that replaced its output folder by a link to a folder
    outside the workspace was committed, and the store made that folder and its files read-only."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "e.txt").write_text("mine\n")
    before = {path.name: path.stat().st_mode for path in (outside, outside / "e.txt")}
    project("lo/lo.py", LINKED_OUTPUT)
    project(
        "p.py",
        "from localpipe import Pipeline, PipelineData, PythonScriptStep, Workspace\n"
        "pipeline = Pipeline(Workspace.from_config(), [PythonScriptStep('lo.py', name='lo', source_directory='lo', "
        f"arguments=[PipelineData('ld'), {str(outside)!r}])])\n",
    )
    proc = localpipe("submit", "p.py", timeout=45)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    status, reason = query(ws.root, "SELECT status, reason FROM step_run")[0]
    assert status == "Failed" and reason.startswith('output "ld": ld is not a folder the step wrote into'), reason
    assert {path.name: path.stat().st_mode for path in (outside, outside / "e.txt")} == before
    assert (outside / "e.txt").read_text() == "mine\n"
    assert not any(path.is_symlink() for path in (ws.state_dir / "objects").rglob("*"))
