"""Modules (``Module``, ``ModuleVersion``) and ``ModuleStep``: versions kept in history.db with a
snapshot of their source, the default version and resolution, status changes, wiring of the
pipeline's data to a version's ports (checked when the pipeline is validated), reuse as for any
step, and one line for each refusal."""

from __future__ import annotations

import subprocess
import sys

import pytest

from localpipe import Experiment, Pipeline, PipelineData, PipelineParameter
from localpipe.client.modules import Module, ModuleVersion
from localpipe.errors import NotFoundError, PipelineValidationError, UserErrorException
from localpipe.sdk.modules import InputPortDef, ModuleStep, OutputPortDef
from tests.conftest import tables

# Adds AML_PARAMETER_step (the version's parameter, 1 by default) to a number given or read from a file.
SCRIPT = """
import argparse, os
parser = argparse.ArgumentParser()
parser.add_argument("--x")
parser.add_argument("--x_file")
parser.add_argument("--out")
args = parser.parse_args()
x = int(args.x) if args.x is not None else int(open(args.x_file).read())
result = x + int(os.environ["AML_PARAMETER_step"])
print("{tag}", x, "->", result)
open(args.out, "w").write(str(result))
"""


def _publish(ws, project, module, version, tag="v1", first=False, **options):
    """Publish calc.py (printing ``tag``) as ``version``: with no input port when ``first``."""
    project("calc/calc.py", SCRIPT.format(tag=tag))
    inputs = [] if first else [InputPortDef(name="x_in", default_datastore_mode="mount")]
    return module.publish_python_script(
        "calc.py", f"calc {tag}", inputs=inputs, outputs=[OutputPortDef(name="result")], params={"step": 1},
        version=version, source_directory=str(ws.root / "calc"), **options,
    )  # fmt: skip


def _chain(ws, first_version, module, n=3):
    """``n`` ModuleSteps: the first of ``first_version`` from x=10, each next one of ``module``'s
    resolved version reading the result before."""
    data = [PipelineData(f"d{i}", is_directory=False) for i in range(n)]
    steps = [
        ModuleStep(
            module_version=first_version, outputs_map={"result": data[0]}, arguments=["--x", 10, "--out", data[0]]
        )
    ]
    for i in range(1, n):
        steps.append(
            ModuleStep(
                module=module, inputs_map={"x_in": data[i - 1]}, outputs_map={"result": data[i]},
                arguments=["--x_file", data[i - 1], "--out", data[i]],
            )
        )  # fmt: skip
    return Pipeline(ws, steps)


def _results(history, run_id) -> dict[str, str]:
    """Step -> what it wrote to its output "result"."""
    from localpipe.state.store import ObjectStore

    store = ObjectStore(history.layout.objects)
    found = {}
    for step in history.runs.details(run_id)["steps"]:
        digest = history.runs.step_outputs(step["id"])["result"]
        found[step["name"]] = (store.path(digest) / "result").read_text()
    return found


def test_versions_default_and_resolution(ws, project):
    module = Module.create(ws, "calc", "adds one")
    for version in ("2", "10", "9.5"):
        _publish(ws, project, module, version, first=True)
    assert [v.version for v in module.module_version_list()] == ["2", "10", "9.5"]
    assert module.resolve().version == "10"  # all numbered: the highest, by number, not by text
    module.resolve("10").disable()
    assert module.resolve().version == "9.5"  # disabled versions are passed over
    assert module.resolve("10").status == "Disabled"  # ... unless asked for by name
    module.set_default_version("2")
    assert (module.get_default_version(), module.resolve().version) == ("2", "2")
    _publish(ws, project, module, "3", is_default=True, first=True)
    assert (module.default_version, module.resolve().version) == ("3", "3")
    with pytest.raises(UserErrorException, match=r'module "calc" has no version "7" \(it has 2, 10, 9.5, 3\)'):
        module.resolve("7")
    with pytest.raises(UserErrorException, match='module "calc" has a version "2" already'):
        _publish(ws, project, module, "2", first=True)
    with pytest.raises(UserErrorException, match='module "calc" has no version "8"'):
        module.set_default_version("8")

    named = Module.create(ws, "named", None)  # not all numbered: the last updated
    beta = _publish(ws, project, named, "beta", first=True)
    _publish(ws, project, named, "alpha", first=True)
    beta.set_description("touched last")
    assert named.resolve().version == "beta"

    # Found again, by name or id, from another process too: the rows are history.db's.
    again = Module.get(ws, name="calc")
    assert (again.id, again.description, again.default_version) == (module.id, "adds one", "3")
    assert [v.version for v in Module.get_versions(ws, "calc")] == ["2", "10", "9.5", "3"]
    code = (
        "import sys; from localpipe import Workspace; from azureml.pipeline.core.module import Module, ModuleVersion\n"
        "ws = Workspace(sys.argv[1]); m = Module.get(ws, module_id=sys.argv[2]); v = m.get_default()\n"
        "print(m.name, v.version, v.module_id == m.id, [p.name for p in v.interface.outputs],"
        " [(p.name, p.default_value) for p in v.interface.parameters],"
        " ModuleVersion.get(ws, v.module_version_id).status)"
    )
    shim = subprocess.run([sys.executable, "-m", "localpipe", "azureml-path"], capture_output=True, text=True).stdout
    found = subprocess.run(
        [sys.executable, "-c", code, str(ws.root), module.id], capture_output=True, text=True,
        env={"PYTHONPATH": shim.strip(), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert found.stdout == "calc 3 True ['result'] [('step', 1)] Active\n", found.stderr
    with pytest.raises(NotFoundError, match='no module has the name "nope"'):
        Module.get(ws, name="nope")
    with pytest.raises(NotFoundError, match='no module version has id "nope"'):
        ModuleVersion.get(ws, "nope")
    with pytest.raises(UserErrorException, match='a module named "calc" exists'):
        Module.create(ws, "calc", "again")


def test_a_disabled_module_or_version_is_refused_with_one_line(ws, project, localpipe):
    module = Module.create(ws, "calc", "adds one")
    first = _publish(ws, project, module, "1", first=True)
    module.disable()
    with pytest.raises(UserErrorException) as refused:
        ModuleStep(module=module, outputs_map={"result": PipelineData("r")})
    assert str(refused.value) == (
        'module "calc" is disabled: enable it (Module.get(ws, name="calc").enable()) to use it in a step'
    )
    project(
        "pipeline.py",
        """
        from azureml.core import Workspace
        from azureml.pipeline.core import Pipeline, PipelineData
        from azureml.pipeline.core.module import Module
        from azureml.pipeline.steps import ModuleStep

        ws = Workspace.from_config()
        result = PipelineData("r", is_directory=False)
        step = ModuleStep(module=Module.get(ws, name="calc"), outputs_map={"result": result},
                          arguments=["--x", 1, "--out", result])
        pipeline = Pipeline(ws, [step])
        """,
    )
    proc = localpipe("submit", "pipeline.py")
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [f"error: {refused.value}"], proc.stderr
    assert tables(ws).PipelineRun.select().count() == 0

    module.enable()
    first.disable()
    with pytest.raises(
        UserErrorException, match=f'version "1" of module "calc" is disabled: enable it .*{first.module_version_id}'
    ):
        ModuleStep(module_version=first)
    with pytest.raises(UserErrorException, match="has no version to run .*all disabled"):
        ModuleStep(module=module)
    first.enable()
    module.deprecate()
    with pytest.warns(UserWarning, match='module "calc" is deprecated: it still runs'):
        ModuleStep(module_version=first)
    assert localpipe("submit", "pipeline.py").returncode == 0


def test_a_version_runs_its_snapshot_and_reruns_are_reused(ws, project, history, run_pipeline):
    module = Module.create(ws, "calc", "adds one")
    first = _publish(ws, project, module, "1", tag="first", first=True)
    _publish(ws, project, module, "2", tag="middle", is_default=True)
    project("calc/calc.py", "raise SystemExit('edited after publishing')")  # no published version sees it

    run_id, status, steps = run_pipeline(_chain(ws, first, module))
    assert status == "Completed", steps
    # Several steps of one module: named after it, numbered; their outputs are named after the port.
    assert _results(history, run_id) == {"calc": "11", "calc_2": "12", "calc_3": "13"}
    log = (history.layout.step_dir(run_id, "calc_2") / "stdout.log").read_text()
    assert log == "middle 11 -> 12\n"
    assert history.runs.details(run_id)["parameters"] == {}

    again, status, steps = run_pipeline(_chain(ws, first, module))  # two submissions in a row
    assert status == "Completed" and {s["status"] for s in steps.values()} == {"Reused"}, steps
    published = _chain(ws, first, module).publish("chain")  # a published pipeline keeps its ModuleSteps
    run = published.submit(ws, "published")
    assert run.wait_for_completion(show_output=False) == "Completed"
    assert [s.get_status() for s in run.get_steps()] == ["Reused"] * 3

    module.publish_python_script(  # the edit, published: a new version, which the next runs resolve to
        "calc.py", "edited", [InputPortDef("x_in")], [OutputPortDef("result")], params={"step": 1}, version="3",
        is_default=True, source_directory=str(ws.root / "calc"),
    )  # fmt: skip
    third, status, steps = run_pipeline(_chain(ws, first, module))
    assert status == "Failed" and steps["calc"]["status"] == "Reused" and steps["calc_2"]["status"] == "Failed"


def test_a_pipeline_parameter_in_the_arguments_is_a_parameter_of_the_step(ws, project, history, run_pipeline):
    module = Module.create(ws, "calc", None)
    version = _publish(ws, project, module, "1", first=True)
    result = PipelineData("r", is_directory=False)
    start, step = PipelineParameter("x", default_value=4), PipelineParameter("step", default_value=5)
    module_step = ModuleStep(
        module_version=version, outputs_map={"result": result}, name="add", params={"step": step},
        arguments=["--x", start, "--out", result],
    )  # fmt: skip
    assert module_step.params == {"step": step, "x": start}  # the version's default (1) overridden
    run_id, status, _ = run_pipeline(Pipeline(ws, [module_step]), parameters={"x": 6})
    assert (status, _results(history, run_id)) == ("Completed", {"add": "11"})
    with pytest.raises(UserErrorException, match="Parameter name x is already in use"):
        ModuleStep(module_version=version, params={"x": 3}, arguments=["--x", start])


def test_a_version_brings_its_own_arguments_and_run_configuration(ws, project, history, run_pipeline):
    """A step that gives no arguments or runconfig runs with the version's: its ports become the paths
    of the data mapped to them (an input port in download mode gets a copy), its parameters the step's."""
    from localpipe import RunConfiguration

    module = Module.create(ws, "calc", None)
    first = _publish(ws, project, module, "1", first=True)
    project("calc/calc.py", "import os, sys\nprint(os.environ['GREETING'], sys.argv[1:])\n" + SCRIPT.format(tag="v2"))
    x_in, result = InputPortDef("x_in", default_datastore_mode="download"), OutputPortDef("result")
    config = RunConfiguration()
    config.environment_variables = {"GREETING": "hello"}
    module.publish_python_script(
        "calc.py", "reads x", [x_in], [result], params={"step": 1}, version="2", source_directory=str(ws.root / "calc"),
        arguments=["--x_file", x_in, "--out", result], runconfig=config,
    )  # fmt: skip
    assert module.resolve("2").runconfig.environment_variables == {"GREETING": "hello"}
    start, added = PipelineData("start", is_directory=False), PipelineData("added", is_directory=False)
    steps = [
        ModuleStep(module_version=first, outputs_map={"result": start}, arguments=["--x", 3, "--out", start]),
        ModuleStep(module=module, version="2", inputs_map={"x_in": start}, outputs_map={"result": added}),
    ]
    run_id, status, _ = run_pipeline(Pipeline(ws, steps))
    assert (status, _results(history, run_id)) == ("Completed", {"calc": "4", "calc_2": "5"})
    printed = (history.layout.step_dir(run_id, "calc_2") / "stdout.log").read_text().splitlines()
    folder = history.layout.step_dir(run_id, "calc_2")  # the copy is named after the output it copies
    assert printed[0] == f"hello ['--x_file', '{folder}/inputs/x_in/result', '--out', '{folder}/outputs/result/result']"
    assert printed[1] == "v2 4 -> 5"


def test_wiring_that_names_no_port_is_refused_at_validation(ws, project, localpipe):
    module = Module.create(ws, "calc", None)
    first = _publish(ws, project, module, "1", first=True)
    _publish(ws, project, module, "2")
    data = PipelineData("d", is_directory=False)
    steps = [
        ModuleStep(module_version=first, outputs_map={"sum": data}, arguments=["--x", 1, "--out", data]),
        ModuleStep(module=module, inputs_map={"x": data}, name="second"),
    ]
    problems = [
        'step "calc": outputs_map key "sum" is not an output port of module "calc" version "1" (its output ports: '
        "result): map the data to one of those names",
        'step "second": inputs_map key "x" is not an input port of module "calc" version "2" (its input ports: '
        "x_in): map the data to one of those names",
        'step "second": input port "x_in" of module "calc" version "2" is not mapped: add "x_in" to inputs_map',
    ]
    assert Pipeline(ws, steps).validate() == problems
    with pytest.raises(PipelineValidationError) as refused:
        Experiment(ws, "bad").submit(Pipeline(ws, steps))
    assert refused.value.problems == problems
    project(
        "pipeline.py",
        """
        from azureml.core import Workspace
        from azureml.pipeline.core import Pipeline, PipelineData
        from azureml.pipeline.core.module import Module
        from azureml.pipeline.steps import ModuleStep

        ws = Workspace.from_config()
        result = PipelineData("r", is_directory=False)
        pipeline = Pipeline(ws, [ModuleStep(module=Module.get(ws, name="calc"), version="1",
                                            outputs_map={"out": result}, arguments=["--x", 1, "--out", result])])
        """,
    )
    proc = localpipe("submit", "pipeline.py")
    assert proc.returncode == 2, proc.stderr
    assert 'outputs_map key "out" is not an output port of module "calc" version "1"' in proc.stderr
    assert tables(ws).PipelineRun.select().count() == 0


def test_publishing_refuses_what_it_cannot_keep(ws, project):
    module = Module.create(ws, "calc", None)
    project("calc/calc.py", "print(1)")
    with pytest.raises(ValueError, match=r"Step \[calc\]: script not found at: .*missing.py"):
        module.publish_python_script("missing.py", "d", [], [], source_directory=str(ws.root / "calc"))
    with pytest.raises(UserErrorException, match=r'module "calc": inputs holds .* not an InputPortDef'):
        module.publish_python_script("calc.py", "d", [PipelineData("x")], [], source_directory=str(ws.root / "calc"))
    with pytest.raises(UserErrorException, match='module "calc": two ports are named "x"'):
        module.publish_python_script(
            "calc.py", "d", [InputPortDef("x")], [OutputPortDef("x")], source_directory=str(ws.root / "calc")
        )
    assert module.module_version_list() == [] and tables(ws).ModuleVersionRecord.select().count() == 0


def test_gc_keeps_the_sources_of_module_versions(ws, project, localpipe, run_pipeline):
    module = Module.create(ws, "calc", None)
    version = _publish(ws, project, module, "1", first=True)
    source = version._source_directory()
    assert localpipe("gc").returncode == 0
    assert (source / "calc.py").is_file()


def test_a_history_db_of_the_release_before_gains_the_module_tables(ws):
    """A file written before migration 0017 (no module tables) is brought up when opened."""
    import sqlite3

    from localpipe.state.history import History
    from localpipe.state.layout import Layout
    from localpipe.state.schema import MIGRATION_NAMES, SCHEMA_VERSION

    path = ws.root / ".localpipe" / "history.db"
    before = MIGRATION_NAMES.index("0017_modules")
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE module_version")
        conn.execute("DROP TABLE module")
        conn.executemany("DELETE FROM migration WHERE name = ?", [(n,) for n in MIGRATION_NAMES[before:]])
        conn.execute(f"PRAGMA user_version = {before}")
    conn.close()
    history = History(Layout.of(ws.root / ".localpipe"))  # opened anew, not the process's shared one
    with pytest.raises(NotFoundError):
        history.modules.module(name="calc")
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert [r[0] for r in conn.execute("SELECT name FROM migration")] == list(MIGRATION_NAMES)
    conn.close()


def test_localpipe_modules_lists_modules_and_a_modules_versions(ws, project, localpipe):
    import json

    assert localpipe("modules").stdout.startswith("no modules: make one with Module.create")
    module = Module.create(ws, "calc", "adds one")
    first = _publish(ws, project, module, "1", first=True)
    _publish(ws, project, module, "2", tag="v2", is_default=True)
    first.disable()
    Module.create(ws, "another", None)

    listed = json.loads(localpipe("modules", "--json", check=True).stdout)
    assert [(m["name"], m["default"], m["versions"], m["status"]) for m in listed] == [
        ("another", None, 0, "Active"),
        ("calc", "2", 2, "Active"),
    ]
    versions = json.loads(localpipe("modules", "calc", "--json", check=True).stdout)
    assert [(v["version"], v["status"], v["script"], v["description"]) for v in versions] == [
        ("1", "Disabled", "calc.py", "calc v1"),
        ("2", "Active", "calc.py", "calc v2"),
    ]
    assert versions[0]["id"] == first.module_version_id
    table = localpipe("modules", "calc", check=True).stdout
    assert table.splitlines()[0].split() == ["VERSION", "ID", "STATUS", "SCRIPT", "DESCRIPTION"]
    missing = localpipe("modules", "nope")
    assert (
        missing.returncode == 2
        and missing.stderr.strip() == 'error: no module is named "nope": see `localpipe modules`'
    )
