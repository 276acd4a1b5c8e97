"""The scheduler with real subprocesses: failures, arguments, parallelism, inputs, metrics."""

from __future__ import annotations

import json
import os
import signal
import sys

import pytest

from localpipe import CommandStep, Dataset, Pipeline, PipelineData, PythonScriptStep, RunConfiguration
from localpipe.state.store import ObjectStore
from localpipe.status import RunStatus
from tests.conftest import wait_for


def output_file(ws, step, output, name):
    return ObjectStore(ws.state_dir / "objects").path(step["outputs"][output]) / name


def test_a_failing_step_records_exit_code_and_log_tail_and_skips_dependants(ws, project, run_pipeline):
    project(
        "src/bad/bad.py",
        """
        import sys
        print("working on it")
        print("something went wrong: disk on fire", file=sys.stderr)
        sys.exit(3)
    """,
    )
    project("src/next/next.py", "print('never')\n")
    data = PipelineData("data")
    bad = PythonScriptStep("bad.py", name="bad", source_directory=ws.root / "src/bad", arguments=[data])
    after = PythonScriptStep("next.py", name="next", source_directory=ws.root / "src/next", arguments=[data.as_input()])
    later = PythonScriptStep("next.py", name="later", source_directory=ws.root / "src/next")
    later.run_after(after)
    _, status, steps = run_pipeline(Pipeline(ws, [later]))
    assert status is RunStatus.FAILED
    assert steps["bad"]["status"] == "Failed"
    assert steps["bad"]["exit_code"] == 3
    assert steps["bad"]["reason"] == "exit code 3"
    assert "disk on fire" in steps["bad"]["log_tail"]
    assert steps["next"]["status"] == "Canceled"
    assert steps["next"]["reason"] == 'not run: upstream step "bad" failed'
    assert steps["later"]["reason"] == 'not run: upstream step "next" did not run'
    assert not (ws.state_dir / "runs").joinpath("1", "next", "stdout.log").exists()


def test_a_step_killed_by_a_signal_says_which(ws, project, run_pipeline):
    project("src/k/k.py", "import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n")
    _, _, steps = run_pipeline(Pipeline(ws, [PythonScriptStep("k.py", name="k", source_directory=ws.root / "src/k")]))
    assert steps["k"]["signal"] == 9
    assert steps["k"]["reason"] == "killed by signal 9 (SIGKILL)"


def test_shell_metacharacters_reach_the_script_verbatim(ws, project, run_pipeline):
    project(
        "src/echo/echo.py",
        """
        import json, sys, os
        open(os.path.join(sys.argv[1], "argv.json"), "w").write(json.dumps(sys.argv[2:]))
    """,
    )
    (ws.root / "x").mkdir()
    tricky = ["; rm -rf x", "$(touch y)", "`touch z`", "a b  c", "'quoted'", '"double"', "*", "|cat", "&&", "\n"]
    out = PipelineData("out")
    step = PythonScriptStep("echo.py", name="echo", source_directory=ws.root / "src/echo", arguments=[out, *tricky])
    _, _, steps = run_pipeline(Pipeline(ws, [step]))
    assert json.loads(output_file(ws, steps["echo"], "out", "argv.json").read_text()) == tricky
    assert (ws.root / "x").is_dir()
    snapshot = ws.state_dir / "runs" / "1" / "echo" / "snapshot"
    assert not any((folder / name).exists() for folder in (ws.root, snapshot) for name in ("y", "z"))


def test_command_step_runs_an_argv_list_without_a_shell(ws, project, run_pipeline):
    out = PipelineData("out")
    write = "import os, sys; open(sys.argv[1] + '/o.txt', 'w').write(sys.argv[2] + ' ' + os.getcwd())"
    step = CommandStep([sys.executable, "-c", write, out, "$HOME"], name="cmd")
    run_id, _, steps = run_pipeline(Pipeline(ws, [step]))
    assert steps["cmd"]["status"] == "Completed"
    # Without a source directory there is no snapshot: the step runs in its own folder.
    folder = ws.state_dir / "runs" / str(run_id) / "cmd"
    assert output_file(ws, steps["cmd"], "out", "o.txt").read_text() == f"$HOME {folder}"
    assert not (folder / "snapshot").exists()


def test_a_step_gets_the_signals_python_ignores_at_their_defaults(ws, run_pipeline):
    """Python ignores SIGPIPE and SIGXFSZ, and an ignored signal stays ignored across exec: a step
    (here `grep` under `sh`) must get them at their defaults, as from subprocess.Popen, so that
    `producer | head` ends its producer and a file over the size limit stops its writer."""
    out = PipelineData("out")
    step = CommandStep(["sh", "-c", 'grep "^SigIgn" /proc/self/status > "$0/ignored"', out], name="signals")
    _, _, steps = run_pipeline(Pipeline(ws, [step]))
    ignored = int(output_file(ws, steps["signals"], "out", "ignored").read_text().split()[1], 16)
    for number in (signal.SIGPIPE, signal.SIGXFSZ):
        assert not ignored & (1 << (number - 1)), f"{number.name} is ignored in the step: {ignored:#x}"


def test_a_command_name_is_found_on_the_path_and_a_missing_one_named(ws, run_pipeline, monkeypatch):
    # A multi-call program (busybox and the like) tells what to do from argv[0]: it must stay as written.
    tool = ws.root / "bin" / "lp-python"
    tool.parent.mkdir()
    tool.symlink_to(sys.executable)
    monkeypatch.setenv("PATH", f"{tool.parent}{os.pathsep}{os.environ['PATH']}")
    out = PipelineData("out")
    write = "import sys; open(sys.argv[1] + '/argv0', 'w').write(sys.orig_argv[0])"
    _, _, steps = run_pipeline(
        Pipeline(
            ws,
            [
                CommandStep(["lp-python", "-c", write, out], name="hello"),
                CommandStep(["lp-no-such-tool"], name="missing"),
            ],
        ),
        continue_on_step_failure=True,
    )
    assert output_file(ws, steps["hello"], "out", "argv0").read_text() == "lp-python"
    assert steps["missing"]["status"] == "Failed"
    assert steps["missing"]["reason"] == "could not start 'lp-no-such-tool': No such file or directory"


def test_a_file_that_is_neither_a_program_nor_a_runnable_script_cannot_start(ws, run_pipeline):
    garbage = ws.root / "garbage"
    garbage.write_bytes(b"\x00\x01 not a program")
    garbage.chmod(0o755)
    script = ws.root / "script"
    script.write_text("#!/no/such/interpreter\n")
    script.chmod(0o755)
    _, _, steps = run_pipeline(
        Pipeline(ws, [CommandStep([str(garbage)], name="garbage"), CommandStep([str(script)], name="script")]),
        continue_on_step_failure=True,
    )
    assert steps["garbage"]["reason"] == f"could not start {str(garbage)!r}: Exec format error"
    assert (
        steps["script"]["reason"]
        == f"could not start {str(script)!r}: its interpreter '/no/such/interpreter' cannot be run"
    )


def test_command_step_from_a_string_is_split_not_interpreted(ws, project, run_pipeline):
    project("tools/show.py", "import sys\nprint(repr(sys.argv[1:]))\n")
    step = CommandStep(f"{sys.executable} show.py 'a b' \"$(nothing)\"", name="cmd", source_directory=ws.root / "tools")
    run_id, _, steps = run_pipeline(Pipeline(ws, [step]))
    log = (ws.state_dir / "runs" / str(run_id) / "cmd" / "stdout.log").read_text()
    assert log.strip() == "['a b', '$(nothing)']"


def test_independent_steps_run_in_parallel(ws, project, run_pipeline):
    # Each step announces itself and waits for the other: both succeed only when they overlap.
    barrier = ws.root / "barrier"
    barrier.mkdir()
    project(
        "src/p/p.py",
        f"""
        import os, sys, time
        me, other = sys.argv[1], sys.argv[2]
        open(os.path.join({str(barrier)!r}, me), "w").close()
        deadline = time.monotonic() + 30
        while not os.path.exists(os.path.join({str(barrier)!r}, other)):
            if time.monotonic() > deadline:
                sys.exit("the other step never started alongside")
            time.sleep(0.01)
    """,
    )
    left = PythonScriptStep("p.py", name="left", source_directory=ws.root / "src/p", arguments=["L", "R"])
    right = PythonScriptStep("p.py", name="right", source_directory=ws.root / "src/p", arguments=["R", "L"])
    _, status, steps = run_pipeline(Pipeline(ws, [left, right]), slots=2)
    assert status is RunStatus.COMPLETED, steps


def test_run_after_orders_steps_without_data(ws, project, run_pipeline):
    marker = ws.root / "order.txt"
    project("src/o/o.py", f"open({str(marker)!r}, 'a').write(__import__('sys').argv[1])\n")
    first = PythonScriptStep("o.py", name="first", source_directory=ws.root / "src/o", arguments=["1"])
    second = PythonScriptStep("o.py", name="second", source_directory=ws.root / "src/o", arguments=["2"])
    second.run_after(first)
    run_pipeline(Pipeline(ws, [second]), slots=4)
    assert marker.read_text() == "12"


def test_dataset_inputs_download_copies_and_mount_reads_in_place(ws, project, run_pipeline):
    data = project("data/raw/values.txt", "1\n2\n3\n").parent
    project(
        "src/d/d.py",
        """
        import json, os, sys
        from localpipe import Run
        ctx = Run.get_context()
        out = sys.argv[3]
        json.dump({"download": sys.argv[1], "mount": sys.argv[2], "inputs": ctx.input_datasets,
                   "content": open(os.path.join(sys.argv[1], "values.txt")).read()},
                  open(os.path.join(out, "seen.json"), "w"))
    """,
    )
    dataset = Dataset.File.from_files(str(data))
    out = PipelineData("out")
    step = PythonScriptStep(
        "d.py",
        name="d",
        source_directory=ws.root / "src/d",
        arguments=[dataset.as_named_input("copy").as_download(), dataset.as_named_input("direct").as_mount(), out],
    )
    run_id, _, steps = run_pipeline(Pipeline(ws, [step]))
    seen = json.loads(output_file(ws, steps["d"], "out", "seen.json").read_text())
    assert seen["mount"] == str(data)
    assert seen["download"].startswith(str(ws.state_dir / "runs" / str(run_id) / "d"))
    assert seen["content"] == "1\n2\n3\n"
    assert seen["inputs"] == {"copy": seen["download"], "direct": seen["mount"]}

    (data / "values.txt").write_text("1\n2\n3\n4\n")  # new data at the same path
    _, _, steps = run_pipeline(Pipeline(ws, [step]))
    assert steps["d"]["reason"] == 'runs: input "copy" changed, input "direct" changed'


def test_params_reach_the_script_as_aml_parameter_variables(ws, project, run_pipeline):
    project(
        "src/e/e.py", "import os, sys\nopen(sys.argv[1] + '/env.txt', 'w').write(os.environ['AML_PARAMETER_alpha'])\n"
    )
    out = PipelineData("out")
    step = PythonScriptStep(
        "e.py", name="e", source_directory=ws.root / "src/e", arguments=[out], params={"alpha": 0.25}
    )
    _, _, steps = run_pipeline(Pipeline(ws, [step]))
    assert output_file(ws, steps["e"], "out", "env.txt").read_text() == "0.25"


def test_metrics_and_tags_logged_by_a_step_are_recorded(ws, project, run_pipeline):
    from localpipe.state import reader
    from localpipe.state.layout import Layout

    project(
        "src/m/m.py",
        """
        from localpipe import Run
        run = Run.get_context()
        for loss in (0.9, 0.5, 0.2):
            run.log("loss", loss)
        run.log_list("sizes", [1, 2, 3])
        run.log_row("table", epoch=1, acc=0.5)
        run.tag("model", "tiny")
        assert run.parent.id == __import__("os").environ["LOCALPIPE_RUN_ID"]
        assert run.experiment.workspace.root.joinpath(".localpipe").is_dir()
    """,
    )
    run_id, status, steps = run_pipeline(
        Pipeline(ws, [PythonScriptStep("m.py", name="m", source_directory=ws.root / "src/m")])
    )
    assert status is RunStatus.COMPLETED, steps["m"]["log_tail"]
    values = [(r["name"], r["kind"], r["value"]) for r in reader.metrics(Layout.of(ws.state_dir), run_id)]
    assert values == [
        ("loss", "scalar", 0.9),
        ("loss", "scalar", 0.5),
        ("loss", "scalar", 0.2),
        ("sizes", "list", [1, 2, 3]),
        ("table", "row", {"epoch": 1, "acc": 0.5}),
    ]
    assert steps["m"]["tags"] == {"model": "tiny"}


def test_offline_run_prints_what_it_would_log(tmp_path, capsys):
    from localpipe import Run

    run = Run.get_context()
    run.log("accuracy", 0.5)
    assert "accuracy" in capsys.readouterr().out
    assert run.input_datasets == {}


def test_peak_memory_and_duration_are_recorded(ws, project, run_pipeline):
    project("src/mem/mem.py", "block = bytearray(64 * 1024 * 1024)\nblock[::4096] = b'x' * len(block[::4096])\n")
    _, _, steps = run_pipeline(
        Pipeline(ws, [PythonScriptStep("mem.py", name="mem", source_directory=ws.root / "src/mem")])
    )
    assert steps["mem"]["peak_memory"] > 64 * 1024 * 1024
    assert steps["mem"]["ended_at"] >= steps["mem"]["started_at"]


def test_timeout_fails_the_step_with_the_reason(ws, project, run_pipeline):
    project("src/t/t.py", "import time\ntime.sleep(60)\n")
    config = RunConfiguration()
    config.timeout_seconds = 0.5
    _, _, steps = run_pipeline(
        Pipeline(ws, [PythonScriptStep("t.py", name="t", source_directory=ws.root / "src/t", runconfig=config)])
    )
    assert steps["t"]["status"] == "Failed"
    assert steps["t"]["reason"] == "timed out after 0.5s"


def test_retries_are_recorded(ws, project, run_pipeline):
    counter = ws.root / "attempts"
    project(
        "src/r/r.py",
        f"""
        import sys
        path = {str(counter)!r}
        n = int(open(path).read()) + 1 if __import__("os").path.exists(path) else 1
        open(path, "w").write(str(n))
        sys.exit(0 if n >= 3 else 1)
    """,
    )
    config = RunConfiguration()
    config.max_retries = 2
    _, status, steps = run_pipeline(
        Pipeline(ws, [PythonScriptStep("r.py", name="r", source_directory=ws.root / "src/r", runconfig=config)])
    )
    assert status is RunStatus.COMPLETED
    assert steps["r"]["attempt"] == 3
    assert counter.read_text() == "3"


def test_a_retry_starts_in_an_empty_folder_with_the_earlier_logs(ws, run_pipeline):
    # A step without a source directory runs in its step folder: what an attempt left there must go.
    script = "import os; print(sorted(os.listdir('.'))); open('scratch.txt', 'w').close(); raise SystemExit(1)"
    config = RunConfiguration()
    config.max_retries = 1
    run_id, _, steps = run_pipeline(
        Pipeline(ws, [CommandStep([sys.executable, "-c", script], name="r", runconfig=config)])
    )
    log = (ws.state_dir / "runs" / str(run_id) / "r" / "stdout.log").read_text().splitlines()
    assert steps["r"]["status"] == "Failed" and steps["r"]["attempt"] == 2
    # A log file is made when the step first writes to it: the second attempt finds the first's, and no scratch.txt.
    assert log == ["[]", "['stdout.log']"]


def test_continue_on_step_failure_runs_the_independent_branch(ws, project, run_pipeline):
    project("src/f/f.py", "raise SystemExit(1)\n")
    project("src/ok/ok.py", "print('fine')\n")
    data = PipelineData("data")
    fail = PythonScriptStep("f.py", name="fail", source_directory=ws.root / "src/f", arguments=[data])
    down = PythonScriptStep("ok.py", name="down", source_directory=ws.root / "src/ok", arguments=[data.as_input()])
    alone = PythonScriptStep("ok.py", name="alone", source_directory=ws.root / "src/ok", arguments=["x"])
    alone.run_after(PythonScriptStep("ok.py", name="before", source_directory=ws.root / "src/ok", arguments=["y"]))
    _, status, steps = run_pipeline(Pipeline(ws, [down, alone]), continue_on_step_failure=True, slots=1)
    assert status is RunStatus.FAILED
    assert {n: s["status"] for n, s in steps.items()} == {
        "fail": "Failed",
        "down": "Canceled",
        "alone": "Completed",
        "before": "Completed",
    }


def test_secret_env_reaches_the_step_but_never_history_or_logs(ws, project, run_pipeline, monkeypatch):
    import sqlite3

    monkeypatch.setenv("API_TOKEN", "s3cr3t-value-42")
    project(
        "src/s/s.py",
        """
        import os, sys
        token = os.environ["API_TOKEN"]
        print("token is", token)
        print("again:", token, file=sys.stderr)
        open(sys.argv[1] + "/len.txt", "w").write(str(len(token)))
    """,
    )
    out = PipelineData("out")
    step = PythonScriptStep(
        "s.py", name="s", source_directory=ws.root / "src/s", arguments=[out], secret_env=["API_TOKEN"]
    )
    run_id, status, steps = run_pipeline(Pipeline(ws, [step]))
    assert status is RunStatus.COMPLETED
    assert output_file(ws, steps["s"], "out", "len.txt").read_text() == "15"
    folder = ws.state_dir / "runs" / str(run_id) / "s"
    assert (folder / "stdout.log").read_text() == "token is ***\n"
    assert (folder / "stderr.log").read_text() == "again: ***\n"
    dump = "\n".join(sqlite3.connect(ws.state_dir / "history.db").iterdump())
    assert "s3cr3t-value-42" not in dump and "API_TOKEN" in dump


def test_a_missing_secret_fails_validation(ws, project):
    from localpipe.errors import PipelineValidationError
    from localpipe.plan.graph import plan_pipeline

    project("src/s/s.py", "print(1)\n")
    step = PythonScriptStep("s.py", name="s", source_directory=ws.root / "src/s", secret_env=["NOT_SET_ANYWHERE"])
    with pytest.raises(PipelineValidationError, match='secret_env "NOT_SET_ANYWHERE" is not set'):
        plan_pipeline(Pipeline(ws, [step]))


def test_a_step_whose_dataset_went_away_during_the_run_fails_saying_so(ws, project, run_pipeline, history):
    # The next step's decision runs in the completion's transaction: its dataset, deleted by the
    # step before it, fails that step with the reason (the scheduler goes on and ends the run), and
    # the step that completed keeps its status and its cache entry.
    data = ws.root / "data"
    data.mkdir()
    (data / "f.txt").write_text("x")
    project("src/a/a.py", f"import shutil; shutil.rmtree({str(data)!r})\n")
    project("src/b/b.py", "print('b')\n")
    first = PythonScriptStep("a.py", name="a", source_directory=ws.root / "src/a")
    then = PythonScriptStep(
        "b.py",
        name="b",
        source_directory=ws.root / "src/b",
        inputs=[Dataset.File.from_files(str(data)).as_named_input("d")],
    )
    then.run_after(first)
    _, status, steps = run_pipeline(Pipeline(ws, [first, then]))
    assert status == "Failed"
    assert steps["a"]["status"] == "Completed"
    assert steps["b"]["status"] == "Failed" and "an input could not be read" in steps["b"]["reason"], steps["b"]
    assert str(data) in steps["b"]["reason"]
    assert history.cache.entry(steps["a"]["cache_key"]) is not None


def test_a_scheduler_that_fails_records_why_and_ends_its_steps(ws, project, history, run_pipeline, monkeypatch):
    """A defect raised in the scheduler's loop: the run and its running step are recorded Failed
    with the error (not left for the next command to call "scheduler exited"), the step's process
    ended, and the error raised on."""
    import psutil

    from localpipe.engine.scheduler import Scheduler

    pid_file = ws.root / "pid"
    project("src/s/s.py", f"import os, time\nopen({str(pid_file)!r}, 'w').write(str(os.getpid()))\ntime.sleep(60)\n")

    def fail_once_the_step_runs(self):
        if pid_file.exists() and pid_file.read_text():
            raise RuntimeError("boom")

    monkeypatch.setattr(Scheduler, "_enforce_timeouts", fail_once_the_step_runs)
    with pytest.raises(RuntimeError, match="boom"):
        run_pipeline(Pipeline(ws, [PythonScriptStep("s.py", name="s", source_directory=ws.root / "src/s")]))
    run = history.runs.get(1)
    assert (run["status"], run["error"]) == ("Failed", "the scheduler failed: RuntimeError: boom")
    [row] = history.runs.steps(1)
    assert (row["status"], row["reason"]) == ("Failed", "the scheduler failed: RuntimeError: boom")
    wait_for(lambda: not psutil.pid_exists(int(pid_file.read_text())), timeout=10, what="the step's process to end")
