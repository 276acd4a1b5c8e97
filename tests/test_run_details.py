"""``RunDetails(run).show()`` from ``azureml.widgets``, as five of the official pipeline samples call
it: in a real Jupyter kernel (nbclient, ipykernel) and in a plain script."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import nbformat
from nbclient import NotebookClient

from tests.conftest import write

PIPELINE = textwrap.dedent("""
    from azureml.core import Experiment, Workspace
    from azureml.pipeline.core import Pipeline
    from azureml.pipeline.steps import PythonScriptStep
    from azureml.widgets import RunDetails

    ws = Workspace.from_config()
    first = PythonScriptStep(name="first", script_name="slow.py", source_directory="src", arguments=["a"])
    second = PythonScriptStep(name="second", script_name="slow.py", source_directory="src", arguments=["b"])
    second.run_after(first)
    pipeline_run = Experiment(ws, "widget").submit(Pipeline(workspace=ws, steps=[second]))
""")


def _azureml_path() -> str:
    return subprocess.run(
        [sys.executable, "-m", "localpipe", "azureml-path"], capture_output=True, text=True, check=True
    ).stdout.strip()


def _project(ws, seconds: float):
    write(ws.root / "src" / "slow.py", f"import time\ntime.sleep({seconds})\n")


def test_in_a_script_show_prints_each_status_change_and_returns_when_the_run_ends(ws):
    _project(ws, 0.3)
    script = write(
        ws.root / "sample.py",
        PIPELINE + "RunDetails(pipeline_run).show()\nprint('after show:', pipeline_run.get_status())\n",
    )
    env = {**os.environ, "PYTHONPATH": _azureml_path()}
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=ws.root, env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    changes = [line.split(" (")[0] for line in lines[:-2]]  # "second: Running (runs: no earlier run)"
    assert changes[:2] == ["first: NotStarted", "second: NotStarted"]
    # Each step's statuses in the order of its life cycle (one polled too late may be skipped).
    order = ["NotStarted", "Queued", "Running", "Completed"]
    for name in ("first", "second"):
        seen = [change.split(": ")[1] for change in changes if change.startswith(name + ":")]
        assert seen == sorted(seen, key=order.index) and seen[-1] == "Completed", (name, lines)
    assert changes.index("first: Completed") < changes.index("second: Completed")
    assert lines[-2:] == ["run 1: Completed", "after show: Completed"]


def test_in_jupyter_show_returns_at_once_and_keeps_the_table_current(ws, monkeypatch):
    """The cell with show() ends while the run goes on; the table it displayed is updated in place
    (update_display_data) until it says Completed."""
    _project(ws, 1.0)
    monkeypatch.setenv("PYTHONPATH", _azureml_path())
    cells = [
        PIPELINE,
        "import time\nstarted = time.monotonic()\nRunDetails(pipeline_run).show()\n"
        "print('show took', round(time.monotonic() - started, 2))",
        "print('status after show:', pipeline_run.get_status())",
        "pipeline_run.wait_for_completion(show_output=False)\ntime.sleep(2.5)  # the table's last refresh",
    ]
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source) for source in cells])
    NotebookClient(notebook, timeout=120, resources={"metadata": {"path": str(ws.root)}}).execute()

    show_outputs = notebook.cells[1].outputs
    # The kernel may deliver one print in several stream messages (the table's thread writes too).
    printed = "".join(o["text"] for o in show_outputs if o.get("name") == "stdout")
    took = next(line for line in printed.splitlines() if line.startswith("show took"))
    assert float(took.split()[-1]) < 1.0, took
    assert "Completed" not in "".join(o["text"] for o in notebook.cells[2].outputs), "the run ended before show"
    (table,) = [o["data"]["text/html"] for o in show_outputs if o["output_type"] == "display_data"]
    assert "run 1 of widget: <b>Completed</b>" in table
    for name in ("first", "second"):
        assert f"<td>{name}</td><td>Completed</td>" in table


def test_get_widget_data_of_a_pipeline_run_and_of_one_step(ws):
    from localpipe import Experiment, Pipeline, PythonScriptStep
    from localpipe.client.run_details import RunDetails

    _project(ws, 0)
    step = PythonScriptStep(name="only", script_name="slow.py", source_directory=str(ws.root / "src"))
    run = Experiment(ws, "data").submit(Pipeline(ws, [step]))
    run.wait_for_completion(show_output=False)
    data = RunDetails(run).get_widget_data()
    assert (data["run_id"], data["experiment"], data["status"]) == (run.id, "data", "Completed")
    ((child),) = data["child_runs"]
    assert (child["name"], child["status"]) == ("only", "Completed") and child["duration"] >= 0
    assert RunDetails(run.find_step_run("only")[0]).get_widget_data()["child_runs"] == [child]
