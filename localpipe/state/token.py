"""The bearer token that `localpipe serve` asks of a REST submission, and that
``InteractiveLoginAuthentication().get_authentication_header()`` gives (docs/publishing.md).

One per workspace, in ``.localpipe/api-token``, readable by its owner only (as is the folder):
whoever can read it can already read and write the workspace. Made on first use, by one writer:
a file created aside and linked into place, so two processes asking at once get the same token.
"""

from __future__ import annotations

import hmac
import os
import secrets
import tempfile

from localpipe.state.layout import Layout


def api_token(layout: Layout) -> str:
    """The workspace's token, made now when it has none."""
    try:
        return layout.api_token.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        pass
    fd, aside = tempfile.mkstemp(prefix="api-token.", suffix=".tmp", dir=layout.state_dir)  # 0600, one per caller
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secrets.token_urlsafe(32) + "\n")
    try:
        os.link(aside, layout.api_token)  # fails when another process made it first: its token wins
    except FileExistsError:
        pass
    finally:
        os.unlink(aside)
    return layout.api_token.read_text(encoding="ascii").strip()


def authorized(layout: Layout, header: str | None) -> bool:
    """Whether an ``Authorization`` header carries the workspace's token (``Bearer TOKEN``)."""
    scheme, _, given = (header or "").partition(" ")
    token = api_token(layout)
    return bool(token) and scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode())
