"""`localpipe watch` with real watchdog observers and real files: what a save reruns, and what not."""

from __future__ import annotations

import os
import re
import textwrap
import threading

import pytest

from localpipe.watch import Watcher, is_editor_file
from tests.conftest import tables, wait_for

PIPELINE = """
from localpipe import Pipeline, PipelineData, PythonScriptStep, Workspace
ws = Workspace.from_config()
data = PipelineData("data")
make = PythonScriptStep("make.py", name="make", source_directory="make", arguments=[data])
use = PythonScriptStep("use.py", name="use", source_directory="use", arguments=[data.as_input()])
other = PythonScriptStep("other.py", name="other", source_directory="other")
pipeline = Pipeline(ws, [use, other])
"""


@pytest.fixture
def watched(ws, project):
    """A watcher over a three-step project, running in a thread; yields (watcher, printed lines)."""
    project("proj/make/make.py", "import sys\nopen(sys.argv[1] + '/v.txt', 'w').write('1')\n")
    project("proj/make/.amlignore", "*.log\n")
    project("proj/use/use.py", "import sys\nprint(open(sys.argv[1] + '/v.txt').read())\n")
    project("proj/other/other.py", "print('other')\n")
    project("proj/pipeline.py", PIPELINE)
    lines: list[str] = []
    watcher = Watcher(ws, str(ws.root / "proj/pipeline.py"), "proj", debounce=0.2, echo=lines.append)
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    wait_for(lambda: run_done(ws, 1), what="the first run")
    yield watcher, lines
    watcher.stop()
    thread.join(timeout=30)
    assert not thread.is_alive()


def run_done(ws, run_id) -> bool:
    m = tables(ws)
    run = m.PipelineRun.get_or_none(m.PipelineRun.id == run_id)
    return run is not None and run.status in ("Completed", "Failed", "Canceled")


def steps_of(ws, run_id) -> dict[str, tuple[str, str]]:
    m = tables(ws)
    return {s.name: (s.status, s.reason) for s in m.StepRun.select().where(m.StepRun.run == run_id)}


def run_count(ws) -> int:
    m = tables(ws)
    return m.PipelineRun.select().count()


def test_an_edit_reruns_only_the_affected_steps(ws, project, watched):
    project("proj/other/other.py", "print('other, edited')\n")
    wait_for(lambda: run_done(ws, 2), what="the rerun")
    assert steps_of(ws, 2) == {
        "make": ("Reused", 'reused from run 1 (step "make")'),
        "use": ("Reused", 'reused from run 1 (step "use")'),
        "other": ("Completed", "runs: source changed (other.py)"),
    }


def test_reruns_keep_no_database_connection_open(ws, project, watched):
    """Each run has a thread of its own, and a thread its own history.db connection: a watcher
    kept two descriptors (history.db and its WAL) per rerun until it ran out of them (found by a
    review, 2 Dec 2026)."""

    def open_database_files() -> int:
        found = 0
        for fd in os.listdir("/proc/self/fd"):
            try:
                found += os.readlink(f"/proc/self/fd/{fd}").startswith(str(ws.state_dir / "history.db"))
            except OSError:
                continue  # closed since the listing
        return found

    before = open_database_files()
    for rerun in range(2, 6):
        project("proj/other/other.py", f"print('other, edit {rerun}')\n")
        wait_for(lambda rerun=rerun: run_done(ws, rerun), what=f"rerun {rerun}")
    watcher, lines = watched
    wait_for(lambda: not any(a.thread.is_alive() for a in watcher.active), what="the last run's thread to end")
    assert open_database_files() <= before


def summaries(lines: list[str]) -> list[str]:
    """The summary lines, their durations (which vary) replaced by "T"."""
    return [re.sub(r" in \d+\.\ds ", " in Ts ", line) for line in lines if re.match(r"run \d+ \w+ in ", line)]


def test_each_run_is_summed_up_in_one_line(ws, project, watched):
    """Issue 17, item 7: one line per run triggered: id, status, duration, what changed, step counts."""
    _, lines = watched
    wait_for(lambda: summaries(lines), what=lambda: f"the first summary: {lines}")
    project("proj/other/other.py", "print('other, edited')\n")
    wait_for(lambda: len(summaries(lines)) == 2, what=lambda: f"the second summary: {lines}")
    assert summaries(lines) == [
        "run 1 Completed in Ts (first run): 3 completed, 0 reused, 0 failed",
        "run 2 Completed in Ts (changed: proj/other/other.py): 1 completed, 2 reused, 0 failed",
    ]
    project("proj/other/other.py", "raise SystemExit(3)\n")
    wait_for(lambda: len(summaries(lines)) == 3, what=lambda: f"the third summary: {lines}")
    assert summaries(lines)[2] == "run 3 Failed in Ts (changed: proj/other/other.py): 0 completed, 2 reused, 1 failed"


def test_an_editors_temporary_file_gone_by_then_is_no_change(ws, project, watched):
    """Issue 17, item 7: whatever its name, a file made and removed within a save is not listed
    (vim's 4913 and .swp, emacs's #file# and .#file, JetBrains' ___jb_tmp___, a backup~, and
    names no list knows); a deleted source file still is."""
    _, lines = watched
    folder = ws.root / "proj/other"
    names = ["4913", ".other.py.swp", "other.py~", "#other.py#", ".#other.py", "other.py___jb_tmp___"]
    names += [".other.py.3f9a2c", "other.py.part", "sedAb12Cd"]
    for name in names:
        (folder / name).write_text("temporary\n")
    for name in names:
        (folder / name).unlink()
    project("proj/other/helper.py", "HELP = 1\n")  # a real change: a new source file
    wait_for(lambda: run_done(ws, 2), what="the rerun")
    assert [line for line in lines if line.startswith("changed:")] == ["changed: proj/other/helper.py"]

    for name in names[-3:]:  # only temporaries: no run at all
        (folder / name).write_text("temporary\n")
        (folder / name).unlink()
    (folder / "helper.py").unlink()  # a file the steps read, deleted: a change
    wait_for(lambda: run_done(ws, 3), what="the rerun after the deletion")
    assert [line for line in lines if line.startswith("changed:")][1:] == ["changed: proj/other/helper.py"]
    assert steps_of(ws, 3)["other"] == ("Reused", 'reused from run 1 (step "other")')  # as it was then
    assert run_count(ws) == 3


def test_an_ignored_file_triggers_nothing(ws, project, watched):
    _, lines = watched
    project("proj/make/debug.log", "noise\n")
    project("proj/make/notes.swp", "editor swap\n")
    project("proj/use/use.py", "import sys\nprint('v', open(sys.argv[1] + '/v.txt').read())\n")  # a real change
    wait_for(lambda: run_done(ws, 2), what="the rerun")
    assert run_count(ws) == 2
    assert steps_of(ws, 2)["use"] == ("Completed", "runs: source changed (use.py)")
    assert [line for line in lines if line.startswith("changed:")] == ["changed: proj/use/use.py"]


def test_an_atomic_rename_over_save_is_seen(ws, project, watched):
    target = ws.root / "proj/make/make.py"
    temporary = ws.root / "proj/make/.make.py.tmp1234"
    temporary.write_text("import sys\nopen(sys.argv[1] + '/v.txt', 'w').write('2')\n")
    os.replace(temporary, target)
    wait_for(lambda: run_done(ws, 2), what="the rerun")
    assert steps_of(ws, 2)["make"] == ("Completed", "runs: source changed (make.py)")
    assert steps_of(ws, 2)["use"] == ("Completed", 'runs: input "data" changed')


def test_a_burst_of_saves_gives_one_rerun(ws, project, watched):
    for i in range(20):  # well within the 200 ms debounce window
        project("proj/other/other.py", f"print('save {i}')\n")
    wait_for(lambda: run_done(ws, 2), what="the rerun")
    project("proj/use/use.py", "print('sentinel')\n")  # a later, separate change
    wait_for(lambda: run_done(ws, 3), what="the sentinel rerun")
    assert run_count(ws) == 3
    assert steps_of(ws, 2)["other"][0] == "Completed" and steps_of(ws, 3)["other"][0] == "Reused"


def test_a_broken_pipeline_file_is_reported_and_the_fixed_one_runs(ws, project, watched):
    _, lines = watched
    project("proj/pipeline.py", PIPELINE + "\nbroken = (\n")
    wait_for(lambda: any("syntax error" in line for line in lines), what="the error to be shown")
    assert run_count(ws) == 1
    project("proj/pipeline.py", PIPELINE)
    wait_for(lambda: run_done(ws, 2), what="the run of the fixed file")
    assert {s for s, _ in steps_of(ws, 2).values()} == {"Reused"}


def test_a_change_during_a_rerun_restarts_only_the_affected_running_step(ws, project):
    gate = ws.root / "gate"
    gate.mkdir()
    wait_script = textwrap.dedent(f"""
        import os, sys, time
        name = os.environ["LOCALPIPE_STEP_NAME"]
        open(os.path.join({str(gate)!r}, name + "." + os.environ["LOCALPIPE_RUN_ID"]), "w").write(str(os.getpid()))
        while not os.path.exists(os.path.join({str(gate)!r}, "open")):
            time.sleep(0.02)
    """)
    project("proj/a/a.py", wait_script)
    project("proj/b/b.py", wait_script)
    project(
        "proj/pipeline.py",
        """
        from localpipe import Pipeline, PythonScriptStep, Workspace
        pipeline = Pipeline(Workspace.from_config(), [
            PythonScriptStep("a.py", name="a", source_directory="a"),
            PythonScriptStep("b.py", name="b", source_directory="b")])
    """,
    )
    lines: list[str] = []
    watcher = Watcher(ws, str(ws.root / "proj/pipeline.py"), "proj", debounce=0.2, echo=lines.append)
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    try:
        # A gate file exists from its open() on; its pid is there once the write is done.
        written = (gate / "a.1", gate / "b.1")
        wait_for(lambda: all(p.exists() and p.read_text() for p in written), what="both steps to run")
        b_pid = int((gate / "b.1").read_text())
        project("proj/a/a.py", wait_script + "\n# edited\n")
        wait_for(
            lambda: (gate / "a.2").exists(),
            what=lambda: f"a to restart in run 2: {lines} {steps_of(ws, 1)} {steps_of(ws, 2)}",
        )
        assert steps_of(ws, 1)["a"] == ("Canceled", "canceled: what it depends on changed while it ran")
        assert steps_of(ws, 1)["b"][0] == "Running" and os.path.exists(f"/proc/{b_pid}")
        assert not (gate / "b.2").exists()  # b was not started again
        (gate / "open").write_text("")
        wait_for(lambda: run_done(ws, 2), what="run 2 to end")
        assert steps_of(ws, 1)["b"][0] == "Completed"
        assert steps_of(ws, 2)["a"] == ("Completed", "runs: source changed (a.py)")
        assert steps_of(ws, 2)["b"] == ("Reused", 'reused from run 1 (step "b")')
    finally:
        (gate / "open").write_text("")
        watcher.stop()
        thread.join(timeout=30)


@pytest.mark.parametrize(
    "name, editor",
    [
        ("train.py", False),
        (".train.py.swp", True),
        ("train.py~", True),
        (".#train.py", True),
        ("4913", True),
        ("data.tmp", True),
    ],
)
def test_editor_files_are_recognised(name, editor):
    assert is_editor_file(f"/x/{name}") is editor


def test_a_file_that_submits_itself_is_watched_with_its_experiment_and_parameters(ws, project):
    """`localpipe submit` runs the pipeline a file submits under the file's experiment and with its
    pipeline_parameters; watch ran it under the folder's name with the defaults (found by the new
    user review)."""
    project("proj/step/step.py", "import sys\nprint('n is', sys.argv[1])\n")
    project(
        "proj/pipeline.py",
        "from azureml.core import Experiment, Workspace\n"
        "from azureml.pipeline.core import Pipeline, PipelineParameter\n"
        "from azureml.pipeline.steps import PythonScriptStep\n"
        "ws = Workspace.from_config()\n"
        "n = PipelineParameter('n', default_value=1)\n"
        "step = PythonScriptStep('step.py', name='step', source_directory='step', arguments=[n])\n"
        "Experiment(ws, 'mine').submit(Pipeline(ws, [step]), pipeline_parameters={'n': 5})\n",
    )
    watcher = Watcher(ws, str(ws.root / "proj/pipeline.py"), None, debounce=0.2, echo=print)
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    try:
        wait_for(lambda: run_done(ws, 1), what="the first run")
    finally:
        watcher.stop()
        thread.join(timeout=30)
    m = tables(ws)
    run = m.PipelineRun.get(m.PipelineRun.id == 1)
    assert run.experiment.name == "mine"
    assert "n is 5" in (ws.state_dir / "runs/1/step/stdout.log").read_text()
