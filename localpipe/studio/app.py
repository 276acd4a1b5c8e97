"""The studio's web application: ``create_app`` makes it for one workspace.

Other modules add their own routes and background tasks to it (``extra_routes``,
``background``): a published pipeline's REST submission checks the same token with
``app.state.guard.check_write(request)``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse
from starlette.routing import BaseRoute, Mount
from starlette.staticfiles import StaticFiles

import localpipe.studio.pages as pages
from localpipe.errors import DAMAGED, LocalpipeError, NotFoundError, damaged
from localpipe.state.layout import Layout
from localpipe.state.views import Views
from localpipe.studio.render import render_error, wants_json
from localpipe.studio.security import FIELD, HEADERS, LOOPBACK, Guard, cookie_name

STATIC = Path(__file__).resolve().parent / "static"


def create_app(
    state_dir: str | Path,
    token: str,
    public: bool = False,
    extra_routes: Sequence[BaseRoute] = (),
    background: Sequence[Callable[[Starlette], Awaitable[None]]] = (),
    hosts: tuple[str, ...] | None = LOOPBACK,
    self_authenticating: tuple[str, ...] = (),
) -> Starlette:
    """The studio of the workspace whose ``.localpipe/`` is ``state_dir``.

    Every request needs ``token`` (security.py); ``public``: bound to an address other machines
    reach, so that a request may name any host.
    ``extra_routes`` are served before the studio's own; each of ``background`` is started with
    the app when it starts serving and cancelled when it stops. Paths starting with one of
    ``self_authenticating`` are routes that check their own credentials (the REST routes, the
    workspace's bearer token): only the host check applies to them, never the studio's token."""
    layout = Layout.of(state_dir)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        tasks = [asyncio.create_task(task(app)) for task in background]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
            app.state.views.close()

    app = Starlette(
        routes=[*extra_routes, *pages.ROUTES, Mount("/static", StaticFiles(directory=STATIC), name="static")],
        middleware=[Middleware(_GuardMiddleware)],
        exception_handlers={
            HTTPException: _http_error,
            LocalpipeError: _library_error,
            sqlite3.DatabaseError: _database_error,
        },
        lifespan=lifespan,
    )
    app.state.layout = layout
    app.state.views = Views(layout)
    app.state.guard = Guard(token, public=public, hosts=hosts)
    app.state.self_authenticating = self_authenticating
    return app


class _GuardMiddleware:
    """Every request passes the guard's read check; the link's ``?token=`` is kept in a cookie
    (HttpOnly, SameSite=Strict), so that the pages it leads to show their write actions, and a
    browser that opened the link is sent on to the same address without it (kept out of its
    history and address bar; a script, which names no ``Sec-Fetch-Mode``, is answered at once);
    every answer gets ``HEADERS`` (a file route's own ``Content-Security-Policy`` kept). Plain
    ASGI, so that a page's event stream passes through untouched."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        request = Request(scope)
        guard: Guard = scope["app"].state.guard
        answer = None  # the guard's own: a refusal, or where a browser that opened the link goes next
        try:
            prefixes = scope["app"].state.self_authenticating
            if prefixes and request.url.path.startswith(prefixes):
                guard.check_host(request)
            else:
                guard.check_read(request)
        except HTTPException as exc:
            answer = await _http_error(request, exc)
        given = request.query_params.get(FIELD)
        cookie = cookie_name(request)
        linked = answer is None and given and guard.matches(given)
        keep = linked and request.cookies.get(cookie) != given
        if linked and request.method == "GET" and request.headers.get("sec-fetch-mode") == "navigate":
            answer = RedirectResponse(str(request.url.remove_query_params(FIELD)), status_code=303)

        async def send_with_headers(message):
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in HEADERS.items():
                    headers.setdefault(name, value)
                if keep:
                    headers.append("set-cookie", f"{cookie}={given}; HttpOnly; SameSite=Strict; Path=/")
            await send(message)

        await (answer or self.app)(scope, receive, send_with_headers)


async def _http_error(request: Request, exc: HTTPException):
    if wants_json(request):
        return JSONResponse({"error": exc.detail}, status_code=exc.status_code)
    if request.url.path.startswith("/static/"):
        return PlainTextResponse(str(exc.detail), status_code=exc.status_code)
    return render_error(request, exc.status_code, str(exc.detail))


async def _database_error(request: Request, exc: sqlite3.DatabaseError):
    """history.db could not be read: a damaged file (a disk error, a copy cut short) fails the
    pages that read its damaged part, in one line."""
    path = request.app.state.layout.history
    if DAMAGED in str(exc) or "not a database" in str(exc):
        message = damaged(exc, path)
    else:
        message = f"{path} could not be read ({exc}): try again"
    if wants_json(request):
        return JSONResponse({"error": message}, status_code=500)
    return render_error(request, 500, message)


async def _library_error(request: Request, exc: LocalpipeError):
    code = 404 if isinstance(exc, NotFoundError) else 400
    if wants_json(request):
        return JSONResponse({"error": str(exc)}, status_code=code)
    return render_error(request, code, str(exc))
