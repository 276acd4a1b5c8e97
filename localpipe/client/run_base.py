"""The members of the Azure ML SDK's ``Run`` that PipelineRun, StepRun, script runs and the in-step context share.

A run here is one of three records of history.db: a pipeline run, a script run (a pipeline run of
one step, made by ``Experiment.submit(ScriptRunConfig(...))``) or a step run. What a run holds
(metrics, tags, properties, files) belongs to the step that ran: a script run's are those of its
one step; a pipeline run has tags and properties of its own, and its children's metrics with
``get_metrics(recursive=True)``. A run's files are the ``./outputs`` and ``./logs`` its step wrote
and what it uploaded, kept in ``.localpipe/runs/RUN/STEP/files/`` (docs/runs.md).

This module imports nothing heavy: ``from azureml.core import Run`` in a step stays cheap; the
history is opened on first use.
"""

from __future__ import annotations

import datetime
import io
import json
import os
import shutil
import stat
import sys
import time
from pathlib import Path
from typing import Any

from localpipe.client.run_files import RunFiles
from localpipe.errors import NotFoundError, RunFailedError, UsageError, UserErrorException

POLL_SECONDS = 0.2
SCRIPT_RUN = "experiment"  # azureml.runsource of a script run, as in Azure ML
INTERACTIVE_RUN = "interactive"  # localpipe.runsource of an Experiment.start_logging run
PIPELINE_RUN = "azureml.PipelineRun"
DOCS_URL = "https://learn.microsoft.com/python/api/azureml-core/azureml.core.run.run"
CHART_KINDS = ("confusion_matrix", "accuracy_table", "residuals", "predictions")


class LoggingMembers:
    """The SDK's ``log*`` members, written once over ``_emit`` (a run's records, or an offline run's
    prints) and ``upload_file`` (where ``log_image`` keeps a figure)."""

    def log(self, name, value, description="", step=None) -> None:
        """Log a scalar; logged again under the same name it makes a series (a list in get_metrics)."""
        if isinstance(value, (list, range, tuple)) or hasattr(value, "__next__"):
            raise UserErrorException(f'run.log("{name}", ...) got a list: use run.log_list for lists')
        self._emit("scalar", name, value)

    def log_list(self, name, value, description="") -> None:
        """Log a list of values under ``name`` (``get_metrics`` gives the list)."""
        self._emit("list", name, list(value))

    def log_row(self, name, description=None, **kwargs) -> None:
        """Log one row of the table ``name``: get_metrics gives the table as ``{column: [values]}``."""
        self._emit("row", name, kwargs)

    def log_table(self, name, value, description="") -> None:
        """Log a table, ``{column: [values]}``; logged again, its rows are added."""
        if not isinstance(value, dict):
            raise UserErrorException(
                f'run.log_table("{name}", ...) needs a dict of columns, not {type(value).__name__}'
            )
        self._emit("table", name, {str(k): list(v) if isinstance(v, (list, tuple)) else [v] for k, v in value.items()})

    def log_confusion_matrix(self, name, value, description="") -> None:
        """Log a confusion matrix (Azure's chart dict or its JSON); ``get_metrics(populate=True)`` gives it back."""
        self._emit("confusion_matrix", name, _chart(name, value))

    def log_accuracy_table(self, name, value, description="") -> None:
        """Log an accuracy table (Azure's chart dict or its JSON), kept as ``log_confusion_matrix`` keeps its chart."""
        self._emit("accuracy_table", name, _chart(name, value))

    def log_residuals(self, name, value, description="") -> None:
        """Log residuals (Azure's chart dict or its JSON), kept as ``log_confusion_matrix`` keeps its chart."""
        self._emit("residuals", name, _chart(name, value))

    def log_predictions(self, name, value, description="") -> None:
        """Log predictions (Azure's chart dict or its JSON), kept as ``log_confusion_matrix`` keeps its chart."""
        self._emit("predictions", name, _chart(name, value))

    def log_image(self, name, path=None, plot=None, description="") -> None:
        """Log an image file (``path``) or a matplotlib figure (``plot``), kept among the run's files."""
        if (path is None) == (plot is None):
            raise UserErrorException(f'run.log_image("{name}"): give exactly one of path and plot')
        if plot is not None:
            stream = io.BytesIO()
            plot.savefig(stream, format="png")
            stream.seek(0)
            self.upload_file(f"{name}.png", stream)
            self._emit("image", name, f"{name}.png")
        else:
            self._emit("image", name, os.path.abspath(path))


class StepRecordMembers:
    """The record of a run that is a step run of a pipeline run (a StepRun, a step's child run):
    ``_pipeline_run_id``, ``_node_id`` (its name there) and ``_number`` (its step run id)."""

    @property
    def id(self) -> str:
        """The step run's id, its pipeline run's number and its own: ``"12_17"`` (``Run.get`` finds it)."""
        from localpipe.state.reader import step_run_id

        return step_run_id(self._pipeline_run_id, self._number)

    def get_portal_url(self) -> str:
        """The step's page in the studio (`localpipe serve`, at ``LOCALPIPE_SERVER_URL``)."""
        from urllib.parse import quote

        from localpipe.client.publishing import studio_url

        return studio_url(f"runs/{self._pipeline_run_id}/steps/{quote(self._node_id, safe='')}")

    def _run_number(self) -> int:
        return self._pipeline_run_id

    def _record(self) -> dict:
        return self._history.runs.find_step(self._pipeline_run_id, self._node_id)

    def _step(self) -> dict:
        return self._record()

    def _step_name(self) -> str:
        return self._node_id

    def _write_tags(self, tags: dict, removed: list[str]) -> None:
        self._history.runs.set_step_tags(self._number, tags, removed)

    def _write_properties(self, properties: dict) -> None:
        self._history.runs.add_step_properties(self._number, properties)


class RunBase(LoggingMembers, RunFiles):
    """What every run has (``Run``'s members but the ways to find runs, which are in ``client.runs``)."""

    def __init__(self, experiment, run_id, outputs=None):
        """A handle on the recorded run ``run_id`` (the number ``localpipe runs`` shows) of ``experiment``.
        ``outputs`` is the folder captured as the run's files; a step's is always ``./outputs``."""
        from localpipe.state.reader import run_number

        self._experiment = experiment
        self._number = run_number(run_id)
        self._outputs = outputs

    # -- what a run is -----------------------------------------------------------------------------
    @property
    def id(self) -> str:
        """The run's id, a string as Azure ML's are: its number (``localpipe runs``)."""
        return str(self._number)

    @property
    def name(self) -> str:
        """Deprecated in the SDK (``display_name``)."""
        return self.display_name

    @property
    def display_name(self) -> str:
        """The run's name (its experiment's name and number unless set); settable, kept in history.db."""
        return self._record().get("display_name") or self._default_name()

    @display_name.setter
    def display_name(self, display_name: str) -> None:
        self._history.runs.set_names(self._number, display_name=display_name)

    @property
    def description(self) -> str | None:
        """The run's description (None unless set); settable, kept in history.db."""
        return self._record().get("description")

    @description.setter
    def description(self, description: str) -> None:
        self._history.runs.set_names(self._number, description=description)

    @property
    def type(self) -> str | None:
        """``azureml.PipelineRun``, ``azureml.scriptrun`` or ``azureml.StepRun``, as in Azure ML; None
        for an interactive run (``Experiment.start_logging``), for which the SDK records no type."""
        if self._is_interactive_run():
            return None
        return "azureml.scriptrun" if self._is_script_run() else PIPELINE_RUN

    @property
    def number(self) -> int:
        """The run's number in its workspace (what ``localpipe runs`` shows; ``id`` is it as a string)."""
        return self._number

    @property
    def experiment(self):
        """The Experiment the run belongs to."""
        return self._experiment

    @property
    def parent(self):
        """None: a pipeline or script run has no parent (a step run's is its pipeline run)."""
        return None

    @property
    def status(self) -> str:
        """The same as ``get_status()``."""
        return self.get_status()

    @property
    def tags(self) -> dict:
        """The same as ``get_tags()``."""
        return self.get_tags()

    @property
    def properties(self) -> dict:
        """The same as ``get_properties()``."""
        return self.get_properties()

    def get_status(self) -> str:
        """NotStarted, Queued, Preparing, Running, Finalizing, Completed, Failed or Canceled."""
        return self._record()["status"]

    def get_detailed_status(self) -> dict:
        """``{"status": ..., "details": ...}``: the status, and localpipe's reason for it (or the error)."""
        record = self._record()
        return {"status": record["status"], "details": record.get("reason") or record.get("error")}

    def get_details(self) -> dict:
        """Azure ML's details: runId, target, status, startTimeUtc, endTimeUtc (once ended),
        properties, inputDatasets, outputDatasets, runDefinition, logFiles (name -> path), submittedBy;
        error when it failed."""
        record = self._record()
        step = self._step()
        spec = self._spec()
        definition = self._definition(spec)
        details = {
            "runId": self.id,
            "target": definition.get("target", "local"),
            "status": record["status"],
            "startTimeUtc": _utc(record.get("started_at")),
            "properties": self.get_properties(),
            "inputDatasets": self._input_datasets(spec),
            "outputDatasets": [],
            "runDefinition": definition,
            "logFiles": {name: str(path) for name, path in self._log_paths().items()},
            "submittedBy": _user(),
        }
        if record.get("ended_at"):
            details["endTimeUtc"] = _utc(record["ended_at"])
        failed = record["status"] == "Failed"
        error = ((step or {}).get("reason") if failed else None) or record.get("error")
        if error:
            details["error"] = {"error": {"code": "UserError", "message": error}}
        return details

    def get_details_with_logs(self) -> dict:
        """``get_details()`` with each log's content in ``logFiles`` instead of its path."""
        details = self.get_details()
        details["logFiles"] = {name: _read(path) for name, path in self._log_paths().items()}
        return details

    def get_all_logs(self, destination=None) -> list[str]:
        """Copy the run's logs into ``destination`` (default ``./assets/<run id>``); their paths."""
        destination = Path(destination) if destination else Path.cwd() / "assets" / str(self.id)
        if destination.exists() and not destination.is_dir():
            raise UserErrorException(f"{destination} exists and is not a directory: choose a folder")
        written = []
        for name, content in self.get_details_with_logs()["logFiles"].items():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(content)
            written.append(str(target))
        return written

    def get_children(self, recursive=False, tags=None, properties=None, type=None, status=None,
                     _rehydrate_runs=True) -> list:  # fmt: skip
        """None here; the run classes take theirs from ``client.child_runs.ChildMembers``."""
        return []

    def get_portal_url(self) -> str:
        """The run's page in the studio (`localpipe serve`, at ``LOCALPIPE_SERVER_URL``);
        `localpipe show N` prints the same in a terminal."""
        from localpipe.client.publishing import studio_url

        return studio_url(f"runs/{self._number}")

    @property
    def portal_url(self) -> str:
        """The same as ``get_portal_url()``."""
        return self.get_portal_url()

    @classmethod
    def get_docs_url(cls) -> str:
        """The Azure ML SDK's documentation page of ``Run``."""
        return DOCS_URL

    def get_snapshot_id(self) -> str | None:
        """The digest of the source snapshot the run's step ran from."""
        return (self._step() or {}).get("snapshot")

    def restore_snapshot(self, snapshot_id=None, path=None) -> str:
        """Copy the run's source snapshot into ``path`` (default ``./<snapshot id>``); returns it. A
        script run's snapshot is named at submission; until its step starts (never, for one canceled
        at once) it is copied from its source folder, which must not have changed since."""
        step = self._step()
        own = (step or {}).get("snapshot")
        snapshot_id = snapshot_id or own
        copied = self._step_folder() / "snapshot" if step else None
        if not snapshot_id or snapshot_id != own or not (copied.is_dir() or step["started_at"] is None):
            raise NotFoundError(f"run {self.id} has no snapshot {snapshot_id or ''}: see localpipe show {self._number}")
        target = Path(path) if path else Path.cwd() / snapshot_id
        if copied.is_dir():
            shutil.copytree(copied, target, dirs_exist_ok=True, ignore=_not_of_the_snapshot)
            return str(target)
        from localpipe.content.hashing import copy_tree, hash_tree

        source = self._spec().get("source_dir")
        now = hash_tree(source) if source and os.path.isdir(source) else None
        if now is None or now.digest != own:
            raise NotFoundError(
                f"run {self.id} has no snapshot: its step never started, and its source folder {source} has "
                "changed since it was submitted (localpipe keeps a copy when the step starts)"
            )
        copy_tree(source, sorted(now.files), target)
        return str(target)

    def take_snapshot(self, file_or_folder_path) -> str:
        """Keep a copy of a file or folder (its non-ignored files, as a step's source) as the run's
        snapshot; returns its digest (``get_snapshot_id``). A run has one snapshot, as in the SDK."""
        from localpipe.client.snapshots import take_snapshot

        holder = self._holder("take_snapshot")
        if holder.get("snapshot"):
            raise UserErrorException(f"Cannot take snapshot as run {self.id} already has one: {holder['snapshot']}")
        return take_snapshot(self._history, holder, self._step_folder(), file_or_folder_path)

    def get_environment(self):
        """The environment the run's step ran in, as an ``Environment`` (a registered or curated one by
        its name and version; else its definition as the step recorded it)."""
        from localpipe.sdk.environment import environment_of_step

        spec = self._spec()
        if not spec:
            raise UserErrorException(f"There is no run definition or environment specified for run {self.id}.")
        return environment_of_step(spec.get("environment") or {})

    def clean(self) -> list[str]:
        """Remove the run's temporary folders (its inputs placed for it and its working copies),
        keeping its records, logs, files and snapshot; returns what was removed, in words. Nothing
        of an active run is removed."""
        from localpipe.status import RunStatus

        holder = self._step()
        if holder is None or not RunStatus(self.get_status()).is_final:
            return []
        removed = []
        for name in _TEMPORARY_FOLDERS:
            folder = self._step_folder() / name
            if folder.is_dir():
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(f"Removed temporary run directory {folder}")
        return removed

    def submit_child(self, config, tags=None, **kwargs):
        """Submit ``config`` (a ScriptRunConfig or a Pipeline) as ``Experiment.submit`` does, in this
        run's experiment. localpipe's runs have no parent run of another run: the new run is a run
        of its own, tagged with this one's id (``azureml.parentRunId``)."""
        run = self.experiment.submit(config, tags=tags, **kwargs)
        run.add_properties({"azureml.parentRunId": str(self.id)})
        return run

    def _holder(self, member: str) -> dict:
        """The step run that holds this run's records; a pipeline run has none (its steps do)."""
        step = self._step()
        if step is None:
            raise UsageError(
                f"run {self.id} is a pipeline run: its children are its steps; call {member} in a step "
                "(Run.get_context()) or on a step run (run.find_step_run(name)[0])"
            )
        return step

    # -- waiting, ending ---------------------------------------------------------------------------
    def wait_for_completion(self, show_output=False, wait_post_processing=False, raise_on_error=True) -> dict:
        """Block until the run ends; with ``show_output``, print its status changes and log as they
        come. Returns ``get_details()``; a failed run raises ActivityFailedException (RunFailedError)
        unless ``raise_on_error`` is False."""
        watch_run(self._history, self._number, show_output, None, raise_on_error, self._step_name())
        return self.get_details()

    def start(self) -> None:
        """Nothing to do: localpipe starts a run when it is submitted."""

    def complete(self, _set_status=True) -> None:
        """Nothing to do: a run completes when its steps end (in a step, when the script exits 0)."""

    def fail(self, error_details=None, error_code=None, _set_status=True) -> None:
        """End the run now as Failed, with ``"error_code: error_details"`` as its error (``get_details()``,
        `localpipe show`): as ``cancel`` (its steps' processes ended, returning once it has ended), but
        marked Failed. A pipeline run's too, which Azure's PipelineRun refuses (NotImplementedError)."""
        self._end(_failure(error_details, error_code))

    def cancel(self) -> None:
        """Cancel the run: its scheduler ends every step's process tree and marks it Canceled.
        Returns once the run has ended (``get_status()`` says Canceled), or after 30 s."""
        self._end(None)

    def _end(self, failure: str | None) -> None:
        from localpipe.engine.recovery import cancel_run

        cancel_run(self._history, self._number, failure)
        # Past the wait, its scheduler is still ending step processes: it marks the run when done.
        watch_run(self._history, self._number, False, END_WAIT_SECONDS, False)

    def flush(self, timeout_seconds=300) -> None:
        """Nothing to wait for: what a run logs is written at once."""

    def __enter__(self):
        return self

    def __exit__(self, exit_type, value, traceback) -> None:
        self.complete()

    # -- tags and properties -----------------------------------------------------------------------
    def tag(self, key, value=None) -> None:
        """Set the tag ``key`` (to ``value``; None: a tag without a value)."""
        self.set_tags({key: value})

    def set_tags(self, tags) -> None:
        """Add or change tags; a string, or names in a list, are tags without a value (None)."""
        self._write_tags(_as_tags(tags), [])

    def remove_tags(self, tags) -> None:
        """Remove the tags named (one name or a list of names)."""
        self._write_tags({}, [tags] if isinstance(tags, str) else list(tags))

    def get_tags(self) -> dict:
        """The run's tags (a script run's include those its step set)."""
        step = self._step()  # a script run's tags are its step's, and its own
        return {**((step or {}).get("tags") or {}), **(self._record().get("tags") or {})}

    def add_properties(self, properties) -> None:
        """Add properties; unlike tags, a property once set never changes (UsageError)."""
        if properties:
            self._write_properties(dict(properties))

    def get_properties(self) -> dict:
        """The run's properties (a script run's include those its step added)."""
        step = self._step()
        return {**((step or {}).get("properties") or {}), **(self._record().get("properties") or {})}

    def get_metrics(self, name=None, recursive=False, run_type=None, populate=False) -> dict:
        """What the run logged, as Azure ML gives it: a value logged once is that value, more than once
        a list; ``log_list`` a list; ``log_row`` and ``log_table`` a dict of columns; an image its
        path; a chart (``log_confusion_matrix``, ...) its JSON with ``populate``, else its name.
        ``recursive``: ``{run id: metrics}`` of this run and its descendants (of ``run_type``)."""
        if recursive:
            runs = [self, *self.get_children(recursive=True)]
            return {r.id: r.get_metrics(name, populate=populate) for r in runs if not run_type or r.type == run_type}
        return _metrics_dict(self._metric_rows(), name, populate)

    def _metric_rows(self) -> list[dict]:
        from localpipe.state import reader

        step = self._step_name()
        return reader.metrics(self._history.layout, self._run_number(), step) if step else []

    # -- what subclasses say about their record ----------------------------------------------------
    @property
    def _history(self):
        return _history_of(self.experiment.workspace)

    def _run_number(self) -> int:
        """The pipeline run this run is or belongs to."""
        return self._number

    def _record(self) -> dict:
        from localpipe.engine.recovery import recover_abandoned_runs

        recover_abandoned_runs(self._history)
        record = self._history.runs.get(self._number)
        if record["experiment"] != self.experiment.name:  # Azure looks a run up within its experiment
            raise NotFoundError(
                f'run {self._number} is not one of experiment "{self.experiment.name}"\'s but of'
                f' "{record["experiment"]}"\'s: Run.get(ws, "{self._number}") finds a run by its id alone'
            )
        return record

    def _is_script_run(self) -> bool:
        return (self._record().get("properties") or {}).get("azureml.runsource") == SCRIPT_RUN

    def _is_interactive_run(self) -> bool:
        return (self._record().get("properties") or {}).get("localpipe.runsource") == INTERACTIVE_RUN

    def _default_name(self) -> str:
        return f"{self.experiment.name} {self._number}"

    def _step(self) -> dict | None:
        """The step run that holds this run's metrics and files: a script run's one step, or the
        one that holds an interactive run's (``Run(experiment, run_id)`` finds either)."""
        properties = self._record().get("properties") or {}
        holds = (
            properties.get("azureml.runsource") == SCRIPT_RUN
            or properties.get("localpipe.runsource") == INTERACTIVE_RUN
        )
        if not holds:
            return None
        steps = self._history.runs.steps(self._number)
        return steps[0] if steps else None

    def _step_name(self) -> str | None:
        step = self._step()
        return step["name"] if step else None

    def _step_folder(self) -> Path:
        return self._history.layout.step_dir(self._run_number(), self._step_name())

    def _spec(self) -> dict:
        """The planned step (``plan.graph.StepSpec`` as data) this run's step ran; {} for none."""
        step = self._step()
        if step is None:
            return {}
        steps = self._history.runs.for_scheduler(self._run_number()).graph["steps"]
        return next((s for s in steps if s["name"] == step["name"]), {})

    def _definition(self, spec: dict) -> dict:
        step = self._step()
        if step is None:
            return {}
        argv = list(step.get("arguments") or [])
        python = spec.get("kind") == "python"
        return {
            "script": spec.get("script") if python else None,
            "command": "" if python else " ".join(map(str, argv)),
            "arguments": argv[2:] if python else [],
            "target": spec.get("compute_target", "local"),
            "environment": {"name": (spec.get("environment") or {}).get("name")},
        }

    def _input_datasets(self, spec: dict) -> list[dict]:
        """Azure's ``inputDatasets``: each dataset the step consumed (its id is in the planned step)
        and how (one unregistered since is found by its id, as a saved dataset)."""
        from localpipe.sdk.data import Dataset

        found = []
        for name, given in (spec.get("inputs") or {}).items():
            dataset_id = (given.get("dataset") or {}).get("id")
            if dataset_id is None:
                continue
            try:
                dataset = Dataset.get_by_id(self.experiment.workspace, dataset_id)
            except UserErrorException:
                continue
            mechanism = given["mode"].capitalize()
            found.append(
                {
                    "dataset": dataset,
                    "consumptionDetails": {"type": "RunInput", "inputName": name, "mechanism": mechanism},
                }
            )
        return found

    def _write_tags(self, tags: dict, removed: list[str]) -> None:
        step = self._step()
        if step is not None:
            self._history.runs.set_step_tags(step["id"], tags, removed)
        self._history.runs.set_tags(self._number, tags, removed)

    def _write_properties(self, properties: dict) -> None:
        self._history.runs.add_properties(self._number, properties)

    def _emit(self, kind: str, name: str, value: Any) -> None:
        """Record one logged value on the run's step (from outside a step: through state/)."""
        step = self._step()
        if step is None:
            raise UsageError(
                f"run {self.id} is a pipeline run: its metrics are its steps'; log on a step run "
                "(Run.get_context() in the step, or run.find_step_run(name)[0])"
            )
        if value is not None:
            row = {"name": str(name), "kind": kind, "value": value, "logged_at": time.time()}
            self._history.steps.add_metrics(step["id"], [row], {})

    def __repr__(self) -> str:
        return f"Run(id={self.id}, experiment={self.experiment.name!r}, type={self.type!r})"


END_WAIT_SECONDS = 30  # how long cancel() and fail() wait for the scheduler to end the run
_RUN_FILE_FOLDERS = ("outputs", "logs")  # left out of a restored snapshot: they are the run's files
_TEMPORARY_FOLDERS = ("inputs", "outputs")  # what Run.clean removes of a step's folder


def _not_of_the_snapshot(folder: str, names: list[str]) -> set[str]:
    """What a restored snapshot leaves out of the copy the step started with: the run's own files,
    and anything neither a file nor a folder. The copy holds only regular files (links were read
    when it was made), so a link or a fifo there was put by the step: following it would copy what
    it points at (a host file, for a container step) into the user's folder, and a fifo blocks."""
    left_out = set(_RUN_FILE_FOLDERS).intersection(names)
    for name in names:
        mode = os.lstat(os.path.join(folder, name)).st_mode
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            left_out.add(name)
    return left_out


def watch_run(
    history,
    run_id: int,
    show_output: bool,
    timeout_seconds: float | None,
    raise_on_error: bool,
    step: str | None = None,
) -> str:
    """Wait for a run (or one of its steps) to end, printing status changes and new log lines
    with ``show_output``; returns the final status, raises as ``wait_for_completion`` says. Past
    ``timeout_seconds`` it returns the status the run has (saying so with ``show_output``), as
    Azure's PipelineRun does."""
    from localpipe.engine.recovery import recover_abandoned_runs
    from localpipe.status import RunStatus

    limit = None if timeout_seconds is None or timeout_seconds >= sys.maxsize else timeout_seconds
    deadline = time.monotonic() + limit if limit else None
    seen: dict[str, list[str]] = {}
    offsets: dict[Path, int] = {}
    while True:
        recover_abandoned_runs(history)
        run_status = history.runs.status(run_id)
        status = RunStatus(history.runs.find_step(run_id, step)["status"]) if step else run_status
        final = status.is_final or run_status.is_final
        if show_output:
            _print_progress(history, run_id, step, seen, offsets, final)
        if final:
            break
        if deadline and time.monotonic() > deadline:
            if show_output:  # as Azure's: the line, then the status the run has; only an ended run raises
                print("Timed out of waiting. Elapsed time:", time.monotonic() - deadline + limit, flush=True)
            return status.value
        time.sleep(POLL_SECONDS)
    if show_output:
        print(f"run {run_id}: {status.value}" if not step else f"{step}: {status.value}", flush=True)
    if raise_on_error and status not in (RunStatus.COMPLETED, RunStatus.REUSED):
        if step:
            reason = history.runs.find_step(run_id, step)["reason"]
            raise RunFailedError(
                f'step "{step}" of run {run_id} {status.value.lower()}: {reason or "see localpipe show"}'
            )
        error = history.runs.get(run_id)["error"]
        raise RunFailedError(f"run {run_id} {status.value.lower()}: {error or 'see localpipe show'}")
    return status.value


def _print_progress(history, run_id: int, step: str | None, seen: dict, offsets: dict, final: bool) -> None:
    """New status lines and log lines of each step, in the order they happened: a step's log before
    the line that it ended, and the Queued and Running lines a poll missed (its record says it
    started); under a Failed line, the end of its stderr and how to see all of it."""
    from localpipe.engine.logs import failure_tail, print_new_lines
    from localpipe.status import RunStatus

    for row in history.runs.steps(run_id):
        name, status = row["name"], RunStatus(row["status"])
        if step and name != step:
            continue
        if not status.is_final:
            _announce(row, status, seen)
        else:  # ended since the last poll: the Queued and Running lines it missed come before the log
            _passed(row, status, seen.setdefault(name, []))
        for log in ("stdout.log", "stderr.log"):
            path = history.layout.step_dir(run_id, name) / log
            offsets[path] = print_new_lines(path, offsets.get(path, 0), f"[{name}] ", _echo, final or status.is_final)
        if status.is_final and _announce(row, status, seen) and status is RunStatus.FAILED:
            for line in failure_tail(history, run_id, name):
                _echo(line)


def _announce(row: dict, status, seen: dict) -> bool:
    """Print ``row``'s status if it is new (after the states it passed through unseen); whether it was."""

    name, printed = row["name"], seen.setdefault(row["name"], [])
    if printed and printed[-1] == status.value:
        return False
    _passed(row, status, printed)
    reason = f" ({row['reason']})" if row["reason"] else ""
    print(f"{name}: {status.value}{reason}", flush=True)
    printed.append(status.value)
    return True


def _passed(row: dict, status, printed: list[str]) -> None:
    """Print the Queued and Running lines of a step that started, those not ``printed`` yet."""
    from localpipe.status import RunStatus

    if row["started_at"] is None or (printed and printed[-1] == status.value):
        return
    for state in (RunStatus.QUEUED, RunStatus.RUNNING):
        if state is not status and state.value not in printed:
            print(f"{row['name']}: {state.value}", flush=True)
            printed.append(state.value)


FAILURE_LIMIT = 65_536  # characters of Run.fail's details kept: `localpipe show` prints them whole


def _failure(error_details, error_code) -> str:
    """The error ``Run.fail`` records: its details, after the code when one is given, cut to
    ``FAILURE_LIMIT`` characters (saying how many more there were); what cannot be written as UTF-8
    (a name ``os.listdir`` gave with its bytes as surrogates) escaped, ``\\udce9``."""
    text = str(error_details) if error_details is not None else "failed"
    text = f"{error_code}: {text}" if error_code else text
    if len(text) > FAILURE_LIMIT:
        text = f"{text[:FAILURE_LIMIT]} ... ({len(text) - FAILURE_LIMIT} characters more, not kept)"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _history_of(workspace):
    from localpipe.client.workspace import history_of

    return history_of(workspace)


def _matches(run: RunBase, type, tags, properties, status) -> bool:
    return (
        (type is None or run.type == type)
        and (status is None or run.get_status() == status)
        and _has(run.get_tags(), tags)
        and _has(run.get_properties(), properties)
    )


def _has(values: dict, wanted) -> bool:
    """``wanted``: a name (present), or ``{name: value}`` (each equal), or None (anything)."""
    if wanted is None:
        return True
    if isinstance(wanted, str):
        return wanted in values
    return all(k in values and values[k] == v for k, v in dict(wanted).items())


def _as_tags(tags) -> dict:
    """Tags as Azure ML keeps them: names and values are text (``tag(7, 5)`` is ``{"7": "5"}``); a
    tag without a value stays None."""
    if isinstance(tags, str):
        return {tags: None}
    if isinstance(tags, dict):
        return {str(key): None if value is None else str(value) for key, value in tags.items()}
    return {str(name): None for name in tags}


def _chart(name: str, value):
    """An Azure ML chart (confusion matrix, accuracy table, residuals, predictions): a dict, or its JSON."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            raise UserErrorException(f'"{name}": invalid JSON provided') from None
    if not isinstance(value, dict):
        raise UserErrorException(f'"{name}": a chart is a dict or its JSON, not {type(value).__name__}')
    return value


def _metrics_dict(rows: list[dict], name: str | None, populate: bool) -> dict:
    """Rows of the metric table as Azure ML's ``get_metrics()`` gives them."""
    out: dict = {}
    for row in rows:
        key, kind, value = row["name"], row["kind"], row["value"]
        if name is not None and key != name:
            continue
        if kind in ("row", "table"):
            table = out.setdefault(key, {})
            columns = {k: [v] for k, v in value.items()} if kind == "row" else value
            length = len(next(iter(table.values()))) if table else 0
            for column in columns:
                table.setdefault(column, [None] * length)
            added = max((len(v) for v in columns.values()), default=0)
            for column in table:
                table[column] = table[column] + list(columns.get(column, [None] * added))
        elif kind == "list":
            out[key] = [*out.get(key, []), *value]
        else:
            if kind in CHART_KINDS and not populate:
                value = f"{kind}/{key}"
            if key in out:
                out[key] = [*(out[key] if isinstance(out[key], list) else [out[key]]), value]
            else:
                out[key] = value
    return out


def _utc(timestamp: float | None) -> str | None:
    if timestamp is None:
        return None
    moment = datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc)  # noqa: UP017  (steps may run on Python 3.8-3.10, which lack datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _user() -> str:
    try:
        import getpass

        return getpass.getuser()
    except (KeyError, OSError):
        return ""


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _echo(line: str) -> None:
    print(line, file=sys.stdout, flush=True)
