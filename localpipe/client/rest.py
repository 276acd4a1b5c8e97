"""Azure's REST submission of published pipelines and endpoints, as one function a web route calls.

``rest_submit(workspace, kind, id, body, authorization)`` answers a ``POST`` to a
``PublishedPipeline.endpoint`` or ``PipelineEndpoint.endpoint`` address with Azure's body
(``ExperimentName``, ``ParameterAssignments``, ``DataPathAssignments``,
``DataSetDefinitionValueAssignments``, ``Description``, ``ContinueRunOnStepFailure``,
``PipelineVersion`` for an endpoint): ``(200, {"Id": run id, ...})``, or Azure's error shape
``{"error": {"code", "message"}}`` with 401 (no or wrong token), 404 (no such pipeline or
endpoint) or 400 (a bad body or parameter: the message the CLI and the SDK give). The route lives
in `localpipe serve`; ``InteractiveLoginAuthentication`` gives the header it checks.
"""

from __future__ import annotations

from localpipe.errors import LocalpipeError, NotFoundError, UserErrorException

PUBLISHED, ENDPOINT, ENDPOINT_NAME = "published", "endpoint", "endpoint-name"


class InteractiveLoginAuthentication:
    """``azureml.core.authentication.InteractiveLoginAuthentication``: no login here; its header is
    the bearer token of the workspace found as ``Workspace.from_config()`` finds it."""

    def __init__(self, force=False, tenant_id=None, cloud=None):
        self._workspace = None

    def get_authentication_header(self) -> dict:
        """``{"Authorization": "Bearer TOKEN"}``, the token `localpipe serve` checks (``.localpipe/api-token``)."""
        from localpipe.sdk.workspace import Workspace
        from localpipe.state.layout import Layout
        from localpipe.state.token import api_token

        self._workspace = self._workspace or Workspace.from_config()
        return {"Authorization": f"Bearer {api_token(Layout.of(self._workspace.state_dir))}"}


def unauthorized(workspace, authorization: str | None) -> tuple[int, dict] | None:
    """Azure's 401 answer when ``authorization`` is not the workspace's bearer token, else None: a
    route asks before it reads a body, which anyone reaching the port can make as large as they like."""
    from localpipe.state.layout import Layout
    from localpipe.state.token import authorized

    if authorized(Layout.of(workspace.state_dir), authorization):
        return None
    return 401, _error("Unauthorized", "missing or wrong bearer token: send the header that "
                       "InteractiveLoginAuthentication().get_authentication_header() gives")  # fmt: skip


def rest_submit(
    workspace, kind: str, id: str, body, authorization: str | None, version: str | None = None
) -> tuple[int, dict]:
    """Answer a REST submission; never raises for a bad request. Azure's addresses map to ``kind``,
    ``id`` and ``version`` as docs/publishing.md says: ``published`` (``PipelineSubmit/<id>``),
    ``endpoint`` (``PipelineEndpointSubmit/Id/<id>[/<version>]``), ``endpoint-name``
    (``PipelineEndpointSubmit/Name?name=<name>[&pipelineVersion=<version>]``, ``id`` the name).
    ``version`` (from the address) wins over the body's ``PipelineVersion``."""
    refused = unauthorized(workspace, authorization)
    if refused is not None:
        return refused
    try:
        # A string, as Azure's run ids and ``Run.id`` are: PipelineRun(experiment, answer["Id"]) takes it.
        return 200, {"Id": str(_submit(workspace, kind, id, body, version)), "Status": "NotStarted"}
    except NotFoundError as exc:
        return 404, _error("NotFound", str(exc))
    except (LocalpipeError, ValueError) as exc:
        return 400, _error("UserError", str(exc))


def _submit(workspace, kind: str, id: str, body, version: str | None) -> int:
    from localpipe.client.publishing import submit_endpoint, submit_published

    if kind not in (PUBLISHED, ENDPOINT, ENDPOINT_NAME):
        raise NotFoundError(f"no REST route for {kind!r}: submit a published pipeline or a pipeline endpoint")
    if not isinstance(body, dict):
        raise UserErrorException(
            'the body is not a JSON object: send {"ExperimentName": ..., "ParameterAssignments": {...}}'
        )
    if kind == ENDPOINT_NAME and not id:
        raise UserErrorException(
            "the address names no pipeline endpoint: add ?name=<its name> (or post to PipelineEndpointSubmit/Id/<id>)"
        )
    publishing = workspace.service.history.publishing
    if kind == PUBLISHED:  # the address first: NotFoundError here is the 404 of a missing pipeline or endpoint
        published = publishing.published(id)
    else:
        endpoint = publishing.endpoint(name=id) if kind == ENDPOINT_NAME else publishing.endpoint(endpoint_id=id)
    experiment = _text(body, "ExperimentName")
    if not isinstance(experiment, str) or not experiment.strip():
        raise UserErrorException('the body has no "ExperimentName": name the experiment to run in')
    try:
        parameters = _parameters(workspace, body)
    except NotFoundError as exc:  # a datastore or dataset the body names: a bad body (400)
        raise UserErrorException(str(exc)) from None
    description = _text(body, "Description")
    description = None if description is None else str(description)
    if kind != PUBLISHED:
        version = version if version is not None else body.get("PipelineVersion")
        return submit_endpoint(workspace, endpoint["endpoint_id"], experiment, parameters, version,
                               continue_on_step_failure=body.get("ContinueRunOnStepFailure"),
                               description=description)  # fmt: skip
    return submit_published(workspace, published, experiment, parameters,
                            body.get("ContinueRunOnStepFailure"), description=description)  # fmt: skip


def _text(body: dict, key: str):
    """The body's ``key`` as given; text UTF-8 cannot hold (JSON's lone surrogate escapes,
    ``"\\ud800"``) is refused, naming ``key``."""
    value = body.get(key)
    try:
        str(value).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise UserErrorException(
            f'"{key}" holds {str(value)[exc.start : exc.end]!r}, which is no character (a lone surrogate '
            "escape): send text UTF-8 can hold"
        ) from None
    return value


def _parameters(workspace, body: dict) -> dict:
    """``ParameterAssignments``, with ``DataPathAssignments`` as DataPaths and
    ``DataSetDefinitionValueAssignments`` as the registered datasets they name."""
    from localpipe.sdk.data import DataPath, Dataset, Datastore

    parameters = dict(_mapping(body, "ParameterAssignments"))
    for name, value in _mapping(body, "DataPathAssignments").items():
        if not isinstance(value, dict) or "DataStoreName" not in value:
            raise UserErrorException(
                f'DataPathAssignments "{name}" needs {{"DataStoreName": ..., "RelativePath": ...}}'
            )
        parameters[name] = DataPath(Datastore(workspace, value["DataStoreName"]), value.get("RelativePath", ""))
    for name, value in _mapping(body, "DataSetDefinitionValueAssignments").items():
        reference = value.get("SavedDataSetReference") if isinstance(value, dict) else None
        if not isinstance(reference, dict):
            raise UserErrorException(
                f'DataSetDefinitionValueAssignments "{name}" needs {{"SavedDataSetReference": {{"Id": dataset.id}}}}'
            )
        dataset_id = reference.get("Id")
        if not dataset_id:
            raise UserErrorException(
                f'DataSetDefinitionValueAssignments "{name}" has no dataset id: a dataset neither registered nor '
                "used by a submission has none (its id is None); register it (dataset.register(ws, name)) and "
                "send its id"
            )
        parameters[name] = Dataset.get_by_id(workspace, dataset_id)
    return parameters


def _mapping(body: dict, key: str) -> dict:
    value = body.get(key) or {}
    if not isinstance(value, dict):
        raise UserErrorException(f'"{key}" is not a JSON object: send {{"name": value, ...}}')
    return value


def _error(code: str, message: str) -> dict:
    return {"error": {"code": code, "message": message}}
