"""Published pipelines and pipeline endpoints (Azure ML's ``PublishedPipeline``, ``PipelineEndpoint``).

Publishing freezes a pipeline in the workspace: its declaration (the SDK objects, pickled, the
workspace left out) and a snapshot of every step's source folder become objects of the store, and
its graph planned with the parameters' defaults a ``pipeline_graph`` row. A submission unpickles
the declaration, points each step at its snapshot and plans it with the parameters given, so edits
of the files after publishing change nothing, and a step whose inputs did not change is reused
as in any run (its snapshot hashes as the folder it was taken from). A pipeline published from a
run (``PipelineRun.publish_pipeline``) is that run's graph and step snapshots: it runs with that
run's parameter values. docs/publishing.md is the user's page.
"""

from __future__ import annotations

import io
import os
import pickle
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from localpipe.errors import UserErrorException
from localpipe.faults import fault_point
from localpipe.sdk.parameters import given_values

ACTIVE, DISABLED = "Active", "Disabled"
DECLARATION_FILE = "pipeline.pickle"
DEFAULT_PORT = 8765  # `localpipe serve`'s port unless LOCALPIPE_SERVER_URL names another address


class _Pickler(pickle.Pickler):
    """Pickles a pipeline declaration without its workspace (its history, its service)."""

    def persistent_id(self, obj):
        from localpipe.sdk.workspace import Workspace

        return "workspace" if isinstance(obj, Workspace) else None

    def reducer_override(self, obj):
        from localpipe.sdk.compute import ComputeTarget

        if isinstance(obj, ComputeTarget):  # its __new__ looks the target up by name: made empty, then filled
            return _empty_target, (type(obj),), obj.__dict__
        return NotImplemented


def _empty_target(cls):
    return cls.__new__(cls, None, None)


class _Unpickler(pickle.Unpickler):
    def __init__(self, data: bytes, workspace):
        super().__init__(io.BytesIO(data))
        self.workspace = workspace

    def persistent_load(self, pid):
        return self.workspace


def server_url() -> str:
    """The address of `localpipe serve` that endpoints name: ``LOCALPIPE_SERVER_URL``, or 127.0.0.1
    on the default port."""
    return os.environ.get("LOCALPIPE_SERVER_URL", f"http://127.0.0.1:{DEFAULT_PORT}").rstrip("/")


def studio_url(path: str) -> str:
    """The address of a page of the studio that `localpipe serve` serves (``path`` below its root)."""
    return f"{server_url()}/{path}"


def published_endpoint(published_id: str) -> str:
    return f"{server_url()}/pipelines/v1.0/PipelineRuns/PipelineSubmit/{published_id}"


def endpoint_url(endpoint_id: str) -> str:
    return f"{server_url()}/pipelines/v1.0/PipelineRuns/PipelineEndpointSubmit/Id/{endpoint_id}"


# -- publishing -----------------------------------------------------------------------------------


def publish(workspace, pipeline, name, description=None, version=None, continue_on_step_failure=None):
    """Freeze ``pipeline`` into ``workspace`` and return its PublishedPipeline. An invalid pipeline
    raises PipelineValidationError, a declaration that cannot be kept UserErrorException; either
    way nothing is recorded."""
    check_name(name)
    frozen = freeze(workspace, pipeline, f"pipeline {name!r} cannot be published")
    return record_published(workspace, name, description, version, continue_on_step_failure, frozen)


def publish_run(run, name, description, version, continue_on_step_failure=None):
    """``PipelineRun.publish_pipeline``: the run's graph, frozen with its steps' source snapshots."""
    check_name(name)
    frozen = freeze_run(run, f"run {run.id} cannot be published")
    return record_published(run.experiment.workspace, name, description, version, continue_on_step_failure, frozen)


@dataclass(frozen=True)
class Frozen:
    """A pipeline kept in the store: ``declaration`` (the digest of its pickled SDK objects; "" for a
    run's graph, which runs as it is), ``sources`` (step -> digest of its source snapshot) and
    ``graph`` (planned with the parameters' defaults, as a dict)."""

    declaration: str
    sources: dict[str, str]
    graph: dict


def freeze(workspace, pipeline, refusal: str, parameters: dict | None = None, label: str = "") -> Frozen:
    """Keep ``pipeline``'s declaration and a snapshot of its steps' sources in the store. An invalid
    pipeline raises PipelineValidationError, a declaration that cannot be kept UserErrorException
    (its message begins with ``refusal``); ``parameters`` that its runs will be given are checked
    first, names (``label`` names the pipeline) and values, so that nothing is kept for a refusal."""
    from localpipe.engine.submit import plan, save_datasets
    from localpipe.plan.graph import datasets_used

    history = history_of_workspace(workspace)
    graph, trees = plan(history, pipeline)
    if parameters:
        known_parameters(parameters, graph.to_dict(), label)
        plan(history, pipeline, parameters)  # their values, with the pipeline's own messages
    save_datasets(history, datasets_used(pipeline))  # before pickling: the declaration keeps their ids
    buffer = io.BytesIO()
    try:
        _Pickler(buffer).dump(pipeline)
    except (pickle.PicklingError, TypeError, AttributeError) as exc:
        raise UserErrorException(
            f"{refusal}: part of its declaration cannot be kept ({exc}); "
            "define the steps' classes and values in a module rather than in a notebook cell"
        ) from None
    declaration = _store_bytes(history, buffer.getvalue())
    by_folder: dict[str, str] = {}
    for step, spec in graph.steps.items():
        if spec.source_dir and trees[step] is not None and spec.source_dir not in by_folder:
            by_folder[spec.source_dir] = store_tree(history, spec.source_dir, list(trees[step].files))
    sources = {step: by_folder[spec.source_dir] for step, spec in graph.steps.items() if spec.source_dir in by_folder}
    return Frozen(declaration, sources, graph.to_dict())


def freeze_run(run, refusal: str) -> Frozen:
    """A run's graph, frozen with its steps' source snapshots (a step that has not started yet, the
    run being young, is snapshotted from its source folder now); ``refusal`` begins the message
    when a source is gone."""
    from localpipe.content.hashing import walk

    history = run._history
    graph = run.get_graph()
    sources = {}
    for step, spec in graph.steps.items():
        if spec.source_dir is None:
            continue
        snapshot = history.layout.step_dir(run.id, step) / "snapshot"
        folder = snapshot if snapshot.is_dir() else spec.source_dir
        if not os.path.isdir(folder):
            raise UserErrorException(
                f'{refusal}: the source of step "{step}" is gone ({folder}): use the Pipeline itself '
                "(pipeline.publish(name), PipelineDraft.create(ws, pipeline, ...))"
            )
        sources[step] = store_tree(history, folder, [rel for rel, _, _ in walk(folder)])
    return Frozen("", sources, graph.to_dict())


def check_name(name, what: str = "published pipeline") -> None:
    """A name is text that is not blank (a ``what``'s: a published pipeline, endpoint or schedule)."""
    if not isinstance(name, str) or not name.strip():
        raise UserErrorException(f"a {what} needs a name (got {name!r}): pass name='...'")


def record_published(workspace, name, description, version, continue_on_step_failure, frozen: Frozen):
    check_continue_on_step_failure(continue_on_step_failure)
    published_id = str(uuid.uuid4())
    row = {
        "published_id": published_id,
        "name": name,
        "description": description,
        "version": None if version is None else str(version),
        "continue_on_step_failure": bool(continue_on_step_failure),
        "declaration": frozen.declaration,
        "sources": frozen.sources,
    }
    history_of_workspace(workspace).publishing.publish(row, frozen.graph)
    return PublishedPipeline.get(workspace, published_id)


def _store_bytes(history, data: bytes) -> str:
    """The digest of an object holding ``data`` as its one file."""
    folder = _aside(history)
    (folder / DECLARATION_FILE).write_bytes(data)
    return _commit(history, folder)


def store_tree(history, source: str | os.PathLike, files: list[str]) -> str:
    """The digest of an object holding a copy of ``files`` of ``source``."""
    from localpipe.content.hashing import copy_tree

    folder = _aside(history)
    copy_tree(source, files, folder)
    return _commit(history, folder)


def _aside(history) -> Path:
    history.layout.tmp.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix="publish-", dir=history.layout.tmp))


def _commit(history, folder: Path) -> str:
    from localpipe.state.store import ObjectStore

    return ObjectStore(history.layout.objects).commit(folder).digest


# -- submitting -----------------------------------------------------------------------------------


def submit_published(
    workspace,
    record: dict,
    experiment_name: str,
    pipeline_parameters=None,
    continue_on_step_failure=None,
    properties: dict | None = None,
    fire_id: int | None = None,
    tags: dict | None = None,
    description: str | None = None,
    endpoint_id: str | None = None,
) -> int:
    """Record a run of the published pipeline ``record`` (a version of the endpoint ``endpoint_id``,
    when given) and start it in the background; its id. A disabled pipeline or endpoint, or a
    parameter the pipeline does not have, is refused with one line, nothing recorded. ``fire_id`` is
    a schedule's claimed fire, noted, and ``description`` the run's, set in the transaction that
    records the run (so that its scheduler never sees the run without them)."""
    _refuse_disabled(record)
    pipeline_parameters = given_values(pipeline_parameters)
    history = history_of_workspace(workspace)
    if endpoint_id is not None:
        properties = {"azureml.pipelineendpointid": endpoint_id, **(properties or {})}

    def recorded(run_id: int) -> None:
        # Again as the run is recorded: a disable() that returned while it was planned wins.
        _refuse_disabled(history.publishing.published(record["published_id"]))
        if endpoint_id is not None:
            _refuse_disabled_endpoint(history.publishing.endpoint(endpoint_id))
        if fire_id is not None:
            history.publishing.fire_started(fire_id, run_id)
        if description is not None:
            history.runs.set_names(run_id, description=description)

    return submit_frozen(
        workspace,
        record,
        f'published pipeline "{record["name"]}"',
        experiment_name,
        pipeline_parameters,
        continue_on_step_failure,
        tags={**(tags or {}), "azureml.pipelineid": record["published_id"]},
        properties={"azureml.pipelineid": record["published_id"], **(properties or {})},
        recorded=recorded,
    )


def _same_value(given, kept) -> bool:
    """Whether ``given`` is the parameter value ``kept``, as a submission would read it ("4" is 4)."""
    from localpipe.plan.graph import coerce_parameter

    if isinstance(kept, dict):  # a data parameter, as the run recorded it
        return given == kept
    try:
        return coerce_parameter(given, kept) == kept
    except ValueError:
        return False


def _refuse_disabled(record: dict) -> None:
    if record["status"] != ACTIVE:
        raise UserErrorException(
            f'published pipeline "{record["name"]}" ({record["published_id"]}) is disabled: enable it '
            "(PublishedPipeline.get(ws, id).enable()) to submit it"
        )


def _refuse_disabled_endpoint(endpoint: dict) -> None:
    if endpoint["status"] != ACTIVE:
        raise UserErrorException(
            f'pipeline endpoint "{endpoint["name"]}" is disabled: enable it '
            f'(PipelineEndpoint.get(ws, name="{endpoint["name"]}").enable()) to submit it'
        )


def submit_frozen(
    workspace,
    record: dict,
    label: str,
    experiment_name: str,
    pipeline_parameters=None,
    continue_on_step_failure=None,
    tags: dict | None = None,
    properties: dict | None = None,
    recorded: Callable[[int], None] | None = None,
) -> int:
    """Record a run of the frozen pipeline ``record`` (a published pipeline's or a draft's row:
    ``declaration``, ``sources``, ``graph``, ``continue_on_step_failure``) and start it in the
    background; its id. Its declaration is planned with the parameters
    given, each step pointed at its snapshot, so cache, reuse and history are any run's. A parameter
    it does not have is refused with one line naming ``label``, nothing recorded. ``recorded(run_id)``
    is called in the transaction that records the run."""
    from localpipe.content.statcache import StatCache
    from localpipe.content.trees import TreeCache
    from localpipe.engine.submit import plan, record_planned, run_in_background, save_datasets, source_trees
    from localpipe.plan.graph import Graph, datasets_used
    from localpipe.state.store import ObjectStore

    _check_experiment_name(experiment_name)
    check_continue_on_step_failure(continue_on_step_failure)
    parameters = known_parameters(pipeline_parameters, record["graph"], label)
    known = record["graph"]["parameters"]
    history = history_of_workspace(workspace)
    store = ObjectStore(history.layout.objects)
    sources = {step: str(store.path(digest)) for step, digest in record["sources"].items()}
    if record["declaration"]:
        pipeline = _Unpickler((store.path(record["declaration"]) / DECLARATION_FILE).read_bytes(), workspace).load()
        for step in pipeline.steps:
            if step.name in sources:
                step.source_directory = sources[step.name]
        graph, hashed = plan(history, pipeline, parameters)
        save_datasets(history, datasets_used(pipeline, parameters))
    else:
        changed = sorted(n for n, v in parameters.items() if not _same_value(v, known[n]))
        if changed:
            raise UserErrorException(
                f'{label} was made from a run and runs with its parameter values: "{changed[0]}" cannot be '
                "changed; publish the Pipeline itself (pipeline.publish) to pass parameters"
            )
        graph = Graph.from_dict(record["graph"])
        for step, spec in graph.steps.items():
            spec.source_dir = sources.get(step, spec.source_dir)
        trees = TreeCache(StatCache(history.layout.statcache))
        hashed = source_trees(graph, trees)
        trees.stat_cache.save()
    if continue_on_step_failure is None:
        continue_on_step_failure = record["continue_on_step_failure"]
    with history.write():
        prepared = record_planned(
            history,
            graph,
            hashed,
            experiment_name,
            continue_on_step_failure=bool(continue_on_step_failure),
            tags=tags,
            properties={"azureml.runsource": "azureml.PipelineRun", **(properties or {})},
        )
        if recorded is not None:
            recorded(prepared.run_id)
    fault_point("run-recorded")
    run_in_background(history, prepared.run_id)
    return prepared.run_id


def known_parameters(parameters, graph: dict, label: str) -> dict:
    """``parameters`` (a dict, or None for none) as a dict; UserErrorException naming ``label`` when
    one is not a parameter of ``graph``."""
    parameters = dict(parameters or {})
    known = graph["parameters"]
    unknown = sorted(set(parameters) - set(known))
    if unknown:
        raise UserErrorException(
            f'parameter "{unknown[0]}" is not a parameter of {label} '
            f"(its parameters: {', '.join(sorted(known)) or 'none'})"
        )
    return parameters


def check_continue_on_step_failure(value) -> None:
    """None (keep the pipeline's), True or False: ``bool("false")`` would be True."""
    if value is not None and not isinstance(value, bool):
        raise UserErrorException(
            f"continue_on_step_failure {value!r} is not True or False (ContinueRunOnStepFailure in a REST body): "
            "pass a boolean, or None to keep the pipeline's"
        )


def _check_experiment_name(name) -> None:
    if not isinstance(name, str) or not name.strip():
        raise UserErrorException(f"experiment_name {name!r} is not a name: pass the experiment to run in")


def run_handle(workspace, run_id: int):
    """The PipelineRun of ``run_id`` (through the workspace's service, which knows the run classes)."""
    return workspace.service.get_run(run_id)


def history_of_workspace(workspace):
    """``client.workspace.history_of``, imported on use, so that importing the SDK's classes does not
    open the state layer."""
    from localpipe.client.workspace import history_of

    return history_of(workspace)


# -- the SDK's classes ----------------------------------------------------------------------------


class PublishedPipeline:
    """A pipeline published in the workspace (``azureml.pipeline.core.PublishedPipeline``)."""

    def __init__(
        self,
        name,
        graph_id,
        description,
        version,
        published_pipeline_id,
        status,
        endpoint,
        total_run_steps,
        workspace,
        continue_on_step_failure=None,
        _pipeline_provider=None,
        **kwargs,
    ):
        self._name = name
        self._graph_id = graph_id
        self._description = description
        self._version = version
        self._id = published_pipeline_id
        self._status = status
        self._endpoint = endpoint
        self._total_run_steps = total_run_steps
        self._workspace = workspace
        self._continue_on_step_failure = continue_on_step_failure

    @classmethod
    def _from_record(cls, workspace, record: dict) -> PublishedPipeline:
        return cls(
            record["name"],
            record["graph_id"],
            record["description"],
            record["version"],
            record["published_id"],
            record["status"],
            published_endpoint(record["published_id"]),
            len(record["graph"]["steps"]),
            workspace,
            record["continue_on_step_failure"],
        )

    name = property(lambda self: self._name, doc="The name it was published under.")
    graph_id = property(lambda self: self._graph_id, doc="The digest of its planned graph.")
    description = property(lambda self: self._description, doc="The description given at publishing, or None.")
    version = property(
        lambda self: self._version,
        doc="The version text given at publishing, or None: a label only (an endpoint numbers its own versions).",
    )
    id = property(lambda self: self._id, doc="Its id (a GUID).")
    status = property(lambda self: self._status, doc="Active or Disabled.")
    workspace = property(lambda self: self._workspace, doc="The workspace it was got from.")
    total_run_steps = property(lambda self: self._total_run_steps, doc="How many steps a run of it has.")
    continue_on_step_failure = property(
        lambda self: self._continue_on_step_failure,
        doc="Whether its runs go on past a failed step: False unless given at publishing; "
        "``submit(continue_on_step_failure=...)`` overrides it for one run.",
    )

    @property
    def endpoint(self) -> str:
        """The REST address that submits it, served by `localpipe serve` (docs/publishing.md)."""
        return self._endpoint

    def get_portal_url(self) -> str:
        """Its page in the studio (`localpipe serve`): parameters, steps, the runs submitted from it."""
        return studio_url(f"published/{self._id}")

    @property
    def portal_url(self) -> str:
        """The same as ``get_portal_url()``."""
        return self.get_portal_url()

    @staticmethod
    def get(workspace, id, _workflow_provider=None, _service_endpoint=None) -> PublishedPipeline:
        """The published pipeline ``id``; NotFoundError when the workspace has none."""
        return PublishedPipeline._from_record(workspace, history_of_workspace(workspace).publishing.published(id))

    @staticmethod
    def list(workspace, active_only=True, _service_endpoint=None) -> list[PublishedPipeline]:
        """The workspace's published pipelines (only the Active ones unless ``active_only`` is False)."""
        records = history_of_workspace(workspace).publishing.published_list(active_only)
        return [PublishedPipeline._from_record(workspace, r) for r in records]

    @staticmethod
    def get_all(workspace, active_only=True, _service_endpoint=None) -> list[PublishedPipeline]:
        """(Deprecated in the SDK.) ``PublishedPipeline.list``."""
        return PublishedPipeline.list(workspace, active_only)

    def submit(
        self,
        workspace,
        experiment_name,
        pipeline_parameters=None,
        _workflow_provider=None,
        _service_endpoint=None,
        parent_run_id=None,
        continue_on_step_failure=None,
    ):
        """Run it in ``experiment_name`` (in the background); returns its PipelineRun. ``parent_run_id``
        (a run of Azure's run history) has no meaning here."""
        record = history_of_workspace(workspace).publishing.published(self._id)
        run_id = submit_published(workspace, record, experiment_name, pipeline_parameters, continue_on_step_failure)
        return run_handle(workspace, run_id)

    def _submit_in(self, experiment, tags, pipeline_parameters=None, parent_run_id=None,
                   continue_on_step_failure=None):  # fmt: skip
        """``Experiment.submit(published_pipeline, tags, ...)``."""
        workspace = experiment.workspace
        record = history_of_workspace(workspace).publishing.published(self._id)
        run_id = submit_published(workspace, record, experiment.name, pipeline_parameters, continue_on_step_failure,
                                  tags=tags)  # fmt: skip
        return run_handle(workspace, run_id)

    def enable(self) -> None:
        """Make it Active again: it can be submitted, scheduled and fired by its schedules."""
        self._set_status(ACTIVE)

    def disable(self) -> None:
        """Disable it: it can no longer be submitted (nor fire on a schedule) until enabled."""
        self._set_status(DISABLED)

    def _set_status(self, status: str) -> None:
        history_of_workspace(self._workspace).publishing.set_published_status(self._id, status)
        self._status = status

    def get_graph(self, _workflow_provider=None):
        """Its graph planned with the parameters' defaults (``plan.graph.Graph``)."""
        from localpipe.plan.graph import Graph

        return Graph.from_dict(history_of_workspace(self._workspace).publishing.published(self._id)["graph"])

    def get_step_names(self, _workflow_provider=None) -> list[str]:
        """The names of its steps, from the graph planned at publishing."""
        return list(self.get_graph().steps)

    def save(self, path=None, _workflow_provider=None) -> str:
        """Write it as a pipeline YAML that ``Pipeline.load_yaml`` reads (``path``: a file, or a folder
        to write ``NAME.yml`` in; the current folder by default), each step's source directory its
        snapshot taken at publishing; returns the file's path (docs/pipeline-yaml.md)."""
        from localpipe.client.pipeline_yaml import save_frozen

        record = history_of_workspace(self._workspace).publishing.published(self._id)
        return save_frozen(self._workspace, record, path, f"{self._name}.yml", f'published pipeline "{self._name}"')

    def __repr__(self) -> str:
        return f"PublishedPipeline(Name: {self._name}, Id: {self._id}, Status: {self._status})"


class PipelineIdVersion:
    """One version of a pipeline endpoint, by id: ``version`` (a string: "0", "1", ...) and ``pipeline_id``."""

    def __init__(self, version, pipeline_id):
        self.version = version
        self.pipeline_id = pipeline_id

    def __repr__(self) -> str:
        return f"PipelineIdVersion(version={self.version!r}, pipeline_id={self.pipeline_id!r})"


class PipelineVersion:
    """One version of a pipeline endpoint: ``version`` and its ``pipeline`` (a PublishedPipeline)."""

    def __init__(self, version, pipeline):
        self.version = version
        self.pipeline = pipeline

    def __repr__(self) -> str:
        return f"PipelineVersion(version={self.version!r}, pipeline={self.pipeline!r})"


class PipelineEndpoint:
    """Published pipelines under one name, by version, one of them the default
    (``azureml.pipeline.core.PipelineEndpoint``)."""

    def __init__(
        self,
        workspace,
        id,
        name,
        description,
        status,
        default_version,
        endpoint,
        pipeline_version_list,
        _pipeline_endpoint_provider=None,
        _published_pipeline_provider=None,
        _swaggerurl=None,
    ):
        self._workspace = workspace
        self._id = id
        self._name = name
        self._description = description
        self._status = status
        self._default_version = default_version
        self._endpoint = endpoint
        self._versions = pipeline_version_list

    @classmethod
    def _from_record(cls, workspace, record: dict) -> PipelineEndpoint:
        versions = [PipelineIdVersion(v, p) for v, p in record["versions"].items()]
        return cls(
            workspace,
            record["endpoint_id"],
            record["name"],
            record["description"],
            record["status"],
            record["default_version"],
            endpoint_url(record["endpoint_id"]),
            versions,
        )

    id = property(lambda self: self._id, doc="Its id (a GUID), the last part of its ``endpoint`` address.")
    name = property(lambda self: self._name, doc="Its name, unique in the workspace.")
    description = property(lambda self: self._description, doc="The description given to ``publish``, or None.")
    status = property(lambda self: self._status, doc="Active or Disabled.")
    default_version = property(
        lambda self: self._default_version,
        doc='The version (a string, "0" at first) that ``submit``, its schedules and the REST call run when '
        "given none.",
    )
    endpoint = property(lambda self: self._endpoint, doc="The REST address, served by `localpipe serve`.")
    pipeline_version_list = property(lambda self: list(self._versions), doc="Its versions (PipelineIdVersion).")
    swaggerurl = property(lambda self: None, doc="None: localpipe serves no swagger document.")

    @staticmethod
    def publish(workspace, name, description, pipeline, _workflow_provider=None, _service_endpoint=None):
        """A new endpoint ``name`` whose version "0" is ``pipeline`` (a PublishedPipeline, or a
        Pipeline, published here under ``name``)."""
        check_name(name, "pipeline endpoint")
        published = _as_published(workspace, pipeline, name)
        endpoint_id = str(uuid.uuid4())
        history_of_workspace(workspace).publishing.create_endpoint(endpoint_id, name, description, published.id)
        return PipelineEndpoint.get(workspace, id=endpoint_id)

    @staticmethod
    def get(workspace, id=None, name=None, _workflow_provider=None, _service_endpoint=None) -> PipelineEndpoint:
        """The endpoint with ``id`` or ``name`` (UserErrorException when neither is given, NotFoundError when
        the workspace has none)."""
        if id is None and name is None:
            raise UserErrorException("PipelineEndpoint.get needs id= or name=")
        return PipelineEndpoint._from_record(workspace, history_of_workspace(workspace).publishing.endpoint(id, name))

    @staticmethod
    def list(workspace, active_only=True, max_results=100, _workflow_provider=None, _service_endpoint=None):
        """The workspace's endpoints (only the Active ones unless ``active_only`` is False), at most ``max_results``."""
        records = history_of_workspace(workspace).publishing.endpoints(active_only)[:max_results]
        return [PipelineEndpoint._from_record(workspace, r) for r in records]

    @staticmethod
    def get_all(workspace, active_only=True, _workflow_provider=None, _service_endpoint=None):
        """(Deprecated in the SDK.) ``PipelineEndpoint.list``."""
        return PipelineEndpoint.list(workspace, active_only)

    def _refresh(self) -> None:
        fresh = PipelineEndpoint.get(self._workspace, id=self._id)
        self.__dict__.update(fresh.__dict__)

    def submit(self, experiment_name, pipeline_parameters=None, parent_run_id=None, pipeline_version=None):
        """Run its version ``pipeline_version`` (its default when None) in ``experiment_name``."""
        run_id = submit_endpoint(self._workspace, self._id, experiment_name, pipeline_parameters, pipeline_version)
        return run_handle(self._workspace, run_id)

    def _submit_in(self, experiment, tags, pipeline_parameters=None, parent_run_id=None, pipeline_version=None):
        """``Experiment.submit(pipeline_endpoint, tags, ...)``."""
        run_id = submit_endpoint(self._workspace, self._id, experiment.name, pipeline_parameters, pipeline_version,
                                 tags=tags)  # fmt: skip
        return run_handle(self._workspace, run_id)

    def add(self, pipeline) -> None:
        """Add ``pipeline`` (a PublishedPipeline) as the next version."""
        history_of_workspace(self._workspace).publishing.add_version(
            self._id, _as_published(self._workspace, pipeline).id, False
        )
        self._refresh()

    def add_default(self, pipeline) -> None:
        """Add ``pipeline`` as the next version and make it the default."""
        history_of_workspace(self._workspace).publishing.add_version(
            self._id, _as_published(self._workspace, pipeline).id, True
        )
        self._refresh()

    def set_default(self, pipeline) -> None:
        """Make ``pipeline`` (one of its versions, or added now) the default."""
        self.add_default(pipeline)

    def set_default_version(self, version) -> None:
        """Make ``version`` (one it has: "0", "1", ...) the default; another is refused with one line."""
        history_of_workspace(self._workspace).publishing.set_default_version(self._id, str(version))
        self._refresh()

    def get_default_version(self) -> str:
        """``default_version``."""
        return self._default_version

    def get_pipeline(self, version=None) -> PublishedPipeline:
        """The published pipeline of ``version`` (the default when None); ValueError when it has none."""
        return PublishedPipeline.get(self._workspace, _version_of(self._record(), version))

    def list_versions(self, _workflow_provider=None, _service_endpoint=None) -> list[PipelineVersion]:
        """Its versions, oldest first, each with its PublishedPipeline."""
        self._refresh()
        return [
            PipelineVersion(v.version, PublishedPipeline.get(self._workspace, v.pipeline_id)) for v in self._versions
        ]

    def get_all_versions(self, _workflow_provider=None, _service_endpoint=None) -> list[PipelineVersion]:
        """(Deprecated in the SDK.) ``list_versions``."""
        return self.list_versions()

    def list_pipelines(self, active_only=True, _workflow_provider=None, _service_endpoint=None):
        """The published pipelines of its versions (only the Active ones unless ``active_only`` is False)."""
        found = [v.pipeline for v in self.list_versions()]
        return [p for p in found if p.status == ACTIVE or not active_only]

    def get_all_pipelines(self, active_only=True, _workflow_provider=None, _service_endpoint=None):
        """(Deprecated in the SDK.) ``list_pipelines``."""
        return self.list_pipelines(active_only)

    def set_name(self, name) -> None:
        """Rename it; a name another endpoint has is refused with one line."""
        check_name(name, "pipeline endpoint")
        history_of_workspace(self._workspace).publishing.update_endpoint(self._id, name=name)
        self._refresh()

    def enable(self) -> None:
        """Make it Active again: it accepts submissions, its schedules' included."""
        history_of_workspace(self._workspace).publishing.update_endpoint(self._id, status=ACTIVE)
        self._refresh()

    def disable(self) -> None:
        """Disable it: submissions are refused until it is enabled."""
        history_of_workspace(self._workspace).publishing.update_endpoint(self._id, status=DISABLED)
        self._refresh()

    def archive(self) -> None:
        """Archive it: as ``disable`` here."""
        self.disable()

    def reactivate(self, name) -> PipelineEndpoint:
        """Make an archived (disabled) endpoint Active again, under ``name``."""
        check_name(name, "pipeline endpoint")
        history_of_workspace(self._workspace).publishing.update_endpoint(self._id, name=name, status=ACTIVE)
        self._refresh()
        return self

    def _record(self) -> dict:
        return history_of_workspace(self._workspace).publishing.endpoint(self._id)

    def __repr__(self) -> str:
        return f"PipelineEndpoint(Name: {self._name}, Id: {self._id}, Default version: {self._default_version})"


def _as_published(workspace, pipeline, name=None) -> PublishedPipeline:
    from localpipe.sdk.pipeline import Pipeline

    if isinstance(pipeline, PublishedPipeline):
        return pipeline
    if isinstance(pipeline, Pipeline):
        return publish(workspace, pipeline, name)
    raise UserErrorException(f"{pipeline!r} is not a PublishedPipeline: publish it first with pipeline.publish(name)")


def _version_of(endpoint: dict, version) -> str:
    """The published pipeline id of the endpoint's ``version`` (its default when None); ValueError, as
    the SDK's, when it has no such version."""
    chosen = endpoint["default_version"] if version is None else str(version)
    if chosen not in endpoint["versions"]:
        raise ValueError(
            f'pipeline endpoint "{endpoint["name"]}" has no version "{chosen}" (it has '
            f"{', '.join(endpoint['versions'])}): pass one of them"
        )
    return endpoint["versions"][chosen]


def submit_endpoint(
    workspace,
    endpoint_id: str,
    experiment_name: str,
    pipeline_parameters=None,
    pipeline_version=None,
    properties: dict | None = None,
    fire_id: int | None = None,
    tags: dict | None = None,
    continue_on_step_failure: bool | None = None,
    description: str | None = None,
) -> int:
    """Record and start a run of the endpoint's ``pipeline_version`` (its default when None); its id.
    ``continue_on_step_failure`` None keeps that version's own. A disabled endpoint is refused with
    one line, nothing recorded. ``fire_id`` and ``description`` as ``submit_published``'s."""
    publishing = history_of_workspace(workspace).publishing
    endpoint = publishing.endpoint(endpoint_id)
    _refuse_disabled_endpoint(endpoint)
    record = publishing.published(_version_of(endpoint, pipeline_version))
    return submit_published(
        workspace, record, experiment_name, pipeline_parameters, continue_on_step_failure, properties, fire_id, tags,
        description, endpoint_id,
    )  # fmt: skip
