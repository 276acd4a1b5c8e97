"""Pipelines as YAML (docs/pipeline-yaml.md): ``Pipeline.load_yaml`` of the SDK's format,
``PipelineRun.save`` / ``PublishedPipeline.save`` / ``PipelineDraft.save`` writing it back, the
round trip keeping the graph and cache keys, ``Schedule.load_yaml``'s two forms, ``localpipe
submit pipeline.yml``, and one clear line for each bad file, with nothing recorded."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from localpipe import (
    Dataset,
    Experiment,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PythonScriptStep,
    Workspace,
)
from localpipe.errors import PipelineYamlError, UserErrorException
from localpipe.sdk.data import DataPath, DataPathComputeBinding
from tests.conftest import write

# The example of the SDK's Pipeline.load_yaml docstring, its ModuleSteps written as
# PythonScriptSteps over local data (its runconfig files left out: they name Windows paths).
SDK_EXAMPLE = """
    pipeline:
        name: SamplePipelineFromYaml
        parameters:
            NumIterationsParameter:
                type: int
                default: 40
            DataPathParameter:
                type: datapath
                default:
                    datastore: workspaceblobstore
                    path_on_datastore: sample2.txt
            NodeCountParameter:
                type: int
                default: 4
        data_references:
            DataReference:
                datastore: workspaceblobstore
                path_on_datastore: testfolder/sample.txt
            Dataset:
                dataset_name: 'titanic'
        default_compute: local
        steps:
            PrepareStep:
                type: PythonScriptStep
                script_name: prepare.py
                source_directory: src
                arguments:
                - '--input1'
                - input:in1
                - '--input2'
                - input:in2
                - '--input3'
                - input:in3
                - '--output'
                - output:output_data
                - '--param'
                - parameter:NUM_ITERATIONS
                parameters:
                    NUM_ITERATIONS:
                        source: NumIterationsParameter
                inputs:
                    in1:
                        source: Dataset
                        type: mount
                    in2:
                        source: DataReference
                    in3:
                        source: DataPathParameter
                outputs:
                    output_data:
                        destination: Output1
                        datastore: workspaceblobstore
                        type: mount
            TrainStep:
                type: PythonScriptStep
                script_name: train.py
                source_directory: src
                arguments:
                - '--input'
                - input:train_input
                - '--output'
                - output:result
                - '--param'
                - parameter:NUM_ITERATIONS
                parameters:
                    NUM_ITERATIONS: 10
                runconfig_parameters:
                    NodeCount:
                        source: NodeCountParameter
                inputs:
                    train_input:
                        source: Output1
                        type: mount
                outputs:
                    result:
                        destination: Output2
                        datastore: workspaceblobstore
                        type: mount
"""

# Each writes what it was given into its output: the test reads the chain of values back.
PREPARE = """
    import argparse, os, pathlib

    p = argparse.ArgumentParser()
    for name in ("--input1", "--input2", "--input3", "--output", "--param"):
        p.add_argument(name)
    a = p.parse_args()
    titanic = sorted(f.name for f in pathlib.Path(a.input1).iterdir())
    text = [",".join(titanic), pathlib.Path(a.input2).read_text(), pathlib.Path(a.input3).read_text(), a.param]
    pathlib.Path(a.output, "prepared.txt").write_text("|".join(text))
"""

TRAIN = """
    import argparse, pathlib

    p = argparse.ArgumentParser()
    for name in ("--input", "--output", "--param"):
        p.add_argument(name)
    a = p.parse_args()
    prepared = pathlib.Path(a.input, "prepared.txt").read_text()
    pathlib.Path(a.output, "trained.txt").write_text(prepared + "|" + a.param)
"""


def _example_data(ws: Workspace, project) -> None:
    store = ws.get_default_datastore()
    write(store.folder / "testfolder" / "sample.txt", "reference")
    write(store.folder / "sample2.txt", "datapath")
    project("titanic/train.csv", "a\n1\n")
    Dataset.File.from_files(str(ws.root / "titanic")).register(ws, "titanic")
    project("src/prepare.py", PREPARE)
    project("src/train.py", TRAIN)


def _output_text(history, run_id: int, step: str, output: str, file: str) -> str:
    from localpipe.state.store import ObjectStore

    outputs = next(s["outputs"] for s in history.runs.details(run_id)["steps"] if s["name"] == step)
    return (ObjectStore(history.layout.objects).path(outputs[output]) / file).read_text()


def test_the_sdk_docstring_example_runs_end_to_end_from_the_command_line(ws, project, history, localpipe):
    _example_data(ws, project)
    project("pipelines/p.yml", SDK_EXAMPLE.replace("source_directory: src", "source_directory: ../src"))

    # From another folder: relative paths are the file's folder's, as a .py pipeline file's are.
    done = localpipe("submit", "pipelines/p.yml", "--param", "NumIterationsParameter=7", check=True, cwd=ws.root)
    assert "run 1 Completed" in done.stdout and "2 completed" in done.stdout, done.stdout
    trained = _output_text(history, 1, "TrainStep", "Output2", "trained.txt")
    # The dataset, the data reference, the datapath parameter, the pipeline parameter given on the
    # command line (through the step's parameter), then the literal parameter of the second step.
    assert trained == "train.csv|reference|datapath|7|10"

    again = localpipe("submit", "pipelines/p.yml", "--param", "NumIterationsParameter=7", check=True)
    assert again.stdout.count("Reused") >= 2, again.stdout
    changed = localpipe("status", "pipelines/p.yml", "--param", "NumIterationsParameter=8", check=True)
    assert 'parameter "NumIterationsParameter" changed' in changed.stdout, changed.stdout


def _three_steps(ws: Workspace, project) -> Pipeline:
    """prepare -> train -> evaluate, with PipelineData between them, a datapath parameter, a
    registered dataset consumed by mount and as itself, a float parameter in arguments and params,
    an int parameter in arguments only."""
    store = ws.get_default_datastore()
    write(store.folder / "raw" / "a.csv", "x\n1\n")
    project("iris/iris.csv", "a\n2\n")
    iris = Dataset.File.from_files(str(ws.root / "iris")).register(ws, "iris")
    project("src/prepare.py", "import sys, pathlib\npathlib.Path(sys.argv[-1], 'splits.txt').write_text('s')\n")
    project("src/train.py", "import sys, pathlib\npathlib.Path(sys.argv[-1]).write_text(sys.argv[2])\n")
    project("src/evaluate.py", "import sys\nprint(open(sys.argv[1]).read())\n")
    raw = PipelineParameter("raw", default_value=DataPath(store, "raw"))
    rate = PipelineParameter("rate", default_value=0.5)
    splits, model = PipelineData("splits"), PipelineData("model", is_directory=False)  # a file: is_directory: false
    source = str(ws.root / "src")
    prepare = PythonScriptStep(
        "prepare.py",
        name="prepare",
        source_directory=source,
        arguments=["--raw", (raw, DataPathComputeBinding()), "--iris", iris.as_named_input("iris").as_mount(), splits],
    )
    train = PythonScriptStep(
        "train.py",
        name="train",
        source_directory=source,
        arguments=["--rate", rate, splits.as_input(), model],
        params={"RATE": rate},
    )
    threshold = PipelineParameter("threshold", default_value=3)  # in arguments only: saved as parameter:threshold
    evaluate = PythonScriptStep(
        "evaluate.py",
        name="evaluate",
        source_directory=source,
        arguments=[model.as_download(), "--min", threshold, "--reference", iris.as_named_input("reference")],
    )
    return Pipeline(ws, [evaluate])


def _statuses(run) -> dict[str, str]:
    return {step["name"]: step["reason"] for step in run._history.runs.details(run.id)["steps"]}


LEGACY = """
    pipeline:
        name: Legacy
        steps:
            Only:
                python_script_step:
                    name: only
                    script_name: a.py
                    source_directory: src
                    allow_reuse: false
                    version: "3"
                compute: local
                inputs:
                    data: {source: Sample, type: download}
        data_references:
            Sample: {datastore: workspaceblobstore, path_on_datastore: sample.txt}
"""


def test_the_sdks_deprecated_spellings_are_read_with_its_warnings(ws, project, monkeypatch):
    project("src/a.py", "print('a')\n")
    write(ws.get_default_datastore().folder / "sample.txt", "s")
    monkeypatch.chdir(ws.root)
    with pytest.warns(UserWarning, match="deprecated"):
        pipeline = Pipeline.load_yaml(ws, str(project("legacy.yml", LEGACY)))
    step = pipeline.graph.steps["only"]
    assert pipeline.description == "Legacy" and (step.allow_reuse, step.version) == (False, "3")
    assert step.source_dir == str(ws.root / "src") and step.inputs["data"].mode == "download"


def test_a_saved_run_loads_back_to_the_same_graph_and_its_submission_reuses_every_step(ws, project, tmp_path):
    run = Experiment(ws, "yaml").submit(_three_steps(ws, project))
    assert run.wait_for_completion() == "Completed"
    folder = tmp_path / "saved"
    folder.mkdir()

    path = run.save(str(folder))

    assert path == str(folder / "pipeline.yml")
    loaded = Pipeline.load_yaml(ws, path)
    assert loaded.graph.to_dict() == run.get_graph().to_dict()
    again = Experiment(ws, "yaml").submit(loaded)
    assert again.wait_for_completion() == "Completed"
    assert _statuses(again) == {name: f'reused from run {run.id} (step "{name}")' for name in _statuses(run)}
    # Its parameters are the pipeline's again: a new value reruns the step that uses it, and after.
    changed = Experiment(ws, "yaml").submit(loaded, pipeline_parameters={"rate": 0.25})
    assert changed.wait_for_completion() == "Completed"
    reasons = _statuses(changed)
    assert reasons["prepare"].startswith("reused") and 'parameter "rate" changed' in reasons["train"], reasons


def test_published_and_draft_pipelines_save_their_snapshots(ws, project, tmp_path):
    from localpipe import PipelineDraft

    pipeline = _three_steps(ws, project)
    run = Experiment(ws, "yaml").submit(pipeline)
    assert run.wait_for_completion() == "Completed"
    published = pipeline.publish("scoring")
    draft = PipelineDraft.create(ws, pipeline, name="tuning", experiment_name="yaml")
    project("src/train.py", "raise SystemExit('edited after publishing')\n")

    saved = Path(published.save(str(tmp_path)))
    drafted = Path(draft.save(str(tmp_path / "draft.yaml")))

    assert saved == tmp_path / "scoring.yml" and drafted.is_file()
    objects = str(ws.root / ".localpipe" / "objects")
    assert saved.read_text().count(f"source_directory: {objects}") == 3
    # The published snapshot, not the edited folder, runs: every step is the first run's.
    again = Experiment(ws, "yaml").submit(Pipeline.load_yaml(ws, str(saved)))
    assert again.wait_for_completion() == "Completed"
    assert all(reason.startswith(f"reused from run {run.id}") for reason in _statuses(again).values())
    loaded = Pipeline.load_yaml(ws, str(drafted)).graph.steps
    drafted_steps = draft.get_graph().steps
    assert loaded.keys() == drafted_steps.keys()
    for name, spec in loaded.items():  # the same steps, each on its snapshot rather than the folder
        assert {**vars(spec), "source_dir": None} == {**vars(drafted_steps[name]), "source_dir": None}
        assert spec.source_dir.startswith(objects)


def test_a_steps_environment_and_time_limit_go_in_a_runconfig_file_beside_the_yaml(ws, project, tmp_path):
    from localpipe import CondaDependencies, Environment, RunConfiguration

    project("src/a.py", "print('a')\n")
    config = RunConfiguration(timeout_seconds=30, max_retries=2)
    config.environment = Environment("tiny")
    config.environment.python.conda_dependencies = CondaDependencies.create(pip_packages=["six==1.16.0"])
    config.environment_variables = {"MODE": "fast"}
    step = PythonScriptStep("a.py", name="a", source_directory=str(ws.root / "src"), runconfig=config)
    published = Pipeline(ws, [step]).publish("env")

    saved = published.save(str(tmp_path / "env.yml"))

    assert (tmp_path / "env.a.runconfig").is_file()
    loaded = Pipeline.load_yaml(ws, saved).graph.steps["a"]
    original = published.get_graph().steps["a"]
    assert (loaded.environment, loaded.timeout_seconds, loaded.max_retries) == (
        original.environment,
        original.timeout_seconds,
        original.max_retries,
    )
    assert loaded.environment["kind"] == "venv" and loaded.environment["variables"] == {"MODE": "fast"}


def test_what_the_format_cannot_say_is_refused_before_anything_is_written(ws, project, tmp_path):
    from localpipe import CommandStep

    project("src/a.py", "print('a')\n")
    first = PythonScriptStep("a.py", name="first", source_directory=str(ws.root / "src"))
    second = PythonScriptStep("a.py", name="second", source_directory=str(ws.root / "src"))
    second.run_after(first)
    command = CommandStep(["python", "-c", "print(1)"], name="shell", source_directory=str(ws.root / "src"))
    write(ws.get_default_datastore().folder / "raw" / "a.csv", "x")
    project("outside/b.csv", "y")
    in_store = Dataset.File.from_files((ws.get_default_datastore(), "raw"))
    outside = Dataset.File.from_files(str(ws.root / "outside"))

    def reading(dataset):
        return Pipeline(ws, [PythonScriptStep("a.py", source_directory=str(ws.root / "src"), arguments=[dataset])])

    cases = {
        "ordered": (Pipeline(ws, [second]), "run_after"),
        "command": (Pipeline(ws, [command]), "is a CommandStep, which the SDK's pipeline YAML has no type for"),
    }
    for name, (pipeline, said) in cases.items():
        published = pipeline.publish(name)
        with pytest.raises(UserErrorException, match=said):
            published.save(str(tmp_path))
    assert [p.name for p in tmp_path.iterdir()] == ["ws"]

    # Datasets that are not registered have ids (publishing saved them): a data reference by id.
    for name, dataset in {
        "direct": in_store.as_named_input("raw"),
        "outside": outside.as_named_input("out").as_mount(),
    }.items():
        published = reading(dataset).publish(name)
        saved = published.save(str(tmp_path / f"{name}.yml"))
        assert f"dataset_id: {dataset.dataset.id}" in open(saved).read()
        loaded = next(iter(Pipeline.load_yaml(ws, saved).graph.steps.values())).inputs
        original = next(iter(published.get_graph().steps.values())).inputs
        assert loaded == original, (loaded, original)


@pytest.mark.parametrize("text", ["parameter:n", "input:data", "output:model", "side_input:lookup"])
def test_a_literal_argument_the_format_reads_as_a_reference_is_refused_before_anything_is_written(
    ws, project, tmp_path, text
):
    # Loaded back, "parameter:n" was the parameter's value (the step got another argv, silently) and
    # "input:data" a file that would not load: the format has no way to say the text itself.
    project("src/a.py", "print('a')\n")
    n = PipelineParameter("n", default_value=1)
    step = PythonScriptStep("a.py", name="job", source_directory=str(ws.root / "src"), arguments=["--n", n, text])
    published = Pipeline(ws, [step]).publish("literal")
    with pytest.raises(UserErrorException) as refused:
        published.save(str(tmp_path))
    assert str(refused.value) == (
        f'cannot save published pipeline "literal" as YAML: step "job": argument 2 is the text "{text}", which the '
        f"pipeline YAML reads as a reference to the step's {text.split(':')[0].replace('_', ' ')} "
        f'"{text.split(":", 1)[1]}" (it has no form for the text itself): give the script another spelling of it'
    )
    assert [p.name for p in tmp_path.iterdir()] == ["ws"]
    saved = Pipeline(ws, [PythonScriptStep("a.py", name="job", source_directory=str(ws.root / "src"),
                                           arguments=["--n", n, "parameters:n", "--x=input:data"])])  # fmt: skip
    loaded = Pipeline.load_yaml(ws, saved.publish("other").save(str(tmp_path / "other.yml")))
    assert next(iter(loaded.graph.steps.values())).argv == ["--n", "1", "parameters:n", "--x=input:data"]


def test_saving_into_a_folder_that_does_not_exist_is_one_line_and_writes_nothing(ws, project, tmp_path):
    # "saved/" (a folder, by its slash) that is not there raised IsADirectoryError from open(), after the
    # step's runconfig file had been written beside it as saved.a.runconfig.
    from localpipe import RunConfiguration

    project("src/a.py", "print('a')\n")
    config = RunConfiguration(timeout_seconds=30)
    step = PythonScriptStep("a.py", name="a", source_directory=str(ws.root / "src"), runconfig=config)
    published = Pipeline(ws, [step]).publish("limited")
    for path in (tmp_path / "saved", tmp_path / "gone" / "x.yml"):
        given = str(path) + (os.sep if path.name == "saved" else "")
        with pytest.raises(UserErrorException) as refused:
            published.save(given)
        missing = given if path.name == "saved" else str(path.parent)
        assert str(refused.value) == (
            f'cannot save published pipeline "limited" to {given}: folder {missing} does not exist: create it'
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ws"]
    (tmp_path / "saved").mkdir()
    assert published.save(str(tmp_path / "saved") + os.sep) == str(tmp_path / "saved" / "limited.yml")


RECURRENCE = """
    Schedule:
        description: "Test create with recurrence"
        recurrence:
            frequency: Week # Can be "Minute", "Hour", "Day", "Week", or "Month".
            interval: 1 # how often fires
            start_time: 2019-06-07T10:50:00
            time_zone: UTC
            hours:
            - 1
            minutes:
            - 0
            time_of_day: null
            week_days:
            - Friday
        pipeline_parameters: {'a':1}
        wait_for_provisioning: True
        wait_timeout: 3600
        datastore_name: ~
        polling_interval: ~
        data_path_parameter_name: ~
        continue_on_step_failure: None
        path_on_datastore: ~
"""


def test_a_time_of_day_yaml_reads_as_a_number_is_refused_saying_to_quote_it(ws, project):
    # YAML 1.1 reads 10:30 unquoted as 630 (base 60) and 09:30 as text: one loaded, the other said
    # "time_of_day should be in the format hh:mm." of a file that wrote exactly that.
    from localpipe import Schedule

    def loaded(value: str):
        text = f"Schedule:\n  recurrence:\n    frequency: Day\n    interval: 1\n    time_of_day: {value}\n"
        return Schedule.load_yaml(ws, str(project("daily.yml", text)))

    assert (loaded("09:30")["recurrence"].hours, loaded("'10:30'")["recurrence"].minutes) == ([9], [30])
    with pytest.raises(PipelineYamlError) as refused:
        loaded("10:30")
    assert str(refused.value) == (
        f"{ws.root / 'daily.yml'}: time_of_day 630 is a number (YAML reads 10:30 unquoted as 630 minutes, in base 60): "
        "quote it, time_of_day: '10:30'"
    )


DATASTORE = """
    Schedule:
        description: "Test create with datastore"
        recurrence: ~
        pipeline_parameters: {}
        wait_for_provisioning: True
        wait_timeout: 3600
        datastore_name: workspaceblobstore
        polling_interval: 5
        data_path_parameter_name: "input_data"
        continue_on_step_failure: None
        path_on_datastore: "incoming"
"""


def test_schedule_load_yaml_reads_the_sdks_two_forms_into_schedules(ws, project):
    from localpipe import Schedule, TimeZone

    project("src/a.py", "print('a')\n")
    data = PipelineParameter("input_data", default_value=DataPath(ws.get_default_datastore(), "incoming"))
    step = PythonScriptStep(
        "a.py", name="a", source_directory=str(ws.root / "src"), arguments=[(data, DataPathComputeBinding())]
    )
    write(ws.get_default_datastore().folder / "incoming" / "x.csv", "x")
    published = Pipeline(ws, [step]).publish("scheduled")

    info = Schedule.load_yaml(ws, str(project("schedules/recurrence.yml", RECURRENCE)))
    by_time = Schedule.create(ws, "weekly", published.id, "yaml", recurrence=info.get("recurrence"),
                              description=info.get("description"))  # fmt: skip
    stored = Schedule.get(ws, by_time.id).recurrence
    assert (stored.frequency, stored.interval, stored.start_time) == ("Week", 1, "2019-06-07T10:50:00")
    assert (stored.time_zone, stored.hours, stored.minutes, stored.week_days) == (TimeZone.UTC, [1], [0], ["Friday"])
    assert info["pipeline_parameters"] == {"a": 1} and info["continue_on_step_failure"] is None

    info = Schedule.load_yaml(ws, str(project("schedules/datastore.yml", DATASTORE)))
    by_data = Schedule.create(
        ws, "on-data", published.id, "yaml",
        datastore=info.get("datastore_name"), polling_interval=info.get("polling_interval"),
        data_path_parameter_name=info.get("data_path_parameter_name"),
        continue_on_step_failure=info.get("continue_on_step_failure"),
        path_on_datastore=info.get("path_on_datastore"),
    )  # fmt: skip
    fetched = Schedule.get(ws, by_data.id)
    assert (fetched.datastore_name, fetched.path_on_datastore, fetched.data_path_parameter_name) == (
        "workspaceblobstore",
        "incoming",
        "input_data",
    )

    with pytest.raises(ValueError, match='must have a "Schedule:" section'):
        Schedule.load_yaml(ws, str(project("schedules/bad.yml", "schedule: {}\n")))


GOOD_STEP = """
            s:
                type: PythonScriptStep
                script_name: a.py
                source_directory: src
"""

BAD_FILES = {
    "no pipeline section": ("steps: {}\n", 'must have a "pipeline:" section'),
    "no steps": ("pipeline:\n    description: nothing\n", "must have at least one step defined"),
    "unknown parameter source": (
        "pipeline:\n  steps:\n" + GOOD_STEP + "                parameters:\n                    N: {source: Missing}\n",
        "is assigned to source Missing, which doesn't exist",
    ),
    "argument naming no input": (
        "pipeline:\n  steps:\n" + GOOD_STEP + "                arguments: ['input:nothing']\n",
        'argument "input:nothing" names no input of the step',
    ),
    "wrong bind_mode": (
        "pipeline:\n  steps:\n"
        + GOOD_STEP
        + "                inputs:\n                    i: {source: d, bind_mode: copy}\n",
        "Input bind_mode/type copy for input i in step s must be mount or download",
    ),
    "syntax error": ("pipeline:\n  steps:\n    s: [unclosed\n    t: 1\n", "YAML syntax error at line 4"),
    "step without type": (
        "pipeline:\n  steps:\n    s:\n      script_name: a.py\n",
        "step s has no type: give it type: PythonScriptStep",
    ),
    "unsupported parameter type": (
        "pipeline:\n  parameters:\n    P: {type: list}\n  steps:\n" + GOOD_STEP,
        "Parameter type list currently unsupported (parameter P)",
    ),
    "unknown module": (
        "pipeline:\n  steps:\n    s:\n      type: ModuleStep\n      name: TestModule\n",
        'step s: no module has the name "TestModule": create it with Module.create',
    ),
    "module step without its module": (
        "pipeline:\n  steps:\n    s:\n      type: ModuleStep\n      version: '1'\n",
        "Step s does not contain a module ID or name (one must be specified)",
    ),
    "cloud step": (
        "pipeline:\n  steps:\n    s:\n      type: DatabricksStep\n      notebook_path: /x\n",
        "DatabricksStep, which needs Azure (Azure Databricks)",
    ),
}


def refused_by_the_cli(ws, project, localpipe, text: str, said: str) -> Path:
    """`localpipe submit bad.yml` of ``text``: exit 2, one line naming the file and ``said``, nothing
    recorded; the file's path."""
    project("src/a.py", "print('a')\n")
    file = project("bad.yml", text)
    result = localpipe("submit", "bad.yml")
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    assert str(file) in lines[0] and said in lines[0], lines[0]
    with sqlite3.connect(ws.root / ".localpipe" / "history.db") as db:
        assert db.execute("select count(*) from pipeline_run").fetchone() == (0,)
    assert not any((ws.root / ".localpipe" / "runs").glob("*"))
    return file


@pytest.mark.parametrize("case", BAD_FILES)
def test_a_bad_pipeline_yaml_is_one_line_naming_file_and_fix_and_records_nothing(case, ws, project, localpipe):
    text, said = BAD_FILES[case]
    file = refused_by_the_cli(ws, project, localpipe, text, said)
    # From Python it is the SDK's exception class: a ValueError.
    with pytest.raises(ValueError, match=said.split(" (")[0]) as caught:
        Pipeline.load_yaml(ws, str(file))
    assert isinstance(caught.value, PipelineYamlError)


SCORE = """
import argparse, os

def init():
    global label
    parser = argparse.ArgumentParser()
    parser.add_argument("--labels")
    label = open(parser.parse_known_args()[0].labels).read().strip()

def run(mini_batch):
    return [f"{label} {os.path.basename(path)} {open(path).read().strip()}" for path in mini_batch]
"""

PARALLEL = """
    pipeline:
        data_references:
            numbers: {dataset_name: numbers}
            labels: {datastore: workspaceblobstore, path_on_datastore: labels.txt}
        steps:
            score:
                type: ParallelRunStep
                parallel_run_config: config/score.yml
                arguments: ['--labels', 'side_input:labels']
                inputs:
                    files: {source: numbers}
                side_inputs:
                    labels: {source: labels, bind_mode: download}
                outputs:
                    scores: {destination: scores}
"""


def test_a_parallel_run_step_is_read_with_its_config_file_relative_to_the_current_folder_and_a_side_input(
    ws, project, monkeypatch
):
    from localpipe import Environment, ParallelRunConfig

    project("score/score.py", SCORE)
    for number in range(5):
        project(f"numbers/n{number}.txt", f"{number * 7}\n")
    Dataset.File.from_files(str(ws.root / "numbers")).register(ws, "numbers")
    Environment("local").register(ws)
    write(ws.get_default_datastore().folder / "labels.txt", "seven")
    config = ParallelRunConfig(
        environment=Environment.get(ws, "local"),
        entry_script="score.py",
        source_directory="score",
        mini_batch_size=2,
        error_threshold=-1,
        output_action="append_row",
        compute_target="local",
        node_count=1,
        process_count_per_node=2,
    )
    monkeypatch.chdir(ws.root)  # the SDK's rule: relative paths are the current folder's
    (ws.root / "config").mkdir()
    config.save_to_yaml("config/score.yml")
    file = project("pipelines/parallel.yml", PARALLEL)

    run = Experiment(ws, "yaml").submit(Pipeline.load_yaml(ws, str(file)))

    assert run.wait_for_completion() == "Completed"
    scores = _output_text(run._history, run.id, "score", "scores", "parallel_run_step.txt")
    assert sorted(scores.split("\n")[:-1]) == [f"seven n{n}.txt {n * 7}" for n in range(5)]


def _parallel_pipeline(ws, project, environment=None, **given):
    from localpipe import Environment, ParallelRunConfig, ParallelRunStep
    from localpipe.sdk.data import DataReference

    project("score/score.py", SCORE)
    for number in range(5):
        project(f"numbers/n{number}.txt", f"{number * 7}\n")
    numbers = Dataset.File.from_files(str(ws.root / "numbers"))  # saved at submission, not registered
    write(ws.get_default_datastore().folder / "labels.txt", "seven")
    labels = DataReference(ws.get_default_datastore(), "labels", "labels.txt", mode="download")
    settings = {"mini_batch_size": 2, "process_count_per_node": 2, "run_invocation_timeout": 30} | given
    config = ParallelRunConfig(
        environment=environment or Environment("local"),
        entry_script="score.py",
        source_directory=str(ws.root / "score"),
        error_threshold=-1,
        output_action="append_row",
        append_row_file_name="scores.txt",
        compute_target="local",
        node_count=1,
        environment_variables={"SCORING": "yes"},
        **settings,
    )
    scores = PipelineData("scores")
    step = ParallelRunStep(
        "score", config, [numbers.as_named_input("files")], scores, side_inputs=[labels],
        arguments=["--labels", labels],
    )  # fmt: skip
    return Pipeline(ws, [step])


def test_a_saved_parallel_run_step_loads_back_to_the_same_graph_and_is_reused(ws, project, tmp_path):
    from localpipe import Environment, PipelineDraft

    Environment("local").register(ws)
    pipeline = _parallel_pipeline(ws, project)
    run = Experiment(ws, "yaml").submit(pipeline)
    assert run.wait_for_completion() == "Completed"

    path = run.save(str(tmp_path / "parallel.yml"))

    config = tmp_path / "parallel.score.parallel_run_config.yml"
    assert config.is_file() and '"environment": "local"' in config.read_text()
    assert "type: ParallelRunStep" in open(path).read() and "side_input:labels" in open(path).read()
    loaded = Pipeline.load_yaml(ws, path)
    assert loaded.graph.to_dict() == run.get_graph().to_dict()
    again = Experiment(ws, "yaml").submit(loaded)
    assert again.wait_for_completion() == "Completed"
    assert _statuses(again) == {"score": f'reused from run {run.id} (step "score")'}
    scores = _output_text(again._history, again.id, "score", "scores", "scores.txt")
    assert sorted(scores.split("\n")[:-1]) == [f"seven n{n}.txt {n * 7}" for n in range(5)]
    # A published pipeline's and a draft's files name their snapshots; they plan to the same steps.
    for frozen in (pipeline.publish("scoring"), PipelineDraft.create(ws, pipeline, name="d", experiment_name="y")):
        step = Pipeline.load_yaml(ws, frozen.save(str(tmp_path / "frozen.yml"))).graph.steps["score"]
        assert {**vars(step), "source_dir": None} == {**vars(frozen.get_graph().steps["score"]), "source_dir": None}


def test_a_parallel_run_step_in_an_unregistered_environment_is_refused_before_anything_is_written(
    ws, project, tmp_path
):
    from localpipe import CondaDependencies, Environment

    environment = Environment("unregistered")
    environment.python.conda_dependencies = CondaDependencies.create(pip_packages=["six==1.16.0"])
    published = _parallel_pipeline(ws, project, environment).publish("unregistered")
    with pytest.raises(UserErrorException) as raised:
        published.save(str(tmp_path / "p.yml"))
    assert str(raised.value) == (
        'cannot save published pipeline "unregistered" as YAML: step "score" is a ParallelRunStep whose environment '
        "is no registered one, which its parallel_run_config file must name: register it "
        "(Environment(name).register(ws)), submit again and save that run"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ws"]


def test_a_tabular_parallel_run_step_and_one_reading_an_output_save_to_the_same_graph(ws, project, tmp_path):
    """Every option the driver is given, a table cut by partition keys, an output of another step as
    the input, the defaults written out: the loaded steps are the published ones."""
    from localpipe import Environment, ParallelRunConfig, ParallelRunStep

    Environment("local").register(ws)
    project("score/score.py", "def init():\n    pass\n\ndef run(batch):\n    return []\n")
    project("src/make.py", "import pathlib, sys\npathlib.Path(sys.argv[1]).mkdir()\n")
    project("rows/a.csv", "k,v\na,1\nb,2\n")
    table = Dataset.Tabular.from_delimited_files(str(ws.root / "rows/a.csv")).register(ws, "rows")

    def config(**given):
        return ParallelRunConfig(
            environment=Environment.get(ws, "local"), entry_script="score.py", source_directory=str(ws.root / "score"),
            compute_target="local", node_count=1, error_threshold=5, output_action="summary_only", **given,
        )  # fmt: skip

    made = PipelineData("made")
    make = PythonScriptStep("make.py", name="make", source_directory=str(ws.root / "src"), arguments=[made],
                            outputs=[made])  # fmt: skip
    by_key = ParallelRunStep(
        "by_key",
        config(partition_keys=["k"], allowed_failed_count=2, allowed_failed_percent=12.5, logging_level="DEBUG",
               run_max_try=1, run_invocation_timeout=2.5),
        [table.as_named_input("rows")], arguments=["--mode", "strict"], allow_reuse=False,
    )  # fmt: skip
    files = ParallelRunStep("files", config(mini_batch_size="3"), [made], side_inputs=[table.as_named_input("side")])
    project("parts/north/a.csv", "x\n")
    parts = Dataset.File.from_files(str(ws.root / "parts/**/*.csv"), partition_format="{region}/{name}.csv")
    regions = ParallelRunStep("regions", config(partition_keys=["region"]), [parts.as_named_input("parts")])
    published = Pipeline(ws, [make, by_key, files, regions]).publish("tables")

    saved = published.save(str(tmp_path / "tables.yml"))

    loaded = Pipeline.load_yaml(ws, saved).graph.steps
    original = published.get_graph().steps
    assert loaded.keys() == original.keys() == {"make", "by_key", "files", "regions"}
    for name, spec in loaded.items():
        assert {**vars(spec), "source_dir": None} == {**vars(original[name]), "source_dir": None}, name
    assert "--partition_format" in loaded["regions"].argv
    assert '"partition_keys": [\n      "k"\n    ]' in (tmp_path / "tables.by_key.parallel_run_config.yml").read_text()


def test_a_parallel_run_config_holding_a_pipeline_parameter_is_refused_in_one_line(ws, project, tmp_path):
    from localpipe import Environment

    Environment("local").register(ws)
    batch = PipelineParameter("batch", default_value=2)
    published = _parallel_pipeline(ws, project, mini_batch_size=batch).publish("parameter")
    with pytest.raises(UserErrorException) as raised:
        published.save(str(tmp_path / "p.yml"))
    assert str(raised.value) == (
        'cannot save published pipeline "parameter" as YAML: step "score": its ParallelRunConfig\'s mini_batch_size '
        'is pipeline parameter "batch", which the configuration file has no form for: give the value itself'
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ws"]


MODULES = """
    pipeline:
        steps:
            first:
                type: ModuleStep
                name: calc
                version: '1'
                arguments: ['--x', '10', '--out', 'output:result']
                outputs:
                    result: {destination: d0, is_directory: false}
            second:
                module: {name: calc}
                arguments: ['--x_file', 'input:x_in', '--out', 'output:result']
                inputs:
                    x_in: {source: d0}
                outputs:
                    result: {destination: d1, is_directory: false}
"""


def test_module_steps_are_read_by_module_name_and_version_and_pass_data(ws, project, run_pipeline, history):
    """The SDK's parser makes a ModuleStep of a step of type ModuleStep (or a module: section): the
    module by id or name, its version given or resolved, its ports mapped by the inputs' and
    outputs' names; the step is named by its key."""
    from localpipe import Module
    from localpipe.state.store import ObjectStore
    from tests.test_modules import _publish

    module = Module.create(ws, "calc", "adds one")
    _publish(ws, project, module, "1", first=True)
    _publish(ws, project, module, "2", is_default=True)  # the one with input port x_in
    file = project("modules.yml", MODULES)
    with pytest.warns(UserWarning, match="section is being deprecated"):  # the module: section
        pipeline = Pipeline.load_yaml(ws, str(file))

    run_id, status, steps = run_pipeline(pipeline)

    assert status.value == "Completed", steps
    store = ObjectStore(history.layout.objects)
    read = {name: (store.path(step["outputs"]["result"]) / "result").read_text() for name, step in steps.items()}
    assert read == {"first": "11", "second": "12"}  # version 2 resolved: its port x_in is mapped
