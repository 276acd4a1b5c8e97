"""What the commands share: finding the workspace, JSON output, and formatting times and sizes."""

from __future__ import annotations

import gc
import json
import os
import sys
from contextlib import contextmanager

import click

from localpipe.formats import clock as clock  # re-exported: the commands import them from here
from localpipe.formats import duration as duration
from localpipe.formats import size as size

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def workspace(create: bool = False, near: str | None = None):
    """The workspace of this command: ``-w``'s, else the nearest one above the folder of ``near``
    (a pipeline file: the same file finds the same workspace from any folder), else the nearest
    one above the current directory; with ``create``, one is made in the current directory when
    there is none, saying where and why."""
    from pathlib import Path

    from localpipe.errors import WorkspaceNotFoundError
    from localpipe.sdk.workspace import Workspace

    ctx = click.get_current_context()
    folder = ctx.meta.get("localpipe.workspace_dir")
    if folder:
        return Workspace.create(folder, exist_ok=True) if create else Workspace.from_config(folder)
    starts = [Path(near).resolve().parent] if near else []
    for start in [*starts, Path.cwd()]:
        try:
            return Workspace.from_config(start)
        except WorkspaceNotFoundError:
            if start == Path.cwd() and not create:
                raise
    ws = Workspace.create(".", exist_ok=True)
    where = f"{starts[0]} or the current folder" if starts and starts[0] != Path.cwd() else "the current folder"
    click.echo(f"created workspace {ws.root} (no .localpipe/ in {where} or above it)", err=True)
    return ws


_stdout_gone = False  # stdout's reader exited: what is written goes to /dev/null since


def say(line: str) -> None:
    """Print ``line`` on stdout. Once its reader has gone (``| head``, a pager quit), later lines,
    and Python's flush at exit, go nowhere instead of failing (as Python's documentation advises)."""
    try:
        click.echo(line, color=True)  # plain text: click need not scan each of thousands of lines for escape codes
    except BrokenPipeError:
        drop_stdout()


def drop_stdout() -> None:
    """Send what is still to be written on stdout, its reader gone, to /dev/null."""
    global _stdout_gone
    _stdout_gone = True
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def stdout_gone() -> bool:
    return _stdout_gone


@contextmanager
def collector_paused():
    """Python's cyclic garbage collector off while a command loads and plans a pipeline: what that
    makes is kept (the plan, the modules) or freed by reference counting, and the collector's passes
    over it cost about 5 % of a submission that reuses every step. The scheduler turns it back on for
    the run (``Scheduler.execute``)."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()


def history(create: bool = False):
    """The history (``state.history.History``) of this command's workspace."""
    from localpipe.client.workspace import history_of

    return history_of(workspace(create))


def print_json(value) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=str))


def count(number: int, word: str, plural: str | None = None) -> str:
    """``1 step``, ``2 steps``, ``0 entries`` (``plural`` where adding an s is wrong)."""
    return f"{number} {word if number == 1 else plural or word + 's'}"


def table(rows: list[list], headers: list[str]) -> None:
    """Columns padded to their widest cell, written at once (a table may have 100,000 rows)."""
    cells = [headers, *([str(cell) for cell in row] for row in rows)]
    widths = [max(map(len, column)) for column in zip(*cells, strict=True)]
    line = "  ".join(f"{{:<{w}}}" for w in widths[:-1]) + "  {}"
    click.echo("\n".join(line.format(*row).rstrip() for row in cells))
