"""Errors at the command line: one clear `error: ...` line on stderr, exit code 2, no traceback
unless --debug (SPEC §3).

The exit-code and no-traceback checks run the real `localpipe` process; the rest use CliRunner.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from localpipe.cli import EXIT_INVALID
from tests.conftest import tables

SCRIPT = 'print("hello")\n'

PIPELINE = """
    from localpipe import Pipeline, PipelineParameter, PythonScriptStep, Workspace

    n = PipelineParameter("n", 3)
    pipeline = Pipeline(Workspace.from_config(),
                        [PythonScriptStep("a.py", name="hello", source_directory="src", arguments=["--n", n])])
"""

RAISES = """
    from localpipe import Workspace

    ws = Workspace.from_config()
    raise ValueError("no data for you")
"""


def one_error_line(stderr: str) -> str:
    """The single line of ``stderr``, which must start with "error:" and hold no traceback."""
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    assert "Traceback" not in stderr
    return lines[0]


def assert_no_run_recorded(ws) -> None:

    m = tables(ws)
    assert m.PipelineRun.select().count() == 0
    assert m.StepRun.select().count() == 0
    assert list((ws.state_dir / "objects").iterdir()) == []
    assert list((ws.state_dir / "runs").iterdir()) == []


@pytest.fixture
def pipeline_file(project):
    project("src/a.py", SCRIPT)
    return project("pipe.py", PIPELINE)


@pytest.fixture
def completed_run(ws, pipeline_file, invoke) -> str:
    """The id of a completed one-step run (its step is named "hello")."""
    result = invoke("submit", "pipe.py")
    assert result.exit_code == 0, result.output

    m = tables(ws)
    return str(m.PipelineRun.select().get().id)


def test_exit_code_for_invalid_input_is_two():
    assert EXIT_INVALID == 2


# -- pipeline files --------------------------------------------------------------------------


def test_missing_pipeline_file(ws, localpipe):
    proc = localpipe("submit", "nowhere.py")
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert "pipeline file nowhere.py does not exist" in line
    assert_no_run_recorded(ws)


def test_pipeline_file_that_raises(ws, project, localpipe):
    project("bad.py", RAISES)
    proc = localpipe("submit", "bad.py")
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert "pipeline file bad.py raised ValueError: no data for you (line 4)" in line
    assert "--debug" in line
    assert_no_run_recorded(ws)


def test_pipeline_file_that_raises_shows_its_traceback_with_debug(ws, project, localpipe):
    project("bad.py", RAISES)
    proc = localpipe("--debug", "submit", "bad.py")
    assert proc.returncode == 2
    assert "Traceback (most recent call last)" in proc.stderr
    assert 'raise ValueError("no data for you")' in proc.stderr  # the user's own frame
    assert proc.stderr.splitlines()[-1].startswith("error: pipeline file bad.py raised ValueError")


def test_pipeline_file_with_a_syntax_error(ws, project, localpipe):
    project("syntax.py", "x = 1\ny = (\n")
    proc = localpipe("submit", "syntax.py")
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert "pipeline file syntax.py has a syntax error at line 2" in line
    assert "fix the file" in line


def test_pipeline_file_without_a_pipeline(ws, project, localpipe):
    project("empty.py", "x = 1\n")
    proc = localpipe("submit", "empty.py")
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert "pipeline file empty.py defines no Pipeline: build one with Pipeline(" in line


TWO_PIPELINES = """
    from localpipe import Pipeline, PythonScriptStep, Workspace

    ws = Workspace.from_config()
    first = Pipeline(ws, [PythonScriptStep("a.py", name="first_step", source_directory="src")])
    {second} = Pipeline(ws, [PythonScriptStep("a.py", name="second_step", source_directory="src")])
"""


def test_two_pipelines_and_none_named_pipeline(ws, project, localpipe):
    project("src/a.py", SCRIPT)
    project("two.py", TWO_PIPELINES.format(second="second"))
    proc = localpipe("submit", "two.py")
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert "pipeline file two.py defines 2 Pipelines (first, second)" in line
    assert "name the one to run `pipeline`" in line
    assert_no_run_recorded(ws)


def test_two_pipelines_one_named_pipeline_is_the_one(ws, project, invoke):
    project("src/a.py", SCRIPT)
    project("two.py", TWO_PIPELINES.format(second="pipeline"))
    result = invoke("status", "two.py")
    assert result.exit_code == 0, result.output
    assert "second_step" in result.output
    assert "first_step" not in result.output


def test_pipeline_file_that_exits_while_loading(ws, project, invoke):
    project("exits.py", "import sys\nsys.exit(3)\n")
    result = invoke("submit", "exits.py")
    assert result.exit_code == 2
    line = one_error_line(result.stderr)
    assert "pipeline file exits.py called exit(3) while loading" in line


# -- no workspace ----------------------------------------------------------------------------


@pytest.fixture
def no_workspace(tmp_path) -> Path:
    """A folder with no .localpipe in it or in any folder above it."""
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    above = [p for p in (folder, *folder.parents) if (p / ".localpipe").exists()]
    if above:
        pytest.skip(f"a workspace exists above the test folder: {above[0]}")
    return folder


@pytest.mark.parametrize("args", [["runs"], ["show", "1"], ["logs", "1"], ["metrics", "1"]])
def test_history_commands_without_a_workspace(no_workspace, localpipe, args):
    proc = localpipe(*args, cwd=no_workspace)
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert f"no localpipe workspace in {no_workspace.resolve()} or any parent" in line
    assert "run `localpipe init`" in line
    assert not (no_workspace / ".localpipe").exists()  # reading history creates nothing


def test_workspace_option_pointing_at_no_workspace(no_workspace, invoke):
    result = invoke("-w", str(no_workspace), "runs")
    assert result.exit_code == 2
    assert "no localpipe workspace in" in one_error_line(result.stderr)


# -- run ids and steps -----------------------------------------------------------------------


@pytest.mark.parametrize("command", ["show", "logs", "metrics"])
def test_unknown_run_id(ws, localpipe, command):
    proc = localpipe(command, "999")
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert f"run 999 does not exist in {ws.root}" in line
    assert "see `localpipe runs`" in line


@pytest.mark.parametrize("command", ["show", "logs", "metrics"])
def test_non_numeric_run_id(ws, invoke, command):
    result = invoke(command, "latest-one")
    assert result.exit_code == 2
    line = one_error_line(result.stderr)
    assert '"latest-one" is not a run id: run ids are numbers' in line


@pytest.mark.parametrize("command", ["show", "logs", "metrics"])
def test_a_step_run_id_where_a_run_id_is_asked_names_its_run(ws, invoke, command):
    """A step run's id ("12_17", which Run.get_context().id prints in a step) names its run; int()
    alone read it as run 1217."""
    result = invoke(command, "12_17")
    assert result.exit_code == 2
    assert one_error_line(result.stderr) == (
        'error: "12_17" is the id of a step run of run 12: give the run\'s, 12 (`localpipe show 12` lists its '
        'steps), or find the step run with Run.get(ws, "12_17")'
    )


@pytest.mark.parametrize("command", ["show", "logs", "metrics"])
def test_a_run_id_beyond_sqlites_integers_is_no_run(ws, invoke, command):
    result = invoke(command, "99999999999999999999999")
    assert result.exit_code == 2
    assert one_error_line(result.stderr) == (
        "error: run 99999999999999999999999 does not exist: run ids are below 2**63; see `localpipe runs`"
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["runs", "-n", "-1"], "-1 is not in the range x>=1"),
        (["runs", "-n", "0"], "0 is not in the range x>=1"),
        (["du", "-n", "-1"], "-1 is not in the range x>=0"),
    ],
)
def test_a_count_out_of_range_is_refused(ws, invoke, args, message):
    result = invoke(*args)
    assert result.exit_code == 2 and message in one_error_line(result.stderr)


def test_runs_lists_as_many_as_there_are_however_many_are_asked_for(completed_run, invoke):
    result = invoke("runs", "-n", "99999999999999999999999")
    assert result.exit_code == 0 and result.output.splitlines()[1].startswith(f"{completed_run} ")
    result = invoke("runs", "-e", "nope")
    assert result.output == 'experiment "nope" has no runs: see `localpipe runs` for those there are\n'


def test_unknown_step_for_logs(completed_run, localpipe):
    proc = localpipe("logs", completed_run, "nostep")
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert f'run {completed_run} has no step "nostep" (its steps: hello)' in line


def test_unknown_step_for_metrics(completed_run, invoke):
    result = invoke("metrics", completed_run, "--step", "nostep")
    assert result.exit_code == 2
    assert 'has no step "nostep"' in one_error_line(result.stderr)


def test_known_run_and_step_for_logs(completed_run, invoke):
    # The counterpart of the error cases: the same command with a good run and step works.
    result = invoke("logs", completed_run, "hello")
    assert result.exit_code == 0, result.output
    assert "hello" in result.stdout


# -- --param ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["n", "=3", " =3"])
def test_param_that_is_not_name_equals_value(ws, pipeline_file, localpipe, bad):
    proc = localpipe("submit", "pipe.py", "--param", bad)
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert f'--param "{bad}" is not NAME=VALUE: write it like --param lr=0.1' in line
    assert_no_run_recorded(ws)


def test_bad_param_syntax_for_status(ws, pipeline_file, invoke):
    result = invoke("status", "pipe.py", "-p", "n")
    assert result.exit_code == 2
    assert '--param "n" is not NAME=VALUE' in one_error_line(result.stderr)


@pytest.mark.parametrize(
    "param, message",
    [
        ("n=abc", 'parameter "n": "abc" is not an integer: pass one like the default 3'),
        ("epochs=4", 'parameter "epochs" is not used by this pipeline (known parameters: n)'),
    ],
)
def test_param_of_wrong_type_or_unknown_name(ws, pipeline_file, localpipe, param, message):
    proc = localpipe("submit", "pipe.py", "--param", param)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ")
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert_no_run_recorded(ws)


@pytest.mark.parametrize(
    "param, message",
    [
        ("n=abc", 'parameter "n": "abc" is not an integer'),
        ("epochs=4", 'parameter "epochs" is not used by this pipeline'),
    ],
)
def test_param_of_wrong_type_or_unknown_name_is_one_line(ws, pipeline_file, invoke, param, message):
    result = invoke("submit", "pipe.py", "--param", param)
    assert result.exit_code == 2
    assert message in one_error_line(result.stderr)


# -- --debug ---------------------------------------------------------------------------------


def test_debug_shows_the_traceback(ws, localpipe):
    plain = localpipe("show", "999")
    debug = localpipe("--debug", "show", "999")
    assert plain.returncode == debug.returncode == 2
    one_error_line(plain.stderr)
    assert "Traceback (most recent call last)" in debug.stderr
    assert "NotFoundError" in debug.stderr
    assert debug.stderr.splitlines()[-1] == plain.stderr.strip()


def test_debug_in_process(ws, invoke):
    result = invoke("--debug", "submit", "nowhere.py")
    assert result.exit_code == 2
    assert "Traceback (most recent call last)" in result.stderr
    assert result.stderr.splitlines()[-1].startswith("error: pipeline file nowhere.py does not exist")


@pytest.mark.parametrize("platform, named", [("darwin", "macOS"), ("win32", "Windows")])
def test_a_submission_off_linux_is_refused_before_anything_is_recorded(ws, project, platform, named):
    # The step supervisor needs Linux (pidfds, /proc, a child subreaper): elsewhere, one line and
    # nothing recorded, instead of a run whose every step fails as its supervisor dies.
    import subprocess
    import sys

    from tests.defect_helpers import assert_nothing_recorded, refused

    project("src/a.py", SCRIPT)
    project("pipeline.py", PIPELINE)
    # The platform is named once what reads it at import (psutil picks its backend) is loaded.
    elsewhere = (
        "import sys; import localpipe.engine.submit; from localpipe.cli import main; "
        f"sys.platform = {platform!r}; main(['submit', 'pipeline.py'])"
    )
    proc = subprocess.run([sys.executable, "-c", elsewhere], cwd=ws.root, capture_output=True, text=True)
    line = refused(proc)
    assert line == (
        f"error: localpipe runs pipelines on Linux only, and this is {named}: run it on a Linux machine or "
        "virtual machine (WSL 2 on Windows)"
    )
    assert_nothing_recorded(ws.root)
