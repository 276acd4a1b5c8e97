"""Azure's REST submission on the studio's server: the addresses that ``PublishedPipeline.endpoint``
and ``PipelineEndpoint.endpoint`` name, answered by ``client.rest.rest_submit`` (docs/publishing.md).

They check the workspace's bearer token (``InteractiveLoginAuthentication().get_authentication_header()``),
not the studio's: a script written for Azure's endpoint sends that header and nothing else. A page
of another site cannot call them: it cannot set an ``Authorization`` header without a CORS
preflight, which this server never grants.
"""

from __future__ import annotations

import json

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from localpipe.client.rest import ENDPOINT, ENDPOINT_NAME, PUBLISHED, rest_submit, unauthorized

BASE = "/pipelines/v1.0/PipelineRuns"


def _not_json(constant: str):
    raise ValueError(f"{constant} is not JSON")


def rest_routes(workspace) -> list[Route]:
    """The POST routes of Azure's submission addresses, for ``create_app(extra_routes=...)``."""

    async def answer(request: Request, kind: str, id: str, version: str | None) -> JSONResponse:
        authorization = request.headers.get("authorization")
        refused = await run_in_threadpool(unauthorized, workspace, authorization)  # before the body is read
        if refused is not None:
            return JSONResponse(refused[1], status_code=refused[0])
        try:  # NaN and Infinity, which Python's parser takes, are not JSON (nor values Azure sends)
            body = json.loads(await request.body(), parse_constant=_not_json)
        except (ValueError, RecursionError):  # not JSON, or nested deeper than Python's parser goes
            body = None  # rest_submit answers 400, naming the body it wants
        status, content = await run_in_threadpool(rest_submit, workspace, kind, id, body, authorization, version)
        return JSONResponse(content, status_code=status)

    async def published(request: Request) -> JSONResponse:
        return await answer(request, PUBLISHED, request.path_params["id"], None)

    async def endpoint(request: Request) -> JSONResponse:
        return await answer(request, ENDPOINT, request.path_params["id"], request.path_params.get("version"))

    async def endpoint_by_name(request: Request) -> JSONResponse:
        query = request.query_params
        return await answer(request, ENDPOINT_NAME, query.get("name", ""), query.get("pipelineVersion"))

    return [
        Route(f"{BASE}/PipelineSubmit/{{id}}", published, methods=["POST"]),
        Route(f"{BASE}/PipelineEndpointSubmit/Id/{{id}}", endpoint, methods=["POST"]),
        Route(f"{BASE}/PipelineEndpointSubmit/Id/{{id}}/{{version}}", endpoint, methods=["POST"]),
        Route(f"{BASE}/PipelineEndpointSubmit/Name", endpoint_by_name, methods=["POST"]),
    ]
