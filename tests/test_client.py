"""The Python handles a user holds: Experiment.submit in the background, PipelineRun and StepRun."""

from __future__ import annotations

import pytest

from localpipe import (
    Dataset,
    Datastore,
    Experiment,
    Pipeline,
    PipelineData,
    PipelineRun,
    PythonScriptStep,
    Run,
    StepRun,
)
from localpipe.errors import NotFoundError, RunFailedError
from tests.conftest import wait_for


def two_steps(ws, project, fail: bool = False, writer: bool = True):
    if writer:
        project("src/w/w.py", "import sys\nprint('writing')\nopen(sys.argv[1] + '/v.txt', 'w').write('42')\n")
    project(
        "src/r/r.py",
        f"""
        import sys
        from localpipe import Run
        value = open(sys.argv[1] + '/v.txt').read()
        print('read', value)
        Run.get_context().log('value', int(value))
        sys.exit({1 if fail else 0})
    """,
    )
    data = PipelineData("data")
    w = PythonScriptStep("w.py", name="write", source_directory=ws.root / "src/w", arguments=[data])
    r = PythonScriptStep("r.py", name="read", source_directory=ws.root / "src/r", arguments=[data.as_input()])
    return Pipeline(ws, [r])


def test_a_step_that_ended_between_polls_shows_its_log_after_its_running_line(ws, project, capsys):
    """A step a poll first sees ended had its log printed before the Queued and Running lines the
    poll missed (`[read] read 42`, then `read: Queued`; found by the new user review)."""
    run = Experiment(ws, "late").submit(two_steps(ws, project))
    assert run.wait_for_completion(timeout_seconds=60) == "Completed"
    capsys.readouterr()
    run.wait_for_completion(show_output=True)
    out = capsys.readouterr().out.splitlines()
    completed = next(i for i, line in enumerate(out) if line.startswith("read: Completed"))
    assert out.index("read: Running") < out.index("[read] read 42") < completed, out


def test_submit_returns_at_once_and_the_run_completes_in_the_background(ws, project, capsys):
    gate = ws.root / "gate"
    project(
        "src/w/w.py",
        f"""
        import os, sys, time
        while not os.path.exists({str(gate)!r}):  # the step cannot end before the test opens the gate
            time.sleep(0.02)
        print('writing')
        open(sys.argv[1] + '/v.txt', 'w').write('42')
    """,
    )
    run = Experiment(ws, "bg").submit(two_steps(ws, project, writer=False))
    assert run.get_status() in ("NotStarted", "Running")  # submit returned while the run goes on
    gate.write_text("")
    assert run.wait_for_completion(show_output=True, timeout_seconds=60) == "Completed"
    out = capsys.readouterr().out.splitlines()
    for name in ("write", "read"):  # each step's lines in the order they happened (issue 17, item 6)
        said = [line for line in out if line.startswith((f"{name}: ", f"[{name}] "))]
        statuses = [line.split(": ")[1].split(" (")[0] for line in said if line.startswith(f"{name}: ")]
        # A folder output is committed under a Finalizing of its own, which a poll may catch or not:
        # when shown, it comes right before Completed.
        if "Finalizing" in statuses:
            assert statuses[-2:] == ["Finalizing", "Completed"], out
            statuses.remove("Finalizing")
        assert statuses[-3:] == ["Queued", "Running", "Completed"] and said[-1].startswith(f"{name}: Completed"), out
    completed = next(i for i, line in enumerate(out) if line.startswith("read: Completed"))
    assert out.index("[read] read 42") < completed and out[-1] == f"run {run.id}: Completed"

    steps = {s.name: s for s in run.get_steps()}
    assert set(steps) == {"write", "read"}
    assert run.find_step_run("read")[0].get_stdout_log() == "read 42\n"
    read = run.find_step_run("read")[0]
    assert run.get_metrics(recursive=True)[read.id] == {"value": 42}  # the SDK's form: by run id
    output = steps["write"].get_output_data("data")
    assert (output.path / "v.txt").read_text() == "42"
    # As Azure's datastores lay it out: local_path/<path_on_datastore>/..., and the number of files.
    assert output.download(ws.root / "download") == 1
    assert (ws.root / "download" / output.path_on_datastore / "v.txt").read_text() == "42"
    assert next(ws.experiments["bg"].get_runs()).id == run.id


def test_a_reused_step_knows_the_step_run_it_reused(ws, project):
    first = Experiment(ws, "bg").submit(two_steps(ws, project))
    first.wait_for_completion()
    second = Experiment(ws, "bg").submit(two_steps(ws, project))
    second.wait_for_completion()
    reused = second.find_step_run("write")[0]
    assert reused.get_status() == "Reused"
    assert reused.reused_from == first.find_step_run("write")[0].id
    assert (reused.get_output_data("data").path / "v.txt").read_text() == "42"


def test_a_step_runs_id_is_never_a_pipeline_runs(ws, project):
    """Step runs are numbered apart from pipeline runs: run 1's second step run is number 2, as
    run 2 is. Its id says both numbers, and Run.get, ws.get_run and get_metrics tell them apart."""
    first = Experiment(ws, "ids").submit(two_steps(ws, project))
    first.wait_for_completion()
    second = Experiment(ws, "ids").submit(two_steps(ws, project))
    second.wait_for_completion()
    read = first.find_step_run("read")[0]
    assert read.number == second.number  # the numbers collide: the ids must not
    assert read.id == f"{first.id}_{read.number}" and read.get_details()["runId"] == read.id
    found = Run.get(ws, read.id)
    assert (type(found), found.id, found.name, found.parent.id) == (StepRun, read.id, "read", first.id)
    assert found.get_metrics() == {"value": 42} and ws.get_run(read.id).id == read.id
    assert Run.get(ws, second.id).type == "azureml.PipelineRun"
    assert set(first.get_metrics(recursive=True)) == {first.id, *(s.id for s in first.get_steps())}
    assert StepRun(first.experiment, read.id, first.id, "read").get_metrics() == {"value": 42}
    reused = second.find_step_run("write")[0].reused_from
    assert Run.get(ws, reused).id == first.find_step_run("write")[0].id == reused
    with pytest.raises(NotFoundError, match=f"step run {read.number} is one of run {first.id}'s"):
        Run.get(ws, f"{second.id}_{read.number}")
    with pytest.raises(NotFoundError, match=rf'"{read.id}" is the id of a step run of run {first.id}: give'):
        PipelineRun(first.experiment, read.id)


def test_wait_for_completion_shows_the_end_of_a_failed_steps_stderr(ws, project, capsys):
    """Issue 17, item 2, in the SDK's view: under the Failed line, its stderr's last lines and the
    command that prints all of it."""
    project("src/w/w.py", "import sys\nprint('no data to write', file=sys.stderr)\nsys.exit(3)\n")
    run = Experiment(ws, "fails").submit(two_steps(ws, project, writer=False))
    assert run.wait_for_completion(show_output=True, raise_on_error=False) == "Failed"
    out = capsys.readouterr().out.splitlines()
    at = out.index("write: Failed (exit code 3)")
    assert out[at + 1 : at + 3] == ["  | no data to write", f"  all of its stderr: localpipe logs {run.id} write"]


def test_wait_for_completion_raises_on_a_failed_run_unless_told_not_to(ws, project):
    run = Experiment(ws, "bg").submit(two_steps(ws, project, fail=True))
    with pytest.raises(RunFailedError, match="failed"):
        run.wait_for_completion()
    assert run.wait_for_completion(raise_on_error=False) == "Failed"


def test_wait_for_completion_that_runs_out_of_time_returns_the_status_the_run_has(ws, project, capsys):
    """As Azure's PipelineRun: "Timed out of waiting" and the status, not an exception."""
    project("src/s/s.py", "import time\ntime.sleep(30)\n")
    run = Experiment(ws, "bg").submit(
        Pipeline(ws, [PythonScriptStep("s.py", name="s", source_directory=ws.root / "src/s")])
    )
    wait_for(lambda: run.find_step_run("s")[0].get_status() == "Running", what="step s running")
    try:
        assert run.wait_for_completion(show_output=False, timeout_seconds=0.3) == "Running"
        assert run.wait_for_completion(timeout_seconds=0.3) == "Running"
        assert "Timed out of waiting. Elapsed time: 0." in capsys.readouterr().out
        assert run.find_step_run("s")[0].get_status() == "Running"
    finally:
        run.cancel()
    assert run.wait_for_completion(raise_on_error=False, timeout_seconds=30) == "Canceled"
    with pytest.raises(RunFailedError, match=f"run {run.id} canceled"):
        run.wait_for_completion(show_output=False)


def test_unknown_output_names_the_outputs_there_are(ws, project):
    run = Experiment(ws, "bg").submit(two_steps(ws, project))
    run.wait_for_completion()
    with pytest.raises(Exception, match='no output "nope" .*its outputs: data'):
        run.find_step_run("write")[0].get_output_data("nope")


def test_datastore_paths_and_registered_local_datastores(ws, tmp_path, project, run_pipeline):
    folder = tmp_path / "shared-data"
    (folder / "images").mkdir(parents=True)
    (folder / "images" / "a.txt").write_text("pixels")
    store = Datastore.register_local(ws, "shared", folder)
    assert set(ws.datastores) == {"workspaceblobstore", "workspacefilestore", "shared"}
    assert Datastore.get(ws, "shared").folder == folder.resolve()
    dataset = Dataset.File.from_files([(store, "images/")])
    project("src/c/c.py", "import os, sys\nprint(sorted(os.listdir(sys.argv[1])))\n")
    step = PythonScriptStep(
        "c.py", name="c", source_directory=ws.root / "src/c", arguments=[dataset.as_named_input("images").as_download()]
    )
    run_id, _, steps = run_pipeline(Pipeline(ws, [step]))
    assert steps["c"]["status"] == "Completed"
    assert (ws.state_dir / "runs" / str(run_id) / "c" / "stdout.log").read_text() == "['a.txt']\n"
