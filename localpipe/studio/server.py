"""``localpipe serve``: the studio on uvicorn, with a token made for this server."""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Callable
from pathlib import Path

import uvicorn

from localpipe.errors import UsageError
from localpipe.studio.app import create_app
from localpipe.studio.security import LOOPBACK, new_token


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def serve(state_dir: str | Path, host: str, port: int, echo: Callable[[str], None], **app_options) -> None:
    """Serve the studio of the workspace at ``state_dir`` on ``host:port`` (0: a free port) until
    interrupted; ``echo`` prints the link (with the token) and, on a public address, the warning."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:  # no such address here
            fix = "choose --host: an address of this machine (127.0.0.1, or 0.0.0.0 for all of them)"
        else:
            fix = "choose --port"
        raise UsageError(f"localpipe serve cannot listen on {host}:{port} ({exc.strerror}): {fix}") from None
    sock.listen(128)  # before the link is printed: a client that reads it and connects at once waits in the backlog
    port = sock.getsockname()[1]
    token = new_token()
    public = not is_loopback(host)
    hosts = None if public else (*LOOPBACK, host)
    app = create_app(state_dir, token, public=public, hosts=hosts, **app_options)
    shown = f"[{host}]" if ":" in host else host
    echo(f"localpipe studio: http://{shown}:{port}/?token={token}")
    if public:
        echo(
            f"listening on {host}, reachable from other machines: every request needs the token "
            "(the link above sets it in a cookie); Ctrl-C stops the server"
        )
    else:
        echo("open the link: every page needs its token (the link keeps it in a cookie); Ctrl-C stops the server")
    config = uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=1, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])
