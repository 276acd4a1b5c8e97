"""The model registry (issue 14 item 5): Model.register and run.register_model as the official samples
write them, versions, tag filters, downloads, Model.get_model_path in a step, 8 registrations at once,
gc, the SDK's errors, `localpipe models`, and the migration of an older history.db."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys

import pytest

from localpipe import Dataset, Experiment, Model, Pipeline, PythonScriptStep, Run
from localpipe.client.runs import PipelineRun
from localpipe.client.workspace import history_of
from localpipe.errors import (
    ModelNotFoundException,
    ModelPathNotFoundException,
    UserErrorException,
    WebserviceException,
)
from localpipe.state.gc import collect, plan_gc
from localpipe.state.history import close_all
from localpipe.state.schema import SCHEMA_VERSION
from localpipe.state.store import ObjectStore

# A training step as the samples write it (tutorials/image-classification-mnist-data, train.py): the
# model is dumped into ./outputs and registered from the run; the version comes back at once.
TRAIN = """
import json, os, sys
from azureml.core import Dataset, Run

run = Run.get_context()
os.makedirs("outputs", exist_ok=True)
with open("outputs/sklearn_mnist_model.pkl", "w") as f:
    f.write("weights of " + sys.argv[1])
raw = Dataset.get_by_name(run.experiment.workspace, "raw")
model = run.register_model(
    model_name="sklearn_mnist",
    model_path="outputs/sklearn_mnist_model.pkl",
    tags={"area": "mnist"},
    datasets=[(Dataset.Scenario.TRAINING, raw)],
)
print(json.dumps({"version": model.version, "id": model.id, "run_id": model.run_id}))
"""

# The intro-to-pipelines sample's register_model.py: Model.register from inside a step.
REGISTER = """
import os
from shutil import copy2
from azureml.core import Model, Run

model_output_dir = "./model/"
os.makedirs(model_output_dir, exist_ok=True)
with open("saved.txt", "w") as f:
    f.write("dnn")
copy2("saved.txt", model_output_dir)
ws = Run.get_context().experiment.workspace
model = Model.register(workspace=ws, model_name="tf-dnn-mnist", model_path=model_output_dir)
print(model.version)
"""

# The parallel-run samples' scoring scripts (iris_score.py): the model's path, inside a step.
SCORE = """
from azureml.core.model import Model

model_path = Model.get_model_path("sklearn_mnist")
print(open(model_path).read())
"""


@pytest.fixture
def raw_dataset(ws, project):
    folder = project("data/raw/values.csv", "a,b\n1,2\n").parent
    return Dataset.File.from_files(str(folder)).register(ws, "raw")


def test_model_register_from_python_numbers_versions_and_filters_by_tags(ws, project, monkeypatch, tmp_path):
    monkeypatch.chdir(ws.root)
    project("sklearn_regression_model.pkl", "v1")
    first = Model.register(
        model_path="sklearn_regression_model.pkl",
        model_name="sklearn_regression_model",
        tags={"area": "diabetes", "type": "regression"},
        description="Ridge regression model to predict diabetes",
        workspace=ws,
    )
    project("sklearn_regression_model.pkl", "v2")
    second = Model.register(ws, "sklearn_regression_model.pkl", "sklearn_regression_model", tags={"area": "other"})
    assert (first.version, second.version, first.id) == (1, 2, "sklearn_regression_model:1")
    assert first.description == "Ridge regression model to predict diabetes" and first.model_framework == "Custom"
    assert Model(ws, "sklearn_regression_model").version == 2  # the latest
    assert Model(ws, "sklearn_regression_model", version=1).tags == {"area": "diabetes", "type": "regression"}
    assert Model(ws, id="sklearn_regression_model:1").version == 1
    assert Model(ws, "sklearn_regression_model", tags=[["area", "diabetes"]]).version == 1
    assert [m.version for m in Model.list(ws, tags=["type"])] == [1]
    assert [m.version for m in Model.list(ws, tags=[["area", "other"]])] == [2]
    assert [m.id for m in Model.list(ws, name="sklearn_regression_model")] == [second.id, first.id]
    assert [m.version for m in Model.list(ws, latest=True)] == [2] and list(ws.models) == ["sklearn_regression_model"]
    # Each version keeps its own bytes, read-only in the store; download copies them out, writable.
    assert open(Model.get_model_path("sklearn_regression_model", version=1, _workspace=ws)).read() == "v1"
    copied = first.download(target_dir=str(tmp_path / "dl"))
    assert copied == str(tmp_path / "dl" / "sklearn_regression_model.pkl") and open(copied).read() == "v1"
    with pytest.raises(WebserviceException, match="File already exists. To overwrite, set exist_ok to True"):
        second.download(target_dir=str(tmp_path / "dl"))
    assert open(second.download(target_dir=str(tmp_path / "dl"), exist_ok=True)).read() == "v2"
    with open(copied, "a") as handle:
        handle.write("!")  # the user's copy: writable


def test_folders_child_paths_tags_properties_and_delete(ws, project, monkeypatch, tmp_path):
    monkeypatch.chdir(ws.root)
    project("models/inception/weights.bin", "w")
    project("models/inception/vocab.txt", "v")
    project("models/notes.md", "n")
    model = Model.register(ws, "models/", "inception", child_paths=["inception"], properties={"acc": "0.9"})
    stored = model.download(str(tmp_path / "out"))  # the common path of the files, as the SDK answers
    assert stored == str(tmp_path / "out" / "models" / "inception")
    assert sorted(os.listdir(stored)) == ["vocab.txt", "weights.bin"]
    assert not os.path.exists(tmp_path / "out" / "models" / "notes.md")
    model.add_tags({"stage": "dev"})
    model.add_tags({"owner": "me"})
    model.remove_tags(["stage"])
    assert Model(ws, "inception").tags == {"owner": "me"}
    model.update(description="better", tags={"stage": "prod"})
    assert (Model(ws, "inception").description, Model(ws, "inception").tags) == ("better", {"stage": "prod"})
    model.add_properties({"loss": "0.1"})
    with pytest.raises(WebserviceException, match="properties are immutable.*acc"):
        model.add_properties({"acc": "1.0"})
    assert Model(ws, "inception").properties == {"acc": "0.9", "loss": "0.1"}
    assert Model.deserialize(ws, model.serialize()).id == "inception:1"
    model.delete()
    with pytest.raises(WebserviceException) as caught:
        Model(ws, "inception")
    assert "ModelNotFound" in caught.value.message  # what code written for Azure looks for


def test_a_deleted_version_is_never_given_again(ws, project, monkeypatch):
    """As Azure's registry, which continues from the last version: deleting the latest version (or all
    of them) and registering again gave the deleted number to other bytes, so "m:2" (a saved id, a
    deployment's configuration) named another model than the one it was written for."""
    monkeypatch.chdir(ws.root)
    for content in ("one", "two"):
        project("m.pkl", content)
        Model.register(ws, "m.pkl", "m")
    Model(ws, "m", version=2).delete()
    project("m.pkl", "three")
    assert Model.register(ws, "m.pkl", "m").version == 3
    for model in Model.list(ws, name="m"):
        model.delete()
    assert Model.register(ws, "m.pkl", "m").version == 4
    assert Model.register(ws, "m.pkl", "other").version == 1  # numbered per name
    with pytest.raises(WebserviceException, match="ModelNotFound"):
        Model(ws, "m", version=2)


def test_a_model_folder_with_links_and_a_fifo_registers_its_files(ws, project, monkeypatch, tmp_path):
    """As a dataset's files: a link to a file is that file; a linked folder, a dangling link and a fifo
    are left out. A dangling link or a link to a folder above was a shutil.Error listing every path it met."""
    monkeypatch.chdir(ws.root)
    project("model/weights.bin", "w")
    project("blobs/vocab.txt", "v")
    (ws.root / "model/vocab.txt").symlink_to(ws.root / "blobs/vocab.txt")
    (ws.root / "model/up").symlink_to(ws.root / "model", target_is_directory=True)
    (ws.root / "model/dangling").symlink_to(ws.root / "nowhere")
    os.mkfifo(ws.root / "model/fifo")
    model = Model.register(ws, "model", "linked")
    copied = model.download(str(tmp_path / "dl"))
    assert sorted(os.listdir(copied)) == ["vocab.txt", "weights.bin"]
    assert open(os.path.join(copied, "vocab.txt")).read() == "v"
    (ws.root / "only").mkdir()
    (ws.root / "only/dangling").symlink_to(ws.root / "nowhere")
    with pytest.raises(ModelPathNotFoundException, match='/only" holds no files'):
        Model.register(ws, "only", "nothing")


def test_registering_the_folder_that_holds_the_workspace_leaves_its_state_out(ws, project, monkeypatch, tmp_path):
    """Model.register(ws, ".", name) in the workspace's folder copied .localpipe/ too, and with it the
    copy being made in .localpipe/tmp/, into itself until the path was too long (OSError)."""
    monkeypatch.chdir(ws.root)
    project("train.py", "t")
    project("model.pkl", "m")
    model = Model.register(ws, ".", "project")
    assert sorted(os.listdir(model.download(str(tmp_path / "dl")))) == ["model.pkl", "train.py"]
    dataset = Dataset.File.from_files(".").register(ws, "project")
    assert dataset.to_path() == ["/model.pkl", "/train.py"]


def test_an_interactive_run_registers_its_outputs_once_it_completes_and_says_so_before(ws, monkeypatch):
    """Its ./outputs is kept among its files when it completes, as the SDK uploads it then: before,
    register_model said "it wrote nothing to ./outputs" of a run that had just written there."""
    monkeypatch.chdir(ws.root)
    run = Experiment(ws, "notebook").start_logging(snapshot_directory=None)
    (ws.root / "outputs" / "m.pkl").write_text("m")
    with pytest.raises(
        ModelPathNotFoundException,
        match=r"run 1 is Running: its \./outputs is kept .* \(run\.complete\(\) ends an interactive run",
    ):
        run.register_model("notebook-model", "outputs/m.pkl")
    run.complete()
    assert run.register_model("notebook-model", "outputs/m.pkl").version == 1


def test_a_download_onto_a_folder_or_below_a_file_is_one_error_and_copies_nothing(ws, project, monkeypatch, tmp_path):
    """exist_ok=True onto a folder of the model file's name was IsADirectoryError, and a target_dir that
    is a file FileExistsError, from inside the copy."""
    monkeypatch.chdir(ws.root)
    project("model/a.bin", "a")
    project("model/b.bin", "b")
    model = Model.register(ws, "model", "two")
    (tmp_path / "dl/model/b.bin").mkdir(parents=True)
    with pytest.raises(WebserviceException, match=r"dl/model/b\.bin is a folder: remove it, or choose another"):
        model.download(str(tmp_path / "dl"), exist_ok=True)
    assert not (tmp_path / "dl/model/a.bin").exists()
    (tmp_path / "file").write_text("f")
    with pytest.raises(WebserviceException, match=r"/file is a file, not a folder: choose another target_dir"):
        model.download(str(tmp_path / "file"))


def test_a_deleted_versions_handle_downloads_nothing_and_says_model_not_found(ws, project, monkeypatch, tmp_path):
    """A Model kept from before delete() still copied the deleted version out of the store, and once gc
    had removed its files it was a ValueError from zip(): it is the SDK's ModelNotFound either way."""
    monkeypatch.chdir(ws.root)
    project("m.pkl", "m")
    model = Model.register(ws, "m.pkl", "m")
    Model(ws, "m", version=1).delete()
    with pytest.raises(WebserviceException, match="ModelNotFound: Model with name m, version 1 not found"):
        model.download(str(tmp_path / "before-gc"))
    collect(history_of(ws), plan_gc(history_of(ws)))
    with pytest.raises(WebserviceException, match="ModelNotFound: Model with name m, version 1 not found"):
        model.download(str(tmp_path / "after-gc"))
    assert not (tmp_path / "before-gc").exists() and not (tmp_path / "after-gc").exists()


def test_a_version_whose_files_left_the_store_is_one_error_naming_it(ws, project, monkeypatch, tmp_path):
    """Its object removed by hand (or by a program as root): download was a ValueError from zip()."""
    monkeypatch.chdir(ws.root)
    project("m.pkl", "m")
    model = Model.register(ws, "m.pkl", "m")
    stored = ObjectStore(ws.state_dir / "objects").path(history_of(ws).models.get("m", 1)["digest"])
    for folder, _, _ in os.walk(stored):
        os.chmod(folder, 0o700)
    shutil.rmtree(stored)
    with pytest.raises(WebserviceException, match=r"model m:1: its files are not in the store \(.*m\.pkl\).*fsck"):
        model.download(str(tmp_path / "dl"))


def test_register_from_a_step_and_read_it_in_the_next_one(ws, project, run_pipeline, raw_dataset, invoke):
    project("train/train.py", TRAIN)
    project("score/score.py", SCORE)
    project("register/register.py", REGISTER)
    train = PythonScriptStep("train.py", name="train", source_directory=str(ws.root / "train"), arguments=["a"])
    score = PythonScriptStep("score.py", name="score", source_directory=str(ws.root / "score"))
    score.run_after(train)
    register = PythonScriptStep("register.py", name="register", source_directory=str(ws.root / "register"))
    run_id, status, steps = run_pipeline(Pipeline(ws, [train, score, register]))
    assert status.value == "Completed", steps
    folder = ws.state_dir / "runs" / str(run_id)
    said = json.loads((folder / "train" / "stdout.log").read_text())
    train_id = f"{run_id}_{steps['train']['id']}"  # the step run's id, as Run.get_context().id says it
    assert said == {"version": 1, "id": "sklearn_mnist:1", "run_id": train_id}
    assert (folder / "score" / "stdout.log").read_text() == "weights of a\n"  # Model.get_model_path in a step
    assert (folder / "register" / "stdout.log").read_text() == "Registering model tf-dnn-mnist\n1\n"
    model = Model(ws, "sklearn_mnist")
    assert model.experiment_name == "test" and model.run.name == "train" and model.run.parent.id == str(run_id)
    assert model.datasets == {"training": [raw_dataset]}
    assert [m.name for m in Model.list(ws, run_id=train_id)] == ["sklearn_mnist"]
    assert Run.get(ws, model.run_id).id == train_id and Model.list(ws, run_id=run_id) == []
    assert [m.name for m in Model.list(ws, dataset_id="raw:1")] == ["sklearn_mnist"]
    by_hand = Model(ws, "tf-dnn-mnist")  # Model.register in a step: no run_id, as in the SDK, but its lineage
    assert by_hand.run_id is None
    assert history_of(ws).models.get("tf-dnn-mnist", 1)["step"] == "register"
    # From the run handle, as pipeline-for-image-classification does after the run.
    run = PipelineRun(Experiment(ws, "test"), run_id)
    again = run.find_step_run("train")[0].register_model(
        model_name="keras-model",
        model_path="outputs/sklearn_mnist_model.pkl",
        datasets=[("train test data", raw_dataset)],
    )
    assert (again.version, again.datasets) == (1, {"train test data": [raw_dataset]})
    assert run.register_model("from-pipeline", "outputs/sklearn_mnist_model.pkl").run.id == str(run_id)
    assert [m.name for m in Model.list(ws, run_id=run_id)] == ["from-pipeline"]  # not its steps' models
    shown = invoke("models", "sklearn_mnist").output
    assert "sklearn_mnist version 1" in shown and f'registered by run {run_id} (step "train")' in shown
    assert "tags: area=mnist" in shown and "dataset (training): raw version 1" in shown


def test_eight_concurrent_registrations_get_eight_distinct_versions(
    ws, project, run_pipeline, raw_dataset, monkeypatch
):
    monkeypatch.setenv("LOCALPIPE_CPUS", "8")
    project("train/train.py", TRAIN)
    steps = [
        PythonScriptStep("train.py", name=f"t{i}", source_directory=str(ws.root / "train"), arguments=[f"w{i}"])
        for i in range(8)
    ]
    run_id, status, rows = run_pipeline(Pipeline(ws, steps))
    assert status.value == "Completed"
    said = {
        f"t{i}": json.loads((ws.state_dir / "runs" / str(run_id) / f"t{i}" / "stdout.log").read_text())["version"]
        for i in range(8)
    }
    assert sorted(said.values()) == list(range(1, 9))
    for step, version in said.items():  # the version each step was told is the one holding its files
        model = Model(ws, "sklearn_mnist", version=version)
        assert model.run_id == f"{run_id}_{rows[step]['id']}"
        assert open(Model.get_model_path("sklearn_mnist", version, ws)).read() == f"weights of w{step[1:]}"


def test_gc_keeps_registered_models_and_their_lineage_as_text(ws, project, run_pipeline, raw_dataset, invoke):
    project("train/train.py", TRAIN)
    run_id, _, _ = run_pipeline(
        Pipeline(
            ws, [PythonScriptStep("train.py", name="train", source_directory=str(ws.root / "train"), arguments=["x"])]
        )
    )
    history = history_of(ws)
    collect(history, plan_gc(history, older_than=0.0))  # forgets every run
    model = Model(ws, "sklearn_mnist")
    assert open(Model.get_model_path("sklearn_mnist", _workspace=ws)).read() == "weights of x"
    assert model.run is None  # the run is forgotten; its number and step stay
    assert f'registered by run {run_id} (step "train")' in invoke("models", "sklearn_mnist").output
    digest = history.models.get("sklearn_mnist", 1)["digest"]
    model.delete()
    collect(history, plan_gc(history))
    assert not ObjectStore(ws.state_dir / "objects").has(digest)


def test_gc_keeps_the_files_of_a_dataset_a_model_names_after_it_was_unregistered(ws, raw_dataset, monkeypatch):
    """unregister_all_versions leaves a model's link as the paths of the copy in the store, but gc did
    not count them: once the saved dataset was an hour old, gc removed the copy and the model's
    training dataset had no files."""
    monkeypatch.chdir(ws.root)
    (ws.root / "m.pkl").write_text("m")
    Model.register(ws, "m.pkl", "m", datasets=[(Dataset.Scenario.TRAINING, raw_dataset)])
    raw_dataset.unregister_all_versions()
    history = history_of(ws)
    history.database.tables.SavedDataset.update(created_at=0).execute()  # saved long ago
    collect(history, plan_gc(history))
    (training,) = Model(ws, "m").datasets["training"]
    assert [open(f).read() for f in training.files()] == ["a,b\n1,2\n"]


def test_model_list_by_dataset_id_takes_the_datasets_id_as_azure(ws, raw_dataset, monkeypatch):
    """Azure's dataset_id is the dataset's id (a GUID): Model.list(ws, dataset_id=ds.id) found nothing."""
    monkeypatch.chdir(ws.root)
    (ws.root / "m.pkl").write_text("m")
    Model.register(ws, "m.pkl", "m", datasets=[(Dataset.Scenario.TRAINING, raw_dataset)])
    Model.register(ws, "m.pkl", "other")
    assert [m.id for m in Model.list(ws, dataset_id=raw_dataset.id)] == ["m:1"]
    assert [m.id for m in Model.list(ws, dataset_id="raw:1")] == ["m:1"]  # localpipe's own forms stay
    assert Model.list(ws, dataset_id="00000000-0000-0000-0000-000000000000") == []


def test_the_sdks_errors(ws, project, monkeypatch, run_pipeline):
    monkeypatch.chdir(ws.root)
    project("m.pkl", "m")
    with pytest.raises(WebserviceException, match="provided model name 'bad name' is invalid"):
        Model.register(ws, "m.pkl", "bad name")
    with pytest.raises(WebserviceException, match="framework version cannot be provided without"):
        Model.register(ws, "m.pkl", "m", model_framework_version="1.0")
    with pytest.raises(WebserviceException, match="Tags must be a dict"):
        Model.register(ws, "m.pkl", "m", tags=["a"])
    with pytest.raises(FileNotFoundError, match='model path "missing.pkl" does not exist'):
        Model.register(ws, "missing.pkl", "m")
    with pytest.raises(WebserviceException, match="Invalid dataset of type str"):
        Model.register(ws, "m.pkl", "m", datasets=[("training", "/some/path")])
    with pytest.raises(WebserviceException, match="one of id or name must be provided"):
        Model(ws)
    with pytest.raises(TypeError, match="unexpected keyword argument 'verison'"):
        Model(ws, "m", verison=1)
    with pytest.raises(UserErrorException, match="Expected tags must be list type"):
        Model.list(ws, tags={"a": "b"})
    with pytest.raises(UserErrorException, match="page_count"):
        Model.list(ws, page_count=5)
    with pytest.raises(WebserviceException, match="version should be an int"):
        Model.get_model_path("m", version="1")
    with pytest.raises(ModelNotFoundException, match="Model/Version m/None not found in workspace"):
        Model.get_model_path("m", _workspace=ws)
    with pytest.raises(ModelNotFoundException, match="pass _workspace=ws"):
        Model.get_model_path("m")
    Model.register(ws, "m.pkl", "m")
    with pytest.raises(
        WebserviceException, match="ModelNotFound: Model with name m, version 7 not found.*registered models: m"
    ):
        Model(ws, "m", version=7)
    project("src/w.py", "import os\nos.makedirs('outputs')\nopen('outputs/other.pkl', 'w').write('x')\n")
    run_id, _, _ = run_pipeline(
        Pipeline(ws, [PythonScriptStep("w.py", name="w", source_directory=str(ws.root / "src"))])
    )
    step = PipelineRun(Experiment(ws, "test"), run_id).find_step_run("w")[0]
    with pytest.raises(
        ModelPathNotFoundException,
        match=r'"outputs/model.pkl" in the files of step run \d+_\d+ \("w"\) \(its outputs: outputs/other.pkl\)',
    ):
        step.register_model("m", "outputs/model.pkl")
    with pytest.raises(TypeError, match="unexpected keyword argument 'tag'"):
        step.register_model("m", "outputs/other.pkl", tag={"a": "b"})


def test_localpipe_models_lists_names_and_versions(ws, project, monkeypatch, invoke):
    monkeypatch.chdir(ws.root)
    assert "no models registered" in invoke("models").output
    project("a.pkl", "aaaa")
    Model.register(ws, "a.pkl", "alpha", tags={"k": "v"})
    Model.register(ws, "a.pkl", "alpha")
    Model.register(ws, "a.pkl", "beta")
    lines = invoke("models").output.splitlines()
    assert lines[0].split() == ["NAME", "LATEST", "VERSIONS", "SIZE", "REGISTERED", "BY"]
    assert lines[1].split()[:5] == ["alpha", "2", "2", "4", "B"] and "registered by hand" in lines[1]
    assert lines[2].split()[:3] == ["beta", "1", "1"]
    rows = json.loads(invoke("models", "alpha", "--json").output)
    assert [(r["version"], r["tags"], r["size"], r["files"]) for r in rows] == [(2, {}, 4, 1), (1, {"k": "v"}, 4, 1)]
    assert rows[0]["digest"] == rows[1]["digest"]  # the same bytes, stored once
    missing = invoke("models", "gamma")
    assert missing.exit_code == 2 and 'model "gamma" is not registered' in missing.output


def test_the_listing_of_a_models_or_datasets_versions_read_in_part_exits_0(ws, history):
    """`localpipe models NAME | head -1` (and `datasets NAME`): once the output passed a pipe's buffer,
    the closed stdout was a BrokenPipeError and exit 1, where every other listing exits 0."""
    models, datasets = history.models, history.datasets
    for version in range(1, 3001):
        datasets.record_version("many", f"{version:064x}", ["."], create_new_version=True)
    (ws.root / "m.pkl").write_text("m")
    models.register("long", str(ws.root / "m.pkl"), None, {"description": "d" * 200_000}, [])
    for command in (["models", "long"], ["datasets", "many"]):
        proc = subprocess.Popen(
            [sys.executable, "-m", "localpipe", *command], cwd=ws.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        proc.stdout.read(10)
        proc.stdout.close()
        try:
            code = proc.wait(timeout=60)
        finally:
            proc.kill()
        assert (code, proc.stderr.read()) == (0, b""), command


def test_a_history_db_before_the_model_registry_is_migrated(ws):
    close_all()
    conn = sqlite3.connect(ws.state_dir / "history.db")
    with conn:
        conn.execute("DROP TABLE model_dataset")
        conn.execute("DROP TABLE model_version")
        conn.execute("DELETE FROM migration WHERE name >= '0008'")
        conn.execute("PRAGMA user_version = 7")  # 0009 then adds nothing: its columns are there
    conn.close()
    assert Model.list(ws) == []
    conn = sqlite3.connect(ws.state_dir / "history.db")
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("SELECT COUNT(*) FROM model_version").fetchone() == (0,)


READ_REGISTRY = """
import os, sys
from azureml.core import Workspace
from azureml.core.model import Model
print(Model.get_model_path("iris", _workspace=Workspace.from_config(sys.argv[1])))
"""


def _python38() -> str | None:
    """A Python 3.8 on this machine, as a step's environment would find it (the official
    parallel-run samples' environments ask for 3.8), if any."""
    from localpipe.cache_dir import cache_root
    from localpipe.envs.pythons import find_pythons

    return next((path for version, path in find_pythons(cache_root()) if version.startswith("3.8.")), None)


def test_a_step_on_an_older_python_reads_the_model_registry(ws, project, tmp_path):
    """Azure's tabular iris sample calls Model.get_model_path in init() of an environment on Python
    3.8: the registry's modules import there (BLAKE3, built for localpipe's Python, is imported
    only when something is hashed), and hashing there says how to give that environment BLAKE3."""
    import subprocess
    import sys

    from localpipe.cache_dir import cache_root
    from localpipe.compat.runtime import DEPENDENCIES_FOLDER, step_pythonpath

    project("iris.pkl", "model")
    Model.register(ws, str(ws.root / "iris.pkl"), "iris")
    script = tmp_path / "read.py"
    script.write_text(READ_REGISTRY)
    path = step_pythonpath(cache_root())
    env = {**os.environ, "PYTHONPATH": path, "LOCALPIPE_DEPENDENCIES": os.path.join(path, DEPENDENCIES_FOLDER)}
    block = "import sys; sys.modules['blake3'] = None; "  # this Python cannot load it, as 3.8 cannot load a 3.11 build
    hashing = subprocess.run(
        [sys.executable, "-c", block + "from localpipe.content.hashing import hash_bytes; hash_bytes(b'x')"],
        env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert 'add the package "blake3" to the environment' in hashing.stderr
    older = _python38()
    if older is None:
        pytest.skip("no Python 3.8 on this machine: the import above stands for it")
    found = subprocess.run([older, str(script), str(ws.root)], env=env, capture_output=True, text=True)
    assert found.returncode == 0, found.stderr
    assert open(found.stdout.strip()).read() == "model"
