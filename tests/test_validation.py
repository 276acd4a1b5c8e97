"""Pipeline validation: every problem of SPEC §1, each naming the step at fault and the fix.

Most tests call ``Pipeline.validate()`` or ``plan_pipeline`` directly; the last ones go through a
real ``localpipe submit`` to check that an invalid pipeline is refused all at once, with exit
code 2, and leaves nothing in history.db or the object store.
"""

from __future__ import annotations

import pytest

from localpipe import CommandStep, Dataset, Pipeline, PipelineData, PipelineParameter, PythonScriptStep
from localpipe.errors import PipelineValidationError, UsageError
from localpipe.plan.graph import plan_pipeline, problems
from localpipe.sdk.compute import compute_targets
from tests.conftest import tables


def write(path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


@pytest.fixture
def src(tmp_path):
    """A source directory with two tiny scripts, a.py and b.py."""
    folder = tmp_path / "src"
    write(folder / "a.py", 'print("a")\n')
    write(folder / "b.py", 'print("b")\n')
    return folder


def step(src, name: str, script: str = "a.py", **kwargs) -> PythonScriptStep:
    return PythonScriptStep(script, name=name, source_directory=str(src), **kwargs)


def only(found: list[str]) -> str:
    assert len(found) == 1, found
    return found[0]


# -- a valid pipeline ------------------------------------------------------------------------


def test_valid_pipeline_has_no_problems(ws, src):
    data = PipelineData("prepped")
    n = PipelineParameter("n", 3)
    step(src, "prep", arguments=["--out", data, "--n", n])
    train = step(src, "train", "b.py", arguments=["--in", data.as_input()])
    pipeline = Pipeline(ws, [train])

    assert pipeline.validate() == []
    assert pipeline.validate({"n": "5"}) == []
    graph = plan_pipeline(pipeline, {"n": "5"}, compute_targets=compute_targets(ws))
    assert list(graph.steps) == ["prep", "train"]
    assert graph.parameters == {"n": 5}
    assert graph.steps["train"].upstream == {"prep"}


# -- the DAG ---------------------------------------------------------------------------------


def test_cycle_through_pipeline_data(ws, src):
    a_out, b_out = PipelineData("a_out"), PipelineData("b_out")
    a = step(src, "a", inputs=[b_out.as_input()], outputs=[a_out])
    step(src, "b", "b.py", inputs=[a_out.as_input()], outputs=[b_out])

    message = only(Pipeline(ws, [a]).validate())
    assert "the steps form a cycle" in message
    assert '"a"' in message and '"b"' in message
    assert "remove one of these dependencies" in message


def test_cycle_through_run_after(ws, src):
    a, b = step(src, "a"), step(src, "b", "b.py")
    a.run_after(b)
    b.run_after(a)

    message = only(Pipeline(ws, [a, b]).validate())
    assert "the steps form a cycle" in message
    assert '"a"' in message and '"b"' in message
    assert "remove one of these dependencies" in message


def test_step_running_after_itself(ws, src):
    a = step(src, "a")
    a.run_after(a)

    assert only(Pipeline(ws, [a]).validate()) == 'step "a" runs after itself: remove the run_after(a) call'


def test_step_consuming_its_own_output(ws, src):
    data = PipelineData("loop")
    a = step(src, "a", inputs=[data.as_input()], outputs=[data])

    assert 'step "a" consumes its own output "loop"' in only(Pipeline(ws, [a]).validate())


def test_step_consuming_its_own_output_names_the_fix(ws, src):
    data = PipelineData("loop")
    a = step(src, "a", inputs=[data.as_input()], outputs=[data])

    message = only(Pipeline(ws, [a]).validate())
    assert 'remove "loop" from its inputs' in message


def test_two_producers_of_one_pipeline_data(ws, src):
    data = PipelineData("shared")
    a = step(src, "a", outputs=[data])
    b = step(src, "b", "b.py", outputs=[data])

    found = Pipeline(ws, [a, b]).validate()
    assert (
        'output "shared" is produced by more than one step ("a", "b"): give each step its own PipelineData'
    ) in found


def test_two_producers_reported_once(ws, src):
    data = PipelineData("shared")
    a = step(src, "a", outputs=[data])
    b = step(src, "b", "b.py", outputs=[data])

    assert len(Pipeline(ws, [a, b]).validate()) == 1


def test_consumed_pipeline_data_that_no_step_produces(ws, src):
    orphan = PipelineData("orphan")  # its producer was never constructed
    a = step(src, "a", arguments=["--in", orphan.as_input()])

    assert only(Pipeline(ws, [a]).validate()) == (
        'step "a": input "orphan" is produced by no step: add the step that writes PipelineData "orphan" as an output'
    )


def test_an_unproduced_input_in_arguments_and_inputs_is_one_problem(ws, src):
    """Azure's samples list a PipelineData in arguments= and in inputs=: its problem was listed
    twice, as two problems (found by the new user review)."""
    orphan = PipelineData("orphan")
    a = step(src, "a", arguments=["--in", orphan.as_input()], inputs=[orphan])

    assert only(Pipeline(ws, [a]).validate()).startswith('step "a": input "orphan" is produced by no step')


# -- sources ---------------------------------------------------------------------------------


def test_missing_script(ws, src):
    message = only(Pipeline(ws, [step(src, "train", "nope.py")]).validate())
    assert f'step "train": script "nope.py" not found in source_directory "{src}"' in message
    assert "fix script_name or source_directory" in message


def test_source_directory_that_does_not_exist(ws, tmp_path):
    missing = tmp_path / "no_such_dir"
    message = only(Pipeline(ws, [step(missing, "train")]).validate())
    assert f'step "train": source_directory "{missing}" does not exist' in message
    assert "create it or fix the path" in message


def test_source_directory_that_is_a_file(ws, src):
    a_file = src / "a.py"
    message = only(Pipeline(ws, [step(a_file, "train")]).validate())
    assert f'step "train": source_directory "{a_file}" is not a directory' in message


def test_script_leaving_its_source_directory(ws, src, tmp_path):
    write(tmp_path / "x.py", 'print("outside")\n')  # exists, and still refused
    message = only(Pipeline(ws, [step(src, "train", "../x.py")]).validate())
    assert f'step "train": script "../x.py" leaves source_directory "{src}"' in message
    assert "keep the script inside it" in message


def test_command_step_with_missing_source_directory(ws, tmp_path):
    cmd = CommandStep(["python", "-c", "print(1)"], name="cmd", source_directory=str(tmp_path / "gone"))
    assert 'step "cmd": source_directory' in only(Pipeline(ws, [cmd]).validate())


# -- outputs and names -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["sub/dir", "..", "a..b"])
def test_output_name_with_slash_or_dot_dot(ws, src, name):
    message = only(Pipeline(ws, [step(src, "train", outputs=[PipelineData(name)])]).validate())
    assert f'step "train": output name "{name}" is not allowed' in message
    assert 'with no "/" or ".."' in message


def test_two_steps_with_the_same_name(ws, src):
    found = Pipeline(ws, [step(src, "train"), step(src, "train", "b.py")]).validate()
    assert only(found) == 'two steps are named "train": pass a distinct name= to each'


# -- compute targets -------------------------------------------------------------------------


def test_unknown_compute_target_when_planning(ws, src):
    pipeline = Pipeline(ws, [step(src, "train", compute_target="gpu-cluster")])
    with pytest.raises(PipelineValidationError) as info:
        plan_pipeline(pipeline, compute_targets=compute_targets(ws))
    assert only(info.value.problems) == (
        'step "train": compute target "gpu-cluster" does not exist: '
        'create it with ComputeTarget.create(...) or use "local"'
    )


def test_unknown_compute_target_from_validate(ws, src):
    pipeline = Pipeline(ws, [step(src, "train", compute_target="gpu-cluster")])
    assert 'compute target "gpu-cluster" does not exist' in only(pipeline.validate())


# -- parameters ------------------------------------------------------------------------------


def test_override_of_an_unknown_parameter(ws, src):
    pipeline = Pipeline(ws, [step(src, "train", arguments=["--n", PipelineParameter("n", 3)])])
    assert only(pipeline.validate({"epochs": "4"})) == (
        'parameter "epochs" is not used by this pipeline (known parameters: n)'
    )
    assert only(problems(pipeline, {"epochs": "4"})).startswith('parameter "epochs"')


def test_parameter_of_the_wrong_type(ws, src):
    pipeline = Pipeline(ws, [step(src, "train", arguments=["--n", PipelineParameter("n", 3)])])
    assert only(pipeline.validate({"n": "abc"})) == (
        'parameter "n": "abc" is not an integer: pass one like the default 3'
    )


def test_parameter_declared_twice_with_different_defaults(ws, src):
    a = step(src, "a", arguments=["--lr", PipelineParameter("lr", 0.1)])
    b = step(src, "b", "b.py", params={"lr": PipelineParameter("lr", 0.2)})
    message = only(Pipeline(ws, [a, b]).validate())
    assert 'parameter "lr" is declared twice with different defaults (0.1 in step "a", 0.2 in step "b")' in message
    assert "declare it once" in message


# -- data and arguments ----------------------------------------------------------------------


def test_dataset_path_that_does_not_exist(ws, src, tmp_path):
    missing = tmp_path / "no_data"
    raw = Dataset.File.from_files(str(missing), validate=False).as_named_input("raw")  # the SDK checks at once
    message = only(Pipeline(ws, [step(src, "train", arguments=["--data", raw])]).validate())
    assert f'step "train": dataset input "raw": path "{missing}" does not exist' in message
    assert "create it or fix the path" in message


def test_argument_of_an_unsupported_type(ws, src):
    message = only(Pipeline(ws, [step(src, "train", arguments=["--x", object()])]).validate())
    assert message.startswith('step "train": argument <object object at ')
    assert (
        "of type object cannot be passed: use a string, a number, a PipelineParameter or a data reference"
    ) in message


# -- all at once -----------------------------------------------------------------------------


def test_several_problems_are_reported_together(ws, src, tmp_path):
    n = PipelineParameter("n", 3)
    broken = [
        step(src, "a", "nope.py", arguments=["--n", n, object()]),
        step(src, "a", "b.py", outputs=[PipelineData("bad/name")]),
        step(tmp_path / "gone", "c", compute_target="gpu-cluster"),
        step(src, "d", arguments=["--in", PipelineData("orphan").as_input()]),
    ]
    pipeline = Pipeline(ws, broken)
    expected = [
        'parameter "n": "abc" is not an integer',
        'two steps are named "a"',
        'step "a": script "nope.py" not found',
        'step "a": argument <object object',
        'step "a": output name "bad/name" is not allowed',
        'step "c": source_directory',
        'step "c": compute target "gpu-cluster" does not exist',
        'step "d": input "orphan" is produced by no step',
    ]

    with pytest.raises(PipelineValidationError) as info:
        plan_pipeline(pipeline, {"n": "abc"}, compute_targets=compute_targets(ws))
    error = info.value
    assert isinstance(error, UsageError) and error.exit_code == 2
    assert len(error.problems) == len(expected), error.problems
    for fragment in expected:
        assert any(fragment in p for p in error.problems), (fragment, error.problems)
        assert fragment in str(error)
    assert str(error).startswith(f"the pipeline is invalid ({len(expected)} problems):")
    # validate() reports from the same list (see test_unknown_compute_target_from_validate).
    assert set(pipeline.validate({"n": "abc"})) <= set(error.problems)


# -- through a real `localpipe submit` ----------------------------------------------------------


def assert_nothing_written(ws) -> None:
    """No run recorded in history.db, nothing in the object store or the run folders."""

    m = tables(ws)
    for model in (m.Experiment, m.PipelineGraph, m.PipelineRun, m.StepRun, m.Edge, m.StepOutput, m.CacheEntry):
        assert model.select().count() == 0, model.__name__
    for sub in ("objects", "runs"):
        assert list((ws.state_dir / sub).iterdir()) == [], sub


INVALID_PIPELINE = """
    from localpipe import Pipeline, PipelineData, PipelineParameter, PythonScriptStep, Workspace

    ws = Workspace.from_config()
    n = PipelineParameter("n", 3)
    a_out, b_out = PipelineData("a_out"), PipelineData("b_out")
    a = PythonScriptStep("a.py", name="a", source_directory="src", inputs=[b_out.as_input()],
                         outputs=[a_out], arguments=["--n", n])
    b = PythonScriptStep("b.py", name="b", source_directory="src", inputs=[a_out.as_input()],
                         outputs=[b_out])
    c = PythonScriptStep("missing.py", name="c", source_directory="src", compute_target="gpu-cluster",
                         outputs=[PipelineData("..")])
    pipeline = Pipeline(ws, [a, c])
"""


def test_submit_refuses_an_invalid_pipeline_with_every_problem(ws, project, localpipe):
    project("src/a.py", 'print("a")\n')
    project("src/b.py", 'print("b")\n')
    project("pipe.py", INVALID_PIPELINE)

    proc = localpipe("submit", "pipe.py", "--param", "n=abc")

    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("error: the pipeline is invalid (5 problems):")
    for fragment in [
        'parameter "n": "abc" is not an integer',
        'step "c": script "missing.py" not found in source_directory',
        'step "c": output name ".." is not allowed',
        'step "c": compute target "gpu-cluster" does not exist',
        "the steps form a cycle",
    ]:
        assert fragment in proc.stderr, fragment
    assert "run " not in proc.stdout  # no run was started
    assert_nothing_written(ws)


def test_submit_of_a_valid_pipeline_records_a_run(ws, project, localpipe):
    # The counterpart of the test above: the checks of assert_nothing_written can fail.
    project("src/a.py", 'print("a")\n')
    project(
        "pipe.py",
        """
        from localpipe import Pipeline, PythonScriptStep, Workspace

        pipeline = Pipeline(Workspace.from_config(), [PythonScriptStep("a.py", source_directory="src")])
    """,
    )
    proc = localpipe("submit", "pipe.py")
    assert proc.returncode == 0, proc.stderr
    with pytest.raises(AssertionError):
        assert_nothing_written(ws)


def test_submit_with_a_bad_param_writes_nothing(ws, project, invoke):
    project("src/a.py", 'print("a")\n')
    project(
        "pipe.py",
        """
        from localpipe import Pipeline, PipelineParameter, PythonScriptStep, Workspace

        n = PipelineParameter("n", 3)
        pipeline = Pipeline(Workspace.from_config(),
                            [PythonScriptStep("a.py", source_directory="src", arguments=["--n", n])])
    """,
    )
    for args in (["--param", "n=abc"], ["--param", "epochs=4"], ["--param", "n"]):
        result = invoke("submit", "pipe.py", *args)
        assert result.exit_code == 2, (args, result.output)
        assert_nothing_written(ws)
