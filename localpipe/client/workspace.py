"""From an SDK ``Workspace`` (a folder) to its records: the one place the client layer opens them."""

from __future__ import annotations

from localpipe.state.history import History
from localpipe.state.layout import Layout


def history_of(workspace) -> History:
    """The history of an ``sdk.workspace.Workspace`` (opened once per process)."""
    return History.open(Layout.of(workspace.state_dir))
