"""The Run family (issue 14, items 4 and 8): ScriptRunConfig runs, Run's members on every run,
Experiment.list and get_runs filters, run files, with the SDK's own usage from the official samples."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from localpipe import Experiment, Pipeline, PipelineRun, PythonScriptStep, Run, ScriptRunConfig
from localpipe.errors import RunFailedError, UsageError, UserErrorException
from tests.conftest import wait_for

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


IN_STEP_ENDS = """
import sys
from azureml.core import Run
run = Run.get_context()
run.complete()
run.cancel()
run.fail(error_details="bad fold", error_code="DataError")
print("went on")
sys.exit(int(sys.argv[1]))
"""


def test_complete_fail_and_cancel_in_a_step_leave_its_status_to_the_script_as_on_azure(ws, project):
    """Azure's submitted run (Run.get_context()) sets no status on complete() or fail(), and cancel()
    only warns: the script's exit decides. fail()'s details are on the step's stderr (its log, and
    the log tail `localpipe show` prints of a failed step). A StepRun handle's fail() is refused."""
    completed = script_run(ws, project, script=IN_STEP_ENDS, arguments=(0,))
    details = completed.wait_for_completion()
    assert details["status"] == "Completed" and "error" not in details
    log = completed.get_details_with_logs()["logFiles"]["user_logs/std_err.txt"]
    assert "run.fail: DataError: bad fold\n" in log and "run.cancel() in a step changes nothing" in log
    assert "went on" in completed.get_details_with_logs()["logFiles"]["user_logs/std_out.txt"]

    failed = script_run(ws, project, script=IN_STEP_ENDS, arguments=(2,))
    details = failed.wait_for_completion(raise_on_error=False)
    assert details["status"] == "Failed" and details["error"]["error"]["message"] == "exit code 2"
    step = PipelineRun.get(ws, failed.id).get_steps()[0]
    assert "run.fail: DataError: bad fold" in step.get_stderr_log()
    with pytest.raises(UsageError, match=r"run.parent.fail\(error_details\)"):
        step.fail()


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
    assert list(Experiment(ws, "pipes").get_runs(tags="nope")) == []
    assert len(list(Experiment(ws, "pipes").get_runs(include_children=True))) == 3
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


# hello_with_children.py (track-and-monitor-experiments/manage-runs), as written, then a named and
# a nested child, and one left open (it ends with its step).
HELLO_WITH_CHILDREN = """
from azureml.core import Run

run = Run.get_context()

child_runs = run.create_children(count=5)
for c, child in enumerate(child_runs):
    child.log(name="Hello from child run ", value=c)
    child.complete()

with run.child_run(name="part") as part:
    part.tag("stage", "fit")
    grandchild = part.child_run()
    grandchild.log("depth", 2)
    grandchild.complete()
left_open = run.child_run()
left_open.log("open", 1)
print("child ids", child_runs[0].id, part.id, grandchild.id)
"""


def test_child_runs_made_in_a_step_are_recorded_with_their_metrics(ws, project, invoke):
    run = script_run(ws, project, "explore-runs", HELLO_WITH_CHILDREN, arguments=())
    run.wait_for_completion(show_output=True)
    children = run.get_children()
    assert [c.get_status() for c in children] == ["Completed"] * 7  # the open one ended with its step
    step_id = f"{run.id}_{run._step()['id']}"  # the step run's id (client/child_runs.py)
    assert [c.id for c in children] == [f"{step_id}#{n}" for n in range(7)]
    assert children[3].get_metrics() == {"Hello from child run ": 3}
    assert children[3].get_tags() == {"azureml.batch_child_number": "3"}
    part = children[5]
    assert part.display_name == "part" and part.get_tags() == {"stage": "fit"}
    (grandchild,) = part.get_children()
    assert grandchild.id == f"{step_id}#5#0" and grandchild.get_metrics() == {"depth": 2}
    assert len(run.get_children(recursive=True)) == 8
    assert Run.get(ws, grandchild.id).get_metrics() == {"depth": 2}
    assert children[6].get_details()["status"] == "Completed"
    shown = invoke("show", str(run.id)).output
    assert 'child train.py#5 "part": Completed' in shown and "child train.py#5#0: Completed" in shown
    assert [s.name for s in PipelineRun(run.experiment, run.id).get_steps()] == ["train.py"]  # not its children


def test_an_interactive_run_as_the_manage_runs_sample_logs_it(ws, monkeypatch, invoke):
    monkeypatch.chdir(ws.root)
    (ws.root / ".amlignore").write_text("/outputs\n")  # as the sample writes it
    exp = Experiment(workspace=ws, name="explore-runs")
    notebook_run = exp.start_logging()
    notebook_run.log(name="message", value="Hello from run!")
    assert notebook_run.get_status() == "Running"
    assert notebook_run.get_details()["status"] == "Running"
    assert (ws.root / "outputs").is_dir()  # made by start_logging, as the SDK makes it
    (ws.root / "outputs" / "note.txt").write_text("kept")
    notebook_run.complete()
    assert notebook_run.get_status() == "Completed"
    assert notebook_run.get_metrics() == {"message": "Hello from run!"}
    assert "outputs/note.txt" in notebook_run.get_file_names()
    fetched_run = Run(exp, notebook_run.id)  # logging-api.ipynb: a plain Run of the interactive run
    assert fetched_run.type is None and fetched_run.get_metrics() == {"message": "Hello from run!"}
    assert fetched_run.get_file_names() == notebook_run.get_file_names()
    fetched_run.tag("Competition Rank", 1)
    assert notebook_run.get_tags() == {"Competition Rank": "1"}  # text, as Azure ML keeps tags
    assert notebook_run.get_snapshot_id()  # of ".", outputs/ left out by .amlignore
    restored = notebook_run.restore_snapshot(path=str(ws.root.parent / "restored"))
    assert (ws.root.parent / "restored" / ".amlignore").exists() and not (ws.root.parent / "restored/outputs").exists()
    assert restored

    with exp.start_logging() as notebook_run:
        notebook_run.log(name="message", value="Hello from run!")
        assert notebook_run.get_status() == "Running"
    assert notebook_run.get_status() == "Completed"

    with exp.start_logging(snapshot_directory=None) as parent_run:
        for c, count in enumerate(range(5)):  # noqa: B007 (the sample's loop, as written)
            with parent_run.child_run() as child:
                child.log(name="Hello from child run", value=c)
    children = list(parent_run.get_children())
    assert [c.get_metrics() for c in children] == [{"Hello from child run": c} for c in range(5)]
    assert Run.get(ws, children[2].id).get_metrics() == {"Hello from child run": 2}
    assert parent_run.get_snapshot_id() is None
    assert type(Run.get(ws, parent_run.id)).__name__ == "InteractiveRun"
    assert "child interactive#4: Completed" in invoke("show", str(parent_run.id)).output
    failing = exp.start_logging(snapshot_directory=None)
    with pytest.raises(ZeroDivisionError):
        with failing:
            raise ZeroDivisionError("division by zero")
    assert failing.get_status() == "Failed" and "division by zero" in failing.get_details()["error"]["error"]["message"]
    with pytest.raises(UsageError, match="numbers runs itself"):
        exp.start_logging(run_id="mine")
    with pytest.raises(TypeError):
        exp.start_logging(snapshot_dir=None)


def test_a_script_run_canceled_before_its_step_started_has_the_snapshot_of_its_submission(ws, project, tmp_path):
    """manage-runs.ipynb restores the snapshot of a run it failed as soon as it submitted it: Azure
    took it at submission. localpipe names it then and copies it from the source folder while that
    is unchanged; once the folder has changed, one line says why there is none."""
    from localpipe.errors import NotFoundError

    run = script_run(ws, project, "explore-runs", "import time\ntime.sleep(30)\n", arguments=())
    (ws.root / "train" / ".amlignore").write_text("/outputs\n")
    assert run.get_snapshot_id()  # named at submission, before the step starts
    run.fail()
    assert run.get_status() == "Failed"
    with pytest.raises(NotFoundError, match="has changed since it was submitted"):
        run.restore_snapshot(path=str(tmp_path / "changed"))  # .amlignore was added after submission
    (ws.root / "train" / ".amlignore").unlink()
    restored = run.restore_snapshot(path=str(tmp_path / "snapshots"))
    assert sorted(os.listdir(restored)) == ["train.py"]
    assert (tmp_path / "snapshots" / "train.py").read_text() == "import time\ntime.sleep(30)\n"


def test_a_restored_snapshot_holds_the_files_snapshotted_never_what_a_link_the_step_left_points_at(
    ws, project, tmp_path
):
    """The step's copy of its source is where it runs: a link or a fifo it leaves there (a container
    step's link names a host path) is no part of the snapshot, and restoring neither reads through
    the link nor blocks on the fifo."""
    secret = tmp_path / "secret.txt"
    secret.write_text("not the run's")
    run = script_run(ws, project)
    run.wait_for_completion()
    copied = run._step_folder() / "snapshot"
    (copied / "leaked.txt").symlink_to(secret)
    (copied / "sub").mkdir()
    (copied / "sub" / "leaked_folder").symlink_to(tmp_path)
    os.mkfifo(copied / "sub" / "pipe")
    restored = Path(run.restore_snapshot(path=str(tmp_path / "restored")))
    assert sorted(str(p.relative_to(restored)) for p in restored.rglob("*")) == ["sub", "train.py"]
    assert (restored / "train.py").read_bytes() == (ws.root / "train" / "train.py").read_bytes()


def test_run_members_on_a_finished_script_run(ws, project, tmp_path):
    from localpipe import Environment

    run = script_run(ws, project)
    run.wait_for_completion()
    env = run.get_environment()  # using-environments.ipynb: run.get_environment()
    assert isinstance(env, Environment) and env.python.user_managed_dependencies
    assert env.name == ScriptRunConfig("x", "y.py").run_config.environment.name  # the one it ran in
    model = run.register_model(model_name="x-test", model_path="outputs/x_test.pkl")
    assert model.version == 1 and model.run.id == run.id
    assert run.clean() == [] or all("Removed" in line for line in run.clean())
    with pytest.raises(UserErrorException, match="Either count or tag_key"):
        run.create_children()
    with pytest.raises(UserErrorException, match="more than 100"):
        run.create_children(count=101)
    made = run.create_children(tag_key="fold", tag_values=["a", "b"])
    assert [c.get_tags() for c in made] == [{"fold": "a"}, {"fold": "b"}]
    made[0].fail(error_code="DataError")  # no details: "failed", as every run's fail() words it
    assert made[0].get_status() == "Failed" and made[1].get_status() == "Running"
    assert made[0].get_details()["error"]["error"]["message"] == "DataError: failed"
    assert run.get_children(status="Running") and len(run.get_children()) == 2
    project("other/hello.py", "print('hello')\n")
    child = run.submit_child(ScriptRunConfig(source_directory=str(ws.root / "other"), script="hello.py"))
    child.wait_for_completion()
    assert child.get_properties()["azureml.parentRunId"] == str(run.id)
    assert run.take_snapshot(str(ws.root / "other")) if run.get_snapshot_id() is None else True
    with pytest.raises(UserErrorException, match="already has one"):
        run.take_snapshot(str(ws.root / "other"))
    pipeline_run = Experiment(ws, "p").submit(
        Pipeline(ws, [PythonScriptStep("hello.py", source_directory=str(ws.root / "other"))])
    )
    pipeline_run.wait_for_completion(show_output=False)
    with pytest.raises(UsageError, match="its children are its steps"):
        pipeline_run.child_run()


def test_experiment_archive_reactivate_delete_and_from_directory(ws, project, monkeypatch):
    run = script_run(ws, project, "old")
    run.wait_for_completion()
    exp = Experiment(ws, "old")
    exp.archive()
    assert exp.archived_time and [e.name for e in Experiment.list(ws)] == []
    assert [e.name for e in Experiment.list(ws, view_type="ArchivedOnly")] == ["old"]
    with pytest.raises(UserErrorException, match="Cannot rename"):
        exp.reactivate(new_name="new")
    exp.reactivate()
    assert exp.archived_time is None and [e.name for e in Experiment.list(ws)] == ["old"]
    folder = run._step_folder()
    Experiment.delete(ws, exp.id)
    assert Experiment.list(ws, view_type="All") == [] and not folder.exists()
    (ws.root / ".azureml").mkdir()
    scope = "/subscriptions/s/resourceGroups/r/providers/Microsoft.MachineLearningServices/workspaces/w/projects/proj"
    (ws.root / ".azureml" / "project.json").write_text(json.dumps({"Id": "1", "Scope": scope}))
    assert Experiment.from_directory(str(ws.root)).name == "proj"
    with pytest.raises(UserErrorException, match="no project found"):
        Experiment.from_directory(str(ws.root.parent))


def test_workspace_default_clusters_setup_and_delete(ws, monkeypatch, tmp_path):
    from localpipe import ComputeTarget, Workspace

    assert ws.get_default_compute_target("CPU") is None
    ComputeTarget.create(ws, Workspace.DEFAULT_CPU_CLUSTER_NAME, Workspace.DEFAULT_CPU_CLUSTER_CONFIGURATION)
    assert ws.get_default_compute_target("cpu").name == "cpu-cluster"
    assert Workspace.DEFAULT_GPU_CLUSTER_CONFIGURATION.vm_size == "STANDARD_NC6"
    with pytest.raises(ValueError, match="CPU and GPU"):
        ws.get_default_compute_target("TPU")
    monkeypatch.chdir(ws.root)
    assert Workspace.setup() == ws
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    monkeypatch.chdir(fresh)
    assert Workspace.setup().root == fresh.resolve() and (fresh / ".localpipe").is_dir()
    ws.delete()
    assert not ws.state_dir.exists() and ws.root.exists()


def test_steps_graph_labels_and_active_runs(ws, project):
    from localpipe import AmlCompute, CommandStep, ComputeTarget, Environment, RunConfiguration

    project("a/a.py", "import time; time.sleep(30)\n")
    first = PythonScriptStep("a.py", source_directory=str(ws.root / "a"), compute_target="local")
    second = CommandStep(command="python -c pass", name="second")
    second.run_after(first)
    assert second.run_after_steps == [first] and first.step_type == "PythonScriptStep"
    assert second.step_type == "CommandStep"
    graph = Pipeline(ws, [second]).graph
    assert [n.name for n in graph.nodes] == ["a.py", "second"] and graph.edges == [("a.py", "second", None)]
    assert RunConfiguration().history.output_collection is True
    env = Environment("labelled")
    env.register(ws)
    env.environment_variables = {"A": "1"}
    env.register(ws)
    Environment.label(ws, "labelled", "1", ["prod"])
    assert Environment.get(ws, "labelled", label="prod").version == "1"
    Environment.label(ws, "labelled", "2", ["prod"])
    assert Environment.get(ws, "labelled", label="prod").version == "2"
    with pytest.raises(Exception, match="no version labelled"):
        Environment.get(ws, "labelled", label="none")
    cluster = ComputeTarget.create(ws, "cpu-cluster", AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2"))
    project("b/b.py", "import time; time.sleep(60)\n")
    run = Experiment(ws, "busy").submit(
        Pipeline(ws, [PythonScriptStep("b.py", source_directory=str(ws.root / "b"), compute_target="cpu-cluster")])
    )
    try:
        assert [r.id for r in cluster.get_active_runs()] == [run.id]
        assert list(cluster.get_active_runs(tags="absent")) == []
        # list_nodes: the step running on the cluster holds one node's worth (its claim), in Azure's form.
        [node] = wait_for(cluster.list_nodes, what="b.py's claim on cpu-cluster")
        assert node["nodeState"] == "running" and node["runId"] == run.id and node["nodeId"].startswith("cpu-cluster-")
    finally:
        run.cancel()
    assert wait_for(lambda: cluster.list_nodes() == [], what="the canceled step's claim released")


def test_handles_of_a_run_gc_forgot_say_it_does_not_exist(ws, project, invoke):
    """Every member, not only some: the others leaked the ORM's exception with its SQL, or wrote
    nothing and said nothing (a step run's tag)."""
    from localpipe.errors import NotFoundError

    run = Experiment(ws, "pipes").submit(two_step_pipeline(ws, project))
    run.wait_for_completion(show_output=False)
    step = run.find_step_run("a")[0]
    assert invoke("gc", "--keep-last", "0").exit_code == 0
    for member in (
        run.get_graph,
        lambda: run.publish_pipeline(name="p", description="d", version="1"),
        lambda: step.tag("k", "v"),
        lambda: step.add_properties({"k": "v"}),
    ):
        with pytest.raises(NotFoundError, match="does not exist"):
            member()


def test_tags_are_text_and_a_run_details_hold_no_error_unless_it_failed(ws, project):
    run = Experiment(ws, "pipes").submit(two_step_pipeline(ws, project))
    run.wait_for_completion(show_output=False)
    run.tag("a", "b")
    run.tag(7, 5)  # was a TypeError once a text key was there (keys sorted as JSON)
    run.set_tags({"n": 2.5, "none": None})
    assert run.get_tags() == {"a": "b", "7": "5", "n": "2.5", "none": None}
    assert "error" not in run.get_details()


def test_a_step_logs_numpy_numbers_and_cannot_change_a_property_it_added(ws, project):
    project(
        "np/s.py",
        """
        import numpy as np
        from azureml.core import Run
        run = Run.get_context()
        run.log("f32", np.float32(0.5))
        run.log("i64", np.int64(3))
        run.log_list("arr", np.arange(3))
        run.add_properties({"p": "first"})
        run.add_properties({"p": "first"})  # the same value again: allowed
        try:
            Run.get_context().add_properties({"p": "second"})
        except Exception as exc:
            print("refused:", exc)
        """,
    )
    run = Experiment(ws, "np").submit(
        Pipeline(ws, [PythonScriptStep("s.py", name="s", source_directory=str(ws.root / "np"))])
    )
    assert run.wait_for_completion(show_output=False) == "Completed"
    step = run.find_step_run("s")[0]
    assert step.get_metrics() == {"f32": 0.5, "i64": 3, "arr": [0, 1, 2]}
    assert step.get_properties() == {"p": "first"}
    printed = (ws.state_dir / "runs" / run.id / "s" / "stdout.log").read_text()
    assert f"refused: run {step.id}: property \"p\" is already 'first': properties cannot change; use a tag" in printed


def test_pipeline_parameters_that_are_not_a_dict_are_one_clear_error(ws, project):
    with pytest.raises(UserErrorException, match="pipeline_parameters is a list: pass a dict of parameter names"):
        Experiment(ws, "pipes").submit(two_step_pipeline(ws, project), pipeline_parameters=[("n", 1)])
