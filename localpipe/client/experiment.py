"""Experiment: a named group of runs; ``submit`` records a run and starts it in the background."""

from __future__ import annotations

from localpipe.errors import SubmittedWhileLoading

PIPELINE_SUBMIT_KEYWORDS = frozenset(
    {"pipeline_parameters", "regenerate_outputs", "continue_on_step_failure", "credential_passthrough"}
)
ACTIVE_ONLY = "ActiveOnly"  # Azure's ViewType.ActiveOnly: every experiment is active here


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

        found = history_of(workspace).registry.experiments()
        return [
            Experiment(workspace, row["name"])
            for row in found
            if (experiment_name is None or row["name"] == experiment_name) and _has(row["tags"], tags)
        ]

    @property
    def id(self) -> int | None:
        """The experiment's number in the workspace (None before its first run or tag)."""
        return self._history.registry.experiment_id(self.name)

    @property
    def archived_time(self) -> None:
        """None: an experiment here is never archived (``Experiment.list`` shows every one)."""
        return None

    @classmethod
    def get_docs_url(cls) -> str:
        return "https://learn.microsoft.com/python/api/azureml-core/azureml.core.experiment.experiment"

    @property
    def workspace_object(self):
        return self.workspace

    @property
    def tags(self) -> dict:
        return next((r["tags"] for r in self._history.registry.experiments() if r["name"] == self.name), {})

    def tag(self, key, value=None) -> None:
        self.set_tags({key: value})

    def set_tags(self, tags) -> None:
        from localpipe.client.run_base import _as_tags

        self._history.registry.set_experiment_tags(self.name, _as_tags(tags))

    def remove_tags(self, tags) -> None:
        self._history.registry.set_experiment_tags(self.name, {}, [tags] if isinstance(tags, str) else list(tags))

    def refresh(self) -> None:
        """Nothing to refresh: every read goes to the workspace's records."""

    def submit(self, config, tags: dict | None = None, **kwargs):
        """Record a run of ``config`` and start it in a detached scheduler; returns its handle at once.

        ``config`` is a Pipeline (a PipelineRun is returned) or a ScriptRunConfig (a Run of one step).
        The keywords are the SDK's for a pipeline: ``pipeline_parameters``, ``regenerate_outputs``,
        ``continue_on_step_failure`` (and ``credential_passthrough``, which has no meaning here);
        any other, or any for a ScriptRunConfig, is a TypeError, as in the SDK. The run goes on if
        the calling process ends. Raises PipelineValidationError with every problem of an invalid
        pipeline, having recorded nothing.
        """
        from localpipe.client.run_base import PIPELINE_RUN, SCRIPT_RUN
        from localpipe.client.runs import PipelineRun, Run
        from localpipe.sdk.pipeline import Pipeline
        from localpipe.sdk.script_run import ScriptRunConfig
        from localpipe.sdk.workspace import current_workspace, file_loading

        if isinstance(config, ScriptRunConfig):
            if kwargs:
                raise TypeError(
                    f"Experiment.submit() got an unexpected keyword argument {sorted(kwargs)[0]!r}: a ScriptRunConfig "
                    "takes only tags"
                )
            pipeline = Pipeline(self.workspace, [config.step()])
            kind = SCRIPT_RUN
        else:
            unknown = sorted(set(kwargs) - PIPELINE_SUBMIT_KEYWORDS)
            if unknown:
                raise TypeError(
                    f"Experiment.submit() got an unexpected keyword argument {unknown[0]!r}: a pipeline takes "
                    f"{', '.join(sorted(PIPELINE_SUBMIT_KEYWORDS))}"
                )
            pipeline, kind = config, PIPELINE_RUN
        pipeline_parameters = kwargs.get("pipeline_parameters")
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
        return Run(self, run_id) if kind == SCRIPT_RUN else PipelineRun(self, run_id)

    def _start(self, pipeline, pipeline_parameters, options: dict, tags) -> int:
        from localpipe.engine.submit import prepare_run, run_in_background

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
        run_in_background(history, prepared.run_id)
        return prepared.run_id

    def get_runs(self, type=None, tags=None, properties=None, include_children=False) -> list:
        """The runs of this experiment, newest first, filtered as ``Run.list`` does."""
        from localpipe.client.runs import Run

        return Run.list(self, type, tags, properties, include_children=include_children)

    @property
    def _history(self):
        from localpipe.client.workspace import history_of

        return history_of(self.workspace)

    def __repr__(self) -> str:
        return f"Experiment({self.name!r})"
