"""The examples run end to end through a real `localpipe` process, and the seed also as a plain script.

Each test uses a fresh workspace under tmp_path; the example folders live in the repository and
must come out of a run exactly as they went in (nothing written next to the sources).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"

CASES = {
    # example: (its steps, the step that logs the headline metric)
    "iris": ({"prepare", "train", "evaluate"}, "evaluate"),
    "seed": ({"prepare.py", "train.py", "compare.py"}, "compare.py"),
}


def example_files() -> set[str]:
    """Every path under the examples this module runs, ignored files (``__pycache__``) included."""
    return {str(p.relative_to(EXAMPLES)) for name in CASES for p in (EXAMPLES / name).rglob("*")}


def as_json(proc: subprocess.CompletedProcess):
    assert proc.returncode == 0, f"exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return json.loads(proc.stdout)


def submit(localpipe, pipeline_file: Path) -> int:
    """Submit in the foreground; returns the new run's id."""
    proc = localpipe("submit", pipeline_file)
    assert proc.returncode == 0, f"submit exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return as_json(localpipe("runs", "-n", "1", "--json"))[0]["id"]


def step_statuses(localpipe, run_id: int) -> dict[str, str]:
    return {s["name"]: s["status"] for s in as_json(localpipe("show", run_id, "--json"))["steps"]}


@pytest.mark.parametrize("example", sorted(CASES))
def test_example_completes_then_is_reused(localpipe, example):
    steps, metric_step = CASES[example]
    pipeline_file = EXAMPLES / example / "pipeline.py"
    before = example_files()

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

    assert example_files() == before


def test_seed_runs_as_a_plain_script(ws, localpipe):
    before = example_files()
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / "seed" / "pipeline.py")],
        cwd=ws.root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, f"exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"

    lines = proc.stdout.splitlines()
    for step in CASES["seed"][0]:
        assert any(line.startswith(f"{step}: Completed") for line in lines), proc.stdout
    assert "[compare.py] best model: bar_threshold" in proc.stdout
    assert lines[-1] == "run 1: Completed"

    (run,) = as_json(localpipe("runs", "--json"))
    assert run["experiment"] == "Compare_Models_Exp"
    assert example_files() == before
