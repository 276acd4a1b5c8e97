"""Pipeline: the set of steps to run, with the producers of their inputs pulled in; StepSequence:
steps in the order they run."""

from __future__ import annotations

import os

from localpipe.errors import UsageError
from localpipe.sdk.data import PipelineData, PipelineDataInput
from localpipe.sdk.steps import PipelineStep


class StepSequence:
    """Steps in the order they run, with no data passed between them (Azure ML's
    ``azureml.pipeline.core.StepSequence``): ``Pipeline(ws, steps=StepSequence(steps=[a, b, c]))``
    runs ``b`` after ``a`` and ``c`` after ``b``. An element may be a list of steps, run in
    parallel after the element before it and before the element after it, or a StepSequence.

    The order is kept as ``run_after`` on the steps themselves, set here.
    """

    def __init__(self, steps=None):
        self.steps = list(steps or [])
        before: list[PipelineStep] = []
        for element in self.steps:
            group = list(_flatten([element]))
            for step in group:
                for earlier in before:
                    if earlier not in step.predecessors:
                        step.run_after(earlier)
            before = group

    def __repr__(self) -> str:
        return f"StepSequence({self.steps!r})"


class Pipeline:
    """Steps to run together; ``steps`` may be nested lists (the seed passes a list in a list) or a
    StepSequence."""

    def __init__(
        self,
        workspace,
        steps,
        description: str | None = None,
        default_datastore=None,
        default_source_directory: str | None = None,
        resolve_closure: bool = True,
        _workflow_provider=None,
        _service_endpoint=None,
        **kwargs,
    ):
        """``resolve_closure`` False keeps only the steps given (a producer left out is then a
        validation error); ``default_datastore`` is where PipelineData without one would go, which
        makes no difference here; of the SDK's keywords only ``enable_email_notification`` is
        taken (and has nothing to notify locally), any other is a ValueError as in the SDK."""
        unknown = sorted(set(kwargs) - {"enable_email_notification"})
        if unknown:  # the SDK's own error and words
            raise ValueError(f"parameter {unknown[0]} is not recognized for Pipeline")
        self.workspace = workspace
        self.description = description
        self.default_datastore = default_datastore
        self.default_source_directory = os.path.abspath(default_source_directory) if default_source_directory else None
        self.steps: list[PipelineStep] = _collect(steps) if resolve_closure else list(_flatten(steps))
        _number_default_names(self.steps)
        self.sweeps: list[dict] = []  # set by a HyperDriveConfig's submission: its trials among the steps

    @property
    def graph(self):
        """The graph this pipeline runs as (``plan.graph.Graph``), planned with the parameters'
        defaults: ``graph.nodes`` (the steps, producers pulled in, in the order they can run) and
        ``graph.edges`` (``(source step, target step, output carried or None for run_after)``), as
        ``PipelineRun.get_graph()`` gives them for a run. An invalid pipeline raises
        PipelineValidationError with every problem."""
        return self.workspace.service.plan(self)

    def validate(self, pipeline_parameters: dict | None = None) -> list[str]:
        """Every problem that keeps this pipeline from running, as readable lines; empty when valid."""
        return self.workspace.service.validate(self, pipeline_parameters)

    def submit(
        self,
        experiment_name: str,
        pipeline_parameters: dict | None = None,
        continue_on_step_failure: bool = False,
        regenerate_outputs: bool = False,
        parent_run_id=None,
        credential_passthrough=None,
        **kwargs,
    ):
        """``Experiment(workspace, experiment_name).submit(self, ...)``, as in the SDK: the run starts
        in the background and its PipelineRun is returned at once. ``parent_run_id`` (a run of
        Azure's run history to hang this one under) has no meaning here; any other keyword is a
        TypeError."""
        if kwargs:
            raise TypeError(f"Pipeline.submit() got an unexpected keyword argument {sorted(kwargs)[0]!r}")
        options = {
            "pipeline_parameters": pipeline_parameters,
            "continue_on_step_failure": continue_on_step_failure,
            "regenerate_outputs": regenerate_outputs,
            "credential_passthrough": credential_passthrough,
        }
        return self.workspace.service.submit(self, experiment_name, options)

    def publish(self, name=None, description=None, version=None, continue_on_step_failure=None):
        """Freeze this pipeline in the workspace and return its ``PublishedPipeline``: its declaration
        and a snapshot of every step's source folder are kept, so later edits of the files change
        nothing it runs (docs/publishing.md). An invalid pipeline raises PipelineValidationError,
        having recorded nothing."""
        return self.workspace.service.publish(self, name, description, version, continue_on_step_failure)

    @staticmethod
    def load_yaml(workspace, filename, _workflow_provider=None, _service_endpoint=None) -> Pipeline:
        """The Pipeline the YAML file ``filename`` describes, in the SDK's format (``pipeline:`` with
        ``parameters``, ``data_references``, ``default_compute`` and ``steps``; docs/pipeline-yaml.md).
        Relative paths in it are taken from the current directory, as the SDK takes them. A file that
        is not one raises PipelineYamlError (a ValueError) naming the file, what is wrong and the fix."""
        from localpipe.sdk.pipeline_yaml import load_steps

        steps, description, files = load_steps(workspace, filename)
        pipeline = Pipeline(workspace, steps, description=description)
        pipeline._yaml_files = files  # its runconfig files: `localpipe watch` reloads on their edits
        return pipeline

    def __repr__(self) -> str:
        return f"Pipeline({len(self.steps)} steps)"


def _collect(steps) -> list[PipelineStep]:
    """Flatten nested lists and add, transitively, the producers and predecessors of each step."""
    ordered: list[PipelineStep] = []
    seen: set[int] = set()
    pending = list(_flatten(steps))
    while pending:
        step = pending.pop(0)
        if id(step) in seen:
            continue
        seen.add(id(step))
        ordered.append(step)
        for item in step.inputs:  # a PipelineData listed bare in inputs= is an input as well
            if isinstance(item, (PipelineDataInput, PipelineData)):
                pending.extend(item.data.producers if isinstance(item, PipelineDataInput) else item.producers)
        pending.extend(step.predecessors)
    return ordered


def _number_default_names(steps: list[PipelineStep]) -> None:
    """ModuleSteps given no name are named after their module, and several steps of one module may
    meet (the SDK's notebook has three): in pipeline order, the first keeps the name, the second is
    NAME_2, the third NAME_3, and so on past the names other steps have."""
    taken = {step.name for step in steps if step.default_name is None and isinstance(step.name, str)}  # else refused
    for step in steps:
        if step.default_name is not None:
            name, number = step.default_name, 1
            while name in taken:
                number += 1
                name = f"{step.default_name}_{number}"
            step.name = name
            taken.add(name)


def _flatten(items):
    if isinstance(items, PipelineStep):
        yield items
        return
    if isinstance(items, StepSequence):
        items = items.steps
    for item in items:
        if isinstance(item, (list, tuple, StepSequence)):
            yield from _flatten(item)
        elif isinstance(item, PipelineStep):
            yield item
        else:
            raise UsageError(
                f"Pipeline(steps=...): {item!r} is a {type(item).__name__}, not a step: pass steps or lists of steps"
            )
