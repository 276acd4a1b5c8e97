"""The CLI over a real workspace: submit, status, runs, show, logs, metrics, --json, --detach."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

PIPELINE = """
from localpipe import Pipeline, PipelineData, PipelineParameter, PythonScriptStep, Workspace

ws = Workspace.from_config()
data = PipelineData("data")
scale = PipelineParameter("scale", default_value=2)
make = PythonScriptStep("make.py", name="make", source_directory="make", arguments=[data, scale])
use = PythonScriptStep("use.py", name="use", source_directory="use", arguments=[data.as_input()])
pipeline = Pipeline(ws, [use])
"""


def make_project(project):
    project(
        "proj/make/make.py",
        """
        import sys
        from localpipe import Run
        open(sys.argv[1] + "/n.txt", "w").write(str(21 * int(sys.argv[2])))
        Run.get_context().log("scale", int(sys.argv[2]))
    """,
    )
    project("proj/use/use.py", "import sys\nprint('value', open(sys.argv[1] + '/n.txt').read())\n")
    return project("proj/pipeline.py", PIPELINE)


def test_submit_prints_each_step_change_with_its_reason_and_a_summary(invoke, project):
    pipeline = make_project(project)
    result = invoke("submit", pipeline)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "run 1 of experiment proj: 2 steps"
    assert any("Queued" in line and "make" in line and "runs: no earlier run" in line for line in lines)
    assert lines[-1].startswith("run 1 Completed in ") and lines[-1].endswith(": 2 completed")

    result = invoke("submit", pipeline)
    assert 'reused from run 1 (step "make")' in result.output
    assert result.output.splitlines()[-1].endswith(": 2 reused")


def head_1(project, ws, command: str) -> tuple[str, int, str]:
    """`localpipe COMMAND p/pipeline.py | head -1` on a one-step pipeline whose step sleeps a minute:
    the first line, then stdout closed as `head` exits; the exit code and what went to stderr."""
    project("p/s.py", "import time\ntime.sleep(60)\n")
    project(
        "p/pipeline.py",
        """
        from localpipe import Pipeline, PythonScriptStep, Workspace
        pipeline = Pipeline(Workspace.from_config(), [PythonScriptStep("s.py", name="s", source_directory=".")])
    """,
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "localpipe", command, "p/pipeline.py"],
        cwd=ws.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    first = proc.stdout.readline()
    proc.stdout.close()
    try:
        code = proc.wait(timeout=60)
    finally:
        proc.kill()
    return first, code, proc.stderr.read()


def test_a_watch_whose_output_is_closed_ends_and_cancels_its_run(project, ws, history):
    """`localpipe watch p.py | head -1`: the watcher ends at its next line (it went on, and its own
    next line was a traceback), canceling the run it had started; nothing on stderr."""
    assert head_1(project, ws, "watch") == ("watching p/pipeline.py (Ctrl-C to stop)\n", 0, "")
    assert [(s["name"], s["status"]) for s in history.runs.steps(1)] == [("s", "Canceled")]


def test_submit_plans_without_the_cyclic_collector_and_runs_with_it(invoke, project, monkeypatch):
    """What planning makes is kept or freed by reference counting: the collector is off until the
    scheduler starts, on while steps run, and as it was once the command ends, whatever the end."""
    import gc

    from localpipe.engine import scheduler, submit

    seen = {}
    plan, loop = submit.plan, scheduler.Scheduler._loop
    monkeypatch.setattr(submit, "plan", lambda *a, **k: (seen.setdefault("planning", gc.isenabled()), plan(*a, **k))[1])
    monkeypatch.setattr(
        scheduler.Scheduler, "_loop", lambda self: (seen.setdefault("running", gc.isenabled()), loop(self))[1]
    )
    pipeline = make_project(project)
    assert invoke("submit", pipeline).exit_code == 0
    assert seen == {"planning": False, "running": True} and gc.isenabled()
    project("proj/bad.py", "raise ValueError('no pipeline here')\n")
    assert invoke("submit", "proj/bad.py").exit_code == 2 and gc.isenabled()


def test_a_submission_whose_output_is_closed_cancels_its_run_and_records_why(project, ws, history):
    """`localpipe submit p.py | head -1`: at its next line the run ends Canceled, saying so (it was
    left Running, its steps' work thrown away), with exit code 130 and nothing on stderr."""
    first, code, stderr = head_1(project, ws, "submit")
    assert first.startswith("run 1 of experiment p") and (code, stderr) == (130, "")
    run = history.runs.get(1)
    assert (run["status"], run["error"]) == ("Canceled", "stdout was closed (its reader, `head` or a pager, exited)")
    assert [(s["name"], s["status"]) for s in history.runs.steps(1)] == [("s", "Canceled")]


def test_every_command_whose_stdout_reader_is_gone_exits_0_silently(localpipe, project, ws):
    """`localpipe show 1 | head -1` and the like: the reader had what it wanted (click exited 1, without
    a word, for every command that printed past it). The pipe's reader is closed before the command
    writes at all, so that every line it writes finds it gone."""
    pipeline = make_project(project)
    localpipe("submit", pipeline, check=True)
    commands = [["show", "1"], ["runs"], ["logs", "1"], ["metrics", "1"], ["outputs", "1"], ["status", pipeline]]
    commands += [["du"], ["resources"], ["gc", "--dry-run"], ["fsck"], ["envs"], ["models"], ["datasets"]]
    commands += [
        ["datastores"],
        ["compute"],
        ["modules"],
        ["drafts"],
        ["published"],
        ["endpoints"],
        ["schedule", "list"],
    ]
    for command in commands:
        reader, writer = os.pipe()
        os.close(reader)
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "localpipe", *command], cwd=ws.root, stdout=writer, stderr=subprocess.PIPE,
                text=True, timeout=60,
            )  # fmt: skip
        finally:
            os.close(writer)
        assert (command, proc.returncode, proc.stderr) == (command, 0, "")


def test_logs_of_a_reused_step_are_those_of_the_run_that_produced_it(localpipe, project):
    """Issue 17, item 3: a run whose steps were reused shows the producing run's logs, saying so."""
    pipeline = make_project(project)
    localpipe("submit", pipeline, check=True)
    assert "2 reused" in localpipe("submit", pipeline, check=True).stdout
    run = localpipe("logs", "2", check=True).stdout
    assert "==> use stdout (reused from run 1) <==\nvalue 42\n" in run
    assert localpipe("logs", "2", "use", check=True).stdout == "==> use stdout (reused from run 1) <==\nvalue 42\n"
    followed = localpipe("logs", "2", "use", "-f", check=True).stdout
    assert followed == "[use (reused from run 1)] value 42\n"
    localpipe("gc", "--keep-last", "1", check=True)  # keeps run 1: run 2 reused its steps
    assert localpipe("logs", "2", "use", check=True).stdout == "==> use stdout (reused from run 1) <==\nvalue 42\n"
    localpipe("submit", "-e", "other", pipeline, check=True)  # run 3, reused from run 1 too
    forget = "from localpipe import Experiment, Workspace; ws = Workspace.from_config(); "
    forget += "Experiment.delete(ws, Experiment(ws, 'proj').id)"  # forgets runs 1 and 2, whose logs these were
    subprocess.run([sys.executable, "-c", forget], cwd=pipeline.parent, check=True)
    after = localpipe("logs", "3", "use")
    assert after.returncode == 0 and after.stderr == "", after.stderr
    assert after.stdout == "==> use (reused from a run since forgotten): its logs went with it <==\n"


def test_a_step_that_failed_or_was_retried_still_says_why_it_ran(localpipe, project, ws):
    """A step's reason is that of its latest change: once it says how the step ended (failed, or
    retried after a failure) the cache's decision to run it is kept beside it, in history.db, in
    `show` and on the studio's step page."""
    from starlette.testclient import TestClient

    from localpipe.studio.app import create_app

    pipeline = make_project(project)
    localpipe("submit", pipeline, check=True)
    project("proj/use/use.py", "import sys\nsys.exit('the model is missing')\n")
    assert localpipe("submit", pipeline).returncode != 0
    shown = localpipe("show", "2", check=True).stdout
    use = shown[shown.index("\nuse: ") :]
    assert use.startswith("\nuse: Failed  exit code 1"), shown
    assert "\n  ran because: runs: source changed (use.py)\n" in use, shown
    made = shown[shown.index("\nmake: ") : shown.index("\nuse: ")]
    assert made.startswith('\nmake: Reused  reused from run 1 (step "make")') and "ran because" not in made, shown

    marker = ws.root / "proj" / "use" / "failed-once"  # fails the first attempt, not the retry
    project(
        "proj/use/use.py",
        f"import os, sys\nif not os.path.exists({str(marker)!r}):\n    open({str(marker)!r}, 'w').close()\n"
        "    sys.exit('not yet')\nprint('value', open(sys.argv[1] + '/n.txt').read())\n",
    )
    retried = PIPELINE.replace(
        'source_directory="use",', 'source_directory="use", runconfig=RunConfiguration(max_retries=1),'
    )
    project("proj/pipeline.py", "from localpipe import RunConfiguration\n" + retried)
    localpipe("submit", pipeline, check=True)
    shown = localpipe("show", "3", check=True).stdout
    use = shown[shown.index("\nuse: ") :]
    assert use.startswith("\nuse: Completed  retry 1 of 1 after: exit code 1"), shown
    assert "\n  ran because: runs: source changed (use.py)\n" in use, shown
    with TestClient(create_app(ws.root / ".localpipe", "token"), base_url="http://127.0.0.1:8765") as studio:
        studio.cookies.set("localpipe_token_8765", "token")
        page = studio.get("/runs/3/steps/use").text
    assert "<th>ran because</th><td>runs: source changed (use.py)</td>" in page


def test_a_failed_step_shows_the_end_of_its_stderr_and_how_to_see_all_of_it(localpipe, project):
    """Issue 17, item 2: under the Failed line, the last lines of the step's stderr (a long line cut)
    and the command that prints all of it."""
    project(
        "proj/fail/fail.py",
        """
        import sys
        for n in range(12):
            print(f"line {n}", file=sys.stderr)
        print("x" * 500, file=sys.stderr)
        raise SystemExit("the data has no column 'price'")
    """,
    )
    pipeline = project(
        "proj/pipeline.py",
        """
        from localpipe import Pipeline, PythonScriptStep, Workspace
        step = PythonScriptStep("fail.py", name="fail", source_directory="fail")
        pipeline = Pipeline(Workspace.from_config(), [step])
    """,
    )
    proc = localpipe("submit", pipeline)
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    at = next(i for i, line in enumerate(lines) if "Failed" in line and "fail" in line)
    assert lines[at + 1 : at + 6] == [
        "  | line 9",
        "  | line 10",
        "  | line 11",
        "  | " + "x" * 199 + "…",
        "  | the data has no column 'price'",
    ]
    assert lines[at + 6] == "  all of its stderr: localpipe logs 1 fail"

    # On a terminal (the live view), the same lines, under "fail failed: exit code 1".
    import pty

    main, child = pty.openpty()
    done = subprocess.run(
        [sys.executable, "-m", "localpipe", "submit", str(pipeline)],
        stdin=child, stdout=child, stderr=child, cwd=pipeline.parent, timeout=120, env={**os.environ, "COLUMNS": "300"},
    )  # fmt: skip
    os.close(child)
    seen = b""
    while True:
        try:
            chunk = os.read(main, 65536)
        except OSError:  # the terminal's other end is closed: all is read
            break
        if not chunk:
            break
        seen += chunk
    os.close(main)
    text = seen.decode(errors="replace")
    assert done.returncode == 1
    assert "| the data has no column 'price'" in text and "all of its stderr: localpipe logs 2 fail" in text


def test_status_says_what_would_run_without_running(invoke, project, ws):
    pipeline = make_project(project)
    result = invoke("status", pipeline)
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        "make  run     runs: no earlier run",
        'use   maybe   depends on step "make", which runs: reused if its output is unchanged',
    ]
    assert json.loads(invoke("runs", "--json").output) == []
    invoke("submit", pipeline)
    rows = json.loads(invoke("status", pipeline, "--param", "scale=3", "--json").output)
    assert rows[0] == {"step": "make", "action": "run", "reason": 'runs: parameter "scale" changed'}
    rows = json.loads(invoke("status", pipeline, "--json").output)
    assert [r["action"] for r in rows] == ["reuse", "reuse"]


def test_init_inside_a_workspace_says_the_new_one_shadows_it(localpipe, ws):
    """`localpipe init` in a folder of a workspace makes a second one there, as `git init` would:
    it says so, since from then on commands run there no longer see the outer workspace's runs."""
    (ws.root / "sub").mkdir()
    proc = localpipe("init", "sub", check=True)
    assert proc.stdout == f"workspace ready at {ws.root / 'sub'}\n"
    assert proc.stderr == (
        f"note: this is inside the workspace at {ws.root}; commands run in {ws.root / 'sub'} now use the new one,"
        f" whose runs are separate (remove {ws.root / 'sub' / '.localpipe'} to undo)\n"
    )
    assert (ws.root / "sub" / ".localpipe" / "history.db").is_file()
    again = localpipe("init", ".", check=True)  # the outer workspace itself: nothing above it
    assert again.stderr == ""


def test_runs_show_logs_and_metrics(invoke, project):
    pipeline = make_project(project)
    invoke("submit", pipeline, "--param", "scale=3")
    runs = json.loads(invoke("runs", "--json").output)
    assert runs[0]["id"] == 1 and runs[0]["status"] == "Completed" and runs[0]["steps"] == {"Completed": 2}
    assert "Completed" in invoke("runs").output

    shown = json.loads(invoke("show", "1", "--json").output)
    assert shown["parameters"] == {"scale": 3}
    assert [s["name"] for s in shown["steps"]] == ["make", "use"]
    assert shown["steps"][0]["exit_code"] == 0 and shown["steps"][0]["outputs"]["data"]
    text = invoke("show", "1").output
    assert "make: Completed  runs: no earlier run" in text and "peak memory" in text

    assert invoke("logs", "1", "use").output == "value 63\n"
    assert "==> use stdout <==" in invoke("logs", "1").output
    metrics = json.loads(invoke("metrics", "1", "--json").output)
    assert [(m["step"], m["name"], m["value"]) for m in metrics] == [("make", "scale", 3)]
    assert "scale" in invoke("metrics", "1", "--step", "make").output


def test_a_failed_step_exits_1_and_show_prints_its_log_tail(invoke, project):
    project("proj/bad/bad.py", "import sys\nprint('cannot go on', file=sys.stderr)\nsys.exit(4)\n")
    pipeline = project(
        "proj/pipeline.py",
        """
        from localpipe import Pipeline, PythonScriptStep, Workspace
        pipeline = Pipeline(Workspace.from_config(), [PythonScriptStep("bad.py", name="bad", source_directory="bad")])
    """,
    )
    result = invoke("submit", pipeline)
    assert result.exit_code == 1
    assert "Failed      bad  exit code 4" in result.output
    shown = invoke("show", "1").output
    assert "exit code 4" in shown and "cannot go on" in shown


def test_detach_returns_the_run_id_and_the_run_goes_on(localpipe, project, ws):
    pipeline = make_project(project)
    proc = localpipe("submit", pipeline, "--detach", check=True)
    run_id = int(proc.stdout.strip())  # alone on stdout, for scripts; how to follow it on stderr
    assert proc.stderr == f"run {run_id} goes on in the background: `localpipe logs {run_id} -f` follows it, " + (
        f"`localpipe cancel {run_id}` stops it\n"
    )
    from localpipe.client.experiment import Experiment
    from localpipe.client.runs import PipelineRun

    assert PipelineRun(Experiment(ws, "proj"), run_id).wait_for_completion(timeout_seconds=60) == "Completed"


def test_show_records_the_git_commit_branch_and_dirtiness_of_the_sources(invoke, project, ws):
    import subprocess

    pipeline = make_project(project)
    proj = ws.root / "proj"

    def git(*args):
        subprocess.run(["git", "-C", str(proj), *args], check=True, capture_output=True)

    git("init", "-q", "-b", "main")
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "add", ".")
    git("-c", "user.email=t@example.com", "-c", "user.name=t", "commit", "-q", "-m", "first")
    commit = subprocess.run(
        ["git", "-C", str(proj), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    invoke("submit", pipeline)
    details = json.loads(invoke("show", "1", "--json").output)
    assert details["git"] == {
        str(proj): {
            "commit": commit,
            "branch": "main",
            "dirty": False,
            "folders": [str(proj / "make"), str(proj / "use")],
        }
    }
    project("proj/use/use.py", "print('edited')\n")
    invoke("submit", pipeline)
    assert f"git: {proj} main@{commit[:12]} (dirty: uncommitted changes)" in invoke("show", "2").output


def test_logs_follow_prints_a_last_line_without_its_line_end(ws, project, localpipe):
    project("src/p.py", "import sys\nprint('first')\nsys.stdout.write('partial-no-newline')\n")
    project(
        "p.py",
        "from localpipe import Pipeline, PythonScriptStep, Workspace\n"
        "pipeline = Pipeline(Workspace.from_config(), [PythonScriptStep('p.py', name='p', source_directory='src')])\n",
    )
    localpipe("submit", "p.py", check=True)
    assert localpipe("logs", "1", "-f", check=True).stdout == "[p] first\n[p] partial-no-newline\n"
    assert localpipe("logs", "1", check=True).stdout == "first\npartial-no-newline\n"


def test_logs_put_each_header_on_a_line_of_its_own_and_keep_carriage_returns(ws, project, localpipe, invoke):
    project("src/p.py", "import sys\nsys.stdout.write('10%\\r50%\\r100%')\nsys.stderr.write('warned')\n")
    project(
        "p.py",
        "from localpipe import Pipeline, PythonScriptStep, Workspace\n"
        "pipeline = Pipeline(Workspace.from_config(), [PythonScriptStep('p.py', name='p', source_directory='src')])\n",
    )
    localpipe("submit", "p.py", check=True)
    # In-process: a process's text output would have its "\r" read as line ends.
    assert invoke("logs", "1").output == "10%\r50%\r100%\n==> p stderr <==\nwarned\n"


def test_a_file_that_submits_itself_is_run_once_under_its_experiment(localpipe, project, ws):
    """Azure's samples end with `Experiment(ws, name).submit(pipeline)` at the top level: the CLI
    stops the file there and runs (or previews) that pipeline under that experiment, with the
    parameters and options the file passed; the file's code after the call does not run."""
    make_project(project)
    project(
        "proj/self.py",
        PIPELINE.replace("from localpipe import", "from localpipe import Experiment,")
        + 'run = Experiment(ws, "Mine").submit(pipeline, pipeline_parameters={"scale": 5}, '
        "continue_on_step_failure=True)\n"
        'open("after-submit.txt", "w").write("ran")\n',
    )
    status = localpipe("status", "proj/self.py", "--json", check=True)
    assert [row["action"] for row in json.loads(status.stdout)] == ["run", "maybe"]
    done = localpipe("submit", "proj/self.py", check=True)
    assert done.stdout.splitlines()[:2] == [
        'proj/self.py submits its pipeline itself (experiment "Mine"): running that submission here; '
        "the file's code after it does not run",
        "run 1 of experiment Mine: 2 steps",
    ]
    (run,) = json.loads(localpipe("runs", "--json", check=True).stdout)
    assert (run["experiment"], run["status"]) == ("Mine", "Completed")
    details = json.loads(localpipe("show", "1", "--json", check=True).stdout)
    assert details["parameters"] == {"scale": 5}
    assert not (ws.root / "proj" / "after-submit.txt").exists()
    # a submission from a thread the file starts is taken too (status must never start a run)
    project(
        "proj/thread.py",
        PIPELINE.replace("from localpipe import", "import threading\nfrom localpipe import Experiment,")
        + 'worker = threading.Thread(target=lambda: Experiment(ws, "Threaded").submit(pipeline))\n'
        "worker.start()\nworker.join()\n",
    )
    localpipe("status", "proj/thread.py", check=True)
    assert len(json.loads(localpipe("runs", "--json", check=True).stdout)) == 1
    # --param and --experiment on the command line win
    localpipe("submit", "proj/self.py", "--param", "scale=6", "-e", "Other", check=True)
    (latest, _) = json.loads(localpipe("runs", "--json", check=True).stdout)
    assert latest["experiment"] == "Other"
    assert json.loads(localpipe("show", latest["id"], "--json", check=True).stdout)["parameters"] == {"scale": 6}
    # --detach prints the run id alone on stdout, the note with the rest on stderr: RUN=$(... --detach)
    # took the note too (found by the new user review)
    detached = localpipe("submit", "proj/self.py", "--detach", check=True)
    run_id = int(detached.stdout)
    assert "submits its pipeline itself" in detached.stderr
    from localpipe.client.experiment import Experiment
    from localpipe.client.runs import PipelineRun

    assert PipelineRun(Experiment(ws, "Mine"), run_id).wait_for_completion(timeout_seconds=60) == "Completed"


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_shell_completion_as_the_readme_sets_it_up(shell, tmp_path):
    """Issue 17, item 9: the README's line makes a completion script; asked as the shell asks, it
    completes commands and options."""

    def ask(**env):
        return subprocess.run(
            [sys.executable, "-m", "localpipe"], env={**os.environ, **env}, capture_output=True, text=True,
            cwd=tmp_path, timeout=60, check=True,
        ).stdout  # fmt: skip

    assert "_localpipe_completion" in ask(_LOCALPIPE_COMPLETE=f"{shell}_source")
    if shell == "bash":
        assert "plain,submit" in ask(_LOCALPIPE_COMPLETE="bash_complete", COMP_WORDS="localpipe su", COMP_CWORD="1")
        options = ask(_LOCALPIPE_COMPLETE="bash_complete", COMP_WORDS="localpipe logs 1 --", COMP_CWORD="3")
        assert "plain,--follow" in options.splitlines()


def test_show_says_why_a_run_did_not_complete_without_an_error_line(invoke, project):
    """Issue 17, item 7: the reason a run failed or was canceled is not an error of `show` itself."""
    project("proj/fail/fail.py", "raise SystemExit(3)\n")
    pipeline = project(
        "proj/pipeline.py",
        """
        from localpipe import Pipeline, PythonScriptStep, Workspace
        step = PythonScriptStep("fail.py", name="fail", source_directory="fail")
        pipeline = Pipeline(Workspace.from_config(), [step])
    """,
    )
    assert invoke("submit", pipeline).exit_code == 1
    shown = invoke("show", "1")
    assert shown.exit_code == 0
    assert not any(line.startswith("error:") for line in shown.output.splitlines())
    assert any(line.startswith("why it failed: ") for line in shown.output.splitlines()), shown.output


def test_a_pipeline_finds_its_own_workspace_from_any_folder(tmp_path, project, ws):
    """Issue 17, item 1: `localpipe submit ../play/pipeline.py` from another folder, and `python
    play/pipeline.py` from the parent, use play's workspace (and reuse its steps), as git finds .git."""
    pipeline = make_project(project)  # ws.root/proj/pipeline.py, in the workspace ws
    scratch = tmp_path / "scratch2"
    scratch.mkdir()

    def submit(cwd):
        return subprocess.run(
            [sys.executable, "-m", "localpipe", "submit", os.path.relpath(pipeline, cwd)],
            cwd=cwd, capture_output=True, text=True, timeout=120,
        )  # fmt: skip

    first = submit(scratch)
    assert first.returncode == 0 and "created workspace" not in first.stderr, first.stderr
    assert not (scratch / ".localpipe").exists()
    again = submit(tmp_path)
    assert again.returncode == 0 and again.stdout.splitlines()[-1].endswith(": 2 reused"), again.stdout
    script = project(
        "proj/by_hand.py",
        """
        from localpipe import Experiment, Workspace
        ws = Workspace.from_config()
        print("workspace", ws.root)
        """,
    )
    by_hand = subprocess.run(
        [sys.executable, str(script.relative_to(tmp_path))], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert by_hand.stdout == f"workspace {ws.root}\n", by_hand.stderr


def test_a_command_that_creates_a_workspace_says_where_and_why(tmp_path, localpipe, project):
    folder = tmp_path / "fresh"
    folder.mkdir()
    pipeline = make_project(project)
    elsewhere = tmp_path / "elsewhere"
    shutil.copytree(pipeline.parent, elsewhere)
    proc = localpipe("submit", elsewhere / "pipeline.py", cwd=folder)
    assert proc.returncode == 0, proc.stderr
    assert (
        f"created workspace {folder} (no .localpipe/ in {elsewhere} or the current folder or above it)" in proc.stderr
    )
    # the file in the current folder: that folder is named once (it was named twice, as "X or the
    # current folder"; found by the new user review)
    here = tmp_path / "here"
    shutil.copytree(pipeline.parent, here)
    proc = localpipe("submit", "pipeline.py", cwd=here)
    assert proc.returncode == 0, proc.stderr
    assert f"created workspace {here} (no .localpipe/ in the current folder or above it)" in proc.stderr


def test_a_warning_of_localpipes_is_one_line_and_one_of_the_users_code_keeps_its_place(localpipe, project, ws):
    project("src/a.py", "print(1)\n")
    project(
        "p.yml",
        "pipeline:\n  steps:\n    first:\n      type: PythonScriptStep\n      script_name: a.py\n"
        "      source_directory: src\n      allow_resue: false\n",
    )
    project(
        "p.py",
        "import warnings\nfrom localpipe import Pipeline, PythonScriptStep, Workspace\n"
        'warnings.warn("the user\'s own warning")\n'
        'pipeline = Pipeline(Workspace.from_config(), [PythonScriptStep("a.py", source_directory="src")])\n',
    )

    ours = localpipe("submit", "p.yml", check=True).stderr.splitlines()
    theirs = localpipe("submit", "p.py", check=True).stderr.splitlines()

    assert [line for line in ours if "allow_resue" in line] == [
        f"warning: {ws.root / 'p.yml'}: step first: key allow_resue is not read: did you mean allow_reuse?"
    ], ours
    assert f"{ws.root / 'p.py'}:3: UserWarning: the user's own warning" in theirs, theirs
