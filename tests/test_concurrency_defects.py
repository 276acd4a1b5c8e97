"""Reproductions of issue 12, defects 1-4: concurrent and killed schedulers.

Each test states the behaviour the fix must give; on the code of the issue each one fails.
Only public interfaces: the CLI as a process, files on disk, plain sqlite3 reads of history.db.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest

from tests.conftest import wait_for, write
from tests.defect_helpers import alive, kill_quietly, popen_localpipe, query, run_status, step_rows, step_status

# -- defect 1: the next submit hangs after a kill ----------------------------------------------

SLOW_THEN_QUEUED = """
from localpipe import Pipeline, PythonScriptStep, Workspace
ws = Workspace.from_config()
slow = PythonScriptStep("s.py", name="slow", source_directory="src")
queued = PythonScriptStep("s.py", name="queued", source_directory="src", arguments=["q"])
queued.run_after(slow)
pipeline = Pipeline(ws, [slow, queued])
"""

SLOW_STEP = """
import os, time
if os.environ["LOCALPIPE_STEP_NAME"] == "slow":
    time.sleep(5)
print("done")
"""


@pytest.mark.timeout(120)
def test_submit_after_a_killed_submit_does_not_wait_for_the_dead_twin(ws, project):
    """Defect 1: `submit & sleep 2.5; kill -9 $!; submit` waited forever "for run 1 (step "slow")
    which computes the same outputs". The twin whose scheduler is gone must be recovered and the
    second submit must go on by itself: it completes (exit 0) and run 1 ends Failed."""
    project("src/s.py", SLOW_STEP)
    project("p.py", SLOW_THEN_QUEUED)
    first = popen_localpipe(ws.root, "submit", "p.py")
    try:
        wait_for(
            lambda: step_status(ws.root, 1, "slow") == "Running",
            timeout=30,
            what=lambda: f'step "slow" of run 1 to be Running: {step_rows(ws.root, 1)}',
        )
    finally:
        first.kill()  # SIGKILL: the scheduler gets no chance to clean up
        first.communicate()

    try:
        second = subprocess.run(
            [sys.executable, "-m", "localpipe", "submit", "p.py"],
            cwd=ws.root,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired as exc:
        printed = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout
        pytest.fail(
            "the second submit did not end within 30 s (it runs a 5 s step): it waits for the step "
            f"of the killed run 1; its output so far:\n{printed}\n"
            f"run 2 steps: {step_rows(ws.root, 2)}"
        )
    assert second.returncode == 0, (second.stdout, second.stderr)
    assert run_status(ws.root, 1) == "Failed", query(ws.root, "SELECT id, status, error FROM pipeline_run")
    assert {status for status, _ in step_rows(ws.root, 2).values()} == {"Completed"}, step_rows(ws.root, 2)


# -- defect 2: duplicate executions with 8 submitters ------------------------------------------

# Appends one line per execution to a shared log (O_APPEND, one write), then writes its output
# from its inputs' content.
LOGGING_STEP = """
import os, sys, time
name = os.environ["LOCALPIPE_STEP_NAME"]
with open(sys.argv[1], "a") as f:
    f.write(name + "\\n")
time.sleep(0.2)
text = "".join(open(os.path.join(p, "data.txt")).read() for p in sys.argv[3:])
with open(os.path.join(sys.argv[2], "data.txt"), "w") as f:
    f.write(text + name + "\\n")
"""

# 16 steps: four chains of four passing PipelineData, and from the third level on each step also
# reads the step two levels up in the next chain (diamonds across the chains).
SIXTEEN_STEPS = """
import os, time
from localpipe import Pipeline, PipelineData, PythonScriptStep, Workspace
# A barrier: the 8 submitters go on together once all of them have loaded this file, so that they
# record and start their runs at the same moment (as on a many-core machine).
barrier = {barrier!r}
open(os.path.join(barrier, str(os.getpid())), "w").close()
deadline = time.monotonic() + 60
while len(os.listdir(barrier)) < 8 and time.monotonic() < deadline:
    time.sleep(0.005)
ws = Workspace.from_config()
log = {log!r}
outs, steps = {{}}, []
for level in range(4):
    for chain in range(4):
        name = f"c{{chain}}s{{level}}"
        out = outs[name] = PipelineData(f"{{name}}_out")
        inputs = []
        if level >= 1:
            inputs.append(outs[f"c{{chain}}s{{level - 1}}"].as_input())
        if level >= 2:
            inputs.append(outs[f"c{{(chain + 1) % 4}}s{{level - 2}}"].as_input())
        steps.append(PythonScriptStep("step.py", name=name, source_directory="src", arguments=[log, out, *inputs]))
pipeline = Pipeline(ws, steps)
"""


@pytest.mark.timeout(240)
def test_eight_concurrent_submitters_execute_each_of_16_steps_once(tmp_path):
    """Defect 2: 8 concurrent `localpipe submit pipeA.py` of one 16-step pipeline in a fresh
    workspace executed more than 16 step processes (a waiter whose twin was itself a waiter, and
    ended Reused, computed the step again: "runs: run 1's identical step reused"). Each step must
    be executed exactly once. Five rounds in fresh workspaces: the defect is intermittent (on this
    2-core machine about one round in two shows it; the test stops at the first that does)."""
    # 8 CPU slots, so that the 8 submitters' steps overlap as on the machine of the report (with
    # the 2 slots of this 2-core machine the defect showed far less often).
    env = {**os.environ, "LOCALPIPE_CPUS": "8"}
    for round_ in range(5):
        root = tmp_path / f"round{round_}"
        root.mkdir()
        subprocess.run([sys.executable, "-m", "localpipe", "init", str(root)], check=True, capture_output=True)
        log = tmp_path / f"executions{round_}.log"
        write(root / "src" / "step.py", LOGGING_STEP)
        write(root / ".gitignore", ".localpipe/\n")
        barrier = tmp_path / f"barrier{round_}"
        barrier.mkdir()
        write(root / "pipeA.py", SIXTEEN_STEPS.format(log=str(log), barrier=str(barrier)))
        # The project is a git repository, as most are: each submission records its commit (git runs
        # while the run is recorded, which spreads the submitters' starts as on a busy machine).
        for git in (["init", "-q"], ["add", "-A"], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "p"]):
            subprocess.run(["git", *git], cwd=root, check=True, capture_output=True)
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "localpipe", "submit", "pipeA.py"],
                cwd=root,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for _ in range(8)
        ]
        outputs = [proc.communicate(timeout=180) for proc in procs]
        assert [proc.returncode for proc in procs] == [0] * 8, outputs
        executed = Counter(log.read_text().split())
        reran = query(
            root,
            "SELECT run_id, name, reason FROM step_run WHERE status = 'Completed' AND reason "
            "NOT LIKE 'runs: no earlier run' ORDER BY name, run_id",
        )
        assert sorted(executed) == sorted(f"c{c}s{lv}" for c in range(4) for lv in range(4))
        assert sum(executed.values()) == 16, (
            f"round {round_}: {sum(executed.values())} step executions for 16 steps; executed more than once: "
            f"{ {name: n for name, n in executed.items() if n > 1} }; step runs that computed a step again: {reran[:5]}"
            + (f" and {len(reran) - 5} more" if len(reran) > 5 else "")
        )


# -- defect 3: orphans ---------------------------------------------------------------------------

# A step that starts a child in a session of its own (setsid), notes its own pid and the child's,
# and sleeps.
SETSID_AND_SLEEP = """
import os, subprocess, sys, time
child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(f"{os.getpid()} {child.pid}")
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
time.sleep(60)
"""

# A step that leaves five setsid children behind and exits 0 at once.
SETSID_AND_LEAVE = """
import os, subprocess, sys
children = [subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
            for _ in range(5)]
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(" ".join(str(c.pid) for c in children))
os.replace(sys.argv[1] + ".tmp", sys.argv[1])
"""

ONE_STEP = """
from localpipe import Pipeline, PythonScriptStep, Workspace
pipeline = Pipeline(Workspace.from_config(), [
    PythonScriptStep("step.py", name="tree", source_directory="src", arguments=[{pids!r}])])
"""


def _pids(path) -> list[int] | None:
    return [int(p) for p in path.read_text().split()] if path.exists() else None


@pytest.mark.timeout(60)
def test_a_killed_scheduler_takes_its_step_tree_with_it_setsid_children_included(ws, project, tmp_path):
    """Defect 3: the process trees of a scheduler's steps must die with it within a second,
    whatever kills it, with no other localpipe command run; a child the step started with setsid
    included. SIGKILL the `localpipe submit` process: within 2 s the step process and its setsid
    child are gone."""
    pids_file = tmp_path / "tree.pids"
    project("src/step.py", SETSID_AND_SLEEP)
    project("p.py", ONE_STEP.format(pids=str(pids_file)))
    submit = popen_localpipe(ws.root, "submit", "p.py")
    pids: list[int] = []
    try:
        pids = wait_for(lambda: _pids(pids_file), timeout=30, what="the step to note its pids")
        assert all(alive(p) for p in pids)
        submit.kill()
        submit.communicate()
        wait_for(
            lambda: not any(alive(p) for p in pids),
            timeout=2,
            what=lambda: (
                f"the step (pid {pids[0]}) and its setsid child (pid {pids[1]}) to end with their scheduler; "
                f"still alive: {[p for p in pids if alive(p)]}"
            ),
        )
    finally:
        if submit.poll() is None:
            submit.kill()
            submit.communicate()
        kill_quietly(pids)


@pytest.mark.timeout(60)
def test_setsid_children_left_by_a_completed_step_do_not_outlive_the_run(ws, project, localpipe, tmp_path):
    """Defect 3: a step that exits 0 at once but left 5 setsid children behind: once the run has
    ended, none of those children is alive."""
    pids_file = tmp_path / "children.pids"
    project("src/step.py", SETSID_AND_LEAVE)
    project("p.py", ONE_STEP.format(pids=str(pids_file)))
    children: list[int] = []
    try:
        proc = localpipe("submit", "p.py", timeout=60)
        children = _pids(pids_file) or []
        assert proc.returncode == 0, (proc.stdout, proc.stderr)
        assert run_status(ws.root, 1) == "Completed"
        assert len(children) == 5
        wait_for(
            lambda: not any(alive(p) for p in children),
            timeout=2,
            what=lambda: (
                f"the setsid children of the completed step to be gone; still alive: "
                f"{[p for p in children if alive(p)]}"
            ),
        )
    finally:
        kill_quietly(children)


# -- defect 4: a run canceled by `localpipe watch` shows Completed ------------------------------

GATED = """
import os, sys, time
gate = {gate!r}
name = os.environ["LOCALPIPE_STEP_NAME"]
open(os.path.join(gate, name + "." + os.environ["LOCALPIPE_RUN_ID"]), "w").write(str(os.getpid()))
while not os.path.exists(os.path.join(gate, "open")):
    time.sleep(0.02)
"""

TWO_GATED = """
from localpipe import Pipeline, PythonScriptStep, Workspace
pipeline = Pipeline(Workspace.from_config(), [
    PythonScriptStep("a.py", name="a", source_directory="a"),
    PythonScriptStep("b.py", name="b", source_directory="b")])
"""


@contextlib.contextmanager
def watching_two_gated_steps(ws, project, tmp_path):
    """A `localpipe watch` process over steps "a" and "b", each of which waits until the file
    ``gate/open`` exists; yields (the process, the gate folder, the steps' script). On the way out
    the gate opens and a watcher still running is sent SIGTERM (killed if it outlives 20 s)."""
    gate = tmp_path / "gate"
    gate.mkdir()
    script = GATED.format(gate=str(gate))
    project("proj/a/a.py", script)
    project("proj/b/b.py", script)
    project("proj/pipeline.py", TWO_GATED)
    out = (tmp_path / "watch.out").open("w")
    watch = popen_localpipe(
        ws.root, "watch", "proj/pipeline.py", "--debounce", "200", stdout=out, stderr=subprocess.STDOUT
    )
    try:
        yield watch, gate, script
    finally:
        (gate / "open").write_text("")
        if watch.poll() is None:
            watch.send_signal(signal.SIGTERM)
            try:
                watch.wait(timeout=20)
            except subprocess.TimeoutExpired:
                watch.kill()
                watch.wait()
        out.close()


@pytest.mark.timeout(90)
def test_a_run_with_a_step_canceled_by_watch_is_not_completed(ws, project, tmp_path):
    """Defect 4: `localpipe watch` cancels a running step whose source was saved; its run then
    ended Completed although that step is Canceled and wrote no output. A run's final status
    follows from its steps': a run with a Canceled step is not Completed."""
    with watching_two_gated_steps(ws, project, tmp_path) as (_, gate, script):
        wait_for(
            lambda: step_status(ws.root, 1, "a") == "Running" and (gate / "a.1").exists(),
            timeout=30,
            what=lambda: f'step "a" of run 1 to run: {step_rows(ws.root, 1)}',
        )
        project("proj/a/a.py", script + "\n# edited\n")
        wait_for(
            lambda: step_status(ws.root, 1, "a") == "Canceled",
            timeout=30,
            what=lambda: f'the watcher to cancel step "a" of run 1: {step_rows(ws.root, 1)}',
        )
        (gate / "open").write_text("")  # b of run 1 and a of run 2 may end now
        wait_for(
            lambda: run_status(ws.root, 1) in ("Completed", "Failed", "Canceled"),
            timeout=30,
            what=lambda: f"run 1 to end: {run_status(ws.root, 1)} {step_rows(ws.root, 1)}",
        )
        steps = step_rows(ws.root, 1)
        assert steps["a"][0] == "Canceled" and steps["b"][0] == "Completed", steps
        assert run_status(ws.root, 1) != "Completed", f'run 1 is Completed although its step "a" is Canceled: {steps}'


@pytest.mark.timeout(90)
def test_localpipe_cancel_of_a_watched_run_cancels_that_run_and_the_watcher_goes_on(ws, project, tmp_path, localpipe):
    """`localpipe cancel RUN` signals the run's scheduler; under `localpipe watch` that is the
    watcher's process, which ended, every run with it. It cancels that run alone now: a save then
    reruns, and a SIGTERM of its own still ends the watcher."""
    with watching_two_gated_steps(ws, project, tmp_path) as (watch, gate, script):
        wait_for(lambda: step_status(ws.root, 1, "a") == "Running", timeout=30, what="run 1 to run")
        done = localpipe("cancel", "1")
        assert done.returncode == 0 and "cancel requested" in done.stdout, done.stderr
        wait_for(lambda: run_status(ws.root, 1) == "Canceled", timeout=30, what=lambda: step_rows(ws.root, 1))
        assert watch.poll() is None, "the watcher ended with the run it was asked to cancel"
        (gate / "open").write_text("")
        project("proj/b/b.py", script + "\n# edited\n")
        wait_for(lambda: run_status(ws.root, 2) == "Completed", timeout=30, what=lambda: step_rows(ws.root, 2))
        watch.send_signal(signal.SIGTERM)
        assert watch.wait(timeout=20) == 0


# -- found by the hostile review of the supervisor -------------------------------------------------


def processes_of(ws, scans: int = 10) -> set[int]:
    """Processes started for ``ws``'s steps (their environment names the workspace), over ``scans``
    passes 20 ms apart: one pass over /proc can miss a process that keeps forking and exiting."""
    import psutil

    marker = str(ws.root)
    found = set()
    for _ in range(scans):
        for process in psutil.process_iter():
            try:
                if process.environ().get("LOCALPIPE_WORKSPACE") == marker and process.status() != psutil.STATUS_ZOMBIE:
                    found.add(process.pid)
            except psutil.Error:
                continue
        time.sleep(0.02)
    return found


def end_processes_of(ws) -> None:
    """Stop, then kill, what a failed test left: a stopped process cannot fork away."""
    for _ in range(100):
        found = processes_of(ws, scans=1)
        if not found:
            return
        for pid in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGSTOP)
        for pid in found:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


HOPPER = """
import os, time
beat = os.path.join(os.environ["LOCALPIPE_WORKSPACE"], "alive")
if os.fork() == 0:  # a child that keeps forking, each new one in a session of its own
    open(beat, "w").close()
    while True:
        if os.fork():
            os._exit(0)
        os.setsid()
        os.utime(beat)  # its pid changes faster than a scan of /proc can see it: it says it lives here
time.sleep(0.2)
"""


def beating(path) -> bool:
    """Whether a process still touches ``path`` (its mtime moves within 0.3 s)."""
    before = path.stat().st_mtime_ns
    time.sleep(0.3)
    return path.stat().st_mtime_ns != before


KILLS_ITS_SUPERVISOR = """
import os, psutil, subprocess, time
subprocess.Popen(["sleep", "1002"])
subprocess.Popen(["setsid", "sleep", "1003"])
time.sleep(0.2)
# Its parent is the zygote it was forked from, whose parent is the supervisor.
os.kill(next(p.pid for p in psutil.Process().parents() if "supervisor.py" in " ".join(p.cmdline())), 9)
time.sleep(30)
"""


@pytest.mark.timeout(90)
@pytest.mark.parametrize("script", [HOPPER, KILLS_ITS_SUPERVISOR], ids=["re-forking-child", "kills-its-supervisor"])
def test_nothing_a_step_started_escapes(ws, project, localpipe, script):
    """A child that keeps forking (each in a new session) is caught by stopping it before killing
    it; children of a step that killed the supervisor itself are found by their launch tag."""
    project("src/step.py", script)
    project("p.py", ONE_STEP.format(pids="unused"))
    try:
        localpipe("submit", "p.py", timeout=60)
        wait_for(lambda: not processes_of(ws), timeout=3, what=lambda: f"processes left: {processes_of(ws)}")
        if script == HOPPER:
            assert (ws.root / "alive").exists() and not beating(ws.root / "alive"), "the hopper still runs"
    finally:
        end_processes_of(ws)


LEAVES_A_DAEMON = """
import os, pathlib, time
if os.fork() == 0:  # a daemon in a session of its own (a detached server): below init once all else dies
    os.setsid()
    pathlib.Path(os.environ["LOCALPIPE_WORKSPACE"], "daemon.started").write_text("")
    time.sleep(300)
time.sleep(300)
"""


@pytest.mark.timeout(90)
def test_what_outlived_a_scheduler_killed_with_its_supervisor_is_ended_by_the_next_command(ws, project):
    import psutil

    """SIGKILL of the scheduler and the step supervisor at once (the OOM killer, `kill -9` of both)
    leaves nothing to end a step's grandchild that left its session. The next command that finds
    the run abandoned ends it, by the launch tag of a supervisor that no longer exists."""
    project("src/step.py", LEAVES_A_DAEMON)
    project("p.py", ONE_STEP.format(pids="unused"))
    submit = popen_localpipe(ws.root, "submit", "p.py")
    started = ws.root / "daemon.started"
    try:
        wait_for(started.exists, timeout=30, what=lambda: f"the step to start its grandchild: {step_rows(ws.root, 1)}")
        scheduler = psutil.Process(submit.pid)
        supervisor = [p for p in scheduler.children() if "supervisor.py" in " ".join(p.cmdline())]
        assert len(supervisor) == 1, scheduler.children()
        for process in [scheduler, *supervisor]:
            process.suspend()  # neither may see the other die before both are killed
        for process in [scheduler, *supervisor]:
            process.kill()
        submit.communicate()
        assert processes_of(ws), "the daemon should have outlived its scheduler and supervisor"
        runs = subprocess.run([sys.executable, "-m", "localpipe", "runs"], cwd=ws.root, capture_output=True, text=True,
                              timeout=30)  # fmt: skip
        assert runs.returncode == 0, runs.stderr
        assert run_status(ws.root, 1) == "Failed"
        assert not processes_of(ws), f"processes left: {processes_of(ws)}"
    finally:
        end_processes_of(ws)


@pytest.mark.timeout(60)
def test_a_step_gets_sigint_as_its_default_and_a_submitter_ignoring_sigchld_still_runs_it(ws, project):
    """The supervisor must not pass on an ignored disposition: a step's SIGINT is Python's default
    handler, and a submitting process that ignores SIGCHLD (as some servers do) still gets exits."""
    project("src/step.py", "import signal\nprint(signal.getsignal(signal.SIGINT) is signal.default_int_handler)\n")
    project("p.py", ONE_STEP.format(pids="unused"))
    code = (
        "import os, signal, sys; signal.signal(signal.SIGCHLD, signal.SIG_IGN); "
        "os.execv(sys.executable, [sys.executable, *sys.argv[1:]])"
    )
    done = subprocess.run([sys.executable, "-c", code, "-m", "localpipe", "submit", "p.py"], cwd=ws.root,
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert (ws.state_dir / "runs" / "1" / "tree" / "stdout.log").read_text() == "True\n"


LISTS_ITS_DESCRIPTORS = """
import os, pathlib, sys, time
time.sleep(0.3)  # the other step is running too: its pipes are open in the supervisor now
fds = {}
for fd in os.listdir("/proc/self/fd"):
    try:
        fds[int(fd)] = os.readlink(f"/proc/self/fd/{fd}")
    except FileNotFoundError:  # the listing's own descriptor, closed once listed
        pass
pathlib.Path(os.environ["LOCALPIPE_WORKSPACE"], os.environ["LOCALPIPE_STEP_NAME"] + ".fds").write_text(repr(fds))
"""

TWO_STEPS = """
from localpipe import Pipeline, PythonScriptStep, Workspace
pipeline = Pipeline(Workspace.from_config(), [
    PythonScriptStep("step.py", name=name, source_directory="src") for name in ("left", "right")])
"""


@pytest.mark.timeout(60)
def test_a_step_inherits_no_descriptor_but_its_standard_streams(ws, project, localpipe):
    """The supervisor spawns steps without closing descriptors (posix_spawn): everything it holds,
    its socket to the scheduler and the pipes of a step running beside, must be close-on-exec.
    Each of two steps running at once lists its descriptors: 0, 1 and 2 only."""
    project("src/step.py", LISTS_ITS_DESCRIPTORS)
    project("p.py", TWO_STEPS)
    localpipe("submit", "p.py", check=True)
    for name in ("left", "right"):
        fds = eval((ws.root / f"{name}.fds").read_text())  # noqa: S307  (our own step's repr of a dict)
        extra = {fd: target for fd, target in fds.items() if fd > 2}
        assert set(fds) >= {0, 1, 2} and not extra, f"{name} inherited {extra}"
        assert fds[0] == os.devnull and fds[1].startswith("pipe:") and fds[2].startswith("pipe:"), fds
