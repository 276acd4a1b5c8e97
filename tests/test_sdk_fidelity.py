"""The Azure ML SDK's own usage, as the official samples write it (issue 14), run for real."""

from __future__ import annotations

import os
import signal

import psutil
import pytest

from localpipe import Experiment, Pipeline, PipelineData, PythonScriptStep
from tests.conftest import wait_for

EXTRACT = "import os, sys\nopen(os.path.join(sys.argv[2], 'x.txt'), 'w').write('extracted')\n"
USE = "import os, sys\nprint('read', open(os.path.join(sys.argv[2], 'x.txt')).read())\n"


def data_dependency(ws, project) -> Pipeline:
    """The data-dependency sample's form: a bare PipelineData in the consumer's ``arguments`` and
    in its ``inputs``, and in the producer's ``arguments`` and ``outputs``."""
    project("a/extract.py", EXTRACT)
    project("b/use.py", USE)
    processed = PipelineData("processed_data1", datastore=ws.get_default_datastore())
    extract = PythonScriptStep(
        script_name="extract.py",
        source_directory=str(ws.root / "a"),
        arguments=["--output_extract", processed],
        outputs=[processed],
        name="extract.py",
    )
    use = PythonScriptStep(
        script_name="use.py",
        source_directory=str(ws.root / "b"),
        arguments=["--input_data", processed],
        inputs=[processed],
        name="use.py",
    )
    return Pipeline(ws, [extract, use])


def test_a_pipeline_data_listed_in_a_consumers_inputs_and_arguments_is_its_input(ws, project, run_pipeline):
    pipeline = data_dependency(ws, project)
    assert pipeline.validate() == []
    run_id, status, _ = run_pipeline(pipeline)
    assert status == "Completed"
    log = (ws.root / ".localpipe" / "runs" / str(run_id) / "use.py" / "stdout.log").read_text()
    assert log == "read extracted\n"


def test_waiting_on_a_run_whose_scheduler_died_as_an_unreaped_child_ends(ws, project):
    """Experiment.submit starts the scheduler as a child of this process; killed, it stays a
    zombie (nobody here reaps it): wait_for_completion must see that it is gone."""
    project("a/extract.py", "import time\ntime.sleep(60)\n")
    step = PythonScriptStep(script_name="extract.py", source_directory=str(ws.root / "a"), name="slow")
    run = Experiment(ws, "zombie").submit(Pipeline(ws, [step]))
    scheduler = run._history.runs.get(run.id)["scheduler_pid"]
    wait_for(lambda: run.get_status() == "Running", timeout=30, what="the run to start")
    os.kill(scheduler, signal.SIGKILL)
    wait_for(lambda: psutil.Process(scheduler).status() == psutil.STATUS_ZOMBIE, timeout=10, what="a zombie")
    assert run.wait_for_completion(show_output=False, raise_on_error=False, timeout_seconds=30) == "Failed"
    os.waitpid(scheduler, 0)


def test_a_misspelled_keyword_is_a_type_error_as_in_the_sdk(ws, tmp_path):
    """Item 3: none of these may be accepted and silently change what runs (Pipeline's is the SDK's
    ValueError)."""
    from localpipe import AmlCompute, CommandStep, Dataset, OutputFileDatasetConfig, Workspace

    data = tmp_path / "t.csv"
    data.write_text("a\n1\n")
    pipeline = Pipeline(ws, [PythonScriptStep("a.py", name="a", source_directory=str(tmp_path))])
    calls = {
        "source_directry": lambda: PythonScriptStep("a.py", source_directry="src"),
        "argumnets": lambda: PythonScriptStep("a.py", argumnets=["x"]),
        "comand": lambda: CommandStep(comand="ls"),
        "pipline": lambda: Pipeline(ws, [], pipline=1),
        "pipeline_paramters": lambda: Experiment(ws, "typo").submit(pipeline, pipeline_paramters={"a": 1}),
        "destinaton": lambda: OutputFileDatasetConfig("out", destinaton=None),
        "seperator": lambda: Dataset.Tabular.from_delimited_files(str(data), seperator=";"),
        "vm_sise": lambda: AmlCompute.provisioning_configuration(vm_sise="STANDARD_NC6"),
        "pth": lambda: Workspace.from_config(pth="."),
    }
    for typo, call in calls.items():
        try:
            call()
        except (TypeError, ValueError) as exc:
            assert isinstance(exc, ValueError if typo == "pipline" else TypeError), (typo, exc)
            assert typo in str(exc), (typo, exc)
        else:
            raise AssertionError(f"{typo}= was accepted")
    assert list(Experiment(ws, "typo").get_runs()) == []  # nothing was submitted


def test_options_localpipe_does_not_honour_yet_are_refused_by_name():
    from localpipe import OutputFileDatasetConfig
    from localpipe.errors import UsageError

    for call, name in [
        (lambda: OutputFileDatasetConfig("out").as_upload(source_globs=["*.csv"]), "source_globs"),
        (lambda: OutputFileDatasetConfig("out", partition_format="{x}/"), "partition_format"),
    ]:
        try:
            call()
        except UsageError as exc:
            assert f"{name}=" in str(exc) and "not supported by localpipe yet" in str(exc)
        else:
            raise AssertionError(f"{name} was accepted")


def test_resolve_closure_false_keeps_only_the_steps_given(ws, project):
    pipeline = data_dependency(ws, project)
    producer, consumer = pipeline.steps
    only = Pipeline(ws, [consumer], resolve_closure=False)
    assert only.steps == [consumer]
    assert only.validate() == [
        'step "use.py": input "processed_data1" is produced by step "extract.py", which is not in the pipeline: '
        "add it (resolve_closure=False keeps only the steps given)"
    ]
    assert set(Pipeline(ws, [consumer]).steps) == {producer, consumer}


def test_the_workspace_constructors_of_the_samples(ws, monkeypatch, tmp_path):
    """Item 8: Workspace(subscription_id, resource_group, workspace_name) is the nearest workspace
    under those names; Workspace.create(name, ...) makes the folder name, refusing an existing one
    unless exist_ok, as the SDK does; write_config lets from_config find the names again."""
    from localpipe import Workspace
    from localpipe.errors import UserErrorException

    monkeypatch.chdir(ws.root)
    azure = Workspace("0000-sub", "rg-ml", "azure-ws")
    assert (azure.root, azure.name, azure.subscription_id, azure.resource_group) == (
        ws.root,
        "azure-ws",
        "0000-sub",
        "rg-ml",
    )
    made = Workspace.create(name="made", subscription_id="s", resource_group="g", location="westeurope")
    assert made.root == ws.root / "made" and (made.state_dir / "history.db").exists()
    assert (made.name, made.location) == ("made", "westeurope")
    with pytest.raises(UserErrorException, match="already exists"):
        Workspace.create("made")
    assert Workspace.create("made", exist_ok=True).root == made.root
    made.write_config()
    found = Workspace.from_config(made.root)
    assert (found.name, found.subscription_id, found.resource_group) == ("made", "s", "g")


def test_pipeline_submit_and_publish_as_the_samples_call_them(ws, project):
    """``pipeline.submit(experiment_name)`` is Experiment.submit; ``pipeline.publish(...)`` and
    ``run.publish_pipeline(...)`` (the publishing samples' next cells) give published pipelines."""
    project("src/s.py", "print('ran')\n")
    pipeline = Pipeline(ws, [PythonScriptStep(script_name="s.py", source_directory=str(ws.root / "src"))])
    run = pipeline.submit("by-pipeline", regenerate_outputs=True)
    assert (run.experiment.name, run.wait_for_completion(show_output=False)) == ("by-pipeline", "Completed")
    with pytest.raises(TypeError, match="pipeline_paramters"):
        pipeline.submit("by-pipeline", pipeline_paramters={})
    published = pipeline.publish(name="p", description="d")
    from_run = run.publish_pipeline(name="p", description="d", version="1.0")
    assert (published.name, from_run.version, from_run.status) == ("p", "1.0", "Active")
    assert published.id != from_run.id and published.total_run_steps == from_run.total_run_steps == 1
    with pytest.raises(AttributeError, match="has no attribute 'pubish'"):
        getattr(pipeline, "pubish")  # noqa: B009 (the attribute must be looked up at run time)


def test_the_azure_exceptions_have_the_sdks_constructor_and_attributes():
    """``except ComputeTargetException as e: print(e.message)`` and ``UserErrorException(msg)``, as the
    samples write them; AzureMLException is the base of every localpipe error."""
    from localpipe.errors import ComputeTargetException, LocalpipeError, NotFoundError, UserErrorException

    try:
        try:
            raise OSError("disk")
        except OSError as cause:
            raise ComputeTargetException("no target cpu", inner_exception=cause) from None
    except LocalpipeError as caught:
        assert (caught.message, str(caught.inner_exception)) == ("no target cpu", "disk")
    error = UserErrorException("bad spec", target="env", reference_code="x")
    assert (error.message, error.target, error.inner_exception) == ("bad spec", "env", None)
    with pytest.raises(TypeError):
        UserErrorException()
    try:
        try:
            {}["k"]
        except KeyError:
            raise NotFoundError("no run 3") from None
    except NotFoundError as caught:
        assert caught.inner_exception is None  # `from None` hides the context, as it does for tracebacks


def test_the_workspace_members_the_samples_use(ws, monkeypatch, tmp_path):
    """Item 8: set_default_datastore (kept in history.db: another process sees it), update / tags /
    get_details, datasets, Workspace.get(name) and Workspace.list(subscription_id) from the folder."""
    from localpipe import Dataset, Datastore, Workspace
    from localpipe.client.workspace import history_of
    from localpipe.errors import UserErrorException

    monkeypatch.chdir(ws.root)
    assert ws.get_default_datastore().name == "workspaceblobstore"
    (tmp_path / "lake").mkdir()
    Datastore.register_local(ws, "lake", tmp_path / "lake")
    ws.set_default_datastore("lake")
    with pytest.raises(UserErrorException, match='datastore "lakes" does not exist.*register_local'):
        ws.set_default_datastore("lakes")
    ws.update(description="team models", tags={"team": "vision"})
    assert history_of(ws).registry.settings()["default_datastore"] == "lake"
    again = Workspace.get("prod-ws", subscription_id="sub", resource_group="rg")
    assert (again.root, again.name, again.get_default_datastore().name) == (ws.root, "prod-ws", "lake")
    details = again.get_details()
    assert (details["description"], details["tags"], details["name"]) == ("team models", {"team": "vision"}, "prod-ws")
    assert details["id"].endswith("/resourceGroups/rg/providers/Microsoft.MachineLearningServices/workspaces/prod-ws")
    assert Workspace.list("sub") == {ws.name: [ws]}
    monkeypatch.chdir(tmp_path)
    assert Workspace.list("sub") == {}
    (tmp_path / "d.csv").write_text("a\n1\n")
    Dataset.File.from_files(str(tmp_path / "d.csv")).register(ws, "numbers")
    assert list(ws.datasets) == ["numbers"] and ws.datasets["numbers"].version == 1
    assert (ws.tags, Workspace.DEFAULT_CPU_CLUSTER_NAME) == ({"team": "vision"}, "cpu-cluster")


def test_an_environments_spark_section_is_accepted_and_changes_nothing():
    """The parallel-run sample sets ``predict_env.spark.precache_packages = False``."""
    from localpipe import Environment

    plain, with_spark = Environment(name="predict_environment"), Environment(name="predict_environment")
    with_spark.spark.precache_packages = False
    with_spark.spark.packages.append("com.microsoft.ml.spark:mmlspark_2.11:0.15")
    assert with_spark._to_spec() == plain._to_spec()


def test_a_command_step_takes_a_script_run_config_as_its_runconfig(ws, project, run_pipeline):
    """The commandstep sample's form: CommandStep(name=..., runconfig=ScriptRunConfig(source_directory,
    command, compute_target, environment)); the step runs the configuration's command in its folder,
    on its target (it raised AttributeError: 'ScriptRunConfig' object has no attribute 'target')."""
    from localpipe import AmlCompute, CommandStep, ComputeTarget, ScriptRunConfig

    project("commandstep_train/train.py", "import os, sys\nprint(os.path.basename(os.getcwd()), sys.argv[1:])\n")
    cluster = ComputeTarget.create(ws, "cpu-cluster", AmlCompute.provisioning_configuration(vm_size="STANDARD_D2_V2"))
    src = ScriptRunConfig(
        source_directory=str(ws.root / "commandstep_train"),
        command="python train.py --epochs 30",
        compute_target=cluster,
    )
    train = CommandStep(name="train-mnist", runconfig=src)
    run_id, status, steps = run_pipeline(Pipeline(ws, [train]))
    assert status == "Completed"
    assert steps["train-mnist"]["placement"]["cpus"] == 2  # cpu-cluster's claim: its VM size, STANDARD_D2_V2
    step = ws.root / ".localpipe" / "runs" / str(run_id) / "train-mnist"
    assert (step / "stdout.log").read_text() == "snapshot ['--epochs', '30']\n"


def test_the_first_item_of_a_command_list_is_a_command_line_as_in_the_sdk(ws, project, run_pipeline):
    """The SDK splits a command list's first item as a command line (the commandstep sample's
    command=['python train.py --epochs 30']): it was one program's name, and the step failed with
    "could not start 'python train.py --epochs 30'". A first item that is a file (a program whose
    path has a space) is still one program; the other items are never split."""
    import sys

    from localpipe import CommandStep, ScriptRunConfig

    project("src/train.py", "import sys\nprint(sys.argv[1:])\n")
    source = str(ws.root / "src")
    run = Experiment(ws, "script").submit(
        ScriptRunConfig(source_directory=source, command=["python train.py --epochs 30"])
    )
    assert run.wait_for_completion(show_output=False, raise_on_error=False)["status"] == "Completed"
    assert run.get_details_with_logs()["logFiles"] == {"user_logs/std_out.txt": "['--epochs', '30']\n"}

    spaced = ws.root / "my tools" / "python"
    spaced.parent.mkdir()
    spaced.symlink_to(sys.executable)
    steps = [
        CommandStep(["python train.py", "--epochs", "a b"], name="listed", source_directory=source),
        CommandStep([str(spaced), "train.py", "x y"], name="spaced", source_directory=source),
    ]
    run_id, status, _ = run_pipeline(Pipeline(ws, steps))
    assert status == "Completed"
    logs = ws.root / ".localpipe" / "runs" / str(run_id)
    assert (logs / "listed" / "stdout.log").read_text() == "['--epochs', 'a b']\n"
    assert (logs / "spaced" / "stdout.log").read_text() == "['x y']\n"
