"""``Run.get_context()``: the current step run inside a step, or an offline run outside localpipe.

A step logs by appending JSON lines to its own metrics file; the scheduler moves them into
history.db. Steps never write history.db themselves, so any number of them log without locks.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any

from localpipe.client import models


class Run:
    """Entry point, as in the Azure ML SDK: ``Run.get_context()``."""

    @staticmethod
    def get_context(allow_offline: bool = True) -> StepRunContext | OfflineRun:
        """The run this process belongs to: a step run under localpipe, else an offline run."""
        if os.environ.get("LOCALPIPE_STEP_RUN_ID"):
            return StepRunContext(os.environ)
        if not allow_offline:
            from localpipe.errors import LocalpipeError

            raise LocalpipeError(
                "not inside a localpipe step: run the script through a pipeline, or pass allow_offline=True"
            )
        return OfflineRun()


class _Logging:
    """The logging methods, written once over ``_emit``."""

    def _emit(self, kind: str, name: str, value: Any) -> None:
        raise NotImplementedError

    def log(self, name: str, value: Any, description: str = "") -> None:
        """Log a scalar; logging the same name again makes a series."""
        self._emit("scalar", name, value)

    def log_list(self, name: str, value: list, description: str = "") -> None:
        self._emit("list", name, list(value))

    def log_row(self, name: str, description: str | None = None, **row: Any) -> None:
        """Log one row of a table called ``name``."""
        self._emit("row", name, row)

    def log_image(self, name: str, path: str | None = None, plot=None, description: str = "") -> None:
        """Log an image file (``path``) or a matplotlib figure (``plot``)."""
        if plot is not None:
            path = self._save_plot(name, plot)
        self._emit("image", name, os.path.abspath(path) if path else None)

    def _save_plot(self, name: str, plot) -> str:
        folder = os.environ.get("LOCALPIPE_STEP_DIR") or os.getcwd()
        path = os.path.join(folder, f"{name}.png")
        plot.savefig(path)
        return path

    def tag(self, key: str, value: Any = None) -> None:
        self._emit("tag", key, value)

    def set_tags(self, tags: dict) -> None:
        for key, value in tags.items():
            self.tag(key, value)


class StepRunContext(_Logging):
    """The step run of this process, as localpipe started it."""

    def __init__(self, environ):
        self.id = int(environ["LOCALPIPE_STEP_RUN_ID"])
        self.name = environ.get("LOCALPIPE_STEP_NAME")
        self._metrics_file = environ["LOCALPIPE_METRICS_FILE"]
        self._workspace_root = environ["LOCALPIPE_WORKSPACE"]
        self._run_id = int(environ["LOCALPIPE_RUN_ID"])
        self._experiment = environ.get("LOCALPIPE_EXPERIMENT", "")
        self.input_datasets: dict = json.loads(environ.get("LOCALPIPE_INPUTS", "{}"))
        tables = json.loads(environ.get("LOCALPIPE_INPUT_TABLES", "{}"))
        direct = json.loads(environ.get("LOCALPIPE_INPUT_DATASETS", "[]"))
        if tables or direct:  # as the SDK gives them: a dataset, not a path
            from localpipe.sdk.data.datasets import FileDataset, input_table

            for name, options in tables.items():
                self.input_datasets[name] = input_table(self.input_datasets[name], options)
            for name in direct:
                self.input_datasets[name] = FileDataset(paths=(self.input_datasets[name],))
        self.output_datasets: dict[str, str] = json.loads(environ.get("LOCALPIPE_OUTPUTS", "{}"))

    def _emit(self, kind: str, name: str, value: Any) -> None:
        line = json.dumps({"kind": kind, "name": name, "value": value, "time": time.time()})
        # One write of one line in append mode: lines from one process never interleave.
        with open(self._metrics_file, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    @property
    def experiment(self):
        from localpipe.client.experiment import Experiment
        from localpipe.sdk.workspace import Workspace

        return Experiment(Workspace(self._workspace_root), self._experiment)

    @property
    def parent(self):
        from localpipe.client.runs import PipelineRun

        return PipelineRun(self.experiment, self._run_id)

    register_model = models.register_model

    def __repr__(self) -> str:
        return f"StepRunContext(id={self.id}, name={self.name!r})"


class OfflineRun(_Logging):
    """Outside localpipe: prints what it would log, so the same script runs by hand."""

    id = "OfflineRun"
    parent = None
    experiment = None
    input_datasets: dict = {}
    output_datasets: dict = {}

    def _emit(self, kind: str, name: str, value: Any) -> None:
        print(f"[offline run] {kind} {name}: {value!r}")
