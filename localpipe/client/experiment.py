"""Experiment: a named group of runs; ``submit`` records a run and starts it in the background."""

from __future__ import annotations

import warnings
from collections.abc import Iterator

from localpipe.errors import SubmittedWhileLoading, UserErrorException
from localpipe.sdk.parameters import given_values

PIPELINE_SUBMIT_KEYWORDS = frozenset(
    {"pipeline_parameters", "regenerate_outputs", "continue_on_step_failure", "credential_passthrough"}
)
# Azure's ViewType: which experiments Experiment.list shows, by whether they are archived.
ACTIVE_ONLY, ARCHIVED_ONLY, ALL = "ActiveOnly", "ArchivedOnly", "All"


class Experiment:
    """``Experiment(ws, name)``."""

    def __init__(self, workspace, name: str, _skip_name_validation: bool = False, _id=None, _archived_time=None,
                 _create_in_cloud: bool = True, _experiment_dto=None):  # fmt: skip
        self.workspace = workspace
        self.name = name

    @staticmethod
    def list(workspace, experiment_name=None, view_type=ACTIVE_ONLY, tags=None) -> list[Experiment]:
        """The workspace's experiments (those with a run or a tag), by name; only ``experiment_name``'s
        when given, only those with every tag of ``tags`` (a name, or ``{name: value}``)."""
        from localpipe.client.run_base import _has
        from localpipe.client.workspace import history_of

        if view_type not in (ACTIVE_ONLY, ARCHIVED_ONLY, ALL):
            raise UserErrorException(f"view_type {view_type!r} is not one of {ACTIVE_ONLY}, {ARCHIVED_ONLY}, {ALL}")
        found = history_of(workspace).registry.experiments()
        wanted = {ACTIVE_ONLY: (False,), ARCHIVED_ONLY: (True,), ALL: (False, True)}[view_type]
        return [
            Experiment(workspace, row["name"])
            for row in found
            if (experiment_name is None or row["name"] == experiment_name)
            and _has(row["tags"], tags)
            and (row["archived_at"] is not None) in wanted
        ]

    def get_portal_url(self) -> str:
        """The experiment's page in the studio (`localpipe serve`): its runs and their metrics."""
        from urllib.parse import quote

        from localpipe.client.publishing import studio_url

        return studio_url(f"experiments/{quote(self.name, safe='')}")

    @property
    def portal_url(self) -> str:
        """The same as ``get_portal_url()``."""
        return self.get_portal_url()

    @property
    def id(self) -> int | None:
        """The experiment's number in the workspace (None before its first run or tag)."""
        return self._history.registry.experiment_id(self.name)

    @property
    def archived_time(self) -> str | None:
        """When the experiment was archived (ISO 8601, UTC), or None while it is active."""
        from localpipe.client.run_base import _utc

        row = self._row()
        return _utc(row["archived_at"]) if row and row["archived_at"] is not None else None

    def archive(self) -> None:
        """Archive the experiment: ``Experiment.list`` leaves it out (unless asked for archived ones);
        its runs are kept, and a new run in it is recorded as before. ``reactivate()`` undoes it."""
        import time

        self._history.registry.archive_experiment(self.name, time.time())

    def reactivate(self, new_name=None) -> None:
        """Make an archived experiment active again (``new_name`` is refused, as the SDK refuses it)."""
        if new_name is not None:
            raise UserErrorException(
                "Cannot rename an experiment. If the archived experiment name conflicts with an active "
                "experiment name, you can delete the active experiment before unarchiving this experiment."
            )
        self._history.registry.archive_experiment(self.name, None)

    @staticmethod
    def delete(workspace, experiment_id) -> None:
        """Delete the experiment ``experiment_id`` (its ``id``) and its runs, as `localpipe gc` forgets
        runs: their records, and the objects and run folders nothing else uses. An experiment with
        an active run is refused (UsageError naming them)."""
        from localpipe.client.workspace import history_of
        from localpipe.state.gc import collect, plan_gc

        history = history_of(workspace)
        try:
            number = int(experiment_id)
        except (TypeError, ValueError):
            raise UserErrorException(f"{experiment_id!r} is not an experiment id: use experiment.id") from None
        collect(history, plan_gc(history, experiment=number))
        history.registry.delete_experiment(number)

    @staticmethod
    def from_directory(path, auth=None) -> Experiment:
        """(Deprecated in the SDK.) The experiment a project folder was attached to: the ``Scope``
        (``.../workspaces/W/projects/EXPERIMENT``) of its ``.azureml/`` or ``aml_config/``
        ``project.json`` or ``config.json``, in ``path`` or a folder above; in the nearest workspace."""
        from localpipe.sdk.workspace import Workspace

        name = _project_experiment(path)
        return Experiment(Workspace.from_config(path), name)

    def start_logging(self, *args, **kwargs):
        """An interactive run of this experiment, Running, logged from this process: ``run.log(...)``,
        files, tags, child runs; ``run.complete()`` (or ``with``) ends it. The SDK's keywords: ``name``,
        ``run_id`` (refused: runs are numbered), ``outputs`` (a folder kept among its files at
        completion, ``./outputs`` by default), ``snapshot_directory`` (``"."`` by default; None: no
        snapshot), ``tags``, ``properties``, ``display_name``, ``description`` (client/interactive.py)."""
        from localpipe.client.interactive import start_logging

        return start_logging(self, *args, **kwargs)

    @classmethod
    def get_docs_url(cls) -> str:
        """The Azure ML SDK's documentation page of ``Experiment``."""
        return "https://learn.microsoft.com/python/api/azureml-core/azureml.core.experiment.experiment"

    @property
    def workspace_object(self):
        """The workspace (deprecated in the SDK: use ``workspace``)."""
        return self.workspace

    @property
    def tags(self) -> dict:
        """The experiment's tags, kept in history.db."""
        row = self._row()
        return row["tags"] if row else {}

    def _row(self) -> dict | None:
        return next((r for r in self._history.registry.experiments() if r["name"] == self.name), None)

    def tag(self, key, value=None) -> None:
        """Set the tag ``key`` (to ``value``, None for a tag without a value)."""
        self.set_tags({key: value})

    def set_tags(self, tags) -> None:
        """Add or replace the tags of the dict ``tags`` (a list or set: tags without values)."""
        from localpipe.client.run_base import _as_tags

        self._history.registry.set_experiment_tags(self.name, _as_tags(tags))

    def remove_tags(self, tags) -> None:
        """Remove the tags named (one name or a list of names)."""
        self._history.registry.set_experiment_tags(self.name, {}, [tags] if isinstance(tags, str) else list(tags))

    def refresh(self) -> None:
        """Nothing to refresh: every read goes to the workspace's records."""

    def submit(self, config, tags: dict | None = None, **kwargs):
        """Record a run of ``config`` and start it in a detached scheduler; returns its handle at once.

        ``config`` is a Pipeline (a PipelineRun is returned) or a ScriptRunConfig (a Run of one step),
        or a PublishedPipeline or PipelineEndpoint (their own ``submit`` keywords, docs/publishing.md), or a
        PipelineDraft (as its ``submit_run``, in this experiment).
        The keywords are the SDK's for a pipeline: ``pipeline_parameters``, ``regenerate_outputs``,
        ``continue_on_step_failure`` (and ``credential_passthrough``, which has no meaning here);
        any other, or any for a ScriptRunConfig, is a TypeError, as in the SDK. The run goes on if
        the calling process ends. Raises PipelineValidationError with every problem of an invalid
        pipeline, having recorded nothing.
        """
        from localpipe.client.hyperdrive import sweep_pipeline
        from localpipe.client.run_base import PIPELINE_RUN, SCRIPT_RUN
        from localpipe.client.runs import HYPERDRIVE_RUN, HyperDriveRun, PipelineRun, Run
        from localpipe.sdk.hyperdrive import HyperDriveConfig
        from localpipe.sdk.pipeline import Pipeline
        from localpipe.sdk.script_run import ScriptRunConfig
        from localpipe.sdk.workspace import current_workspace, file_loading

        if hasattr(config, "_submit_in"):  # a PublishedPipeline, a PipelineEndpoint or a PipelineDraft
            return config._submit_in(self, tags, **kwargs)
        if isinstance(config, (ScriptRunConfig, HyperDriveConfig)):
            if kwargs:
                raise TypeError(
                    f"Experiment.submit() got an unexpected keyword argument {sorted(kwargs)[0]!r}: a "
                    f"{type(config).__name__} takes only tags"
                )
            if isinstance(config, HyperDriveConfig):
                pipeline, kind = sweep_pipeline(self.workspace, config), HYPERDRIVE_RUN
                kwargs["continue_on_step_failure"] = True  # one trial failing does not end the others
            else:
                pipeline, kind = Pipeline(self.workspace, [config.step()]), SCRIPT_RUN
        else:
            unknown = sorted(set(kwargs) - PIPELINE_SUBMIT_KEYWORDS)
            if unknown:
                raise TypeError(
                    f"Experiment.submit() got an unexpected keyword argument {unknown[0]!r}: a pipeline takes "
                    f"{', '.join(sorted(PIPELINE_SUBMIT_KEYWORDS))}"
                )
            pipeline, kind = config, PIPELINE_RUN
        pipeline_parameters = given_values(kwargs.get("pipeline_parameters"))
        options = {
            "regenerate_outputs": bool(kwargs.get("regenerate_outputs", False)),
            "continue_on_step_failure": bool(kwargs.get("continue_on_step_failure", False)),
            "properties": {"azureml.runsource": kind},
        }
        if current_workspace.get() is not None or file_loading.active:  # a command is loading the file
            submitted = SubmittedWhileLoading(pipeline, self.name, pipeline_parameters, options)
            file_loading.submitted.append(submitted)
            raise submitted
        run_id = self._start(pipeline, pipeline_parameters, options, tags)
        if kind == HYPERDRIVE_RUN:
            return HyperDriveRun(self, run_id, config)
        return Run(self, run_id) if kind == SCRIPT_RUN else PipelineRun(self, run_id)

    def _start(self, pipeline, pipeline_parameters, options: dict, tags) -> int:
        from localpipe.client.run_base import SCRIPT_RUN
        from localpipe.engine.submit import prepare_run, run_in_background
        from localpipe.hw.host import detect_host, oversubscription

        history = self._history
        prepared = prepare_run(
            history,
            pipeline,
            self.name,
            pipeline_parameters,
            options["regenerate_outputs"],
            options["continue_on_step_failure"],
            tags,
            properties=options["properties"],
        )
        if options["properties"]["azureml.runsource"] == SCRIPT_RUN:
            # Azure snapshots a script run's source at submission: its id is known from then on, and
            # restore_snapshot works for a run canceled before its step started (manage-runs.ipynb).
            [(name, tree)] = prepared.sources.items()
            if tree is not None:
                [step] = history.runs.steps(prepared.run_id)
                history.runs.set_snapshot(step["id"], tree.digest, tree.files, tree.size)
        run_in_background(history, prepared.run_id)
        note = oversubscription(detect_host())
        if note:
            warnings.warn(note, stacklevel=3)  # at the line that called submit()
        return prepared.run_id

    def get_runs(self, type=None, tags=None, properties=None, include_children=False) -> Iterator:
        """A generator of the runs of this experiment, newest first (as Azure ML's: ``next(...)``
        is the latest), filtered as ``Run.list`` does."""
        from localpipe.client.runs import Run

        return (run for run in Run.list(self, type, tags, properties, include_children=include_children))

    @property
    def _history(self):
        from localpipe.client.workspace import history_of

        return history_of(self.workspace)

    def __repr__(self) -> str:
        return f"Experiment({self.name!r})"


PROJECT_FILES = ("project.json", "config.json")  # what the SDK reads a project's Scope from
PROJECT_FOLDERS = ("aml_config", ".azureml")


def _project_experiment(path) -> str:
    """The experiment name (``projects/NAME``) of the nearest project ``Scope`` at or above ``path``."""
    import json
    from pathlib import Path

    start = Path(path).resolve()
    for folder in (start, *start.parents):
        for candidate in (folder / sub / name for sub in PROJECT_FOLDERS for name in PROJECT_FILES):
            try:
                scope = json.loads(candidate.read_text(encoding="utf-8")).get("Scope")
            except (OSError, ValueError, AttributeError):
                continue
            parts = str(scope or "").strip("/").split("/")
            named = dict(zip(parts[::2], parts[1::2]))
            if named.get("projects"):
                return named["projects"]
    raise UserErrorException(
        f"no project found at or above {start}: Experiment.from_directory reads the Scope "
        '(".../workspaces/W/projects/EXPERIMENT") of .azureml/project.json; use Experiment(ws, name)'
    )
