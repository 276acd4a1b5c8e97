"""``RunDetails(run).show()`` of ``azureml.widgets``: a run's steps and their status, as they change.

In Jupyter it is a table under the cell that a background thread keeps current until the run
ends, and the cell returns at once (as the SDK's widget does). Anywhere else (a script, a
terminal) it prints each step's status changes and blocks until the run ends, as the SDK does
outside Jupyter; the following ``wait_for_completion()`` then returns at once.
"""

from __future__ import annotations

import html
import threading
import time

from localpipe.client.workspace import history_of
from localpipe.engine.recovery import recover_abandoned_runs
from localpipe.state.reader import step_run_id
from localpipe.status import RunStatus

REFRESH_SECONDS = 1.0


class RunDetails:
    """The view of one run: a pipeline run (its steps) or one step run."""

    def __init__(self, run_instance):
        self.run_instance = run_instance
        step_of = getattr(run_instance, "parent", None)
        # A StepRun's parent is its pipeline run; a PipelineRun shows all its steps.
        self._run, self._only = (step_of, run_instance.name) if hasattr(step_of, "experiment") else (run_instance, None)
        self._history = history_of(self._run.experiment.workspace)

    def get_widget_data(self, widget_settings: dict | None = None) -> dict:
        """What the view shows, as data: the run's id and status, each step's status, reason and times."""
        recover_abandoned_runs(self._history)
        run = self._history.runs.get(self._run.number)
        steps = self._history.runs.steps(self._run.number)
        children = [
            {
                "name": step["name"],
                "run_id": step_run_id(run["id"], step["id"]),
                "status": step["status"],
                "reason": step["reason"],
                "reused_from_run": step["reused_from_run"],
                "start_time": step["started_at"],
                "end_time": step["ended_at"],
                "duration": _duration(step["started_at"], step["ended_at"]),
            }
            for step in steps
            if self._only in (None, step["name"])
        ]
        return {
            "run_id": str(run["id"]),
            "experiment": run["experiment"],
            "status": run["status"],
            "child_runs": children,
        }

    def show(self, render_lib=None, widget_settings: dict | None = None) -> None:
        """In Jupyter, a table kept current in the background; elsewhere, status lines until the run ends."""
        if _in_jupyter():
            self._show_in_notebook()
        else:
            self._print_until_final()

    def _show_in_notebook(self) -> None:
        from IPython.display import HTML, display

        handle = display(HTML(_table(self.get_widget_data())), display_id=True)

        def refresh() -> None:
            while True:
                data = self.get_widget_data()
                handle.update(HTML(_table(data)))
                if RunStatus(data["status"]).is_final:
                    return
                time.sleep(REFRESH_SECONDS)

        threading.Thread(target=refresh, name=f"RunDetails-{self._run.id}", daemon=True).start()

    def _print_until_final(self) -> None:
        seen: dict[str, str] = {}
        while True:
            data = self.get_widget_data()
            for step in data["child_runs"]:
                if seen.get(step["name"]) != step["status"]:
                    seen[step["name"]] = step["status"]
                    print(f"{step['name']}: {step['status']}{_because(step)}", flush=True)
            if RunStatus(data["status"]).is_final:
                print(f"run {data['run_id']}: {data['status']}", flush=True)
                return
            time.sleep(REFRESH_SECONDS)


def _in_jupyter() -> bool:
    """True in a Jupyter kernel (IPython's terminal shell is not one: it cannot update a table)."""
    import sys

    if "IPython" not in sys.modules:
        return False
    shell = sys.modules["IPython"].get_ipython()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def _duration(started: float | None, ended: float | None) -> float | None:
    if started is None:
        return None
    return round((ended or time.time()) - started, 1)


def _because(step: dict) -> str:
    return f" ({step['reason']})" if step["reason"] else ""


def _table(data: dict) -> str:
    rows = "".join(
        "<tr>"
        + "".join(
            f"<td>{html.escape(str(value))}</td>"
            for value in (
                step["name"],
                step["status"],
                "" if step["duration"] is None else f"{step['duration']} s",
                step["reason"] or "",
            )
        )
        + "</tr>"
        for step in data["child_runs"]
    )
    return (
        f"<p>run {data['run_id']} of {html.escape(data['experiment'])}: <b>{html.escape(data['status'])}</b> "
        f"(<code>localpipe show {data['run_id']}</code>)</p>"
        f"<table><tr><th>step</th><th>status</th><th>duration</th><th>reason</th></tr>{rows}</table>"
    )
