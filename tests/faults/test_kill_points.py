"""Kill the scheduler with SIGKILL at each named point of a 20-step run, then check that nothing
was lost and nothing half-made is served (docs/reliability.md)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys

import psutil
import pytest

from localpipe.content.hashing import hash_tree
from localpipe.faults import POINTS
from localpipe.state.history import close_all
from localpipe.state.store import ObjectStore
from tests.conftest import tables, wait_for

pytestmark = pytest.mark.faults

STEP = """
import os, sys, time
name = os.environ["LOCALPIPE_STEP_NAME"]
open(os.path.join(sys.argv[1], name + ".pid"), "w").write(str(os.getpid()))
time.sleep(0.2)
upstream = open(os.path.join(sys.argv[2], "data.txt")).read() if sys.argv[2] != "-" else ""
for out in sys.argv[3:]:
    with open(os.path.join(out, "data.txt"), "w") as f:
        f.write(upstream + name + "\\n")
"""

# Four chains of five steps; the first of each chain writes two outputs (so a kill can fall
# between two commits) and the last step's output is also written back to a datastore.
PIPELINE = """
from localpipe import Datastore, OutputFileDatasetConfig, Pipeline, PipelineData, PythonScriptStep, Workspace
ws = Workspace.from_config()
pids = {pids!r}
steps = []
for chain in range(4):
    previous = None
    for level in range(5):
        name = f"c{{chain}}s{{level}}"
        if level == 4:
            out = OutputFileDatasetConfig(f"{{name}}_out", destination=(Datastore(ws, "workspaceblobstore"),
                                                                         "exports/{{run-id}}/{{output-name}}"))
        else:
            out = PipelineData(f"{{name}}_out")
        outs = [out] + ([PipelineData(f"{{name}}_extra")] if level == 0 else [])
        args = [pids, previous.as_input() if previous is not None else "-", *outs]
        steps.append(PythonScriptStep("step.py", name=name, source_directory="src", arguments=args))
        previous = out
pipeline = Pipeline(ws, steps)
"""

KILLS = [(point, 1) for point in POINTS] + [("step-running", 7), ("after-completed", 9), ("mid-commit", 3)]


@pytest.fixture
def pipeline(ws, project):
    pids = ws.root / "pids"
    pids.mkdir()
    project("proj/src/step.py", STEP)
    return project("proj/pipeline.py", PIPELINE.format(pids=str(pids))), pids


def submit(ws, pipeline_file, fault=None):
    env = {**os.environ, "LOCALPIPE_CPUS": "4"}
    env.pop("LOCALPIPE_FAULT", None)
    if fault:
        env["LOCALPIPE_FAULT"] = fault
    return subprocess.run(
        [sys.executable, "-m", "localpipe", "submit", str(pipeline_file)],
        cwd=ws.root,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def statuses(ws, run_id):
    close_all()
    m = tables(ws)
    return {s.name: s.status for s in m.StepRun.select().where(m.StepRun.run == run_id)}


def check_nothing_lost(ws, pids_dir):
    conn = sqlite3.connect(ws.state_dir / "history.db")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    store = ObjectStore(ws.state_dir / "objects")
    for shard in (ws.state_dir / "objects").iterdir():
        for obj in shard.iterdir():  # every visible object is complete: its name is its content's digest
            assert hash_tree(obj, ignore=False).digest == obj.name, f"half-written object {obj}"
    close_all()
    m = tables(ws)
    for entry in m.CacheEntry.select():
        outputs = list(m.StepOutput.select().where(m.StepOutput.step_run == entry.step_run_id))
        assert outputs, "a cache entry without outputs"
        for output in outputs:
            assert store.has(output.digest), f"cache entry {entry.key[:8]} points at a missing object"
    leftover = []
    for pid_file in pids_dir.glob("*.pid"):
        pid = int(pid_file.read_text())
        leftover.append(pid)
    wait_for(
        lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in leftover),
        timeout=2,  # their supervisor ends them as soon as their scheduler is gone
        what="every step process of the killed run to end",
    )


@pytest.mark.parametrize("point, nth", KILLS, ids=[f"{p}:{n}" for p, n in KILLS])
def test_a_kill_at_any_point_loses_nothing(ws, pipeline, localpipe, point, nth):
    pipeline_file, pids = pipeline
    killed = submit(ws, pipeline_file, fault=f"{point}:{nth}")
    assert killed.returncode == -9, f"the kill point was not reached:\n{killed.stdout}\n{killed.stderr}"

    runs = json.loads(localpipe("runs", "--json", check=True).stdout)  # notices the dead scheduler
    assert runs[0]["status"] == "Failed" and runs[0]["error"] == "scheduler exited"
    check_nothing_lost(ws, pids)
    completed = {name for name, status in statuses(ws, 1).items() if status == "Completed"}

    again = submit(ws, pipeline_file)
    assert again.returncode == 0, again.stdout + again.stderr
    second = statuses(ws, 2)
    assert {name for name, status in second.items() if status == "Reused"} == completed
    assert {name for name, status in second.items() if status == "Completed"} == set(second) - completed
    check_nothing_lost(ws, pids)
    exports = ws.state_dir / "datastores" / "workspaceblobstore" / "exports" / "2"
    assert sorted(p.name for p in exports.iterdir()) == [f"c{c}s4_out" for c in range(4)]


AT_ONCE = [("step-started", 3), ("step-running", 6), ("in-cache-entry", 2)]


@pytest.mark.parametrize("point, nth", AT_ONCE, ids=[f"{p}:{n}" for p, n in AT_ONCE])
def test_a_kill_then_a_resubmit_at_once_completes(ws, pipeline, point, nth):
    """No command between the kill and the next submission: the killed run's step processes end
    with its scheduler, and the resubmission recovers the run, reuses what completed and runs the rest."""
    pipeline_file, pids = pipeline
    killed = submit(ws, pipeline_file, fault=f"{point}:{nth}")
    assert killed.returncode == -9, f"the kill point was not reached:\n{killed.stdout}\n{killed.stderr}"
    started = [int(p.read_text()) for p in pids.glob("*.pid")]
    wait_for(
        lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in started),
        timeout=2,
        what="the killed run's step processes to end with their scheduler",
    )
    completed = {name for name, status in statuses(ws, 1).items() if status == "Completed"}

    again = submit(ws, pipeline_file)
    assert again.returncode == 0, again.stdout + again.stderr
    conn = sqlite3.connect(ws.state_dir / "history.db")
    assert conn.execute("SELECT status, error FROM pipeline_run WHERE id = 1").fetchone() == (
        "Failed",
        "scheduler exited",
    )
    conn.close()
    second = statuses(ws, 2)
    assert {name for name, status in second.items() if status == "Reused"} == completed
    assert {name for name, status in second.items() if status == "Completed"} == set(second) - completed
    check_nothing_lost(ws, pids)
