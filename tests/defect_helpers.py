"""Helpers for the reproduction tests of issue 12 (tests/test_concurrency_defects.py and the others).

Public interfaces only: the CLI as a process, files on disk, and plain ``sqlite3`` reads of
``.localpipe/history.db`` (docs/history-db.md). Nothing here imports localpipe's internals.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import psutil


def history(root: Path) -> Path:
    return Path(root) / ".localpipe" / "history.db"


def query(root: Path, sql: str, *params) -> list[tuple]:
    """Rows of ``sql`` on the workspace's history.db (a fresh connection each time, closed after)."""
    path = history(root)
    if not path.exists():
        return []
    conn = sqlite3.connect(path, timeout=30)
    try:
        return conn.execute(sql, params).fetchall()
    except sqlite3.OperationalError as exc:  # the schema is not there yet (a submit still migrating)
        if "no such table" in str(exc):
            return []
        raise
    finally:
        conn.close()


def run_status(root: Path, run_id: int) -> str | None:
    rows = query(root, "SELECT status FROM pipeline_run WHERE id = ?", run_id)
    return rows[0][0] if rows else None


def step_rows(root: Path, run_id: int) -> dict[str, tuple[str, str | None]]:
    """step name -> (status, reason) of a run."""
    return {
        name: (status, reason)
        for name, status, reason in query(root, "SELECT name, status, reason FROM step_run WHERE run_id = ?", run_id)
    }


def step_status(root: Path, run_id: int, name: str) -> str | None:
    return step_rows(root, run_id).get(name, (None, None))[0]


def popen_localpipe(root: Path, *args, env: dict | None = None, **kwargs) -> subprocess.Popen:
    """The real CLI as a process (``python -m localpipe``, so PYTHONPATH is honoured)."""
    kwargs.setdefault("stdout", subprocess.PIPE)
    kwargs.setdefault("stderr", subprocess.PIPE)
    return subprocess.Popen(
        [sys.executable, "-m", "localpipe", *map(str, args)],
        cwd=root,
        env={**os.environ, **(env or {})},
        text=True,
        **kwargs,
    )


def alive(pid: int) -> bool:
    """True while ``pid`` is a live process (a zombie is dead)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def kill_quietly(pids) -> None:
    """End the processes a test started (by their pids) that may have been left behind."""
    for pid in pids:
        if alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass


def one_error_line(stderr: str) -> str:
    """The single line of ``stderr``, which must start with "error: " and hold no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, f"expected exactly one line on stderr, got {len(lines)}:\n{stderr}"
    assert lines[0].startswith("error: "), stderr
    return lines[0]


def refused(proc, code: int = 2) -> str:
    """The one error line of a refused command, after checking its exit code."""
    assert proc.returncode == code, (
        f"exit code {proc.returncode}, expected {code}",
        proc.stdout[-3000:],
        proc.stderr[-3000:],
    )
    return one_error_line(proc.stderr)


def assert_nothing_recorded(root: Path) -> None:
    """No pipeline_run row, and no folder under .localpipe/runs/ (docs/errors.md)."""
    recorded = query(root, "SELECT id, status, error FROM pipeline_run")
    assert recorded == [], f"runs were recorded (id, status, error): {recorded}"
    runs = Path(root) / ".localpipe" / "runs"
    folders = sorted(p.name for p in runs.iterdir()) if runs.exists() else []
    assert folders == [], f"run folders were made under .localpipe/runs/: {folders}"


def objects(root: Path) -> list[Path]:
    """The object folders of the store (``.localpipe/objects/<2>/<digest>``)."""
    store = Path(root) / ".localpipe" / "objects"
    return [obj for shard in sorted(store.iterdir()) if shard.is_dir() for obj in sorted(shard.iterdir())]
