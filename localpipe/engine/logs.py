"""Reading step logs, once or following them while a run goes on."""

from __future__ import annotations

import time
from collections.abc import Callable

from localpipe.state import records
from localpipe.state.layout import step_dir
from localpipe.status import RunStatus

FOLLOW_POLL_SECONDS = 0.2


def print_logs(ws, run_id, step: str | None, echo: Callable) -> None:
    """Print each step's stdout then stderr, with a header when there is more than one."""
    rows = [records.find_step(ws, run_id, step)] if step else records.step_rows(ws, run_id)
    for row in rows:
        for stream in ("stdout", "stderr"):
            path = step_dir(ws, row.run_id, row.name) / f"{stream}.log"
            if path.exists() and path.stat().st_size:
                if len(rows) > 1 or stream == "stderr":
                    echo(f"==> {row.name} {stream} <==")
                echo(path.read_text(errors="replace"), nl=False)


def follow_logs(ws, run_id, step: str | None, echo: Callable, poll: float = FOLLOW_POLL_SECONDS) -> None:
    """Print new lines of every step's logs (prefixed by the step's name) until the run ends."""
    from localpipe.engine.recovery import recover_abandoned_runs

    run = records.get_run(ws, run_id)
    if step:
        records.find_step(ws, run.id, step)
    offsets: dict = {}
    while True:
        recover_abandoned_runs(ws)
        final = RunStatus(records.get_run(ws, run.id).status).is_final
        for row in records.step_rows(ws, run.id):
            if step and row.name != step:
                continue
            for stream in ("stdout", "stderr"):
                path = step_dir(ws, run.id, row.name) / f"{stream}.log"
                offsets[path] = print_new_lines(path, offsets.get(path, 0), f"[{row.name}] ", echo)
        if final:
            return
        time.sleep(poll)


def print_new_lines(path, offset: int, prefix: str, echo: Callable) -> int:
    """Print the complete lines of ``path`` after ``offset``; returns the new offset."""
    try:
        with open(path, "rb") as handle:
            handle.seek(offset)
            data = handle.read()
    except OSError:
        return offset
    complete = data.rfind(b"\n") + 1
    for line in data[:complete].decode("utf-8", errors="replace").splitlines():
        echo(f"{prefix}{line}")
    return offset + complete
