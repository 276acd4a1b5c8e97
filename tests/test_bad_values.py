"""Reproductions of issue 12: bad values that escape validation, and the watch item.

Each bad value must be refused as docs/errors.md says: exit code 2, exactly one `error:` line
on stderr naming the thing at fault, and nothing recorded (no pipeline_run row, no folder under
.localpipe/runs/). The watch item: a pipeline file that loops for ever while loading must not
hang `localpipe watch` (LOCALPIPE_LOAD_TIMEOUT seconds, then an `error:` line).
"""

from __future__ import annotations

import re
import signal
import subprocess
import time

import pytest

from tests.conftest import wait_for
from tests.defect_helpers import assert_nothing_recorded, popen_localpipe, query, refused, run_status, step_rows

HEADER = """
import os
from localpipe import CommandStep, Pipeline, PipelineParameter, PythonScriptStep, RunConfiguration, Workspace
ws = Workspace.from_config()
"""

FOOTER = """
pipeline = Pipeline(ws, steps)
"""

LONG_NAME = "step" + "x" * 296  # 300 characters


def step(**options) -> str:
    args = ", ".join(f"{key}={value}" for key, value in {"name": '"train"', **options}.items())
    return f'steps = [PythonScriptStep("a.py", source_directory="src", {args})]'


# id -> (the body of the pipeline file, what the error line must hold: a string, or a check)
CASES = {
    "parameter-default-object": (
        'p = PipelineParameter("weird", default_value=object())\n' + step(arguments='["--p", p]'),
        "weird",
    ),
    "version-object": (step(version="object()"), "version"),
    "max-retries-not-a-number": (step(runconfig='RunConfiguration(max_retries="lots")'), "max_retries"),
    "timeout-not-a-number": (step(runconfig='RunConfiguration(timeout_seconds="soon")'), "timeout_seconds"),
    "timeout-negative": (step(runconfig="RunConfiguration(timeout_seconds=-5)"), "timeout_seconds"),
    "nul-in-an-argument": (step(arguments='["--x", "a\\x00b"]'), '"train"'),
    "nul-in-a-step-name": (
        step(name='"a\\x00b"'),
        lambda line: "\x00" in line or re.search(r"(?i)\\x00|\\0|\\u0000|\bnul\b|null", line),
    ),
    "empty-command-step": ('steps = [CommandStep("")]', lambda line: "command" in line.lower()),
    "300-character-step-name": (step(name=repr(LONG_NAME)), LONG_NAME[:12]),
    # Used by two steps. Today: "declared twice with different defaults (nan ..., nan ...)".
    "nan-parameter-default": (
        'lr = PipelineParameter("lr", default_value=float("nan"))\n'
        'steps = [PythonScriptStep("a.py", name="one", source_directory="src", '
        'arguments=["--lr", lr]),\n'
        '         PythonScriptStep("a.py", name="two", source_directory="src", '
        'arguments=["--lr", lr])]',
        lambda line: "declared twice" not in line and "lr" in line,
    ),
    # Today: exit 0 and nothing done.
    "os-exit-while-loading": ("os._exit(0)\n" + step(), "pipe.py"),
    # Found by the hostile review of the first fixes: each reached the scheduler or crashed it.
    "blank-step-name": (step(name='"   "'), "step name"),
    "step-name-not-text": (step(name='["a"]'), "['a']"),
    "line-break-in-a-step-name": (step(name='"a\\nb"'), "control character"),
    "params-name-with-equals": (step(params='{"a=b": 1}'), "a=b"),
    "secret-env-name-as-bytes": (step(secret_env='[b"HOME"]'), "HOME"),
    "allow-reuse-as-a-string": (step(allow_reuse='"no"'), "allow_reuse"),
    "huge-parameter-default": (
        'p = PipelineParameter("big", default_value=10**5000)\n' + step(arguments='["--p", p]'),
        "big",
    ),
    "huge-number-argument": (step(arguments='["--n", 10**5000]'), '"train"'),
    "huge-number-version": (step(version="10**5000"), "version"),
    "timeout-too-large-for-a-float": (step(runconfig="RunConfiguration(timeout_seconds=10**400)"), "timeout_seconds"),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", list(CASES))
def test_a_bad_value_is_refused_with_one_error_line_and_nothing_recorded(ws, project, localpipe, case):
    """Issue 12, "bad values that escape validation": each is refused with exit code 2, exactly
    one `error:` line on stderr naming the thing at fault, and nothing recorded."""
    body, culprit = CASES[case]
    project("src/a.py", "print('hello')\n")
    project("pipe.py", HEADER + body + FOOTER)
    proc = localpipe("submit", "pipe.py", timeout=45)
    line = refused(proc)
    assert_nothing_recorded(ws.root)
    if callable(culprit):
        assert culprit(line), line
    else:
        assert culprit in line, line


def test_numpy_numbers_are_passed_as_arguments(ws, project, localpipe):
    """Numbers are numbers whatever their type: numpy's int64 and float64 (what a sweep over
    ``np.linspace`` hands out) reach the script written as Python writes them."""
    project("src/a.py", "import sys\nprint('args', sys.argv[1:])\n")
    project(
        "pipe.py",
        HEADER + "import numpy as np\n" + step(arguments='["--n", np.int64(3), "--lr", np.float64(0.5)]') + FOOTER,
    )
    proc = localpipe("submit", "pipe.py", timeout=45)
    assert proc.returncode == 0, proc.stderr
    log = next((ws.root / ".localpipe" / "runs").glob("1/**/stdout.log")).read_text()
    assert "args ['--n', '3', '--lr', '0.5']" in log


def test_a_process_forked_while_loading_exits_for_real(ws, project, localpipe):
    """The loader refuses os._exit to the pipeline file, not to a process the file forks (a
    multiprocessing worker ends with os._exit): such a child must not carry on as a second CLI."""
    project("src/a.py", "print('hello')\n")
    forks = "child = os.fork()\nif child == 0:\n    os._exit(0)\nos.waitpid(child, 0)\n"
    project("pipe.py", HEADER + forks + step() + FOOTER)
    proc = localpipe("submit", "pipe.py", timeout=45)
    assert proc.returncode == 0, proc.stderr
    assert "error" not in proc.stderr, proc.stderr
    assert query(ws.root, "SELECT id, status FROM pipeline_run") == [(1, "Completed")]


# -- the watch item: a pipeline file that never finishes loading ---------------------------------

GOOD = """
from localpipe import Pipeline, PythonScriptStep, Workspace
pipeline = Pipeline(Workspace.from_config(), [PythonScriptStep("a.py", name="hello", source_directory="src")])
"""

LOOPS = {
    "loops": "while True:\n    pass\n" + GOOD,
    # Catches what it can and ignores SIGTERM: the time-out must still end the load, and the
    # watcher must get its own SIGTERM handling back.
    "catches-and-ignores-sigterm": (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "while True:\n"
        "    try:\n"
        "        time.sleep(10)\n"
        "    except Exception:\n"
        "        pass\n" + GOOD
    ),
}


@pytest.mark.timeout(90)
@pytest.mark.parametrize("how", list(LOOPS))
def test_watch_survives_a_pipeline_file_that_loops_while_loading(ws, project, tmp_path, how):
    """Watch item of issue 12: a pipeline file that loops for ever at load hung `localpipe watch`
    for good (fixing the file did nothing, SIGTERM was ignored). With LOCALPIPE_LOAD_TIMEOUT=2 the
    watcher reports a time-out loading the file (an `error:` line), runs the file once it is
    fixed, and SIGTERM ends it within a few seconds."""
    project("src/a.py", "print('hello')\n")
    project("pipe.py", LOOPS[how])
    log = tmp_path / "watch.out"
    with log.open("w") as out:
        watch = popen_localpipe(
            ws.root,
            "watch",
            "pipe.py",
            "--debounce",
            "200",
            env={"LOCALPIPE_LOAD_TIMEOUT": "2"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:

        def timed_out_line():
            return [
                line
                for line in log.read_text().splitlines()
                if line.startswith("error:") and re.search(r"(?i)time[sd]? ?-?out|timed out", line)
            ]

        wait_for(
            timed_out_line,
            timeout=20,
            what=lambda: f"an error: line about a time-out loading pipe.py; the watcher printed: {log.read_text()!r}",
        )
        assert "pipe.py" in timed_out_line()[0], timed_out_line()
        assert query(ws.root, "SELECT COUNT(*) FROM pipeline_run") in ([], [(0,)])

        project("pipe.py", GOOD)
        wait_for(
            lambda: run_status(ws.root, 1) == "Completed",
            timeout=30,
            what=lambda: (
                f"the fixed file to run: run 1 {run_status(ws.root, 1)} {step_rows(ws.root, 1)}; "
                f"the watcher printed: {log.read_text()!r}"
            ),
        )
    finally:
        watch.send_signal(signal.SIGTERM)
        start = time.monotonic()
        try:
            watch.wait(timeout=5)
        except subprocess.TimeoutExpired:
            watch.kill()
            watch.wait()
    assert time.monotonic() - start < 5, "SIGTERM did not end the watcher within 5 s"
