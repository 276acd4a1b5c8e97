"""A workspace for the studio's tests: real runs of a real pipeline, and large made-up histories.

``make_workspace`` submits (as processes, as a user would) a two-step pipeline twice: its first
step logs a series, a row, a list and an image, writes HTML to its stdout and an output; its
second step is named ``<script>alert(1)</script>`` and consumes a registered dataset and the first
step's output, which is registered as dataset ``prepared_rows`` when it completes. The
second run changes a parameter of the first step only, so the second step is Reused.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from localpipe.studio.app import create_app
from tests.conftest import write

SCRIPT_STEP = "<script>alert(1)</script>"
TOKEN = "test-token"  # the studio's, in the tests' apps
# A 1x1 PNG: what log_image shows.
PNG = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg=="

PIPELINE = f"""
from localpipe import Dataset, OutputFileDatasetConfig, Pipeline, PipelineParameter, PythonScriptStep, Workspace

ws = Workspace.from_config()
raw = Dataset.File.from_files("data").register(ws, "raw", create_new_version=True)
prepared = OutputFileDatasetConfig("prepared").register_on_complete("prepared_rows")
lr = PipelineParameter("lr", default_value=0.1)
prep = PythonScriptStep(
    name="prep", script_name="prep.py", source_directory="prep", arguments=["--out", prepared, "--lr", lr]
)
score = PythonScriptStep(
    name={SCRIPT_STEP!r}, script_name="score.py", source_directory="score",
    arguments=["--data", prepared.as_input(), "--raw", raw.as_named_input("raw").as_mount()],
)
pipeline = Pipeline(workspace=ws, steps=[score])
"""

PREP = f"""
import argparse, base64, os
from azureml.core import Run

parser = argparse.ArgumentParser()
parser.add_argument("--out")
parser.add_argument("--lr", type=float)
args = parser.parse_args()
run = Run.get_context()
for epoch in range(6):
    run.log("loss", 1.0 / (epoch + 1) + args.lr)
run.log_row("scores", epoch=5, accuracy=0.9)
run.log_list("accuracies", [0.5, 0.7, 0.9])
with open("figure.png", "wb") as png:
    png.write(base64.b64decode({PNG!r}))
run.log_image("figure", path="figure.png")
print("prep says <b>hello</b> & <script>alert(2)</script>")
os.makedirs(args.out, exist_ok=True)
with open(os.path.join(args.out, "rows.csv"), "w") as out:
    out.write("a,b\\n1,2\\n")
"""

SCORE = """
import argparse, os
parser = argparse.ArgumentParser()
parser.add_argument("--data")
parser.add_argument("--raw")
args = parser.parse_args()
print("scored", open(os.path.join(args.data, "rows.csv")).read().count("\\n"), "rows")
"""

# A pipeline whose first step waits for a file (so that a test decides when it ends), and whose
# second runs until it is canceled.
WAITING = """
from localpipe import Pipeline, PipelineData, PythonScriptStep, Workspace

ws = Workspace.from_config()
token = PipelineData("token")
first = PythonScriptStep(name="first", script_name="first.py", source_directory="waiting", arguments=[token])
second = PythonScriptStep(
    name="second", script_name="second.py", source_directory="waiting", arguments=[token.as_input()]
)
pipeline = Pipeline(workspace=ws, steps=[second])
"""
FIRST = """
import os, sys, time
flag = os.path.join(os.environ["STUDIO_FLAGS"], "go")
while not os.path.exists(flag):
    time.sleep(0.02)
os.makedirs(sys.argv[1], exist_ok=True)
open(os.path.join(sys.argv[1], "t"), "w").write("t")
"""
SECOND = """
import time
print("second runs", flush=True)
time.sleep(120)
"""


def localpipe(root: Path, *args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "localpipe", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )
    assert proc.returncode == 0, f"localpipe {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc


def make_workspace(root: Path) -> Path:
    """A workspace at ``root`` with runs 1 and 2 of the pipeline above; returns ``root``."""
    write(root / "pipeline.py", PIPELINE)
    write(root / "prep/prep.py", PREP)
    write(root / "score/score.py", SCORE)
    write(root / "data/raw.csv", "x\n1\n")
    write(root / "waiting.py", WAITING)
    write(root / "waiting/first.py", FIRST)
    write(root / "waiting/second.py", SECOND)
    localpipe(root, "init", str(root))
    localpipe(root, "submit", "pipeline.py", "-e", "scores")
    localpipe(root, "submit", "pipeline.py", "-e", "scores", "--param", "lr=0.2")
    return root


def start_waiting_run(root: Path, flags: Path, *options: str) -> int:
    """Submit the waiting pipeline in the background (with ``options``: --regenerate-outputs, its
    first step ran before); returns its run id once its first step runs."""
    flags.mkdir(parents=True, exist_ok=True)
    proc = localpipe(
        root, "submit", "waiting.py", "-e", "waiting", "--detach", *options, env={"STUDIO_FLAGS": str(flags)}
    )
    run_id = int(proc.stdout.strip())
    from localpipe.state.layout import Layout
    from localpipe.state.views import Views

    views = Views(Layout.of(root / ".localpipe"))
    try:
        deadline = time.monotonic() + 60
        while views.statuses(run_id)["steps"]["first"]["status"] != "Running":
            assert time.monotonic() < deadline, views.statuses(run_id)
            time.sleep(0.05)
    finally:
        views.close()
    return run_id


def add_runs(tables, database, count: int, steps_per_run: int = 5) -> None:
    """Record ``count`` made-up completed runs of ``steps_per_run`` steps each (for timing the list)."""
    from peewee import fn

    from localpipe.state.models import insert_rows

    with database.write():
        experiment, _ = tables.Experiment.get_or_create(name="many")
        graph = tables.PipelineGraph.create(digest=f"many-{time.time()}", graph={"steps": []})
        start = (tables.PipelineRun.select(fn.MAX(tables.PipelineRun.id)).scalar() or 0) + 1
        now = time.time()
        insert_rows(
            tables.PipelineRun,
            [
                {
                    "id": start + i,
                    "experiment": experiment.id,
                    "pipeline": graph.id,
                    "status": "Completed" if i % 7 else "Failed",
                    "parameters": {"lr": i / count},
                    "submitted_at": now - count + i,
                    "started_at": now - count + i,
                    "ended_at": now - count + i + 0.5,
                }
                for i in range(count)
            ],
        )
        insert_rows(
            tables.StepRun,
            [
                {"run": start + i, "name": f"step{j}", "status": "Reused" if j % 2 else "Completed"}
                for i in range(count)
                for j in range(steps_per_run)
            ],
        )


def add_wide_run(tables, database, steps: int) -> int:
    """Record a made-up completed run of ``steps`` steps in levels of 25 (each consuming one of the
    level before), as a large pipeline's run page shows it; returns its id."""
    from localpipe.state.models import insert_rows

    with database.write():
        experiment, _ = tables.Experiment.get_or_create(name="wide")
        graph = tables.PipelineGraph.create(digest=f"wide-{time.time()}", graph={"steps": []})
        now = time.time()
        run = tables.PipelineRun.create(
            experiment=experiment,
            pipeline=graph,
            status="Completed",
            submitted_at=now - 100,
            started_at=now - 100,
            ended_at=now,
        )
        names = [f"s{i:04d}" for i in range(steps)]
        insert_rows(
            tables.StepRun,
            [
                {
                    "run": run.id,
                    "name": name,
                    "status": ("Completed", "Reused", "Failed", "Canceled")[i % 4],
                    "reason": f"reason of {name}",
                    "queued_at": now - 100 + i * 0.09,
                    "started_at": now - 99.9 + i * 0.09,
                    "ended_at": now - 99 + i * 0.09,
                    "placement": {"cpus": 1, "memory": None, "gpus": [], "gpu_uuids": []},
                }
                for i, name in enumerate(names)
            ],
        )
        insert_rows(
            tables.Edge,
            [
                {"run": run.id, "source": names[i - 25 + (i % 3)], "target": names[i], "data": "d"}
                for i in range(25, steps)
            ],
        )
    return run.id


@pytest.fixture(scope="module")
def root(tmp_path_factory, machine_cache):
    """A studio workspace (``make_workspace``), made once for a test module."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOCALPIPE_CACHE_DIR", str(machine_cache))
        return make_workspace(tmp_path_factory.mktemp("studio") / "ws")


@pytest.fixture
def client(root):
    """The user's browser, which opened the link: its token in the cookie the link set."""
    with TestClient(create_app(root / ".localpipe", TOKEN), base_url="http://127.0.0.1:8765") as test_client:
        test_client.cookies.set("localpipe_token_8765", TOKEN)
        yield test_client
