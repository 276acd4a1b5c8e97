"""Pipeline drafts (Azure ML's ``PipelineDraft``): mutable pipelines that submit runs and publish.

A draft keeps its pipeline as a published pipeline does (``client.publishing.freeze``): the
declaration pickled and a snapshot of each step's source folder, taken when it is created or
given a new pipeline (``update(pipeline=...)``), so later edits of the files change nothing until
then. ``submit_run`` takes the path a published pipeline's submission takes (cache, reuse and
history as any run's) and notes the run on the draft. docs/publishing.md is the user's page.
"""

from __future__ import annotations

import uuid

from localpipe.client.publishing import (
    Frozen,
    PublishedPipeline,
    check_continue_on_step_failure,
    freeze,
    freeze_run,
    history_of_workspace,
    known_parameters,
    record_published,
    run_handle,
    submit_frozen,
)

KINDS = "Pipeline, PublishedPipeline, PipelineDraft, or PipelineRun"


class PipelineDraft:
    """A mutable pipeline of the workspace (``azureml.pipeline.core.PipelineDraft``)."""

    def __init__(
        self,
        workspace,
        id,
        name=None,
        description=None,
        experiment_name=None,
        tags=None,
        properties=None,
        graph_draft_id=None,
        parent_pipeline_id=None,
        parent_pipeline_run_id=None,
        parent_step_run_ids=None,
        parent_pipeline_draft_id=None,
        last_submitted_pipeline_run_id=None,
        _pipeline_draft_provider=None,
    ):
        self._workspace = workspace
        self._id = id
        self._name = name
        self._description = description
        self._experiment_name = experiment_name
        self._tags = tags
        self._properties = properties
        self._graph_draft_id = graph_draft_id
        self._parent_pipeline_id = parent_pipeline_id
        self._parent_pipeline_run_id = parent_pipeline_run_id
        self._parent_step_run_ids = parent_step_run_ids
        self._parent_pipeline_draft_id = parent_pipeline_draft_id
        self._last_submitted_pipeline_run_id = last_submitted_pipeline_run_id

    @classmethod
    def _from_record(cls, workspace, record: dict) -> PipelineDraft:
        return cls(
            workspace,
            record["draft_id"],
            record["name"],
            record["description"],
            record["experiment_name"],
            record["tags"],
            record["properties"],
            record["graph_id"],
            record["parent_pipeline_id"],
            record["parent_pipeline_run_id"],
            _step_run_ids(record["parent_pipeline_run_id"], record["parent_step_run_ids"]),
            record["parent_pipeline_draft_id"],
            record["last_submitted_run"],
        )

    id = property(lambda self: self._id, doc="Its id (a GUID).")
    name = property(lambda self: self._name, doc="Its name.")
    description = property(lambda self: self._description, doc="Its description, or None.")
    tags = property(lambda self: self._tags, doc="Its tags (a dict); ``PipelineDraft.list(ws, tags)`` filters on them.")
    properties = property(lambda self: self._properties, doc="Its properties (a dict), given at creation.")
    parent_pipeline_id = property(
        lambda self: self._parent_pipeline_id, doc="The published pipeline it was made from, or None."
    )
    parent_pipeline_run_id = property(
        lambda self: self._parent_pipeline_run_id, doc="The id of the pipeline run it was made from, or None."
    )
    parent_step_run_ids = property(
        lambda self: self._parent_step_run_ids, doc="The ids of the step runs of the run it was made from, or None."
    )
    parent_pipeline_draft_id = property(
        lambda self: self._parent_pipeline_draft_id, doc="The draft it was made from, or None."
    )
    last_submitted_pipeline_run_id = property(
        lambda self: (
            None if self._last_submitted_pipeline_run_id is None else str(self._last_submitted_pipeline_run_id)
        ),
        doc="The id (a string, as Azure ML's) of the run ``submit_run`` last started, or None.",
    )

    @staticmethod
    def get(workspace, id, _workflow_provider=None, _service_endpoint=None) -> PipelineDraft:
        """The draft ``id``; ErrorResponseException (a NotFoundError), as the SDK's, when the workspace has none."""
        return PipelineDraft._from_record(workspace, history_of_workspace(workspace).drafts.draft(id))

    @staticmethod
    def create(
        workspace,
        pipeline,
        name=None,
        description=None,
        experiment_name=None,
        pipeline_parameters=None,
        continue_on_step_failure=None,
        tags=None,
        properties=None,
        _workflow_provider=None,
        _service_endpoint=None,
    ) -> PipelineDraft:
        """A new draft of ``pipeline``: a Pipeline (frozen now; ``name`` and ``experiment_name`` are
        needed), or a copy of a PublishedPipeline, a PipelineRun (its graph and source snapshots) or
        another PipelineDraft, whose own values the other arguments, when given, replace. An invalid
        pipeline or a parameter it does not have is refused, nothing recorded."""
        from localpipe.client.runs import PipelineRun
        from localpipe.sdk.pipeline import Pipeline

        check_continue_on_step_failure(continue_on_step_failure)
        given = {
            "name": name,
            "description": description,
            "experiment_name": experiment_name,
            "tags": tags,
            "properties": properties,
            "pipeline_parameters": pipeline_parameters,
            "continue_on_step_failure": continue_on_step_failure,
        }
        history = history_of_workspace(workspace)
        if isinstance(pipeline, Pipeline):
            for needed in ("name", "experiment_name"):
                if given[needed] is None:
                    raise ValueError(f"{needed} can not be None: pass {needed}='...' to draft a Pipeline")
            label = f'pipeline draft "{name}"'
            frozen = freeze(workspace, pipeline, f"{label} cannot be created", pipeline_parameters, label)
            row = {}
        elif isinstance(pipeline, PipelineDraft):
            source = history.drafts.draft(pipeline.id)
            frozen = Frozen(source["declaration"], source["sources"], source["graph"])
            row = {**{key: source[key] for key in given}, "parent_pipeline_draft_id": source["draft_id"]}
        elif isinstance(pipeline, PublishedPipeline):
            source = history.publishing.published(pipeline.id)
            frozen = Frozen(source["declaration"], source["sources"], source["graph"])
            row = {key: source[key] for key in ("name", "description", "continue_on_step_failure")}
            row["parent_pipeline_id"] = source["published_id"]
        elif isinstance(pipeline, PipelineRun):
            frozen = freeze_run(pipeline, f"run {pipeline.id} cannot be drafted")
            row = {"name": pipeline.experiment.name, "experiment_name": pipeline.experiment.name}
            row["parent_pipeline_run_id"] = str(pipeline.id)
            row["parent_step_run_ids"] = [str(step.id) for step in pipeline.get_steps()]
        else:
            raise ValueError(
                f"pipeline should be of type {KINDS}, not {type(pipeline).__name__}: pass the Pipeline to draft"
            )
        row.update({key: value for key, value in given.items() if value is not None})
        row["pipeline_parameters"] = known_parameters(
            row.get("pipeline_parameters"), frozen.graph, f'pipeline draft "{row["name"]}"'
        )
        draft_id = str(uuid.uuid4())
        row.update(draft_id=draft_id, declaration=frozen.declaration, sources=frozen.sources)
        history.drafts.create(row, frozen.graph)
        return PipelineDraft.get(workspace, draft_id)

    @staticmethod
    def list(workspace, tags=None, _workflow_provider=None) -> list[PipelineDraft]:
        """The workspace's drafts, oldest first; with ``tags``, those having each tag with its value."""
        return [PipelineDraft._from_record(workspace, r) for r in history_of_workspace(workspace).drafts.drafts(tags)]

    def update(
        self,
        pipeline=None,
        name=None,
        description=None,
        experiment_name=None,
        tags=None,
        pipeline_parameters=None,
        continue_on_step_failure=None,
        _workflow_provider=None,
    ) -> None:
        """Change what is given (``tags`` replace its tags): ``pipeline``, a Pipeline, is frozen now
        and replaces the draft's; the parameters are checked against the draft's pipeline."""
        from localpipe.sdk.pipeline import Pipeline

        check_continue_on_step_failure(continue_on_step_failure)
        drafts = history_of_workspace(self._workspace).drafts
        record = drafts.draft(self._id)
        changes = {
            "name": name,
            "description": description,
            "experiment_name": experiment_name,
            "tags": tags,
            "continue_on_step_failure": continue_on_step_failure,
        }
        changes = {key: value for key, value in changes.items() if value is not None}
        parameters = record["pipeline_parameters"] if pipeline_parameters is None else pipeline_parameters
        label = f'pipeline draft "{changes.get("name", self._name)}"'
        graph = None
        if pipeline is not None:
            if not isinstance(pipeline, Pipeline):
                raise ValueError(
                    f"pipeline should be of type Pipeline, not {type(pipeline).__name__}: pass the Pipeline to draft"
                )
            frozen = freeze(self._workspace, pipeline, f"{label} cannot be updated", parameters, label)
            changes.update(declaration=frozen.declaration, sources=frozen.sources)
            graph = frozen.graph
        changes["pipeline_parameters"] = known_parameters(parameters, graph or record["graph"], label)
        drafts.update(self._id, changes, graph)
        self.__dict__.update(PipelineDraft.get(self._workspace, self._id).__dict__)

    def submit_run(self, _workflow_provider=None):
        """Run what the draft holds, with its parameters and continue_on_step_failure, in its
        experiment (in the background); returns the PipelineRun, whose id the draft keeps as
        ``last_submitted_pipeline_run_id``."""
        return self._submit(self._experiment_name)

    def _submit(self, experiment_name, tags=None):
        drafts = history_of_workspace(self._workspace).drafts
        record = drafts.draft(self._id)
        run_id = submit_frozen(
            self._workspace,
            record,
            f'pipeline draft "{record["name"]}"',
            experiment_name,
            record["pipeline_parameters"],
            record["continue_on_step_failure"],
            tags=tags,
            recorded=lambda run_id: drafts.submitted(self._id, run_id),
        )
        self._last_submitted_pipeline_run_id = run_id
        return run_handle(self._workspace, run_id)

    def _submit_in(self, experiment, tags, **kwargs):
        """``Experiment.submit(draft)``: as ``submit_run``, in that experiment (the SDK's other
        keywords are ignored, as there)."""
        return self._submit(experiment.name, tags)

    def publish(self, _workflow_provider=None) -> PublishedPipeline:
        """A PublishedPipeline of the draft's pipeline, under its name and description, with its
        continue_on_step_failure; the draft stays as it is."""
        record = history_of_workspace(self._workspace).drafts.draft(self._id)
        frozen = Frozen(record["declaration"], record["sources"], record["graph"])
        cosf = record["continue_on_step_failure"]
        return record_published(self._workspace, record["name"], record["description"], None, cosf, frozen)

    def delete(self, _workflow_provider=None) -> None:
        """Delete the draft: ``get`` of its id fails after (the runs and pipelines it made stay)."""
        history_of_workspace(self._workspace).drafts.delete(self._id)

    def save(self, path=None, _workflow_provider=None) -> str:
        """Write it as a pipeline YAML that ``Pipeline.load_yaml`` reads (``path``: a file, or a folder
        to write ``NAME.yml`` in; the current folder by default), each step's source directory its
        snapshot; returns the file's path (docs/pipeline-yaml.md)."""
        from localpipe.client.pipeline_yaml import save_frozen

        record = history_of_workspace(self._workspace).drafts.draft(self._id)
        return save_frozen(self._workspace, record, path, f"{self._name}.yml", f'pipeline draft "{self._name}"')

    def get_graph(self, _workflow_provider=None):
        """Its graph planned with the parameters' defaults (``plan.graph.Graph``)."""
        from localpipe.plan.graph import Graph

        return Graph.from_dict(history_of_workspace(self._workspace).drafts.draft(self._id)["graph"])

    def __str__(self) -> str:
        info = {
            "Name": self._name,
            "Id": self._id,
            "Tags": self._tags,
            "Properties": self._properties,
            "Last Submitted Pipeline Run Id": self._last_submitted_pipeline_run_id,
        }
        return "Pipeline({})".format(",\n".join(f"{key}: {value}" for key, value in info.items()))

    __repr__ = __str__


def _step_run_ids(pipeline_run_id: str | None, ids: list[str] | None) -> list[str] | None:
    """The step run ids a draft keeps, as the SDK hands them out now: a draft made before they were
    ``"12_17"`` kept the step runs' numbers alone (``"17"``)."""
    from localpipe.state.reader import step_run_id

    if ids is None:
        return None
    return [step_run_id(int(pipeline_run_id), int(i)) if i.isdigit() else i for i in ids]
