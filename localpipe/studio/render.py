"""Pages as HTML (Jinja templates, every value escaped) or as their JSON twin."""

from __future__ import annotations

import json
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse

from localpipe.formats import clock, duration, number, size
from localpipe.studio.security import FIELD, HEADER

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATUSES = ("NotStarted", "Queued", "Preparing", "Running", "Finalizing", "Completed", "Failed", "Canceled", "Reused")


def wants_json(request: Request) -> bool:
    """The JSON twin is asked for: the path ends in ``.json``, or ``Accept`` prefers JSON; or a
    script acts (a POST with the token header): its answer, done or refused, is JSON."""
    if request.url.path.endswith(".json") or (request.method == "POST" and HEADER in request.headers):
        return True
    accept = request.headers.get("accept", "")
    return "application/json" in accept and "text/html" not in accept


def pretty(value) -> str:
    return json.dumps(value, indent=1, sort_keys=True, default=str)


_environment = Environment(
    loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(default=True), trim_blocks=True, lstrip_blocks=True
)
_environment.filters.update(clock=clock, duration=duration, number=number, size=size, pretty=pretty)
_environment.globals.update(STATUSES=STATUSES, TOKEN_FIELD=FIELD)


def page(request: Request, template: str, data: dict, status_code: int = 200, **extra):
    """``data`` as the JSON twin when asked for, else the page ``template`` drawn from it (and
    from ``extra``: what only the page needs, its layout)."""
    if wants_json(request):
        return JSONResponse(data, status_code=status_code)
    guard = request.app.state.guard
    html = _environment.get_template(template).render(
        request=request,
        data=data,
        token=guard.token if guard.carried(request) else None,
        workspace=str(request.app.state.layout.root),
        **extra,
    )
    return HTMLResponse(html, status_code=status_code)


def render_error(request: Request, status_code: int, message: str) -> HTMLResponse:
    html = _environment.get_template("error.html").render(
        request=request,
        data={},
        token=None,
        workspace=str(request.app.state.layout.root),
        message=message,
        status_code=status_code,  # its heading; and no JSON twin link, which an error page has not
    )
    return HTMLResponse(html, status_code=status_code)
