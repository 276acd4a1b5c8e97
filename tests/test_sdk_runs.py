"""The Run family (issue 14, items 4 and 8): ScriptRunConfig runs, Run's members on every run,
Experiment.list and get_runs filters, run files, with the SDK's own usage from the official samples."""

from __future__ import annotations

import pytest

from localpipe import Experiment, Pipeline, PipelineRun, PythonScriptStep, Run, ScriptRunConfig
from localpipe.errors import RunFailedError, UsageError, UserErrorException

# train_explain.py (explain-model/azure-integration/remote-explanation), its run calls kept as written.
TRAIN = """
import os, sys
from azureml.core.run import Run

OUTPUT_DIR = './outputs/'
os.makedirs(OUTPUT_DIR, exist_ok=True)
run = Run.get_context()
x_test_pkl = 'x_test.pkl'
with open(os.path.join(OUTPUT_DIR, x_test_pkl), 'w') as file:
    file.write('x-test')
run.upload_file('x_test_california_housing.pkl', os.path.join(OUTPUT_DIR, x_test_pkl))
alpha = float(sys.argv[sys.argv.index('--alpha') + 1])
run.log('alpha', alpha)
for mse in (0.9, 0.5):
    run.log('mse', mse)
run.log_list('sizes', [1, 2])
for epoch in (1, 2):
    run.log_row('epochs', epoch=epoch, loss=1.0 / epoch)
run.log_table('table', {'a': [1, 2], 'b': ['x', 'y']})
run.log_confusion_matrix('cm', {'schema_type': 'confusion_matrix', 'data': {'matrix': [[1, 0], [0, 1]]}})
run.tag('model', 'ridge')
run.add_properties({'stage': 'train'})
os.makedirs('logs', exist_ok=True)
open('logs/train.log', 'w').write('trained')
print('alpha is', alpha)
"""


def script_run(ws, project, experiment="train", script=TRAIN, arguments=("--alpha", 0.5)):
    project("train/train.py", script)
    # the sklearn sample's form: ScriptRunConfig(source_directory=..., script=..., arguments=..., compute_target=...)
    src = ScriptRunConfig(
        source_directory=str(ws.root / "train"), script="train.py", arguments=list(arguments), compute_target="local"
    )
    return Experiment(ws, experiment).submit(src)


def test_a_script_run_runs_as_one_step_and_has_the_sdk_run_members(ws, project, capsys, tmp_path):
    run = script_run(ws, project)
    assert type(run) is Run and run.type == "azureml.scriptrun"
    details = run.wait_for_completion(show_output=True)
    assert "[train.py] alpha is 0.5" in capsys.readouterr().out
    assert details["status"] == "Completed" and details["runId"] == run.id
    assert details["runDefinition"]["script"] == "train.py"
    assert details["runDefinition"]["arguments"] == ["--alpha", "0.5"]
    assert details["startTimeUtc"].endswith("Z") and "endTimeUtc" in details
    assert details["properties"]["azureml.runsource"] == "experiment"
    assert details["properties"]["stage"] == "train"

    metrics = run.get_metrics()
    assert metrics["alpha"] == 0.5
    assert metrics["mse"] == [0.9, 0.5]  # logged twice: a series
    assert metrics["sizes"] == [1, 2]
    assert metrics["epochs"] == {"epoch": [1, 2], "loss": [1.0, 0.5]}  # log_row: a table of columns
    assert metrics["table"] == {"a": [1, 2], "b": ["x", "y"]}
    assert metrics["cm"] == "confusion_matrix/cm"
    assert run.get_metrics(populate=True)["cm"]["data"]["matrix"] == [[1, 0], [0, 1]]
    assert run.get_metrics(name="alpha") == {"alpha": 0.5}
    assert run.get_tags() == {"model": "ridge"}

    # the keras sample: for f in run.get_file_names(): ... run.download_file(name=f, output_file_path=...)
    names = run.get_file_names()
    assert {"outputs/x_test.pkl", "x_test_california_housing.pkl", "logs/train.log"} <= set(names)
    assert "user_logs/std_out.txt" in names
    run.download_file("x_test_california_housing.pkl", output_file_path=str(tmp_path / "x.pkl"))
    assert (tmp_path / "x.pkl").read_text() == "x-test"
    run.download_files(prefix="outputs", output_directory=str(tmp_path / "all"))
    assert (tmp_path / "all" / "outputs" / "x_test.pkl").read_text() == "x-test"
    with pytest.raises(UserErrorException, match='no file "outputs/nope"'):
        run.download_file("outputs/nope")
    assert "alpha is 0.5" in run.get_details_with_logs()["logFiles"]["user_logs/std_out.txt"]

    # the same run from the workspace, by id, as Run.get and Workspace.get_run give it
    again = Run.get(ws, run.id)
    assert type(again) is Run and again.get_metrics()["alpha"] == 0.5
    assert ws.get_run(run.id).get_status() == "Completed"
    assert Run(Experiment(ws, "train"), run.id).get_file_names() == names
    assert run.get_children() == [] and run.parent is None


def test_a_script_run_always_runs_and_the_cli_knows_it(ws, project, localpipe):
    first = script_run(ws, project)
    first.wait_for_completion()
    second = script_run(ws, project)
    second.wait_for_completion()
    assert second.get_metrics()["alpha"] == 0.5  # ran again: a script run is never reused, as in Azure ML
    shown = localpipe("show", str(second.id), check=True).stdout
    assert "train.py" in shown and "Completed" in shown
    assert "alpha" in localpipe("metrics", str(second.id), check=True).stdout
    assert "alpha is 0.5" in localpipe("logs", str(second.id), check=True).stdout


def test_a_failing_script_run_raises_unless_told_not_to(ws, project):
    run = script_run(ws, project, script="import sys\nprint('boom')\nsys.exit(3)\n", arguments=())
    with pytest.raises(RunFailedError, match="failed"):
        run.wait_for_completion()
    details = run.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Failed" and "exit" in details["error"]["error"]["message"]


def test_script_run_config_takes_exactly_the_sdk_parameters(ws):
    with pytest.raises(TypeError, match="scirpt"):
        ScriptRunConfig(source_directory=".", scirpt="train.py")
    with pytest.raises(UsageError, match="a script .* or a command"):
        ScriptRunConfig(source_directory=".")
    assert ScriptRunConfig(".", command=["python", "t.py"]).command == ["python", "t.py"]
    with pytest.raises(TypeError, match="regenerate_outputs"):
        Experiment(ws, "x").submit(ScriptRunConfig(".", "t.py"), regenerate_outputs=True)


def two_step_pipeline(ws, project):
    project(
        "steps/a.py",
        """
        from azureml.core import Run
        run = Run.get_context()
        run.log('accuracy', 0.9)
        run.tag('kind', 'first')
        run.upload_file('notes.txt', __file__)
        """,
    )
    project("steps/b.py", "from azureml.core import Run\nRun.get_context().log('accuracy', 0.8)\n")
    a = PythonScriptStep("a.py", name="a", source_directory=str(ws.root / "steps"))
    b = PythonScriptStep("b.py", name="b", source_directory=str(ws.root / "steps"))
    b.run_after(a)
    return Pipeline(ws, [b])


def test_pipeline_run_children_and_step_runs_have_the_run_members(ws, project, tmp_path):
    pipeline_run = Experiment(ws, "pipes").submit(two_step_pipeline(ws, project), tags={"team": "x"})
    assert pipeline_run.wait_for_completion(show_output=False) == "Completed"
    # the getting-started sample: step_runs = pipeline_run1.get_children()
    step_runs = pipeline_run.get_children()
    assert [s.name for s in step_runs] == ["a", "b"]
    a = pipeline_run.find_step_run("a")[0]
    assert a.parent.id == pipeline_run.id and a.pipeline_run_id == pipeline_run.id
    assert a.get_metrics() == {"accuracy": 0.9} and a.get_tags() == {"kind": "first"}
    assert pipeline_run.get_metrics() == {}  # a pipeline run's own: its steps hold theirs
    assert pipeline_run.get_metrics(recursive=True) == {
        pipeline_run.id: {},
        a.id: {"accuracy": 0.9},
        step_runs[1].id: {"accuracy": 0.8},
    }
    assert [s.name for s in pipeline_run.get_children(tags={"kind": "first"})] == ["a"]
    assert "notes.txt" in a.get_file_names()
    a.download_file("notes.txt", str(tmp_path))
    assert "Run.get_context()" in (tmp_path / "notes.txt").read_text()
    assert a.wait_for_completion(show_output=False) == "Completed"
    assert a.get_job_log() == "" and a.get_outputs() == {}
    assert set(pipeline_run.get_graph().steps) == {"a", "b"}

    # PipelineRun.get, tags on the pipeline run, and get_runs filters
    again = PipelineRun.get(ws, pipeline_run.id)
    assert again.get_tags() == {"team": "x"}
    again.tag("reviewed")
    again.add_properties({"release": "1"})
    with pytest.raises(UsageError, match='property "release" is already'):
        again.add_properties({"release": "2"})
    runs = Experiment(ws, "pipes").get_runs(tags="reviewed", properties={"release": "1"})
    assert [r.id for r in runs] == [pipeline_run.id]
    assert Experiment(ws, "pipes").get_runs(tags="nope") == []
    assert len(Experiment(ws, "pipes").get_runs(include_children=True)) == 3
    with pytest.raises(UsageError, match="is a pipeline run: its metrics are its steps'"):
        pipeline_run.log("x", 1)


def test_a_reused_step_keeps_the_files_and_metrics_of_the_run_it_reused(ws, project):
    first = Experiment(ws, "pipes").submit(two_step_pipeline(ws, project))
    first.wait_for_completion(show_output=False)
    second = Experiment(ws, "pipes").submit(two_step_pipeline(ws, project))
    second.wait_for_completion(show_output=False)
    a = second.find_step_run("a")[0]
    assert a.get_status() == "Reused"
    assert "notes.txt" in a.get_file_names() and a.get_metrics() == {"accuracy": 0.9}


def test_experiment_list_tags_and_run_log_checks(ws, project):
    Experiment(ws, "tagged").tag("owner", "me")
    Experiment(ws, "other").set_tags({"owner": "you"})
    assert [e.name for e in Experiment.list(ws)] == ["other", "tagged"]
    assert [e.name for e in Experiment.list(ws, tags={"owner": "me"})] == ["tagged"]
    assert [e.name for e in Experiment.list(ws, experiment_name="other")] == ["other"]
    assert Experiment(ws, "tagged").tags == {"owner": "me"}
    Experiment(ws, "tagged").remove_tags(["owner"])
    assert Experiment(ws, "tagged").tags == {}

    run = script_run(ws, project)
    run.wait_for_completion()
    with pytest.raises(UserErrorException, match="use run.log_list"):
        run.log("values", [1, 2])
    run.log("extra", 3)  # after the fact, from outside the step: through the records
    assert run.get_metrics()["extra"] == 3
    with pytest.raises(UserErrorException, match="not a run file name"):
        run.upload_file("../escape.txt", __file__)


def test_offline_run_and_get_context_outside_a_step(capsys):
    offline = Run.get_context()
    assert offline.id.startswith("OfflineRun_")
    with offline as run:
        run.log_table("t", {"a": [1]})
        run.upload_file("f", "path")
    assert "[offline run] table t" in capsys.readouterr().out
    from localpipe.errors import RunEnvironmentException

    with pytest.raises(RunEnvironmentException, match="not inside a localpipe step"):
        Run.get_context(allow_offline=False)
