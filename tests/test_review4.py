"""Hostile review of pipeline YAML, saved dataset ids and inputDatasets: each case a defect found
by trying to break them (tests/test_pipeline_yaml.py and tests/test_sdk_data.py hold the rest)."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from localpipe import Pipeline
from localpipe.errors import PipelineYamlError
from tests.test_pipeline_yaml import refused_by_the_cli
from tests.test_watch_review import watching

STEP = """
    s:
      type: PythonScriptStep
      script_name: a.py
      source_directory: src
"""


def _yaml(steps: str = STEP, top: str = "") -> str:
    return "pipeline:\n" + top + "  steps:\n" + steps


# A value where a name belongs: a TypeError (unhashable), a traceback at planning, or None taken as
# the PipelineData "None".
NOT_NAMES = {
    "output destination null": (
        _yaml(STEP + "      outputs:\n        o: {destination: null}\n"),
        "step s: the destination of output o is NoneType None, not a name",
    ),
    "output destination int": (
        _yaml(STEP + "      outputs:\n        o: {destination: 5}\n"),
        "step s: the destination of output o is int 5, not a name",
    ),
    "input source list": (
        _yaml(STEP + "      inputs:\n        i: {source: [1]}\n"),
        "step s: the source of input i is list [1], not a name",
    ),
    "input source null": (
        _yaml(STEP + "      inputs:\n        i: {source: null}\n"),
        "step s: the source of input i is NoneType None, not a name",
    ),
    "parameter type list": (
        _yaml(top="  parameters:\n    P: {type: [int]}\n"),
        "the type of parameter P is list ['int'], not a name",
    ),
    "step type mapping": (
        "pipeline:\n  steps:\n    s:\n      type: {a: 1}\n",
        "the type of step s is dict {'a': 1}, not a name",
    ),
    "parameter source list": (
        _yaml(STEP + "      parameters:\n        X: {source: [1]}\n"),
        "parameters of step s: the source of X is list [1], not a name",
    ),
    "datastore int": (
        _yaml(top="  parameters:\n    P: {type: datapath, default: {datastore: 5, path_on_datastore: x}}\n"),
        "parameter P: datastore is int 5, not a name",
    ),
    "compute list": (_yaml(STEP + "      compute: [a]\n"), "step s: compute is list ['a'], not a name"),
    "runconfig list": (_yaml(STEP + "      runconfig: [a]\n"), "step s: runconfig is list ['a'], not a name"),
    "hash_paths text": (_yaml(STEP + "      hash_paths: abc\n"), "hash_paths for step s is not a list"),
    "step parameter mapping": (  # the step got the text "{'src': 'P'}"
        _yaml(STEP + "      parameters:\n        X: {src: P}\n"),
        "parameters of step s: X is dict {'src': 'P'}: give a value, or source: NAME",
    ),
    "step parameter null": (
        _yaml(STEP + "      parameters:\n        X:\n"),
        "parameters of step s: X is NoneType None: give a value",
    ),
}


@pytest.mark.parametrize("case", ["output destination null", "input source list"])
def test_a_value_where_a_name_belongs_is_one_line_from_the_cli(case, ws, project, localpipe):
    refused_by_the_cli(ws, project, localpipe, *NOT_NAMES[case])


@pytest.mark.parametrize("case", NOT_NAMES)
def test_a_value_where_a_name_belongs_is_a_pipeline_yaml_error_naming_it(case, ws, project):
    text, said = NOT_NAMES[case]
    project("src/a.py", "print('a')\n")
    file = project("bad.yml", text)
    with pytest.raises(PipelineYamlError) as caught:
        Pipeline.load_yaml(ws, str(file))
    assert str(caught.value).startswith(f"{file}: ") and said in str(caught.value), caught.value


def test_a_step_written_twice_under_one_key_is_refused_not_dropped(ws, project, localpipe):
    """A copied step whose key was not renamed: YAML keeps the last one, so one step vanished and the
    pipeline ran without it."""
    twice = _yaml(STEP + STEP.replace("a.py", "b.py"))
    refused_by_the_cli(ws, project, localpipe, twice, "line 9: key 's' is given twice (first at line 4)")


def test_yaml_aliases_that_expand_to_billions_of_values_are_refused_at_once(ws, project):
    """Nine levels of ten aliases are a billion arguments: the load hung (killed after minutes)."""
    import time

    levels = "  x0: &l0 [a, a, a, a, a, a, a, a, a, a]\n" + "".join(
        f"  x{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 10)
    )
    project("src/a.py", "print('a')\n")
    file = project("bomb.yml", _yaml(STEP + "      arguments: *l9\n", top=levels))
    started = time.monotonic()
    with pytest.raises(PipelineYamlError, match="more than 1000000 values"):
        Pipeline.load_yaml(ws, str(file))
    assert time.monotonic() - started < 10
    merged = "  base: &base {type: PythonScriptStep, source_directory: src}\n"  # anchors as meant still work
    steps = "    s:\n      <<: *base\n      script_name: a.py\n    t:\n      <<: *base\n      script_name: a.py\n"
    pipeline = Pipeline.load_yaml(ws, str(project("merged.yml", _yaml(steps, top=merged))))
    assert sorted(step.name for step in pipeline.steps) == ["s", "t"]


@pytest.mark.parametrize(
    ("kind", "default"),
    [("bool", "'maybe'"), ("bool", "0"), ("int", "3.7"), ("int", "true"), ("float", "[1]"), ("string", "[1, 2]")],
)
def test_a_parameter_default_of_the_wrong_type_is_refused_not_converted(kind, default, ws, project):
    """bool("false") is True and int(3.7) is 3: the default the pipeline ran with was not the one written."""
    project("src/a.py", "print('a')\n")
    file = project("bad.yml", _yaml(top=f"  parameters:\n    P: {{type: {kind}, default: {default}}}\n"))
    with pytest.raises(PipelineYamlError, match=f"parameter P: default .* is not a {kind}: "):
        Pipeline.load_yaml(ws, str(file))


def test_parameter_defaults_written_as_yaml_or_as_text_keep_their_values(ws, project):
    project("src/a.py", "print('a')\n")
    written = {
        "B": "{type: bool, default: 'False'}",
        "I": "{type: int, default: '40'}",
        "J": "{type: int, default: 4.0}",
        "F": "{type: float, default: 2}",
        "S": "{type: string, default: 7}",
        "T": "{type: bool, default: true}",
    }
    top = "  parameters:\n" + "".join(f"    {name}: {body}\n" for name, body in written.items())
    step = STEP + "      arguments: [" + ", ".join(f"'parameter:{name}'" for name in written) + "]\n"
    pipeline = Pipeline.load_yaml(ws, str(project("ok.yml", _yaml(step, top=top))))
    (only,) = pipeline.steps
    defaults = {argument.name: argument.default_value for argument in only.arguments}
    assert defaults == {"B": False, "I": 40, "J": 4, "F": 2.0, "S": "7", "T": True}
    assert [type(defaults[name]) for name in ("B", "I", "F", "S")] == [bool, int, float, str]


LOAD_ERRORS = {
    "datastore not registered": (
        _yaml(top="  data_references:\n    R: {datastore: nope, path_on_datastore: x}\n"),
        'datastore "nope" is not registered',
    ),
    "dataset not registered": (_yaml(top="  data_references:\n    R: {dataset_name: nope}\n"), 'dataset "nope"'),
    "dataset id unknown": (_yaml(top="  data_references:\n    R: {dataset_id: zzz}\n"), 'dataset with id "zzz"'),
    "runconfig missing": (_yaml(STEP + "      runconfig: nope.runconfig\n"), "step s: runconfig nope.runconfig"),
    "runconfig not one": (_yaml(STEP + "      runconfig: src/a.py\n"), "step s: run configuration src/a.py"),
    "parallel_run_config missing": (
        "pipeline:\n  steps:\n    s:\n      type: ParallelRunStep\n      parallel_run_config: nope.yml\n",
        "step s: parallel_run_config nope.yml",
    ),
}


@pytest.mark.parametrize("case", LOAD_ERRORS)
def test_what_a_yaml_names_that_is_not_there_is_one_line_naming_the_file(case, ws, project, localpipe):
    """A datastore, dataset or file the YAML names that does not exist: the line named neither the
    YAML file nor the step (`error: datastore "nope" is not registered in <ws>: ...`)."""
    refused_by_the_cli(ws, project, localpipe, *LOAD_ERRORS[case])


TWO_STEPS = """
    a:
      type: PythonScriptStep
      script_name: a.py
      source_directory: src
      inputs:
        i: {source: X}
      outputs:
        o: {destination: Y}
    b:
      type: PythonScriptStep
      script_name: a.py
      source_directory: src
      inputs:
        i: {source: Y}
      outputs:
        o: {destination: X}
"""

INVALID_GRAPHS = {
    "cycle through PipelineData": (_yaml(TWO_STEPS), 'the steps form a cycle: "a" -> "b" -> "a"'),
    "output read by its own step": (
        _yaml(STEP + "      inputs:\n        i: {source: X}\n      outputs:\n        o: {destination: X}\n"),
        'step "s" consumes its own output "X"',
    ),
    "two names alike": (
        _yaml(STEP + "      name: X\n" + STEP.replace("  s:", "  t:") + "      name: X\n"),
        'two steps are named "X"',
    ),
    "missing script": (_yaml(STEP.replace("a.py", "nope.py")), 'script "nope.py" not found'),
}


@pytest.mark.parametrize("case", INVALID_GRAPHS)
def test_a_yaml_whose_graph_is_invalid_names_the_file(case, ws, project, localpipe):
    """The planner's refusals (a cycle, a step reading its own output) named the steps, not the YAML."""
    refused_by_the_cli(ws, project, localpipe, *INVALID_GRAPHS[case])


def test_status_and_publish_of_an_invalid_yaml_name_the_file(ws, project, localpipe):
    project("src/a.py", "print('a')\n")
    file = project("bad.yml", INVALID_GRAPHS["cycle through PipelineData"][0])
    for command in (["status", "bad.yml"], ["publish", "bad.yml", "--name", "p"]):
        result = localpipe(*command)
        assert result.returncode == 2 and result.stderr.startswith(f"error: pipeline file {file}: "), result.stderr
        assert len(result.stderr.splitlines()) == 1, result.stderr


@pytest.mark.parametrize("name", ["prep/a", "../../../../outside", "étape ✓"])
def test_a_run_whose_step_name_is_no_file_name_saves_its_runconfig_beside_the_yaml(name, ws, project, tmp_path):
    """A step named with "/" or ".." that needs a runconfig file: saving wrote NAME.prep/a.runconfig
    (FileNotFoundError, or "its folder ... does not exist"), and "../" must never leave the folder."""
    from localpipe import Experiment, PythonScriptStep, RunConfiguration

    project("src/a.py", "import os\nprint(os.environ['MODE'])\n")
    config = RunConfiguration()
    config.environment_variables = {"MODE": "fast"}
    step = PythonScriptStep("a.py", name=name, source_directory=str(ws.root / "src"), runconfig=config)
    run = Experiment(ws, "names").submit(Pipeline(ws, [step]))
    assert run.wait_for_completion() == "Completed"
    folder = tmp_path / "deep" / "saved"
    folder.mkdir(parents=True)

    path = run.save(str(folder))

    written = sorted(p.name for p in folder.iterdir())
    assert len(written) == 3 and "pipeline.yml" in written, written  # the YAML, a runconfig, its conda file
    outside_the_workspace = [p for p in tmp_path.rglob("*") if p.is_file() and ws.root not in p.parents]
    assert sorted(p.name for p in outside_the_workspace) == written
    loaded = Pipeline.load_yaml(ws, path)
    assert loaded.graph.to_dict() == run.get_graph().to_dict()


WATCHED_YAML = """
pipeline:
  steps:
    make:
      type: PythonScriptStep
      script_name: make.py
      source_directory: make
      arguments: [--greeting, hello, 'output:data']
      outputs:
        data: {destination: data}
    use:
      type: PythonScriptStep
      script_name: use.py
      source_directory: use
      arguments: ['input:data']
      inputs:
        data: {source: data}
"""


def test_watch_of_a_pipeline_yaml_reruns_on_an_edit_of_the_yaml_and_of_a_script(ws, project):
    """Real watchdog events: a script's edit reruns its step; an argument changed in the YAML reruns
    the step it is in (and after); a broken YAML is one line, runs nothing, and its fix runs."""
    from tests.conftest import tables, wait_for
    from tests.test_watch import run_done, steps_of

    project("proj/make/make.py", "import sys\nopen(sys.argv[-1] + '/v.txt', 'w').write(sys.argv[2])\n")
    project("proj/use/use.py", "import sys\nprint(open(sys.argv[1] + '/v.txt').read())\n")
    file = project("proj/pipeline.yml", WATCHED_YAML)
    with watching(ws, file, first_run=False) as lines:
        wait_for(lambda: run_done(ws, 1), what="the first run")
        project("proj/use/use.py", "import sys\nprint('edited', open(sys.argv[1] + '/v.txt').read())\n")
        wait_for(lambda: run_done(ws, 2), what="the rerun after a script's edit")
        assert {name: status for name, (status, _) in steps_of(ws, 2).items()} == {"make": "Reused", "use": "Completed"}
        project("proj/pipeline.yml", WATCHED_YAML.replace("hello", "bonjour"))
        wait_for(lambda: run_done(ws, 3), what="the rerun after the YAML's edit")
        assert {name: status for name, (status, _) in steps_of(ws, 3).items()} == {
            "make": "Completed",
            "use": "Completed",
        }
        project("proj/pipeline.yml", WATCHED_YAML.replace("  steps:", "  steps:\n  steps:"))
        wait_for(lambda: any("is given twice" in line and str(file) in line for line in lines), what="the error")
        assert tables(ws).PipelineRun.select().count() == 3
        project("proj/pipeline.yml", WATCHED_YAML.replace("hello", "bonjour"))
        wait_for(lambda: run_done(ws, 4), what="the run of the fixed YAML")
        assert {status for status, _ in steps_of(ws, 4).values()} == {"Reused"}


def test_a_dataset_unregistered_after_a_run_stays_in_its_input_datasets_and_found_by_id(ws, project, tmp_path):
    """Azure keeps a dataset a run consumed: unregistering removes its name, not the dataset. Here the
    step's inputDatasets lost it and Dataset.get_by_id (and a saved YAML naming its id) failed."""
    from localpipe import Dataset, Experiment, PythonScriptStep
    from localpipe.sdk.data import TabularDataset

    project("src/see.py", "import sys\nprint(sys.argv)\n")
    project("data/rows.csv", "x\n1\n2\n")
    files = Dataset.File.from_files(str(ws.root / "data")).register(ws, "files")
    table = Dataset.Tabular.from_delimited_files(str(ws.root / "data/rows.csv")).register(ws, "table")
    step = PythonScriptStep(
        "see.py",
        name="see",
        source_directory=str(ws.root / "src"),
        arguments=[files.as_named_input("files").as_mount(), table.as_named_input("table")],
    )
    run = Experiment(ws, "gone").submit(Pipeline(ws, [step]))
    assert run.wait_for_completion() == "Completed"
    ids = (files.id, table.id)
    saved = run.save(str(tmp_path))

    files.unregister_all_versions()
    Dataset.get_by_name(ws, "table").unregister_all_versions()

    consumed = run.find_step_run("see")[0].get_details()["inputDatasets"]
    assert [(d["dataset"].id, d["consumptionDetails"]["inputName"]) for d in consumed] == [
        (ids[0], "files"),
        (ids[1], "table"),
    ]
    found = Dataset.get_by_id(ws, ids[1])
    assert isinstance(found, TabularDataset) and found.name is None and found.id == ids[1]
    assert found.to_pandas_dataframe()["x"].tolist() == [1, 2]
    assert Dataset.get_by_id(ws, ids[0]).to_path() == ["/rows.csv"]
    again = Experiment(ws, "gone").submit(Pipeline.load_yaml(ws, saved))
    assert again.wait_for_completion() == "Completed"


def test_a_yaml_saved_as_utf16_or_with_a_bom_loads_and_latin1_is_one_line(ws, project, localpipe):
    """Windows editors save UTF-16 with a byte order mark: it was UnicodeDecodeError (from Python, and
    `pipeline file ...: UnicodeDecodeError: 'utf-8' codec can't decode` from the command line)."""
    project("src/a.py", "print('a')\n")
    text = _yaml().replace("pipeline:\n", "pipeline:\n  description: café\n")
    for encoding in ("utf-16", "utf-8-sig"):
        file = ws.root / f"{encoding}.yml"
        file.write_text(text, encoding=encoding)
        pipeline = Pipeline.load_yaml(ws, str(file))
        assert [step.name for step in pipeline.steps] == ["s"] and pipeline.description == "café"
    (ws.root / "bad.yml").write_bytes(text.encode("latin-1"))
    result = localpipe("submit", "bad.yml")
    assert result.returncode == 2 and result.stderr.startswith(f"error: {ws.root / 'bad.yml'}: byte 29 is not text")
    assert result.stderr.endswith("UTF-8 octet): save the file as UTF-8\n") and result.stderr.count("\n") == 1


SAME_DATASET = """
from localpipe import Dataset, Pipeline, PythonScriptStep, Workspace

ws = Workspace.from_config()
files = Dataset.File.from_files([(ws.get_default_datastore(), "shared")])
pipeline = Pipeline(ws, [PythonScriptStep("see.py", name="see", source_directory="src", allow_reuse=False,
                                          arguments=[files.as_named_input("files").as_mount()])])
"""


def test_eight_submitters_at_once_save_one_dataset_under_one_id(ws, project):
    """Eight processes submit a pipeline over the same unregistered dataset at the same moment: each
    saves it (INSERT ... ON CONFLICT IGNORE): no UNIQUE error, one row, one id in every run."""
    import os
    import subprocess
    import sys

    from localpipe import Experiment, PipelineRun
    from tests.conftest import write

    write(ws.get_default_datastore().folder / "shared" / "a.txt", "a")
    project("src/see.py", "import os, sys\nprint(sorted(os.listdir(sys.argv[1])))\n")
    project("p.py", SAME_DATASET)
    submitters = [
        subprocess.Popen([sys.executable, "-m", "localpipe", "submit", "p.py", "-e", "same"], cwd=ws.root,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=dict(os.environ))
        for _ in range(8)
    ]  # fmt: skip
    outputs = [process.communicate(timeout=120)[0] for process in submitters]
    assert [process.returncode for process in submitters] == [0] * 8, outputs
    with sqlite3.connect(ws.root / ".localpipe" / "history.db") as db:
        (saved_id,) = [row[0] for row in db.execute("select saved_id from saved_dataset")]
    ids = set()
    for run_id in range(1, 9):
        step = PipelineRun(Experiment(ws, "same"), run_id).find_step_run("see")[0]
        ids.update(d["dataset"].id for d in step.get_details()["inputDatasets"])
    assert ids == {saved_id}


def test_save_load_save_gives_the_same_file_from_another_working_directory(ws, project, tmp_path, monkeypatch):
    """Text that YAML would read as something else ('yes', 'null', '007', 'a: b', '# x'), unicode,
    parameters of each type, datasets registered and not, a runconfig: the second save is the first."""
    from localpipe import Dataset, Experiment, PipelineData, PipelineParameter, PythonScriptStep, RunConfiguration

    project("src/p.py", "import sys, pathlib\npathlib.Path(sys.argv[-1]).mkdir(exist_ok=True)\n")
    project("src/q.py", "import sys\nprint(sys.argv)\n")
    project("iris/i.csv", "i\n1\n")
    unregistered = Dataset.File.from_files(str(ws.root / "iris"))
    registered = Dataset.File.from_files(str(ws.root / "iris")).register(ws, "iris")
    table = Dataset.Tabular.from_delimited_files(str(ws.root / "iris/i.csv"))
    text = PipelineParameter("text", default_value="héllo: wörld # not a comment")
    config = RunConfiguration()
    config.environment_variables = {"X": "y: z"}
    data = PipelineData("data")
    odd = ["yes", "null", "007", "a: b", "- x", "~", "", "1e3", "é"]
    prepare = PythonScriptStep("p.py", name="prépare", source_directory=str(ws.root / "src"), runconfig=config,
        arguments=[*odd, unregistered.as_named_input("u").as_mount(), registered.as_named_input("r").as_download(),
                   table.as_named_input("t"), text, PipelineParameter("flag", default_value=False),
                   PipelineParameter("rate", default_value=1e-5), data],
        params={"P": text, "Q": "lit"})  # fmt: skip
    use = PythonScriptStep("q.py", name="q", source_directory=str(ws.root / "src"), arguments=[data.as_input()])
    run = Experiment(ws, "trip").submit(Pipeline(ws, [use]))
    assert run.wait_for_completion() == "Completed"
    folder = tmp_path / "saved"
    folder.mkdir()
    first = Path(run.save(str(folder))).read_text(encoding="utf-8")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")

    loaded = Pipeline.load_yaml(ws, str(folder / "pipeline.yml"))
    again = Experiment(ws, "trip").submit(loaded)
    assert again.wait_for_completion() == "Completed"
    second = Path(again.save(str(folder))).read_text(encoding="utf-8")

    assert second == first
    assert "  prépare:" in first and "héllo: wörld" in first  # unicode as written, not "pr\\xE9pare"
    assert loaded.graph.to_dict() == run.get_graph().to_dict()
    arguments = loaded.graph.steps["prépare"].argv
    assert arguments[: len(odd)] == odd, arguments


def test_an_output_named_as_a_data_reference_or_parameter_is_refused(ws, project, localpipe):
    """An output whose destination is a data reference's name: the step reading that name got the data
    reference, not the output, and ran before the step writing it."""
    top = "  data_references:\n    R: {datastore: workspaceblobstore, path_on_datastore: raw}\n"
    steps = (
        STEP
        + "      outputs:\n        o: {destination: R}\n"
        + STEP.replace("  s:", "  t:")
        + "      inputs:\n        i: {source: R}\n"
    )
    refused_by_the_cli(ws, project, localpipe, _yaml(steps, top=top), "step s: the destination of output o is R")


def test_names_a_saved_yaml_cannot_tell_apart_are_renamed_or_refused(ws, project, tmp_path):
    """Step a writes PipelineData "x", b reads it, c reads a dataset as its input "x": the file named
    both "x", so b read the dataset (or, now, loading refused the file). Two steps' outputs of one name,
    or one named as a pipeline parameter, were renamed "STEP_x": the loaded graph differed and its
    submission reused nothing."""
    from localpipe import Dataset, Experiment, PipelineData, PipelineParameter, PythonScriptStep
    from localpipe.errors import UserErrorException

    project("src/w.py", "import sys, pathlib\npathlib.Path(sys.argv[1]).mkdir(exist_ok=True)\n")
    project("src/r.py", "import sys\nprint(sys.argv)\n")
    project("d/f.txt", "f")
    x, source = PipelineData("x"), str(ws.root / "src")
    steps = [
        PythonScriptStep("w.py", name="a", source_directory=source, arguments=[x]),
        PythonScriptStep("r.py", name="b", source_directory=source, arguments=[x.as_input()]),
        PythonScriptStep("r.py", name="c", source_directory=source,
                         arguments=[Dataset.File.from_files(str(ws.root / "d")).as_named_input("x").as_mount()]),
    ]  # fmt: skip
    run = Experiment(ws, "names").submit(Pipeline(ws, steps))
    assert run.wait_for_completion() == "Completed"
    loaded = Pipeline.load_yaml(ws, run.save(str(tmp_path)))
    assert loaded.graph.to_dict() == run.get_graph().to_dict()

    for clash, said in (
        (PythonScriptStep("w.py", name="e", source_directory=source, arguments=[PipelineData("x")]), "another step's"),
        (PythonScriptStep("r.py", name="e", source_directory=source, arguments=[PipelineParameter("x", 1)]),
         "a pipeline parameter"),
    ):  # fmt: skip
        run = Experiment(ws, "names").submit(Pipeline(ws, [*steps, clash]))
        assert run.wait_for_completion() == "Completed"
        with pytest.raises(UserErrorException, match=f'writes PipelineData "x", the name of {said}'):
            run.save(str(tmp_path / "clash.yml"))
        assert not (tmp_path / "clash.yml").exists()


@pytest.mark.parametrize(("key", "value"), [("hours", "25"), ("minutes", "7"), ("week_days", "Friday")])
def test_a_schedule_yaml_giving_one_value_where_a_list_belongs_is_one_value_error(key, value, ws, project):
    """`hours: 25` in a Schedule YAML reached Schedule.create as TypeError: 'int' object is not iterable."""
    from localpipe import PythonScriptStep
    from localpipe.client.schedules import Schedule

    project("src/a.py", "print('a')\n")
    published = Pipeline(ws, [PythonScriptStep("a.py", source_directory=str(ws.root / "src"))]).publish("p")
    file = project("s.yml", f"Schedule:\n  recurrence: {{frequency: Week, interval: 1, {key}: {value}}}\n")
    info = Schedule.load_yaml(ws, str(file))
    with pytest.raises(ValueError, match=r"must be a list: write \["):
        Schedule.create(ws, "s", published.id, "e", recurrence=info["recurrence"])


def test_watch_of_a_pipeline_yaml_reruns_on_an_edit_of_its_runconfig_file(ws, project):
    """A runconfig file the YAML names (its environment variables, packages): editing it did nothing
    under `localpipe watch`, the YAML being the only file of the pipeline watched."""
    from localpipe import RunConfiguration
    from tests.conftest import wait_for
    from tests.test_watch import run_done, steps_of

    project("proj/src/a.py", "import os\nprint('mode', os.environ['MODE'])\n")
    config = RunConfiguration()
    config.environment_variables = {"MODE": "slow"}
    (ws.root / "proj" / "conf").mkdir()
    config.save(str(ws.root / "proj" / "conf" / "a.runconfig"))
    file = project("proj/pipeline.yml", _yaml(STEP + "      runconfig: conf/a.runconfig\n"))
    with watching(ws, file, first_run=False) as lines:
        wait_for(lambda: run_done(ws, 1), what="the first run")
        config.environment_variables = {"MODE": "fast"}
        config.save(str(ws.root / "proj" / "conf" / "a.runconfig"))
        wait_for(lambda: run_done(ws, 2), timeout=15, what=lambda: f"a rerun after the runconfig's edit: {lines}")
        assert steps_of(ws, 2)["s"][0] == "Completed", steps_of(ws, 2)


DATAPATH_TOP = (
    "  parameters:\n    RawData: {type: datapath, default: {datastore: workspaceblobstore, path_on_datastore: raw}}\n"
)


@pytest.mark.parametrize(
    "usage",
    ["      arguments: ['parameter:RawData']\n", "      parameters:\n        P: {source: RawData}\n"],
)
def test_a_datapath_parameter_as_an_argument_or_step_parameter_is_refused_in_the_yaml(usage, ws, project, localpipe):
    """The step got the text "{'datapath': {'datastore': 'workspaceblobstore', ...}}", not a path."""
    said = "RawData is a datapath parameter, which the step would get as text: name it as an input"
    refused_by_the_cli(ws, project, localpipe, _yaml(STEP + usage, top=DATAPATH_TOP), said)


def test_a_data_parameter_given_to_a_step_without_a_binding_is_refused(ws, project):
    from localpipe import Dataset, PipelineParameter, PythonScriptStep
    from localpipe.errors import PipelineValidationError
    from localpipe.sdk.data import DataPath, DataPathComputeBinding
    from tests.conftest import write

    project("src/a.py", "print('a')\n")
    project("data/f.txt", "f")
    raw = PipelineParameter("raw", default_value=DataPath(ws.get_default_datastore(), "raw"))
    files = PipelineParameter("files", default_value=Dataset.File.from_files(str(ws.root / "data")))
    step = PythonScriptStep(
        "a.py", name="s", source_directory=str(ws.root / "src"), arguments=[raw], params={"F": files}
    )
    with pytest.raises(PipelineValidationError) as caught:
        Pipeline(ws, [step]).submit("data")
    message = str(caught.value)
    assert 'step "s": PipelineParameter "raw" holds a DataPath' in message, message
    assert 'PipelineParameter "files" holds a FileDataset' in message, message
    # Bound as an input of the step (as Azure's datapath sample binds it), it is that input's path.
    write(ws.get_default_datastore().folder / "raw" / "r.txt", "r")
    project("src/b.py", "import os, sys\nprint(os.listdir(sys.argv[2]))\n")
    bound = PythonScriptStep("b.py", name="b", source_directory=str(ws.root / "src"), arguments=["--raw", raw],
                             inputs=[(raw, DataPathComputeBinding())])  # fmt: skip
    run = Pipeline(ws, [bound]).submit("data")
    assert run.wait_for_completion() == "Completed"
    assert "['r.txt']" in (ws.root / ".localpipe" / "runs" / str(run.id) / "b" / "stdout.log").read_text()
    saved = Pipeline.load_yaml(ws, run.save(str(ws.root / "saved.yml")))  # saved as input:raw
    assert saved.graph.to_dict() == run.get_graph().to_dict()


def test_a_misspelt_key_is_warned_of_with_the_key_meant(ws, project, localpipe):
    """allow_resue: false was ignored without a word: the step was reused."""
    project("src/a.py", "print('a')\n")
    s = STEP + "      allow_resue: false\n      inputs:\n        i: {source: X, bind_mod: download}\n"
    t = STEP.replace("  s:", "  t:") + "      outputs:\n        o: {destination: X, datstore: b}\n"
    file = project("p.yml", _yaml(s + t))
    with pytest.warns(UserWarning) as caught:
        Pipeline.load_yaml(ws, str(file))
    said = [str(warning.message) for warning in caught]
    assert said == [
        f"{file}: step s: key allow_resue is not read: did you mean allow_reuse?",
        f"{file}: step s: input i: key bind_mod is not read: did you mean bind_mode?",
        f"{file}: step t: output o: key datstore is not read: did you mean datastore?",
    ], said
    result = localpipe("status", "p.yml")
    assert result.returncode == 0 and "key allow_resue is not read: did you mean allow_reuse?" in result.stderr


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("nosrc.yml", "pipeline:\n  steps:\n    s: {type: PythonScriptStep, script_name: a.py}\n"),
        ("nosrc.py", "from localpipe import Pipeline, PythonScriptStep, Workspace\n"
                     "pipeline = Pipeline(Workspace.from_config(), [PythonScriptStep('a.py', name='s')])\n"),
    ],
)  # fmt: skip
def test_a_step_without_source_directory_runs_from_the_files_folder_wherever_the_command_runs(
    name, text, ws, project, localpipe
):
    """The file runs in its own folder, but a step without source_directory took the command's current
    folder when planned: `localpipe submit sub/p.yml` said script "a.py" not found in <ws>."""
    project("sub/a.py", "print('in sub')\n")
    project(f"sub/{name}", text)
    result = localpipe("submit", f"sub/{name}")
    assert result.returncode == 0, result.stderr
    assert (ws.root / ".localpipe" / "runs" / "1" / "s" / "stdout.log").read_text() == "in sub\n"


def test_a_parallel_run_steps_datasets_get_ids_that_its_reuse_and_a_pickle_keep(ws, project):
    """Inputs and side inputs of a ParallelRunStep are saved and listed in inputDatasets, also for
    the run that reuses it; a pickled dataset keeps its id."""
    import pickle

    from localpipe import Dataset, Environment, Experiment, PipelineData
    from localpipe.sdk.parallel_run import ParallelRunConfig, ParallelRunStep

    for number in range(3):
        project(f"data/{number}.txt", str(number))
    project("side/s.txt", "side")
    project("src/score.py", "def init():\n    pass\n\ndef run(batch):\n    return [str(x) for x in batch]\n")
    config = ParallelRunConfig(environment=Environment("local"), entry_script="score.py",
                               source_directory=str(ws.root / "src"), error_threshold=-1,
                               output_action="append_row", compute_target="local", node_count=1,
                               process_count_per_node=1)  # fmt: skip

    def submitted():
        data = Dataset.File.from_files(str(ws.root / "data"))
        side = Dataset.File.from_files(str(ws.root / "side"))
        step = ParallelRunStep("score", config, inputs=[data.as_named_input("files")], output=PipelineData("out"),
                               side_inputs=[side.as_named_input("side").as_mount()])  # fmt: skip
        run = Experiment(ws, "prs").submit(Pipeline(ws, [step]))
        assert run.wait_for_completion() == "Completed"
        consumed = run.find_step_run("score")[0].get_details()["inputDatasets"]
        return (data.id, side.id), [(d["dataset"].id, d["consumptionDetails"]["inputName"]) for d in consumed], data

    ids, consumed, data = submitted()
    assert None not in ids and consumed == [(ids[0], "files"), (ids[1], "side")]
    again, reused, _ = submitted()
    assert again == ids and reused == consumed
    assert pickle.loads(pickle.dumps(data)).id == ids[0]
