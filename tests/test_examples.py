"""The examples run end to end through a real `localpipe` process, and the seed also as a plain script.

Each test copies the example's folder into a fresh workspace under tmp_path and runs the copy: a
pipeline's workspace is found from its file's folder upwards, so the repository's own examples
would use the `.localpipe/` that the README's first command makes in the clone. The copy must come
out of a run exactly as it went in (nothing written next to the sources). The seed's
two files are the page's code as written (its `azureml` imports, its curated environment, or its
`CondaDependencies`): their environments are built from the package index, so the first run of
the suite downloads pandas and scikit-learn once (uv's cache keeps them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"

SEED_STEPS = {"prepare.py", "train.py", "compare.py"}
CASES = {
    # pipeline file: (its steps, the step that logs the headline metric)
    "iris/pipeline.py": ({"prepare", "train", "evaluate"}, "evaluate"),
    "seed/pipeline.py": (SEED_STEPS, "compare.py"),  # USE_CURATED_ENV = True: AzureML-Tutorial
    "seed/pipeline_conda.py": (SEED_STEPS, "compare.py"),  # USE_CURATED_ENV = False: its CondaDependencies
}


def copied_example(root: Path, name: str) -> Path:
    """The example folder ``name`` copied into the workspace at ``root``."""
    return Path(shutil.copytree(EXAMPLES / name, root / name))


def files_under(folder: Path) -> set[str]:
    """Every path under ``folder``, ignored files (``__pycache__``) included."""
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def as_json(proc: subprocess.CompletedProcess):
    assert proc.returncode == 0, f"exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout)


def submit(localpipe, pipeline_file: Path) -> int:
    """Submit in the foreground; returns the new run's id."""
    proc = localpipe("submit", pipeline_file)
    assert proc.returncode == 0, f"submit exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return as_json(localpipe("runs", "-n", "1", "--json"))[0]["id"]


def upload_seed_data(root: Path) -> None:
    """What the page assumes: the images on the workspace's blob datastore (the copied seed's
    upload_data.py, run as a user runs it: with `localpipe azureml-path` on PYTHONPATH)."""
    shim = subprocess.run([sys.executable, "-m", "localpipe", "azureml-path"], capture_output=True, text=True)
    proc = subprocess.run(
        [sys.executable, str(root / "seed" / "upload_data.py")],
        cwd=root,
        env={**os.environ, "PYTHONPATH": shim.stdout.strip()},
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr


def step_statuses(localpipe, run_id: int) -> dict[str, str]:
    return {s["name"]: s["status"] for s in as_json(localpipe("show", run_id, "--json"))["steps"]}


@pytest.mark.timeout(900)  # the seed's environments: a first download of their packages
@pytest.mark.parametrize("example", sorted(CASES))
def test_example_completes_then_is_reused(ws, localpipe, example):
    steps, metric_step = CASES[example]
    folder = copied_example(ws.root, example.split("/")[0])
    pipeline_file = ws.root / example
    before = files_under(folder)
    if example.startswith("seed/"):
        upload_seed_data(ws.root)

    first = submit(localpipe, pipeline_file)
    assert step_statuses(localpipe, first) == dict.fromkeys(steps, "Completed")
    accuracy = [
        m["value"]
        for m in as_json(localpipe("metrics", first, "--json"))
        if m["step"] == metric_step and m["name"] == "accuracy"
    ]
    assert len(accuracy) == 1 and accuracy[0] >= 0.8, accuracy

    second = submit(localpipe, pipeline_file)
    details = as_json(localpipe("show", second, "--json"))
    assert {s["name"]: s["status"] for s in details["steps"]} == dict.fromkeys(steps, "Reused")
    assert {s["reused_from_run"] for s in details["steps"]} == {first}

    assert files_under(folder) == before


@pytest.mark.timeout(900)
def test_seed_runs_as_a_plain_script_with_the_azureml_imports(ws, localpipe):
    """`python pipeline.py` from the example's folder, as the page's user runs it, after the
    one-line opt-in: its own `Experiment(ws, 'Compare_Models_Exp').submit(...)` and
    `wait_for_completion()`, which prints each step's status."""
    seed = copied_example(ws.root, "seed")
    before = files_under(seed)
    upload_seed_data(ws.root)
    shim = localpipe("azureml-path", check=True).stdout.strip()
    proc = subprocess.run(
        [sys.executable, "pipeline.py"],
        cwd=seed,
        env={**os.environ, "PYTHONPATH": shim},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"

    lines = proc.stdout.splitlines()
    for step in SEED_STEPS:
        assert any(line.startswith(f"{step}: Completed") for line in lines), proc.stdout
    assert "[compare.py] best model: bar_threshold" in proc.stdout
    assert lines[-1] == "run 1: Completed"

    (run,) = as_json(localpipe("runs", "--json"))
    assert run["experiment"] == "Compare_Models_Exp"
    built = as_json(localpipe("show", run["id"], "--json"))["steps"][0]["environment_build"]
    assert built["name"] == "AzureML-Tutorial" and any(p.startswith("scikit-learn==") for p in built["packages"])
    assert files_under(seed) == before
