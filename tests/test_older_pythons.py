"""A step on an interpreter older than localpipe's (docs/environments.md: Python 3.8 or later in
the step) uses the run API as on localpipe's own: what ``Run.get_context()`` and its members
import runs there (ruff checks those modules' syntax against 3.8: pyproject.toml's
per-file-target-version; this test their use of the standard library and of builtins)."""

from __future__ import annotations

from pathlib import Path

import pytest

from localpipe import Environment, Experiment, Pipeline, PipelineRun, PythonScriptStep, RunConfiguration
from localpipe.client.workspace import history_of

PYENV = Path("/root/.pyenv/versions")
OLDER = {f"3.{minor}": next(iter(sorted(PYENV.glob(f"3.{minor}.*"))), None) for minor in (8, 9, 10)}

STEP = """
import os, sys
from azureml.core import Run
run = Run.get_context()
print(".".join(map(str, sys.version_info[:2])), run.id, run.parent.id, run.type)
run.log("acc", 0.5)
run.log("acc", 0.6)
run.log_list("sizes", [1, 2])
run.log_row("epochs", epoch=1, loss=0.5)
run.log_table("table", {"a": [1, 2], "b": 3})
run.tag("model", "ridge")
run.add_properties({"stage": "train"})
os.makedirs("outputs", exist_ok=True)
open("outputs/model.txt", "w").write("weights")
run.upload_files(["more/copy.txt"], ["outputs/model.txt"])
child = run.child_run(name="fold")
child.log("fold_acc", 0.4)
child.complete()
print(run.parent.get_status(), run.get_details()["runId"] == run.id)
try:
    run.register_model("m", "outputs/model.txt")
except Exception as exc:
    print(type(exc).__name__, str(exc).split(":")[0])
"""


@pytest.mark.parametrize("version", sorted(OLDER))
def test_the_run_api_in_a_step_on_an_older_python(ws, project, run_pipeline, version):
    if OLDER[version] is None:
        pytest.skip(f"needs pyenv's Python {version}")
    project("src/train.py", STEP)
    env = Environment(f"py{version}")
    env.python.user_managed_dependencies = True
    env.python.interpreter_path = str(OLDER[version] / "bin" / "python")
    config = RunConfiguration()
    config.environment = env
    step = PythonScriptStep("train.py", name="train", source_directory=str(ws.root / "src"), runconfig=config)
    run_id, status, steps = run_pipeline(Pipeline(ws, [step]))
    out = (history_of(ws).layout.step_dir(run_id, "train") / "stdout.log").read_text().splitlines()
    assert status.value == "Completed", (out, steps)
    train = PipelineRun(Experiment(ws, "test"), run_id).find_step_run("train")[0]
    assert out[:2] == [f"{version} {train.id} {run_id} azureml.StepRun", "Running True"]
    # BLAKE3 (localpipe's hash) comes compiled for localpipe's Python: registering needs it in the step's
    assert out[2].startswith(f"UsageError BLAKE3, localpipe's hash, cannot be loaded in Python {OLDER[version].name} (")
    assert train.get_metrics() == {
        "acc": [0.5, 0.6],
        "sizes": [1, 2],
        "epochs": {"epoch": [1], "loss": [0.5]},
        "table": {"a": [1, 2], "b": [3]},
    }
    assert (train.get_tags(), train.get_properties()["stage"]) == ({"model": "ridge"}, "train")
    assert {"outputs/model.txt", "more/copy.txt"} <= set(train.get_file_names())
    (fold,) = train.get_children()
    assert (fold.display_name, fold.get_metrics()) == ("fold", {"fold_acc": 0.4})
