"""PipelineRun and StepRun: read-only handles on runs recorded in history.db.

They read through the same library functions as the `localpipe` commands (``history.runs``,
``state.reader``), so that Python and the command line always agree.
"""

from __future__ import annotations

import time
from pathlib import Path

from localpipe.client import models
from localpipe.client.workspace import history_of
from localpipe.engine.logs import print_new_lines
from localpipe.engine.recovery import cancel_run, recover_abandoned_runs
from localpipe.errors import NotFoundError, RunFailedError, RunTimeoutError, UsageError
from localpipe.state import reader
from localpipe.state.history import History
from localpipe.state.store import ObjectStore
from localpipe.status import RunStatus

POLL_SECONDS = 0.2


class PipelineRun:
    """A pipeline run: its status, its steps and their outputs."""

    def __init__(self, experiment, run_id: int):
        self.experiment = experiment
        self.id = int(run_id)

    @property
    def workspace(self):
        return self.experiment.workspace

    @property
    def _history(self) -> History:
        return history_of(self.workspace)

    def get_status(self) -> str:
        recover_abandoned_runs(self._history)
        return self._history.runs.status(self.id).value

    def get_details(self) -> dict:
        recover_abandoned_runs(self._history)
        return self._history.runs.details(self.id)

    def get_steps(self) -> list[StepRun]:
        return [StepRun(self, row["name"]) for row in self._history.runs.steps(self.id)]

    def find_step_run(self, name: str) -> list[StepRun]:
        """The step runs named ``name`` (a list, as in the Azure ML SDK)."""
        return [s for s in self.get_steps() if s.name == name]

    def get_metrics(self) -> dict:
        """``{step name: {metric name: value or list of values}}``."""
        result: dict = {}
        for metric in reader.metrics(self._history.layout, self.id):
            _add_metric(result.setdefault(metric["step"], {}), metric)
        return result

    def wait_for_completion(
        self, show_output: bool = True, timeout_seconds: float | None = None, raise_on_error: bool = True
    ) -> str:
        """Block until the run ends; with ``show_output``, print each step's status changes and log."""
        history = self._history
        deadline = time.monotonic() + timeout_seconds if timeout_seconds else None
        seen: dict[str, str] = {}
        offsets: dict[Path, int] = {}
        while True:
            recover_abandoned_runs(history)
            status = history.runs.status(self.id)
            if show_output:
                self._print_progress(seen, offsets, status.is_final)
            if status.is_final:
                break
            if deadline and time.monotonic() > deadline:
                raise RunTimeoutError(
                    f"run {self.id} is still {status.value} after {timeout_seconds}s: wait longer, "
                    "or cancel it with run.cancel()"
                )
            time.sleep(POLL_SECONDS)
        if show_output:
            print(f"run {self.id}: {status.value}", flush=True)
        if raise_on_error and status is not RunStatus.COMPLETED:
            error = history.runs.get(self.id)["error"]
            raise RunFailedError(f"run {self.id} {status.value.lower()}: {error or 'see localpipe show'}")
        return status.value

    def _print_progress(self, seen: dict[str, str], offsets: dict[Path, int], final: bool) -> None:
        history = self._history
        for row in history.runs.steps(self.id):
            name = row["name"]
            if seen.get(name) != row["status"]:
                seen[name] = row["status"]
                reason = f" ({row['reason']})" if row["reason"] else ""
                print(f"{name}: {row['status']}{reason}", flush=True)
            for log in ("stdout.log", "stderr.log"):
                path = history.layout.step_dir(self.id, name) / log
                offsets[path] = print_new_lines(path, offsets.get(path, 0), f"[{name}] ", _echo, final)

    def cancel(self) -> None:
        """Cancel the run: its scheduler ends every step's process tree and marks it Canceled."""
        cancel_run(self._history, self.id)

    register_model = models.register_model

    def __repr__(self) -> str:
        return f"PipelineRun(id={self.id}, experiment={self.experiment.name!r})"


class StepRun:
    """One step of a pipeline run."""

    def __init__(self, pipeline_run: PipelineRun, name: str):
        self.parent = pipeline_run
        self.name = name

    def _row(self) -> dict:
        return self.parent._history.runs.find_step(self.parent.id, self.name)

    @property
    def id(self) -> int:
        return self._row()["id"]

    @property
    def reused_from(self) -> int | None:
        """The id of the step run whose outputs this one reused, if it was reused."""
        return self._row()["reused_from_step_run"]

    def get_status(self) -> str:
        return self._row()["status"]

    def get_details(self) -> dict:
        row = self._row()
        return row | {"outputs": self.parent._history.runs.step_outputs(row["id"])}

    def get_metrics(self) -> dict:
        result: dict = {}
        for metric in reader.metrics(self.parent._history.layout, self.parent.id, self.name):
            _add_metric(result, metric)
        return result

    def get_output_data(self, name: str) -> OutputData:
        """The committed output ``name`` of this step (also for a reused step)."""
        history = self.parent._history
        outputs = history.runs.step_outputs(self.id)
        if name not in outputs:
            raise NotFoundError(
                f'step "{self.name}" of run {self.parent.id} has no output "{name}" '
                f"(its outputs: {', '.join(outputs) or 'none'})"
            )
        return OutputData(name, ObjectStore(history.layout.objects).path(outputs[name]))

    def get_stdout_log(self) -> str:
        return self._log("stdout.log")

    def get_stderr_log(self) -> str:
        return self._log("stderr.log")

    def _log(self, name: str) -> str:
        path = self.parent._history.layout.step_dir(self.parent.id, self.name) / name
        return path.read_text(errors="replace") if path.exists() else ""

    register_model = models.register_model

    def __repr__(self) -> str:
        return f"StepRun(run={self.parent.id}, name={self.name!r})"


class OutputData:
    """A committed step output: ``path`` (read-only, in the object store) and ``download(dest)``."""

    def __init__(self, name: str, path: Path):
        self.name = name
        self.path = path

    def download(self, local_path: str | Path, overwrite: bool = False) -> Path:
        """Copy the output into ``local_path/<name>``; returns that path."""
        import shutil

        dest = Path(local_path) / self.name
        if dest.exists() and not overwrite:
            raise UsageError(f"{dest} already exists: pass overwrite=True (--overwrite) or choose another folder")
        shutil.copytree(self.path, dest, dirs_exist_ok=overwrite)
        for path in (dest, *dest.rglob("*")):
            path.chmod(path.stat().st_mode | 0o200)  # the copy is the user's, not the store's
        return dest


def _echo(line: str) -> None:
    print(line, flush=True)


def _add_metric(into: dict, metric: dict) -> None:
    name, value = metric["name"], metric["value"]
    if metric["kind"] == "scalar":
        if name in into:
            into[name] = [*(into[name] if isinstance(into[name], list) else [into[name]]), value]
        else:
            into[name] = value
    elif metric["kind"] == "row":
        into.setdefault(name, []).append(value)
    else:
        into[name] = value
