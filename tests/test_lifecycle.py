"""Run life cycle with real processes: detach, cancel, Ctrl-C, a killed scheduler, timeouts,
and two submitters sharing the CPU slots."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import psutil

from tests.conftest import tables, wait_for

# A step that starts a child of its own (so there is a process tree), notes both pids, and waits.
TREE = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
with open(os.path.join(sys.argv[1], os.environ["LOCALPIPE_STEP_NAME"] + ".pids"), "w") as f:
    f.write(f"{os.getpid()} {child.pid}")
time.sleep(600)
"""

PIPELINE = """
from localpipe import Pipeline, PipelineData, PythonScriptStep, RunConfiguration, Workspace
ws = Workspace.from_config()
data = PipelineData("data")
quick = PythonScriptStep("quick.py", name="quick", source_directory="quick", arguments=[data])
config = RunConfiguration()
config.timeout_seconds = {timeout}
slow = PythonScriptStep("tree.py", name="slow", source_directory="tree",
                        arguments=[{pids!r}, data.as_input()], runconfig=config)
pipeline = Pipeline(ws, [slow])
"""


def setup(project, ws, timeout=None):
    pids = ws.root / "pids"
    pids.mkdir(exist_ok=True)
    project("proj/quick/quick.py", "import sys\nopen(sys.argv[1] + '/q.txt', 'w').write('q')\n")
    project("proj/tree/tree.py", TREE)
    return project("proj/pipeline.py", PIPELINE.format(timeout=timeout, pids=str(pids))), pids


def tree_pids(pids_dir, step="slow"):
    path = pids_dir / f"{step}.pids"
    return [int(p) for p in path.read_text().split()] if path.exists() and path.read_text() else None


def gone(pids) -> bool:
    return not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE for p in pids)


def run_row(ws, run_id=1):
    m = tables(ws)
    return m.PipelineRun.get_by_id(run_id)


def step_status(ws, name, run_id=1):
    m = tables(ws)
    row = m.StepRun.get_or_none(m.StepRun.run == run_id, m.StepRun.name == name)
    return row.status if row else None


def popen_submit(pipeline, ws, *extra):
    return subprocess.Popen(
        [sys.executable, "-m", "localpipe", "submit", str(pipeline), *extra],
        cwd=ws.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_ctrl_c_cancels_the_run_and_ends_the_step_tree(ws, project):
    pipeline, pids = setup(project, ws)
    proc = popen_submit(pipeline, ws)
    tree = wait_for(lambda: tree_pids(pids), what="the slow step to start")
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, out + err
    # the summary line as for any other ending (it had none; found by the new user review)
    assert out.splitlines()[-1].startswith("run 1 Canceled in ") and err.endswith("interrupted\n"), out + err
    wait_for(lambda: gone(tree), timeout=10, what="the step tree to end")
    assert run_row(ws).status == "Canceled"
    assert step_status(ws, "slow") == "Canceled" and step_status(ws, "quick") == "Completed"


def test_cancel_from_another_terminal_ends_a_detached_run(ws, project, localpipe):
    pipeline, pids = setup(project, ws)
    run_id = localpipe("submit", pipeline, "--detach", check=True).stdout.strip()
    tree = wait_for(lambda: tree_pids(pids), what="the slow step to start")
    assert localpipe("cancel", run_id, check=True).stdout.strip() == f"run {run_id}: cancel requested"
    wait_for(lambda: run_row(ws).status == "Canceled", what="the run to be Canceled")
    wait_for(lambda: gone(tree), timeout=10, what="the step tree to end")
    assert localpipe("cancel", run_id).returncode == 2  # already over


def test_python_cancel_ends_a_submitted_run(ws, project):
    from localpipe import Experiment
    from localpipe.engine.loader import load_pipeline

    pipeline, pids = setup(project, ws)
    run = Experiment(ws, "py").submit(load_pipeline(pipeline, ws))
    tree = wait_for(lambda: tree_pids(pids), what="the slow step to start")
    run.cancel()
    assert run.wait_for_completion(raise_on_error=False, timeout_seconds=60) == "Canceled"
    wait_for(lambda: gone(tree), timeout=10, what="the step tree to end")


def test_cancel_and_fail_return_once_the_run_has_ended_as_asked(ws, project, invoke):
    """manage-runs.ipynb prints get_status() right after cancel() and fail(): Canceled, then Failed
    with fail()'s details, the step trees ended. A PipelineRun's fail is Run.fail (Azure's refuses it):
    its details are the run's error in get_details() and `localpipe show`."""
    from localpipe import Experiment
    from localpipe.engine.loader import load_pipeline

    pipeline, pids = setup(project, ws)
    experiment = Experiment(ws, "py")
    canceled = experiment.submit(load_pipeline(pipeline, ws))
    tree = wait_for(lambda: tree_pids(pids), what="the slow step to start")
    canceled.cancel()
    assert canceled.get_status() == "Canceled"
    wait_for(lambda: gone(tree), timeout=10, what="the step tree to end")

    (pids / "slow.pids").unlink()
    failed = experiment.submit(load_pipeline(pipeline, ws))
    tree = wait_for(lambda: tree_pids(pids), what="the slow step to start again")
    failed.fail(error_details="bad input", error_code="UserError")
    assert failed.get_status() == "Failed" and run_row(ws, failed.id).error == "UserError: bad input"
    assert failed.get_details()["error"] == {"error": {"code": "UserError", "message": "UserError: bad input"}}
    assert "why it failed: UserError: bad input\n" in invoke("show", str(failed.id)).output
    assert step_status(ws, "slow", failed.id) == "Canceled"
    wait_for(lambda: gone(tree), timeout=10, what="the step tree to end")


def test_a_scheduler_killed_before_it_handles_a_cancel_leaves_the_run_canceled(ws, project, history):
    """A run canceled as its scheduler starts: the SIGTERM may kill it before its handler is in
    place. The next reader ends the run as asked (Canceled), not Failed "scheduler exited"."""
    from localpipe.engine.recovery import cancel_run

    pipeline, pids = setup(project, ws)
    proc = popen_submit(pipeline, ws)
    tree = wait_for(lambda: tree_pids(pids), what="the slow step to start")
    proc.send_signal(signal.SIGSTOP)  # the SIGTERM stays pending: the scheduler never handles it
    assert cancel_run(history, 1) == "run 1: cancel requested"
    proc.kill()
    proc.wait()
    runs = json.loads(subprocess.run(
        [sys.executable, "-m", "localpipe", "runs", "--json"], cwd=ws.root, capture_output=True, text=True, check=True
    ).stdout)  # fmt: skip
    assert (runs[0]["status"], runs[0]["error"]) == ("Canceled", "canceled")
    assert step_status(ws, "slow") == "Canceled"
    wait_for(lambda: gone(tree), timeout=10, what="the orphaned step tree to end")


def test_a_killed_scheduler_leaves_the_run_failed_and_the_resubmission_reuses_completed_steps(ws, project, localpipe):
    pipeline, pids = setup(project, ws)
    proc = popen_submit(pipeline, ws)
    tree = wait_for(lambda: tree_pids(pids), what="the slow step to start")
    proc.kill()  # SIGKILL: the scheduler gets no chance to clean up
    proc.wait()
    runs = json.loads(localpipe("runs", "--json", check=True).stdout)
    assert runs[0]["status"] == "Failed" and runs[0]["error"] == "scheduler exited"
    wait_for(lambda: gone(tree), timeout=10, what="the orphaned step tree to end")
    m = tables(ws)
    assert m.ResourceClaim.select().count() == 0
    assert step_status(ws, "slow") == "Failed"

    (pids / "slow.pids").unlink()
    second = popen_submit(pipeline, ws)
    wait_for(lambda: tree_pids(pids), what="the slow step to start again")
    assert step_status(ws, "quick", run_id=2) == "Reused"
    second.send_signal(signal.SIGINT)
    second.communicate(timeout=60)


def test_a_timeout_leaves_no_process_of_the_step_tree(ws, project, localpipe):
    pipeline, pids = setup(project, ws, timeout=1.0)
    proc = localpipe("submit", pipeline)
    assert proc.returncode == 1
    assert "timed out after 1s" in proc.stdout
    assert gone(tree_pids(pids))


def test_two_submitters_on_two_cpu_slots_never_run_more_than_two_steps(ws, project):
    from tests.test_resources import RECORD, overlaps

    log = ws.root / "spans.jsonl"
    project("proj/rec/rec.py", RECORD)
    project(
        "proj/pipeline.py",
        f"""
        import os
        from localpipe import Pipeline, PythonScriptStep, Workspace
        tag = os.environ["TAG"]
        steps = [PythonScriptStep("rec.py", name=f"{{tag}}{{i}}", source_directory="rec",
                                  arguments=[{str(log)!r}, 0.3], allow_reuse=False) for i in range(4)]
        pipeline = Pipeline(Workspace.from_config(), steps)
    """,
    )
    env = {**os.environ, "LOCALPIPE_CPUS": "2"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "localpipe", "submit", "proj/pipeline.py", "-e", tag],
            cwd=ws.root,
            env={**env, "TAG": tag},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        for tag in ("a", "b")
    ]
    for proc in procs:
        proc.communicate(timeout=120)
        assert proc.returncode == 0
    spans = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(spans) == 8
    assert overlaps(spans) == 2


def test_four_concurrent_submitters_compute_each_step_once(ws, project):
    log = ws.root / "executions.log"
    project(
        "proj/work/work.py",
        f"""
        import os, sys, time
        with open({str(log)!r}, "a") as f:
            f.write(os.environ["LOCALPIPE_STEP_NAME"] + "\\n")
        time.sleep(0.5)
        open(os.path.join(sys.argv[1], "out.txt"), "w").write(sys.argv[2])
    """,
    )
    project(
        "proj/pipeline.py",
        """
        from localpipe import Pipeline, PipelineData, PythonScriptStep, Workspace
        first, second = PipelineData("first"), PipelineData("second")
        a = PythonScriptStep("work.py", name="a", source_directory="work", arguments=[first, "a"])
        b = PythonScriptStep("work.py", name="b", source_directory="work", arguments=[second, "b", first.as_input()])
        c = PythonScriptStep("work.py", name="c", source_directory="work", arguments=[PipelineData("third"), "c"])
        pipeline = Pipeline(Workspace.from_config(), [b, c])
    """,
    )
    env = {**os.environ, "LOCALPIPE_CPUS": "8"}
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "localpipe", "submit", "proj/pipeline.py"],
            cwd=ws.root,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0, 0, 0], outputs
    assert sorted(log.read_text().split()) == ["a", "b", "c"]
    m = tables(ws)
    statuses = [s.status for s in m.StepRun.select()]
    assert statuses.count("Completed") == 3 and statuses.count("Reused") == 9, [
        (s.run_id, s.name, s.status, s.reason) for s in m.StepRun.select()
    ]
