"""Python steps forked from a warm interpreter (executors/zygote.py) behave as new interpreters do.

Each test runs the same pipeline twice, with ``LOCALPIPE_STEP_START=exec`` (every step a new
``python SCRIPT``) and with the default (forked), and compares what the steps saw and how they
ended."""

import json
import os
import signal
import sqlite3
import sys

import psutil
import pytest

PROBE = r'''
"""The probe's docstring."""
import json, os, signal, sys

names = ("SIGINT", "SIGPIPE", "SIGTERM", "SIGCHLD", "SIGHUP", "SIGXFSZ", "SIGUSR1")
streams = [(s.line_buffering, s.write_through, s.encoding, s.errors, s.fileno())
           for s in (sys.stdin, sys.stdout, sys.stderr)]
print(json.dumps({
    "argv": sys.argv, "orig_argv": getattr(sys, "orig_argv", [None])[1:], "path": sys.path,
    "modules": sorted(sys.modules), "file": __file__, "doc": __doc__, "spec": repr(__spec__),
    "loader": type(__loader__).__name__, "cwd": os.getcwd(), "flags": list(sys.flags),
    "streams": streams, "stdin": sys.stdin.read(), "std_same": sys.stdout is sys.__stdout__,
    "signals": {n: repr(signal.getsignal(getattr(signal, n))) for n in names},
    "blocked": sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])),
    "environ": {k: v for k, v in os.environ.items() if not k.startswith("LOCALPIPE_") and k != "PWD"},
    "session_leader": os.getsid(0) == os.getpid(), "fds": sorted(os.listdir("/proc/self/fd")),
    "bytecode": sys.dont_write_bytecode, "threads": __import__("threading").active_count(),
    "mine": __import__("helper").WHERE, "hash_seeded": hash("x") == hash("x"),
}))
'''

ENDINGS = {
    "raises": "def inner():\n    raise ValueError('boom')\ninner()\n",
    "exits_text": "import sys\nsys.exit('bye')\n",
    "exits_3": "raise SystemExit(3)\n",
    "syntax": "def broken(:\n    pass\n",
    "interrupted": "raise KeyboardInterrupt\n",
    "chained": "try:\n    1 / 0\nexcept ZeroDivisionError as exc:\n    raise RuntimeError('again') from exc\n",
    # What Python finishes at its exit: an unclosed file, a thread still running, atexit, a buffered print.
    "finishes": (
        "import atexit, os, threading, time\n"
        "out = os.path.join(os.environ['LOCALPIPE_STEP_DIR'], 'finished.txt')\n"
        "unclosed = open(out, 'w')\n"
        "unclosed.write('unclosed ')\n"
        "threading.Thread(target=lambda: (time.sleep(0.3), unclosed.write('thread '))).start()\n"
        "atexit.register(lambda: unclosed.write('atexit '))\n"
        "print('buffered', end='')\n"
    ),
}

PIPELINE = """
from localpipe import Pipeline, PythonScriptStep, Workspace
names = {names!r}
pipeline = Pipeline(Workspace.from_config(), [
    PythonScriptStep(f"{{name}}.py", name=name, source_directory="src", allow_reuse=False) for name in names
])
"""


def _ran(ws, localpipe, start: str, names) -> dict:
    """Each step's (exit code, signal, stdout, stderr) in a run with ``LOCALPIPE_STEP_START=start``."""
    proc = localpipe("submit", "p.py", "--continue-on-step-failure", env={"LOCALPIPE_STEP_START": start})
    db = sqlite3.connect(ws.root / ".localpipe" / "history.db")
    run = db.execute("SELECT max(id) FROM pipeline_run").fetchone()[0]
    rows = dict(
        (name, (code, sig))
        for name, code, sig in db.execute("SELECT name, exit_code, signal FROM step_run WHERE run_id = ?", (run,))
    )
    folder = ws.root / ".localpipe" / "runs" / str(run)
    seen = {}
    for name in names:
        logs = [folder / name / f"{s}.log" for s in ("stdout", "stderr")]  # an empty one is never made
        text = [log.read_text().replace(str(folder), "RUN") if log.exists() else "" for log in logs]
        finished = folder / name / "finished.txt"
        seen[name] = (*rows[name], *text, finished.read_text() if finished.exists() else None)
    assert set(rows) == set(names), proc.stdout + proc.stderr
    return seen


def _output(history, run_id: int, step: str, output: str, file: str) -> list[str]:
    from localpipe.state.store import ObjectStore

    digest = {s["name"]: s for s in history.runs.details(run_id)["steps"]}[step]["outputs"][output]
    return (ObjectStore(history.layout.objects).path(digest) / file).read_text().splitlines()


def _project(project, scripts):
    for name, text in scripts.items():
        project(f"src/{name}.py", text)
    project("src/helper.py", "WHERE = 'the step folder'\n")
    project("p.py", PIPELINE.format(names=list(scripts)))


def test_a_forked_step_sees_what_a_new_interpreter_sees(ws, project, localpipe):
    """argv, sys.path (the script's folder, the runtime's, then the interpreter's), the modules
    loaded (none of the zygote's, and a step's own module named like one of them is its own),
    __main__'s attributes, flags, standard streams, signal handlers and mask, the environment,
    descriptors, session: all as with a new `python SCRIPT`."""
    scripts = {"probe": PROBE, "zygote_named": PROBE.replace('__import__("helper")', '__import__("zygote")')}
    project("src/zygote.py", "WHERE = 'the step folder'\n")  # the zygote's own module's name
    _project(project, scripts)
    exec_seen = _ran(ws, localpipe, "exec", scripts)
    fork_seen = _ran(ws, localpipe, "fork", scripts)
    for name in scripts:
        code, sig, out, err, _ = fork_seen[name]
        assert (code, sig, err) == (0, None, ""), (name, fork_seen[name])
        forked, fresh = json.loads(out), json.loads(exec_seen[name][2])
        assert forked == fresh
        assert forked["mine"] == "the step folder"


def test_a_forked_step_ends_as_a_new_interpreter_does(ws, project, localpipe):
    """An uncaught exception (its traceback without a frame of localpipe's), sys.exit with a text
    or a code, a syntax error, a KeyboardInterrupt (ended by SIGINT), a chained exception, and
    what Python does at its exit (threads joined, atexit, files flushed): the same either way."""
    scripts = ENDINGS
    _project(project, scripts)
    exec_seen = _ran(ws, localpipe, "exec", scripts)
    fork_seen = _ran(ws, localpipe, "fork", scripts)
    assert fork_seen == exec_seen
    assert fork_seen["raises"][:2] == (1, None) and "zygote" not in fork_seen["raises"][3]
    assert fork_seen["interrupted"][:2] == (None, signal.SIGINT)
    assert fork_seen["exits_3"][:2] == (3, None)
    assert fork_seen["finishes"][2:] == ("buffered", "", "unclosed thread atexit ")


@pytest.mark.timeout(60)
def test_steps_are_forked_and_a_step_whose_python_starts_differently_gets_a_zygote_of_its_own(ws, project, localpipe):
    """The steps' parent is a zygote of the run's step supervisor (not the supervisor, as when each
    is started anew), one for as many steps as run at once; a step setting PYTHONHASHSEED is
    forked from a zygote started with it, and its hashes are the seed's."""
    report = (
        "import json, os, psutil, sys\n"
        "parent = psutil.Process(os.getppid())\n"
        "print(json.dumps({'parent': ' '.join(parent.cmdline()), 'zygote': parent.pid, 'hash': hash('abc'),\n"
        "                  'environ': parent.environ().get('LOCALPIPE_LAUNCH', '')}))\n"
    )
    project("src/report.py", report)
    project(
        "p.py",
        """
        from localpipe import Pipeline, PythonScriptStep, RunConfiguration, Workspace
        seeded = RunConfiguration()
        seeded.environment_variables = {"PYTHONHASHSEED": "0"}
        def step(name, **more):
            return PythonScriptStep("report.py", name=name, source_directory="src", allow_reuse=False, **more)
        steps = [step(f"plain{i}") for i in range(4)] + [step("seeded", runconfig=seeded)]
        pipeline = Pipeline(Workspace.from_config(), steps)
        """,
    )
    localpipe("submit", "p.py", check=True)
    folder = ws.root / ".localpipe" / "runs" / "1"
    seen = {
        name: json.loads((folder / name / "stdout.log").read_text())
        for name in ["plain0", "plain1", "plain2", "plain3", "seeded"]
    }
    assert all("zygote.py" in s["parent"] for s in seen.values()), seen
    assert all(s["environ"].count(".") == 1 for s in seen.values()), seen  # the zygote's own tag
    plain = {s["zygote"] for name, s in seen.items() if name != "seeded"}
    assert len(plain) <= 2 and seen["seeded"]["zygote"] not in plain  # 2 CPU slots: at most 2 run at once
    expected = psutil.Popen([sys.executable, "-c", "print(hash('abc'))"], env={**os.environ, "PYTHONHASHSEED": "0"},
                            stdout=-1).communicate()[0]  # fmt: skip
    assert seen["seeded"]["hash"] == int(expected)

    localpipe("submit", "p.py", check=True, env={"LOCALPIPE_STEP_START": "exec"})
    parent = json.loads((ws.root / ".localpipe" / "runs" / "2" / "plain0" / "stdout.log").read_text())["parent"]
    assert "supervisor.py" in parent and "zygote.py" not in parent


@pytest.mark.timeout(60)
def test_a_step_whose_zygote_is_killed_dies_with_it_and_the_run_goes_on(ws, project, localpipe):
    """The zygote is the forked step's parent: killed, it takes the step with it (the step is
    reported killed, not lost), and the steps after get a new one."""
    project("src/victim.py", "import os, time\nos.kill(os.getppid(), 9)\ntime.sleep(30)\n")
    project("src/after.py", "import time\ntime.sleep(0.5)\n")
    project(
        "p.py",
        """
        from localpipe import Pipeline, PythonScriptStep, Workspace
        def step(script, name):
            return PythonScriptStep(script, name=name, source_directory="src", allow_reuse=False)
        steps = [step("victim.py", "victim")] + [step("after.py", f"after{i}") for i in range(3)]
        pipeline = Pipeline(Workspace.from_config(), steps)
        """,
    )
    proc = localpipe("submit", "p.py", "--continue-on-step-failure")
    db = sqlite3.connect(ws.root / ".localpipe" / "history.db")
    rows = dict((n, (s, sig)) for n, s, sig in db.execute("SELECT name, status, signal FROM step_run"))
    assert rows["victim"] == ("Failed", signal.SIGKILL), (rows, proc.stdout, proc.stderr)
    assert all(rows[f"after{i}"][0] == "Completed" for i in range(3)), (rows, proc.stdout, proc.stderr)


def test_a_bad_step_start_setting_is_refused_before_anything_is_recorded(ws, project, localpipe):
    project("src/s.py", "")
    project("p.py", PIPELINE.format(names=["s"]))
    proc = localpipe("submit", "p.py", env={"LOCALPIPE_STEP_START": "warm"})
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines()[-1].startswith('error: LOCALPIPE_STEP_START="warm" is neither')
    assert not (ws.root / ".localpipe" / "runs" / "1").exists()


def test_a_parallel_run_steps_driver_is_forked_as_python_m_would_start_it(ws, project, localpipe, history):
    """The driver (`python -m localpipe.parallel.driver`) is forked too, and runs as `python -m`
    does: its workers (forked from it) see it as their parent, the zygote above it; the result is
    the one a driver started anew gives."""
    project(
        "src/score.py",
        """
        import os, psutil

        def init():
            pass

        def run(mini_batch):
            driver = psutil.Process(os.getppid())
            above = " ".join(driver.parent().cmdline())
            return [f"{os.path.basename(p)} {'zygote' if 'zygote.py' in above else above}" for p in mini_batch]
        """,
    )
    for i in range(4):
        project(f"data/f{i}.txt", f"{i}\n")
    project(
        "pipeline.py",
        """
        from azureml.core import Dataset, Environment, Workspace
        from azureml.pipeline.core import Pipeline, PipelineData
        from azureml.pipeline.steps import ParallelRunConfig, ParallelRunStep

        ws = Workspace.from_config()
        config = ParallelRunConfig(environment=Environment("e"), entry_script="score.py", source_directory="src",
                                   error_threshold=-1, output_action="append_row", compute_target="local",
                                   node_count=1, process_count_per_node=2, mini_batch_size=2)
        out = PipelineData("scores", datastore=ws.get_default_datastore())
        step = ParallelRunStep("score", config, inputs=[Dataset.File.from_files("data").as_named_input("files")],
                               output=out, allow_reuse=False)
        pipeline = Pipeline(ws, [step])
        """,
    )
    localpipe("submit", "pipeline.py", check=True)
    with open(ws.root / "src" / "score.py", "a") as script:
        script.write("# changed: no mini-batch result of the first run is reused\n")
    localpipe("submit", "pipeline.py", check=True, env={"LOCALPIPE_STEP_START": "exec"})
    forked, started = (sorted(_output(history, run, "score", "scores", "parallel_run_step.txt")) for run in (1, 2))
    assert forked == [f"f{i}.txt zygote" for i in range(4)]
    assert [row.split()[0] for row in started] == [f"f{i}.txt" for i in range(4)] and "zygote" not in str(started)
    assert "supervisor.py" in started[0]  # started anew: the supervisor's child
