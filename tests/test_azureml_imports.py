"""Azure ML SDK v1 imports (`from azureml.core import Run`) resolve to localpipe in its own processes
and, once a user opts in, in theirs; never anywhere else (docs/azureml-imports.md)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from localpipe import Pipeline, PythonScriptStep, Workspace
from localpipe.cli.compat_cmds import azureml_path
from localpipe.compat import SHIM_DIR
from localpipe.compat.names import MODULES
from localpipe.compat.runtime import LINKS, step_pythonpath
from localpipe.errors import ComputeTargetException, LocalpipeError, UsageError, UserErrorException
from localpipe.sdk.compute import AmlCompute, ComputeTarget, LocalCompute
from localpipe.sdk.pipeline import StepSequence
from localpipe.status import RunStatus
from tests.conftest import write

NOT_YET = "yet: see the status table in localpipe's README.md"

# The seed page's imports (docs: the research notes of issue 13, 6b), in a pipeline file that
# otherwise follows the page; the steps log through azureml's Run.
SEED_PIPELINE = """
import azureml.core
from azureml.core import Workspace, Datastore
from azureml.core import Dataset
from azureml.pipeline.core import PipelineData
from azureml.core.compute import ComputeTarget, AmlCompute
from azureml.core.runconfig import RunConfiguration
from azureml.core.conda_dependencies import CondaDependencies
from azureml.core import Environment
from azureml.pipeline.steps import PythonScriptStep
from azureml.pipeline.core import Pipeline
from azureml.core import Experiment

print("Azure ML SDK version:", azureml.core.VERSION)
ws = Workspace.from_config()
def_blob_store = Datastore(ws, "workspaceblobstore")
images = Datastore.register_local(ws, "seed_data", "data")
my_dataset = Dataset.File.from_files([(images, "train-images/")])
output_data1 = PipelineData("output_data1", datastore=def_blob_store, output_name="output_data1")

compute_name = "aml-compute"
if compute_name in ws.compute_targets:
    compute_target = ws.compute_targets[compute_name]
else:
    provisioning_config = AmlCompute.provisioning_configuration(vm_size="STANDARD_D1_V2", min_nodes=0, max_nodes=4)
    compute_target = ComputeTarget.create(ws, compute_name, provisioning_config)
    compute_target.wait_for_completion(show_output=True, min_node_count=None, timeout_in_minutes=20)

aml_run_config = RunConfiguration()
aml_run_config.target = compute_target
aml_run_config.environment.python.user_managed_dependencies = True

ds_input = my_dataset.as_named_input("input1")
data_prep_step = PythonScriptStep(
    script_name="prepare.py",
    source_directory="./dataprep_src",
    arguments=["--input", ds_input.as_download(), "--output", output_data1],
    inputs=[ds_input],
    outputs=[output_data1],
    compute_target=compute_target,
    runconfig=aml_run_config,
)
train_step = PythonScriptStep(
    script_name="train.py",
    source_directory="./train_src",
    arguments=["--prepped_data", output_data1.as_input()],
    compute_target=compute_target,
    runconfig=aml_run_config,
)
pipeline1 = Pipeline(workspace=ws, steps=[[data_prep_step, train_step]])

if __name__ == "__main__":
    pipeline_run1 = Experiment(ws, "Compare_Models_Exp").submit(pipeline1)
    pipeline_run1.wait_for_completion()
    print("finished:", pipeline_run1.get_status())
"""

PREPARE = """
import argparse, os
from azureml.core import Run, Dataset

parser = argparse.ArgumentParser()
parser.add_argument("--input")
parser.add_argument("--output")
args = parser.parse_args()
images = sorted(os.listdir(args.input))
os.makedirs(args.output, exist_ok=True)
with open(os.path.join(args.output, "count.txt"), "w") as f:
    f.write(str(len(images)))
Run.get_context().log("images", len(images))
"""

TRAIN = """
import argparse, os
from azureml.core import Run

parser = argparse.ArgumentParser()
parser.add_argument("--prepped_data")
args = parser.parse_args()
with open(os.path.join(args.prepped_data, "count.txt")) as f:
    count = int(f.read())
run = Run.get_context()
run.log("accuracy", count / 4)
assert run.experiment.workspace.name
"""


def plain_env(**extra: str) -> dict[str, str]:
    """This process's environment without PYTHONPATH: what a user's shell has before opting in."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, **extra}


def python(code: str, cwd: Path, *flags: str, **env: str) -> subprocess.CompletedProcess:
    """``python [flags] -c code`` in ``cwd``, with ``env`` over the environment of plain_env()."""
    return run_python([*flags, "-c", code], cwd, **env)


def run_python(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=cwd, env=plain_env(**env), capture_output=True, text=True, timeout=120
    )


def seed_project(ws) -> Path:
    root = ws.root / "seed"
    write(root / "pipeline.py", SEED_PIPELINE)
    write(root / "dataprep_src/prepare.py", PREPARE)
    write(root / "train_src/train.py", TRAIN)
    for name in ("a.png", "b.png", "c.png"):
        write(root / "data/train-images" / name, "not really a picture\n")
    return root


def logged(localpipe, run_id: int = 1) -> dict:
    done = localpipe("metrics", run_id, "--json", check=True)
    return {m["name"]: m["value"] for m in json.loads(done.stdout)}


@pytest.fixture
def azureml(monkeypatch):
    """The shim in this process for one test; afterwards azureml is gone from it again."""
    monkeypatch.syspath_prepend(SHIM_DIR)
    yield
    for name in [m for m in sys.modules if m == "azureml" or m.startswith("azureml.")]:
        del sys.modules[name]
    sys.meta_path[:] = [f for f in sys.meta_path if getattr(f, "__name__", "") != "_AzuremlFinder"]


# -- where the shim is active --------------------------------------------------------------------


def test_the_seed_imports_work_in_a_pipeline_file_and_its_steps(ws, localpipe, monkeypatch):
    monkeypatch.delenv("PYTHONPATH", raising=False)
    seed_project(ws)
    done = localpipe("submit", "seed/pipeline.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert logged(localpipe) == {"images": 3, "accuracy": 0.75}


def test_a_pipeline_file_with_the_seed_imports_loads_without_opting_in(ws, localpipe, monkeypatch):
    monkeypatch.delenv("PYTHONPATH", raising=False)
    seed_project(ws)
    done = localpipe("status", "seed/pipeline.py")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Azure ML SDK version: 0.1.0" in done.stdout + done.stderr


def test_a_users_own_python_pipeline_py_works_once_they_opt_in(ws, localpipe):
    root = seed_project(ws)
    refused = run_python(["pipeline.py"], root)
    assert "ModuleNotFoundError: No module named 'azureml'" in refused.stderr

    shim = CliRunner().invoke(azureml_path).output.strip()  # PYTHONPATH=$(localpipe azureml-path) python pipeline.py
    done = run_python(["pipeline.py"], root, PYTHONPATH=shim)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "finished: Completed" in done.stdout
    assert logged(localpipe) == {"images": 3, "accuracy": 0.75}  # the steps got it from the user's environment


def test_azureml_is_importable_nowhere_else(tmp_path):
    plain = python("import azureml", tmp_path)
    assert plain.returncode == 1 and "ModuleNotFoundError: No module named 'azureml'" in plain.stderr
    assert python("import localpipe, azureml", tmp_path).returncode == 1  # importing localpipe adds nothing
    opted_in = python("import azureml.core; print(azureml.core.__name__)", tmp_path, PYTHONPATH=SHIM_DIR)
    assert opted_in.stdout == "azureml.core\n", opted_in.stderr


def test_localpipe_azureml_path_prints_the_shim_folder(localpipe):
    assert localpipe("azureml-path", check=True).stdout == SHIM_DIR + "\n"


def test_the_command_prints_the_shim_folder():
    done = CliRunner().invoke(azureml_path)
    assert done.exit_code == 0 and done.output == SHIM_DIR + "\n"
    assert sorted(os.listdir(SHIM_DIR)) in (["azureml"], ["__pycache__", "azureml"])


def test_a_distributed_job_configuration_imports_and_its_script_runs_once(azureml, ws, project):
    """The commandstep sample's `from azureml.core.runconfig import MpiConfiguration` was an
    ImportError; MpiConfiguration, PyTorchConfiguration and TensorflowConfiguration take the SDK's
    parameters, and a ScriptRunConfig given one warns that the script runs once, and runs it."""
    from azureml.core import Experiment, ScriptRunConfig
    from azureml.core.runconfig import MpiConfiguration, PyTorchConfiguration, TensorflowConfiguration

    project("src/train.py", "print('trained')\n")
    configs = (
        MpiConfiguration(node_count=2),
        PyTorchConfiguration(process_count=4, node_count=2),
        TensorflowConfiguration(worker_count=2, parameter_server_count=1),
    )
    assert (configs[0].process_count_per_node, configs[0].node_count) == (1, 2)
    assert (configs[1].communication_backend, configs[1].process_count, configs[1].node_count) == ("Nccl", 4, 2)
    for config in configs:
        with pytest.warns(UserWarning, match="^distributed_job_config: one machine runs one process per run; the "):
            src = ScriptRunConfig(str(ws.root / "src"), "train.py", distributed_job_config=config)
    run = Experiment(ws, "distributed").submit(src)
    assert run.wait_for_completion(show_output=False)["status"] == "Completed"
    assert run.get_details_with_logs()["logFiles"] == {"user_logs/std_out.txt": "trained\n"}


# -- what the shim gives, and what it costs ------------------------------------------------------


def test_every_name_of_the_table_is_the_localpipe_object(tmp_path):
    code = """
import importlib, json, localpipe
from localpipe.compat.names import MODULES
wrong = []
for module, names in MODULES.items():
    found = importlib.import_module(module)
    for name, target in names.items():
        where, _, attr = target.partition(":")
        if getattr(found, name) is not getattr(importlib.import_module(where), attr):
            wrong.append(f"{module}.{name}")
        if name not in dir(found):
            wrong.append(f"{module}.{name} not in dir()")
import azureml.core, azureml.core.runconfig
print(json.dumps([wrong, azureml.core.VERSION, azureml.core.runconfig.DEFAULT_CPU_IMAGE]))
"""
    done = python(code, tmp_path, PYTHONPATH=SHIM_DIR)
    assert done.returncode == 0, done.stderr
    wrong, version, image = json.loads(done.stdout)
    assert wrong == []
    from localpipe import __version__
    from localpipe.sdk.environment import DEFAULT_CPU_IMAGE

    assert (version, image) == (__version__, DEFAULT_CPU_IMAGE)
    assert {"azureml.core", "azureml.pipeline.core", "azureml.pipeline.steps", "azureml.data"} <= set(MODULES)


def test_from_azureml_core_import_run_imports_no_heavy_part_of_localpipe(tmp_path):
    code = """
import json, sys
before = set(sys.modules)
from azureml.core import Run
print(json.dumps(sorted(set(sys.modules) - before)))
"""
    done = python(code, tmp_path, PYTHONPATH=SHIM_DIR)
    assert done.returncode == 0, done.stderr
    loaded = json.loads(done.stdout)
    ours = {m for m in loaded if m.split(".")[0] in ("localpipe", "azureml")}
    assert ours == {
        "azureml",
        "azureml.core",
        "localpipe",
        "localpipe.client",
        "localpipe.client.child_runs",  # run.child_run(), create_children(): the standard library
        "localpipe.client.models",  # run.register_model: the standard library and sdk.model only
        "localpipe.client.run_base",
        "localpipe.client.run_files",
        "localpipe.client.runs",
        "localpipe.compat",
        "localpipe.compat.names",
        "localpipe.errors",
        "localpipe.status",
        "localpipe.sdk",
        "localpipe.sdk.model",
        "localpipe.sdk.service",
        "localpipe.sdk.workspace",
    }
    others = sorted(m for m in set(loaded) - ours if m.split(".")[0] not in sys.stdlib_module_names)
    assert others == []  # no peewee, psutil, click: the standard library only


def test_a_name_localpipe_lacks_says_so(tmp_path):
    cases = {
        "from azureml.core import Webservice": "ImportError: localpipe does not provide azureml.core.Webservice "
        + NOT_YET,
        "import azureml.train.automl": "ImportError: localpipe does not provide azureml.train.automl " + NOT_YET,
        "import azureml.core\nazureml.core.Webservice": "AttributeError: localpipe does not provide "
        "azureml.core.Webservice " + NOT_YET,
    }
    for code, message in cases.items():
        done = python(code, tmp_path, PYTHONPATH=SHIM_DIR)
        assert message in done.stderr.splitlines()[-1], done.stderr
    probe = python("import azureml.core; print(hasattr(azureml.core, '_repr_html_'))", tmp_path, PYTHONPATH=SHIM_DIR)
    assert probe.stdout == "False\n", probe.stderr


def test_a_pipeline_file_importing_what_localpipe_lacks_is_one_error_line(ws, localpipe):
    write(ws.root / "p.py", "from azureml.core import Webservice\n")
    done = localpipe("submit", "p.py")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [
        "error: pipeline file p.py raised ImportError: localpipe does not provide azureml.core.Webservice yet: see the "
        "status table in localpipe's README.md (docs/azureml-imports.md lists the azureml names it provides) "
        "(line 1): fix the file, or use --debug for the traceback"
    ]


# -- names added for the seed: StepSequence, ComputeTargetException ------------------------------


def test_step_sequence_runs_steps_in_its_order(ws, project, run_pipeline, tmp_path):
    log = tmp_path / "order.txt"
    project("src/say.py", f"import sys\nopen({str(log)!r}, 'a').write(sys.argv[1] + '\\n')\n")

    def say(word):
        return PythonScriptStep("say.py", name=word, source_directory=ws.root / "src", arguments=[word])

    a, b, c = say("a"), say("b"), say("c")
    _, status, steps = run_pipeline(Pipeline(ws, steps=StepSequence(steps=[c, b, a])))
    assert status is RunStatus.COMPLETED, steps
    assert log.read_text() == "c\nb\na\n"
    assert steps["b"]["started_at"] >= steps["c"]["ended_at"] and steps["a"]["started_at"] >= steps["b"]["ended_at"]

    first, second, last = say("first"), say("second"), say("last")
    _, _, steps = run_pipeline(Pipeline(ws, steps=[StepSequence(steps=[[first, second], last])]))
    assert steps["last"]["started_at"] >= max(steps["first"]["ended_at"], steps["second"]["ended_at"])
    assert last.predecessors == [first, second] and first.predecessors == second.predecessors == []


def test_compute_target_exception_as_the_azure_samples_catch_it(ws, azureml):
    from azureml.core.compute import AmlCompute as AzureAmlCompute
    from azureml.core.compute import ComputeTarget as AzureComputeTarget
    from azureml.core.compute_target import ComputeTargetException as FromComputeTarget
    from azureml.exceptions import AzureMLException
    from azureml.exceptions import ComputeTargetException as FromExceptions

    assert FromComputeTarget is FromExceptions is ComputeTargetException
    assert (AzureComputeTarget, AzureAmlCompute, AzureMLException) == (ComputeTarget, AmlCompute, LocalpipeError)
    try:
        cpu_cluster = AzureComputeTarget(workspace=ws, name="cpu-cluster")
        raise AssertionError("found a target that was never created")
    except FromComputeTarget as exc:
        assert str(exc) == (
            f'compute target "cpu-cluster" does not exist in workspace {ws.root}: create it with '
            'ComputeTarget.create(ws, "cpu-cluster", ...) or use "local"'
        )
        config = AzureAmlCompute.provisioning_configuration(vm_size="STANDARD_D1_V2", max_nodes=2)
        cpu_cluster = AzureComputeTarget.create(ws, "cpu-cluster", config)
    found = AzureComputeTarget(ws, "cpu-cluster")
    assert type(found) is AmlCompute and found.config == cpu_cluster.config
    assert AmlCompute(ws, "cpu-cluster").name == "cpu-cluster"
    assert ComputeTarget(ws, "local").name == "local"
    with pytest.raises(AzureMLException, match=r'"local" is a ComputeTarget, not AmlCompute'):
        AmlCompute(ws, "local")
    with pytest.raises(UserErrorException, match=r"takes a Workspace first, not the text 'big': make a target with"):
        ComputeTarget("big", LocalCompute.provisioning_configuration())  # localpipe's old declaration form


# -- the folder a step in another interpreter gets on its PYTHONPATH -----------------------------


def test_the_runtime_folder_holds_two_links_and_the_dependencies_aside(tmp_path):
    folder = Path(step_pythonpath(tmp_path / "cache"))
    assert folder.parent == tmp_path / "cache" / "runtime"
    assert sorted(os.listdir(folder)) == [".dependencies", "azureml", "localpipe"]
    assert {name: os.readlink(folder / name) for name in LINKS} == {n: str(t) for n, t in LINKS.items()}
    assert os.listdir(folder.parent) == [folder.name]  # nothing left aside
    assert step_pythonpath(tmp_path / "cache") == str(folder)

    # -S: no site-packages, so only what the folder gives can be imported
    code = (
        "import localpipe, sys; from azureml.core import Run; Run.get_context().log('x', 1); "
        "print(localpipe.__file__); import peewee"
    )
    done = python(code, tmp_path, "-S", PYTHONPATH=str(folder))
    assert "[offline run] scalar x: 1" in done.stdout, done.stderr
    assert done.stdout.splitlines()[1] == str(folder / "localpipe" / "__init__.py")
    assert "No module named 'peewee'" in done.stderr
    # with LOCALPIPE_DEPENDENCIES (what a step in a built environment gets), the workspace calls work
    dependencies = str(folder / ".dependencies")
    code = "import localpipe, peewee, sys; print(sys.path[-1])"
    done = python(code, tmp_path, "-S", PYTHONPATH=str(folder), LOCALPIPE_DEPENDENCIES=dependencies)
    assert done.stdout.strip() == dependencies, done.stderr


def test_concurrent_makers_of_the_runtime_folder_agree(tmp_path):
    code = (
        "import sys, pathlib\n"
        "from localpipe.compat.runtime import step_pythonpath\n"
        "print(step_pythonpath(pathlib.Path(sys.argv[1])))"
    )
    makers = [
        subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE, text=True)
        for _ in range(8)
    ]
    answers = {maker.communicate(timeout=60)[0] for maker in makers}
    assert all(maker.returncode == 0 for maker in makers)
    assert len(answers) == 1
    folder = Path(answers.pop().strip())
    assert sorted(os.listdir(folder)) == [".dependencies", "azureml", "localpipe"]
    assert os.listdir(tmp_path / "runtime") == [folder.name]


def test_a_damaged_runtime_folder_is_made_again(tmp_path):
    folder = Path(step_pythonpath(tmp_path))
    os.unlink(folder / "azureml")
    (folder / "stray").write_text("x")
    assert step_pythonpath(tmp_path) == str(folder)
    assert sorted(os.listdir(folder)) == [".dependencies", "azureml", "localpipe"]
    assert os.listdir(tmp_path / "runtime") == [folder.name]


# -- Workspace.from_config() and Azure's config.json ---------------------------------------------

AZURE_CONFIG = {"subscription_id": "0000-sub", "resource_group": "rg-ml", "workspace_name": "azure-ws"}


def test_without_config_json_the_workspace_has_local_values(ws):
    found = Workspace.from_config(ws.root)
    assert (found.name, found.subscription_id, found.resource_group, found.location) == (
        ws.root.name,
        "local",
        "local",
        "local",
    )


@pytest.mark.parametrize("where", ["config.json", ".azureml/config.json", "nb/config.json"])
def test_config_json_names_the_workspace(ws, where):
    write(ws.root / where, json.dumps(AZURE_CONFIG))
    (ws.root / "nb" / "deep").mkdir(parents=True, exist_ok=True)
    found = Workspace.from_config(ws.root / "nb" / "deep")
    assert found == ws and found.root == ws.root  # still found by its .localpipe folder
    assert (found.name, found.subscription_id, found.resource_group) == ("azure-ws", "0000-sub", "rg-ml")


def test_config_json_given_as_a_file_or_by_name(ws):
    write(ws.root / "settings/ws.json", json.dumps({**AZURE_CONFIG, "location": "westeurope"}))
    assert Workspace.from_config(ws.root / "settings/ws.json").location == "westeurope"
    assert Workspace.from_config(ws.root / "settings", _file_name="ws.json").name == "azure-ws"
    assert Workspace.from_config(ws.root / "settings").name == ws.root.name


def test_config_json_in_the_scope_form_names_the_workspace(ws):
    scope = (
        "/subscriptions/0000-sub/resourceGroups/rg-ml/providers/Microsoft.MachineLearningServices/workspaces/azure-ws"
    )
    write(ws.root / "config.json", json.dumps({"Scope": scope}))
    found = Workspace.from_config(ws.root)
    assert (found.name, found.subscription_id, found.resource_group) == ("azure-ws", "0000-sub", "rg-ml")


def test_a_config_json_above_the_workspace_is_not_read(ws):
    write(ws.root.parent / "config.json", "not even json")
    assert Workspace.from_config(ws.root).name == ws.root.name


def test_a_pipeline_file_next_to_config_json_gets_its_name(ws, project, azureml):
    from localpipe.engine.loader import load_pipeline

    project("proj/config.json", json.dumps(AZURE_CONFIG))
    project("proj/step.py", "print('hi')\n")
    pipe = project(
        "proj/pipeline.py",
        """
        from azureml.core import Workspace
        from azureml.pipeline.core import Pipeline
        from azureml.pipeline.steps import PythonScriptStep
        ws = Workspace.from_config()
        pipeline = Pipeline(ws, [PythonScriptStep("step.py", source_directory=".")])
        """,
    )
    loaded = load_pipeline(pipe, ws)
    assert loaded.workspace == ws and loaded.workspace.name == "azure-ws"


@pytest.mark.parametrize(
    "text, reason",
    [
        ("{not json", "cannot be read: not JSON (Expecting property name enclosed in double quotes"),
        ("[1, 2]", "is not a JSON object"),
        (
            '{"workspace_name": "w", "resource_group": 3}',
            "lacks subscription_id, resource_group (or they are not text)",
        ),
    ],
)
def test_a_malformed_config_json_is_one_error_naming_it(ws, text, reason):
    config = write(ws.root / "config.json", text)
    with pytest.raises(UsageError) as caught:
        Workspace.from_config(ws.root)
    message = str(caught.value)
    assert message.startswith(f"Azure ML config {config} {reason}")
    assert message.endswith(
        'write {"subscription_id": ..., "resource_group": ..., "workspace_name": ...} in it, or move it away'
    )


def test_a_malformed_config_json_fails_a_command_with_one_line(ws, localpipe):
    write(ws.root / "config.json", "{not json")
    done = localpipe("runs")
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1
    assert done.stderr.startswith(f"error: Azure ML config {ws.root / 'config.json'} cannot be read: not JSON")


def test_a_step_on_python_older_than_3_8_is_told_in_one_line(tmp_path):
    """train-with-datasets.ipynb asks for Python 3.6.2: where one is installed its steps run there,
    and `from azureml.core import Run` says what to change rather than failing on localpipe's syntax."""
    from localpipe.cache_dir import cache_root
    from localpipe.envs.pythons import find_pythons

    older = [path for version, path in find_pythons(cache_root()) if version.startswith(("3.6.", "3.7."))]
    if not older:
        pytest.skip("no Python 3.6 or 3.7 on this machine")
    for interpreter in older:
        done = subprocess.run(
            [interpreter, "-c", "from azureml.core.run import Run"],
            env={**os.environ, "PYTHONPATH": step_pythonpath(cache_root())},
            capture_output=True,
            text=True,
        )
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith(
            "ImportError: localpipe's azureml needs Python 3.8 or later in a step, and this one runs Python 3."
        )
        assert last.endswith("name python=3.8 or later in its environment (docs/environments.md)")
