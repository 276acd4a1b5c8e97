"""The studio's one secret: a token per server, and what a request must carry to read or to write.

Every request needs the token (the link's ``?token=``, the cookie it sets, or the header): on
127.0.0.1 too, which every account of this machine reaches, and which must not show one user's
runs, logs and outputs to another. On loopback, a request whose ``Host`` is not one the server
was started for is refused as well (a page of another site that made its own name resolve to
127.0.0.1: DNS rebinding). Writing (cancel, rerun, and the REST routes other modules add) needs
the token carried in the request itself (a header or a form field: a cookie alone is what a
cross-site form would send), and a request another site's page made (``Origin`` or
``Sec-Fetch-Site`` say so) is refused."""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import parse_qs

from starlette.exceptions import HTTPException
from starlette.requests import Request

COOKIE = "localpipe_token"  # and the port: browsers share a host's cookies across its ports
HEADER = "X-Localpipe-Token"
FIELD = "token"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
# Every answer: never drawn in another page's frame (a page of another port of this host is the
# same site, so the token's cookie goes with the frame, and its actions could be clicked unseen),
# never sniffed, and no address (the link's ``?token=``) sent on to another site a link leads to
# (``same-origin``, not ``no-referrer``: with that, a form's own POST says ``Origin: null``).
HEADERS = {
    # and a page runs only the studio's own script file: were a value ever drawn unescaped, no
    # inline script, handler or other site's script would run
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}
# What a file a step wrote is served with (logs, outputs, logged images): opened on its own, an
# HTML page or an SVG with a script would otherwise run as the studio itself (its pages' forms
# hold the token); sandboxed, it has an origin of its own and no script.
FILE_HEADERS = {
    "Content-Security-Policy": "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; "
    "frame-ancestors 'none'"
}


async def form_fields(request: Request) -> dict[str, str]:
    """The fields of a posted HTML form (urlencoded: the studio's forms send no files)."""
    if not request.headers.get("content-type", "").startswith("application/x-www-form-urlencoded"):
        return {}
    text = (await request.body()).decode("utf-8", errors="replace")
    return {key: values[-1] for key, values in parse_qs(text, keep_blank_values=True).items()}


def cookie_name(request: Request) -> str:
    """The cookie that keeps this server's token: named after its port, so that two servers on one
    host (or another local service) never get or overwrite each other's."""
    return f"{COOKIE}_{request.url.port or 80}"


def new_token() -> str:
    return secrets.token_urlsafe(24)


class Guard:
    """The checks of one server: its ``token``, and the host names requests may name (None: any,
    for a server bound to another address, ``public``)."""

    def __init__(self, token: str, public: bool = False, hosts: tuple[str, ...] | None = LOOPBACK):
        self.token = token
        self.hosts = None if public else hosts

    def matches(self, given: str | None) -> bool:
        return bool(given) and hmac.compare_digest(given.encode(), self.token.encode())

    def carried(self, request: Request) -> bool:
        """The request carries the token: a header, the link's ``?token=`` or the cookie it set."""
        return any(
            self.matches(given)
            for given in (
                request.headers.get(HEADER),
                request.query_params.get(FIELD),
                request.cookies.get(cookie_name(request)),
            )
        )

    def check_host(self, request: Request) -> None:
        """On loopback, the request names this server (a page of another site that made its own name
        resolve to 127.0.0.1 does not: DNS rebinding)."""
        host = (request.url.hostname or "").strip("[]")
        if self.hosts is not None and host not in self.hosts:
            raise HTTPException(403, f'host "{host}" is not this server\'s: open http://127.0.0.1:<port>/')

    def check_read(self, request: Request) -> None:
        self.check_host(request)
        if not self.carried(request):
            raise HTTPException(
                401, "this studio needs its token: open the link `localpipe serve` printed at start (with ?token=)"
            )

    async def check_write(self, request: Request) -> None:
        """A write action: the token in a header or form field, and a request of this site's own."""
        self.check_read(request)
        site = request.headers.get("sec-fetch-site")
        if site not in (None, "same-origin", "none"):
            raise HTTPException(403, f"a cross-site request ({site}) cannot change anything here")
        origin = request.headers.get("origin")
        if origin and origin != f"{request.url.scheme}://{request.url.netloc}":
            raise HTTPException(403, f"a request from {origin} cannot change anything here")
        given = request.headers.get(HEADER)
        if given is None and request.method == "POST":
            given = (await form_fields(request)).get(FIELD)
        if not self.matches(given):
            raise HTTPException(
                403, "this action needs the server's token: open the link `localpipe serve` printed (with ?token=)"
            )
