"""The folders inside `.localpipe/` and their creation."""

from __future__ import annotations

from pathlib import Path

SUBDIRS = ("objects", "runs", "tmp", "datastores/workspaceblobstore", "datastores/workspacefilestore")


def create_layout(ws) -> None:
    """Create the workspace's folders; `.localpipe/` is readable by its owner only."""
    ws.root.mkdir(parents=True, exist_ok=True)
    ws.state_dir.mkdir(mode=0o700, exist_ok=True)
    for sub in SUBDIRS:
        (ws.state_dir / sub).mkdir(parents=True, exist_ok=True)
    from localpipe.state.db import open_history

    open_history(ws)


def history_path(ws) -> Path:
    return ws.state_dir / "history.db"


def objects_dir(ws) -> Path:
    return ws.state_dir / "objects"


def runs_dir(ws) -> Path:
    return ws.state_dir / "runs"


def tmp_dir(ws) -> Path:
    return ws.state_dir / "tmp"


def step_dir(ws, run_id: int, step_name: str) -> Path:
    """The folder of one step run: logs, snapshot, outputs being written."""
    return runs_dir(ws) / str(run_id) / _safe(step_name)


def _safe(name: str) -> str:
    # Step names are free text; a folder name must not climb out of the run folder.
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in name).lstrip(".")
    return cleaned or "step"
