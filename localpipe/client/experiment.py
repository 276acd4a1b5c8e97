"""Experiment: a named group of runs; ``submit`` records a run and starts it in the background."""

from __future__ import annotations

from localpipe.client.runs import PipelineRun
from localpipe.client.workspace import history_of
from localpipe.errors import SubmittedWhileLoading
from localpipe.sdk.workspace import current_workspace, file_loading

PIPELINE_SUBMIT_KEYWORDS = frozenset(
    {"pipeline_parameters", "regenerate_outputs", "continue_on_step_failure", "credential_passthrough"}
)


class Experiment:
    """``Experiment(ws, name)``."""

    def __init__(self, workspace, name: str, _skip_name_validation: bool = False, _id=None, _archived_time=None,
                 _create_in_cloud: bool = True, _experiment_dto=None):  # fmt: skip
        self.workspace = workspace
        self.name = name

    def submit(self, config, tags: dict | None = None, **kwargs) -> PipelineRun:
        """Record a run of the pipeline ``config`` and start it in a detached scheduler; returns at once.

        The keywords are the SDK's for a pipeline: ``pipeline_parameters``, ``regenerate_outputs``,
        ``continue_on_step_failure`` (and ``credential_passthrough``, which has no meaning here);
        any other is a TypeError, as in the SDK. The run goes on if the calling process ends.
        Raises PipelineValidationError with every problem of an invalid pipeline, having recorded
        nothing.
        """
        from localpipe.engine.submit import prepare_run, run_in_background

        unknown = sorted(set(kwargs) - PIPELINE_SUBMIT_KEYWORDS)
        if unknown:
            raise TypeError(
                f"Experiment.submit() got an unexpected keyword argument {unknown[0]!r}: a pipeline takes "
                f"{', '.join(sorted(PIPELINE_SUBMIT_KEYWORDS))}"
            )
        pipeline = config
        pipeline_parameters = kwargs.get("pipeline_parameters")
        regenerate_outputs = bool(kwargs.get("regenerate_outputs", False))
        continue_on_step_failure = bool(kwargs.get("continue_on_step_failure", False))

        if current_workspace.get() is not None or file_loading.active:  # a command is loading the file
            options = {"regenerate_outputs": regenerate_outputs, "continue_on_step_failure": continue_on_step_failure}
            submitted = SubmittedWhileLoading(pipeline, self.name, pipeline_parameters, options)
            file_loading.submitted.append(submitted)
            raise submitted
        history = history_of(self.workspace)
        prepared = prepare_run(
            history, pipeline, self.name, pipeline_parameters, regenerate_outputs, continue_on_step_failure, tags
        )
        run_in_background(history, prepared.run_id)
        return PipelineRun(self, prepared.run_id)

    def get_runs(self) -> list[PipelineRun]:
        """The runs of this experiment, newest first."""
        return [PipelineRun(self, r["id"]) for r in history_of(self.workspace).runs.list(10**9, self.name)]

    def __repr__(self) -> str:
        return f"Experiment({self.name!r})"
