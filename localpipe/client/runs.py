"""The runs a user holds: ``Run`` (a script run, or any run found by id), ``PipelineRun``,
``StepRun``, and in a step ``Run.get_context()``'s ``StepRunContext`` (or an ``OfflineRun`` outside
localpipe), all with the members of the SDK's ``Run`` (``client.run_base``).

They read through the same library functions as the `localpipe` commands (``history.runs``,
``state.reader``), so that Python and the command line always agree. A step never writes
history.db: what it logs, tags and properties it adds are appended as JSON lines to its own
metrics file, which the scheduler moves into history.db; the files it uploads are copied into its
step folder's ``files/`` (beside the ``./outputs`` and ``./logs`` the scheduler collects when it
ends). Nothing heavy is imported before it is used: ``from azureml.core import Run`` in a step
stays cheap.
"""

from __future__ import annotations

import json
import os
import sys
import uuid
import warnings
from pathlib import Path
from typing import Any

from localpipe.client import models
from localpipe.client.child_runs import (
    ChildMembers,
    ChildRun,
    StepSideWrites,
    child_run_in_step,
    create_children_in_step,
    emit_line,
)
from localpipe.client.run_base import (
    INTERACTIVE_RUN,
    PIPELINE_RUN,
    SCRIPT_RUN,
    LoggingMembers,
    RunBase,
    StepRecordMembers,
    _as_tags,
    _failure,
    _history_of,
    _matches,
    watch_run,
)
from localpipe.client.run_files import _inside
from localpipe.errors import HyperDriveConfigException, NotFoundError, RunEnvironmentException, UsageError
from localpipe.status import RunStatus

STEP_RUN = "azureml.StepRun"
HYPERDRIVE_RUN = "hyperdrive"  # azureml.runsource and type of a HyperDrive run, as in Azure ML


class Run(ChildMembers, RunBase):
    """A run of an experiment: ``Run(experiment, run_id)``, ``Run.get(ws, run_id)``,
    ``Run.get_context()`` in a step; ``Experiment.submit(ScriptRunConfig(...))`` returns one."""

    # -- finding runs ------------------------------------------------------------------------------
    @classmethod
    def get_context(cls, allow_offline=True, used_for_context_manager=False):
        """The run this process belongs to: its step run under localpipe, else an offline run that
        prints what it would log (``allow_offline=False``: RunEnvironmentException instead).
        ``used_for_context_manager`` changes nothing: every run works in ``with``."""
        return current_run(allow_offline)

    @classmethod
    def get_submitted_run(cls):
        """Deprecated in the SDK: ``get_context(allow_offline=False)``."""
        return cls.get_context(allow_offline=False)

    @staticmethod
    def get(workspace, run_id):
        """The run ``run_id`` of ``workspace``, of its own kind (a PipelineRun, a script or an
        interactive run, a step run: ``"12_17"``, or a child run: ``"12_17#0"``)."""
        from localpipe.state.reader import step_run_numbers

        history = _history_of(workspace)
        base, mark, rest = str(run_id).partition("#")  # a child run: its step run's id, then #N
        numbers = step_run_numbers(base)
        if numbers is None:
            if mark:
                raise NotFoundError(f"\"{run_id}\" is not a child run's id: a child's is its step run's, then #N")
            record = history.runs.get(run_id)
            return _rehydrate(workspace.experiments[record["experiment"]], record)
        step = history.runs.step_run(numbers[1])
        if step["run"] != numbers[0]:
            raise NotFoundError(
                f'step run "{base}" does not exist: step run {numbers[1]} is one of run {step["run"]}\'s'
            )
        experiment = workspace.experiments[history.runs.get(step["run"])["experiment"]]
        step_run = StepRun(experiment, step["id"], step["run"], step["name"])
        return ChildRun.descendant(step_run, mark + rest) if mark else step_run

    @staticmethod
    def list(experiment, type=None, tags=None, properties=None, status=None, include_children=False,
             _rehydrate_runs=True):  # fmt: skip
        """The runs of ``experiment``, newest first, that match every filter given: ``type``
        (``azureml.PipelineRun``, ``azureml.scriptrun``, with ``include_children`` also
        ``azureml.StepRun``), ``tags`` and ``properties`` (a name, or ``{name: value}``), ``status``."""
        runs = []
        for record in _history_of(experiment.workspace).runs.list(10**9, experiment.name):
            run = _rehydrate(experiment, record) if _rehydrate_runs else Run(experiment, record["id"])
            runs.append(run)
            if include_children:
                runs.extend(run.get_children(recursive=True))
        return [r for r in runs if _matches(r, type, tags, properties, status)]

    register_model = models.register_model


class PipelineRun(Run):
    """A pipeline run: its status, its steps (children) and their outputs."""

    def __init__(self, experiment, run_id, _service_endpoint=None):
        super().__init__(experiment, run_id)

    @staticmethod
    def get(workspace, run_id, _service_endpoint=None) -> PipelineRun:
        """The pipeline run ``run_id`` of ``workspace``."""
        record = _history_of(workspace).runs.get(run_id)
        return PipelineRun(workspace.experiments[record["experiment"]], record["id"])

    @staticmethod
    def get_pipeline_runs(workspace, pipeline_id, _service_endpoint=None) -> list[PipelineRun]:
        """The runs of the published pipeline ``pipeline_id``, newest first."""
        history = _history_of(workspace)
        return [
            PipelineRun.get(workspace, run_id)
            for run_id in history.publishing.runs_with_property("azureml.pipelineid", str(pipeline_id))
        ]

    @property
    def workspace(self):
        """The workspace the run belongs to."""
        return self.experiment.workspace

    @property
    def type(self) -> str:
        """``azureml.PipelineRun``, as in Azure ML."""
        return PIPELINE_RUN

    def get_details(self) -> dict:
        """Azure ML's details (``Run.get_details``) with localpipe's record of the run: experiment,
        parameters, git, and ``steps`` as `localpipe show` prints them."""
        from localpipe.engine.recovery import recover_abandoned_runs

        recover_abandoned_runs(self._history)
        record = self._history.runs.details(self._number)
        if record.get("error") is None:  # Azure's details hold "error" only when the run failed
            record.pop("error", None)
        return {**record, **super().get_details()}

    def get_steps(self) -> list[StepRun]:
        """The run's step runs, in the order recorded."""
        return [
            StepRun(self.experiment, row["id"], self._number, row["name"])
            for row in self._history.runs.steps(self._number)
        ]

    def get_children(self, recursive=False, tags=None, properties=None, type=None, status=None,
                     _rehydrate_runs=True) -> list[StepRun]:  # fmt: skip
        """The step runs that match every filter given (see ``Run.list``)."""
        return [s for s in self.get_steps() if _matches(s, type, tags, properties, status)]

    def find_step_run(self, name: str) -> list[StepRun]:
        """The step runs named ``name`` (a list, as in the Azure ML SDK)."""
        return [s for s in self.get_steps() if s.name == name]

    def get_graph(self):
        """The planned graph the run ran: localpipe's ``plan.graph.Graph`` (steps with their inputs,
        outputs, arguments and environment)."""
        from localpipe.plan.graph import Graph

        return Graph.from_dict(self._history.runs.for_scheduler(self._number).graph)

    def save(self, path=None) -> str:
        """Write the pipeline this run ran as a pipeline YAML that ``Pipeline.load_yaml`` reads
        (``path``: a file, or a folder to write ``pipeline.yml`` in; the current folder by default),
        its parameters' defaults this run's values; returns the file's path. A submission of the
        loaded pipeline reuses this run's steps while their sources are unchanged (docs/pipeline-yaml.md)."""
        from localpipe.client.pipeline_yaml import save

        return save(self.experiment.workspace, self.get_graph(), path, "pipeline.yml", f"run {self.id}")

    def publish_pipeline(self, name, description, version, continue_on_step_failure=None, **kwargs):
        """Publish what this run ran: its graph, with this run's parameter values, and its steps'
        source snapshots (a ``PublishedPipeline``; docs/publishing.md)."""
        from localpipe.client.publishing import publish_run

        return publish_run(self, name, description, version, continue_on_step_failure)

    def get_pipeline_output(self, pipeline_output_name: str) -> OutputData:
        """The output a step declared as ``PipelineData(..., pipeline_output_name=...)``, as the SDK's
        ``PortDataReference`` (``download(local_path)``, ``path_on_datastore``)."""
        steps = self.get_graph().steps
        found = {
            public: (step, output) for step, spec in steps.items() for public, output in spec.pipeline_outputs.items()
        }
        if pipeline_output_name not in found:
            raise NotFoundError(
                f'run {self.id} has no pipeline output "{pipeline_output_name}" (its pipeline outputs: '
                f"{', '.join(sorted(found)) or 'none'}): name one with PipelineData(..., pipeline_output_name=...)"
            )
        step, output = found[pipeline_output_name]
        return self.find_step_run(step)[0].get_output_data(output)

    def get_tags(self) -> dict:
        """The pipeline run's tags."""
        return dict(self._record().get("tags") or {})

    def wait_for_completion(self, show_output=True, timeout_seconds=sys.maxsize, raise_on_error=True) -> str:
        """Block until the run ends; with ``show_output``, print each step's status changes and log.
        Returns the final status; ActivityFailedException (RunFailedError) when it did not complete
        (unless ``raise_on_error`` is False). After ``timeout_seconds`` it returns the status the run
        has then (printing "Timed out of waiting" with ``show_output``), as Azure's does."""
        return watch_run(self._history, self._number, show_output, timeout_seconds, raise_on_error)

    def complete(self) -> None:
        """Nothing to do: a pipeline run completes when its last step does."""

    def _step(self) -> dict | None:
        return None

    register_model = models.register_model

    def __repr__(self) -> str:
        return f"PipelineRun(id={self.id}, experiment={self.experiment.name!r})"


class HyperDriveRun(PipelineRun):
    """A HyperDrive run: its trials are its children (step runs ``HD_0``, ``HD_1``, ...)."""

    def __init__(self, experiment, run_id, hyperdrive_config=None, **kwargs):
        super().__init__(experiment, run_id)
        self._hyperdrive_config = hyperdrive_config

    RUN_TYPE = HYPERDRIVE_RUN

    @property
    def hyperdrive_config(self):
        """The HyperDriveConfig submitted (None for a run found by id: its sweep is read from its record)."""
        return self._hyperdrive_config

    @property
    def type(self) -> str:
        """``hyperdrive``, as in Azure ML."""
        return HYPERDRIVE_RUN

    def wait_for_completion(self, show_output=False, wait_post_processing=False, raise_on_error=True) -> dict:
        """Block until every trial has ended (``show_output``: print their status changes and logs);
        returns ``get_details()``; a failed run raises ActivityFailedException unless ``raise_on_error``
        is False. ``wait_post_processing`` changes nothing: nothing is processed after the trials."""
        super().wait_for_completion(show_output, raise_on_error=raise_on_error)
        return self.get_details()

    def _sweep(self) -> dict:
        return self.get_graph().sweeps[0]

    def get_tags(self) -> dict:
        """The run's tags, with those Azure ML gives a HyperDrive run: ``generator_config``,
        ``primary_metric_config`` and ``policy_config`` (JSON), ``max_total_jobs``,
        ``max_concurrent_jobs``, ``max_duration_minutes``."""
        sweep = self._sweep()
        system = {
            "generator_config": json.dumps(sweep["generator_config"]),
            "primary_metric_config": json.dumps(sweep["primary_metric_config"]),
            "policy_config": json.dumps(sweep["policy_config"]),
            "max_total_jobs": str(sweep["max_total_runs"]),
            "max_concurrent_jobs": str(sweep["max_concurrent_runs"]),
            "max_duration_minutes": f"{sweep['max_duration_minutes']:g}",
        }
        return {**system, **super().get_tags()}

    def get_hyperparameters(self) -> dict:
        """Each trial's values: ``{child run id: JSON of {parameter: value}}``, as the SDK gives them."""
        trials = self._sweep()["trials"]
        found = {}
        for child in self.get_children():
            if child.name not in trials:
                continue
            if trials[child.name] is not None:
                found[child.id] = json.dumps(dict(trials[child.name]))
            elif proposed := child.get_properties().get("hyperparameters"):  # Bayesian sampling's, once proposed
                found[child.id] = proposed
        return found

    def get_metrics(self) -> dict:
        """Every trial's metrics: ``{child run id: its get_metrics()}``."""
        return {child.id: child.get_metrics() for child in self.get_children()}

    def get_children_sorted_by_primary_metric(self, top=0, reverse=False, discard_no_metric=False) -> list[dict]:
        """The trials, best primary metric first (the best of each trial's values; ``reverse`` turns
        the order round), each ``{"run_id", "hyperparameters", "best_primary_metric", "status"}``;
        those without the metric follow (or are left out with ``discard_no_metric``); ``top`` > 0
        keeps the first ``top``."""
        from localpipe.sdk.hyperdrive import is_metric_value

        if not isinstance(top, int) or isinstance(top, bool) or top < 0:
            raise HyperDriveConfigException(f"top={top!r}: give 0 (every trial) or a positive int")
        sweep = self._sweep()
        metric, maximize = sweep["primary_metric_config"]["name"], sweep["primary_metric_config"]["goal"] == "maximize"
        hyperparameters = self.get_hyperparameters()
        ranked, unranked = [], []
        for child in self.get_children():
            values = child.get_metrics(metric).get(metric)
            values = [v for v in (values if isinstance(values, list) else [values]) if is_metric_value(v)]
            best = (max if maximize else min)(values) if values else None
            row = {"run_id": child.id, "hyperparameters": hyperparameters.get(child.id),
                   "best_primary_metric": best, "status": child.get_status()}  # fmt: skip
            (ranked if best is not None else unranked).append(row)
        ranked.sort(key=lambda row: row["best_primary_metric"], reverse=maximize != reverse)
        rows = ranked + ([] if discard_no_metric else unranked)
        return rows[:top] if top else rows

    def get_best_run_by_primary_metric(self, include_failed=True, include_canceled=True, include_resume_from_runs=True):
        """The trial with the best primary metric (a StepRun), or None when none logged it; failed or
        canceled trials count unless excluded; with ``include_resume_from_runs``, the trials of the
        runs it resumed from (``HyperDriveConfig(resume_from=...)``) too (this run's, on a tie)."""
        excluded = {"Failed"} if not include_failed else set()
        excluded |= {"Canceled"} if not include_canceled else set()
        mine, sweeps = self._sweep(), [self]
        if include_resume_from_runs:
            resumed = mine.get("warm_start", {}).get("runs", [])
            sweeps += [Run.get(self.experiment.workspace, str(run_id)) for run_id in resumed]
        better = (lambda a, b: a > b) if mine["primary_metric_config"]["goal"] == "maximize" else (lambda a, b: a < b)
        best = None
        for sweep in sweeps:
            row = next(
                (r for r in sweep.get_children_sorted_by_primary_metric(discard_no_metric=True)
                 if r["status"] not in excluded),
                None,
            )  # fmt: skip
            if row is not None and (best is None or better(row["best_primary_metric"], best[0]["best_primary_metric"])):
                best = (row, sweep)
        if best is None:
            return None
        row, sweep = best
        return next(child for child in sweep.get_children() if child.id == row["run_id"])

    def __repr__(self) -> str:
        return f"HyperDriveRun(experiment={self.experiment.name!r}, id={self.id})"


class HyperDriveStepRun(HyperDriveRun):
    """The sweep of a HyperDriveStep in a pipeline run: ``HyperDriveStepRun(step_run)``, with
    HyperDriveRun's members over that step's trials (children of the pipeline run, ``NAME_HD_0``, ...)."""

    def __init__(self, step_run):
        super().__init__(step_run.experiment, step_run.pipeline_run_id)
        self._step_run = step_run

    @property
    def step_run(self) -> StepRun:
        """The HyperDriveStep's own step run (which wrote its outputs)."""
        return self._step_run

    def _sweep(self) -> dict:
        return next(sweep for sweep in self.get_graph().sweeps if sweep.get("step") == self._step_run.name)

    def get_children(self, recursive=False, tags=None, properties=None, type=None, status=None,
                     _rehydrate_runs=True) -> list[StepRun]:  # fmt: skip
        """The step's trials that match every filter given (see ``Run.list``)."""
        trials = self._sweep()["trials"]
        return [s for s in super().get_children(False, tags, properties, type, status) if s.name in trials]

    def __repr__(self) -> str:
        return f"HyperDriveStepRun(step={self._step_run.name!r}, pipeline_run={self.id})"


class StepRun(StepRecordMembers, Run):
    """One step of a pipeline run: ``run.find_step_run(name)[0]``, ``run.get_steps()``."""

    def __init__(self, experiment, step_run_id, pipeline_run_id, node_id, _service_endpoint=None,
                 _is_reused=False, _current_node_id=None, _reused_run_id=None, _reused_node_id=None,
                 _reused_pipeline_run_id=None):  # fmt: skip
        """``node_id`` is the step's name in its pipeline; whether it was reused is read from the record.
        ``step_run_id`` is the step run's id (``"12_17"``) or its number."""
        from localpipe.state.reader import step_run_numbers

        numbers = step_run_numbers(step_run_id)
        super().__init__(experiment, step_run_id if numbers is None else numbers[1])
        self._pipeline_run_id = int(pipeline_run_id)
        self._node_id = node_id

    @property
    def pipeline_run_id(self) -> str:
        """The id of the pipeline run the step belongs to."""
        return str(self._pipeline_run_id)

    @property
    def parent(self) -> PipelineRun:
        """The PipelineRun the step belongs to."""
        return PipelineRun(self.experiment, self._pipeline_run_id)

    @property
    def type(self) -> str:
        """``azureml.StepRun``, as in Azure ML."""
        return STEP_RUN

    @property
    def reused_from(self) -> str | None:
        """The id of the step run whose outputs this one reused, if it was reused."""
        from localpipe.state.reader import step_run_id

        record = self._record()
        reused = record["reused_from_step_run"]
        return None if reused is None else step_run_id(record["reused_from_run"], reused)

    def _default_name(self) -> str:
        return self._node_id

    @property
    def display_name(self) -> str:
        """The step's name in its pipeline; setting it is refused (name the step instead)."""
        return self._node_id

    @display_name.setter
    def display_name(self, display_name: str) -> None:
        raise UsageError(f'step "{self._node_id}": a step run is named by its step: set PythonScriptStep(name=...)')

    @property
    def description(self) -> str | None:
        """None: a step run has no description of its own (setting one is refused: describe its pipeline run)."""
        return None

    @description.setter
    def description(self, description: str) -> None:
        raise UsageError(f'step "{self._node_id}": a step run has no description of its own: describe its pipeline')

    def get_details(self) -> dict:
        """Azure ML's details (``Run.get_details``) with localpipe's record of the step: reason,
        exit code, placement, outputs (name -> digest), ..."""
        record = self._record()
        outputs = {"outputs": self._history.runs.step_outputs(record["id"])}
        return {**record, **outputs, **super().get_details()}

    def get_outputs(self) -> dict[str, OutputData]:
        """Every committed output of the step: name -> ``OutputData``."""
        return {name: self.get_output_data(name) for name in self._history.runs.step_outputs(self._number)}

    def get_output(self, name: str) -> OutputData:
        """The same as ``get_output_data(name)``."""
        return self.get_output_data(name)

    def get_output_data(self, name: str) -> OutputData:
        """The committed output ``name`` of this step (also for a reused step)."""
        from localpipe.state.store import ObjectStore

        outputs = self._history.runs.step_outputs(self._number)
        if name not in outputs:
            raise NotFoundError(
                f'step "{self.name}" of run {self._pipeline_run_id} has no output "{name}" '
                f"(its outputs: {', '.join(outputs) or 'none'})"
            )
        return OutputData(name, ObjectStore(self._history.layout.objects).path(outputs[name]), self._is_directory(name))

    def _is_directory(self, output: str) -> bool:
        """Whether the step's output ``output`` is a folder (else one file: ``is_directory=False``)."""
        try:
            spec = self.parent.get_graph().steps[self._node_id]
        except Exception:  # noqa: BLE001  (a run forgotten since, or a step not in its graph: a folder)
            return True
        return spec.outputs.get(output, True)

    def get_stdout_log(self) -> str:
        """The step's stdout as it ran ("" when it wrote nothing)."""
        return self._log("stdout.log")

    def get_stderr_log(self) -> str:
        """The step's stderr as it ran ("" when it wrote nothing)."""
        return self._log("stderr.log")

    def get_job_log(self) -> str:
        """The step's output as it ran: its stdout, then its stderr."""
        return self.get_stdout_log() + self.get_stderr_log()

    def wait_for_completion(self, show_output=True, timeout_seconds=sys.maxsize, raise_on_error=True) -> str:
        """Block until the step ends, printing its status and log with ``show_output``; its final status."""
        return watch_run(
            self._history, self._pipeline_run_id, show_output, timeout_seconds, raise_on_error, self._node_id
        )

    def complete(self) -> None:
        """Nothing to do: a step run completes when its script exits 0."""

    def fail(self) -> None:
        """Refused, as Azure refuses it: a step run fails when its script exits non-zero; end its
        pipeline run instead (``run.parent.fail(error_details)``, or ``cancel()``)."""
        raise UsageError(
            f'step "{self._node_id}": a step run fails when its script exits non-zero; '
            f"to end it, fail or cancel its pipeline run (run.parent.fail(error_details), run.parent.cancel())"
        )

    def cancel(self) -> None:
        """Refused: localpipe cancels whole runs (``run.parent.cancel()``), where Azure can cancel one step."""
        raise UsageError(
            f'step "{self._node_id}": localpipe cancels whole runs: run.parent.cancel() (localpipe cancel '
            f"{self._pipeline_run_id})"
        )

    def _log(self, name: str) -> str:
        path = self._history.layout.step_dir(self._pipeline_run_id, self._node_id) / name
        return path.read_text(errors="replace") if path.exists() else ""

    register_model = models.register_model

    def __repr__(self) -> str:
        return f"StepRun(run={self._pipeline_run_id}, name={self._node_id!r})"


class InteractiveRun(Run):
    """A run logged from a session (``Experiment.start_logging``, client/interactive.py):
    ``complete()``, ``fail()`` or ``cancel()`` ends it. Its records are held by one step run."""

    @property
    def type(self) -> None:
        """None, as the SDK records no type for an interactive run."""
        return None

    def _step(self) -> dict | None:
        steps = self._history.runs.steps(self._number)
        return steps[0] if steps else None

    def complete(self, _set_status=True) -> None:
        """Completed; its ``outputs`` folder (``./outputs`` by default) is kept among its files first."""
        if self._outputs and os.path.isdir(self._outputs):
            self.upload_folder(os.path.basename(os.path.normpath(self._outputs)), self._outputs)
        self._history.runs.finish_unscheduled(self._number, RunStatus.COMPLETED, None)

    def fail(self, error_details=None, error_code=None, _set_status=True) -> None:
        self._history.runs.finish_unscheduled(self._number, RunStatus.FAILED, _failure(error_details, error_code))

    def cancel(self) -> None:
        self._history.runs.finish_unscheduled(self._number, RunStatus.CANCELED, "canceled")

    def __exit__(self, exit_type, value, traceback) -> None:
        """Completed, or Failed when the block raised."""
        if exit_type is None:
            self.complete()
        else:
            self.fail(error_details=value)

    def __repr__(self) -> str:
        return f"Run(id={self.id}, experiment={self.experiment.name!r}, type=None)"


class OutputData:
    """A committed step output: ``path`` (read-only, in the object store), ``download(local_path)``
    and ``copy_to(dest)``.

    It is also what the SDK's ``StepRunOutput.get_port_data_reference()`` returns (a
    ``PortDataReference``): its datastore is the workspace's object store, named ``objects``, and
    ``path_on_datastore`` the output's folder there (``<first 2 of digest>/<digest>``), or its one
    file in it for an output that is a file (``is_directory=False``: a HyperDriveStep's
    ``TrainingOutput``), which ``download`` puts there as the SDK's does."""

    datastore_name = "objects"

    def __init__(self, name: str, path: Path, is_directory: bool = True):
        self.name = name
        self.path = path
        self.is_directory = is_directory

    @property
    def data_reference_name(self) -> str:
        return self.name

    @property
    def path_on_datastore(self) -> str:
        folder = f"{self.path.parent.name}/{self.path.name}"
        return folder if self.is_directory else f"{folder}/{self.name}"

    _path_on_datastore = path_on_datastore  # the SDK's attribute, which its samples read

    def get_port_data_reference(self) -> OutputData:
        return self

    def download(self, local_path: str | Path, overwrite: bool = False, show_progress=None) -> int:
        """Copy the output into ``local_path/<path_on_datastore>``, where the SDK's download from a
        datastore puts an output's files (Azure's samples read them there); the number of files."""
        if not self.is_directory:
            import shutil

            dest = Path(local_path) / self.path_on_datastore
            if dest.exists() and not overwrite:
                raise UsageError(f"{dest} already exists: pass overwrite=True (--overwrite) or choose another folder")
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(self.path / self.name, dest)
            return 1
        copy = self.copy_to(Path(local_path) / self.path_on_datastore, overwrite)
        return sum(1 for path in copy.rglob("*") if path.is_file())

    def copy_to(self, dest: str | Path, overwrite: bool = False) -> Path:
        """Copy the output's files into the folder ``dest`` (``localpipe download``); returns it."""
        import shutil

        dest = Path(dest)
        if dest.exists() and not overwrite:
            raise UsageError(f"{dest} already exists: pass overwrite=True (--overwrite) or choose another folder")
        shutil.copytree(self.path, dest, dirs_exist_ok=True if overwrite else False)
        for path in (dest, *dest.rglob("*")):
            path.chmod(path.stat().st_mode | 0o200)  # the copy is the user's, not the store's
        return dest


def current_run(allow_offline: bool = True):
    """The run this process belongs to: a step run under localpipe, else an offline run."""
    if os.environ.get("LOCALPIPE_STEP_RUN_ID"):
        return StepRunContext(os.environ)
    if not allow_offline:
        raise RunEnvironmentException(
            "not inside a localpipe step: run the script through a pipeline or "
            "Experiment.submit(ScriptRunConfig(...)), or pass allow_offline=True"
        )
    return OfflineRun()


class StepRunContext(StepSideWrites, StepRun):
    """The step run of this process, as localpipe started it: every member of ``Run``; what it
    writes goes through the step's own files, what it reads comes from history.db."""

    def __init__(self, environ):
        super().__init__(
            None, environ["LOCALPIPE_STEP_RUN_ID"], environ["LOCALPIPE_RUN_ID"], environ.get("LOCALPIPE_STEP_NAME")
        )
        self._workspace_root = environ["LOCALPIPE_WORKSPACE"]
        self._experiment_name = environ.get("LOCALPIPE_EXPERIMENT", "")
        self._metrics_file = environ["LOCALPIPE_METRICS_FILE"]
        self._step_dir = Path(environ.get("LOCALPIPE_STEP_DIR") or os.getcwd())
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
        # Child runs made here (client/child_runs.py) are numbered from this process's count.
        self._suffix, self._root_id, self._root_name, self._children_made = "", self.id, self._node_id, 0

    @property
    def experiment(self):
        """Made on first use, so that ``Run.get_context()`` in a step stays cheap."""
        if self._experiment is None:
            from localpipe.sdk.workspace import Workspace

            self._experiment = Workspace(self._workspace_root).experiments[self._experiment_name]
        return self._experiment

    def _emit(self, kind: str, name: str, value: Any) -> None:
        self._emit_for("", kind, name, value)

    def _emit_for(self, suffix: str, kind: str, name: str, value: Any, **extra) -> None:
        """One line of the step's metrics file, for the step (``suffix`` "") or one of its child runs."""
        emit_line(self._metrics_file, suffix, kind, name, value, **extra)

    def child_run(self, name=None, run_id=None, outputs=None):
        """A child run of this step (client/child_runs.py): recorded by the scheduler with the step's metrics."""
        return child_run_in_step(self, name, run_id, outputs)

    def create_children(self, count=None, tag_key=None, tag_values=None) -> list:
        return create_children_in_step(self, count, tag_key, tag_values)

    def _file_target(self, name: str) -> Path:
        return _inside(self._step_dir / "files", name)

    def _files(self) -> dict[str, Path]:
        """What it uploaded and wrote so far (``./outputs`` and ``./logs`` are collected when it ends)."""
        found = super()._files()
        for folder_name in ("outputs", "logs"):
            root = Path.cwd() / folder_name
            for folder, _, names in os.walk(root):
                for file in names:
                    path = Path(folder, file)
                    found.setdefault(path.relative_to(Path.cwd()).as_posix(), path)
        return found

    def complete(self) -> None:
        """Nothing to do: the step completes when its script exits 0 (as Azure's submitted runs do)."""

    def fail(self, error_details=None, error_code=None) -> None:
        """The details on the step's stderr (its log, and a failed step's log tail); the status stays
        the script's, as for Azure's submitted runs ("fail is not setting status for submitted runs"):
        exit non-zero to fail the step."""
        print(f"run.fail: {_failure(error_details, error_code)}", file=sys.stderr, flush=True)

    def cancel(self) -> None:
        """Nothing, with a warning, as Azure's submitted runs do: exit the script to end the step, or
        cancel its run (``localpipe cancel``, ``run.parent.cancel()``)."""
        warnings.warn(
            "run.cancel() in a step changes nothing (as on Azure): exit the script to end the step, or "
            "cancel its pipeline run (run.parent.cancel())",
            UserWarning,
            stacklevel=2,
        )

    def __repr__(self) -> str:
        return f"StepRunContext(id={self.id}, name={self.name!r})"


class OfflineRun(LoggingMembers):
    """Outside localpipe: prints what it would log, so the same script runs by hand (as Azure's)."""

    parent = None
    experiment = None
    input_datasets: dict = {}
    output_datasets: dict = {}

    def __init__(self, run_id: str | None = None):
        self.id = run_id or f"OfflineRun_{uuid.uuid4()}"

    def _emit(self, kind: str, name: str, value: Any) -> None:
        print(f"[offline run] {kind} {name}: {value!r}")

    def tag(self, key, value=None) -> None:
        self._emit("tag", key, value)

    def set_tags(self, tags) -> None:
        for key, value in _as_tags(tags).items():
            self.tag(key, value)

    def add_properties(self, properties) -> None:
        print(f"[offline run] properties {properties!r}")

    def upload_file(self, name, path_or_stream, datastore_name=None) -> None:
        print(f"[offline run] file {name}: {path_or_stream}")

    def upload_files(self, names, paths, return_artifacts=False, timeout_seconds=None, datastore_name=None) -> None:
        print(f"[offline run] files {names}: {paths}")

    def upload_folder(self, name, path, datastore_name=None) -> None:
        print(f"[offline run] folder {name}: {path}")

    def child_run(self, name=None, run_id=None, outputs=None) -> OfflineRun:
        return OfflineRun(run_id or f"{self.id}.{name or uuid.uuid4()}")

    def complete(self) -> None:
        """Nothing to complete offline."""

    def fail(self, error_details=None, error_code=None) -> None:
        print(f"[offline run] failed with error code {error_code}:\n{error_details}")

    def cancel(self) -> None:
        """Nothing to cancel offline."""

    def flush(self, timeout_seconds=300) -> None:
        """Nothing is queued offline."""

    def __enter__(self) -> OfflineRun:
        return self

    def __exit__(self, exit_type, value, traceback) -> None:
        """Nothing to close offline."""


def _rehydrate(experiment, record: dict) -> Run:
    """A handle of the record's kind: a PipelineRun, or a Run for a script or an interactive run."""
    properties = record.get("properties") or {}
    if properties.get("azureml.runsource") == SCRIPT_RUN:
        return Run(experiment, record["id"])
    if properties.get("localpipe.runsource") == INTERACTIVE_RUN:
        return InteractiveRun(experiment, record["id"])
    if properties.get("azureml.runsource") == HYPERDRIVE_RUN:
        return HyperDriveRun(experiment, record["id"])
    return PipelineRun(experiment, record["id"])
