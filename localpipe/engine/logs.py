"""Reading step logs, once or following them while a run goes on."""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from pathlib import Path

from localpipe.engine.outcomes import read_own
from localpipe.errors import NotFoundError
from localpipe.state.history import History

FOLLOW_POLL_SECONDS = 0.2
FORGOTTEN = " (reused from a run since forgotten)"
FAILURE_TAIL_LINES = 5  # of a failed step's stderr, printed under its Failed line
FAILURE_TAIL_WIDTH = 200  # characters of each: a line of progress bars or JSON is cut there


def print_logs(history: History, run_id, step: str | None, echo: Callable) -> None:
    """Print each step's stdout then stderr, with a header when there is more than one; a reused
    step's are those of the step run that produced what it reused, under a header that says so."""
    number = history.runs.get(run_id)["id"]
    rows = [history.runs.find_step(number, step)] if step else history.runs.steps(number)
    for row in rows:
        folder, reused = log_folder(history, number, row)
        if reused == FORGOTTEN:
            echo(f"==> {row['name']}{reused}: its logs went with it <==")
        for stream in ("stdout", "stderr"):
            path = folder / f"{stream}.log"
            if path.exists() and path.stat().st_size:
                if len(rows) > 1 or stream == "stderr" or reused:
                    echo(f"==> {row['name']} {stream}{reused} <==")
                with open(path, errors="replace", newline="") as log:  # as written: a progress bar's "\r" too
                    text = log.read()
                echo(text, nl=not text.endswith("\n"))  # the next header on a line of its own


def log_folder(history: History, run_number: int, row: dict) -> tuple[Path, str]:
    """Where a step's logs are, and what the header adds: ``" (reused from run 12)"`` when the step
    was reused, its logs being those of the step run that produced its outputs (``FORGOTTEN`` when
    ``Experiment.delete`` forgot that run, or a gc that did not yet keep what kept runs reused)."""
    own = history.layout.step_dir(run_number, row["name"])
    origin = row["reused_from_step_run"]
    if origin is None:
        return own, FORGOTTEN if row["status"] == "Reused" else ""
    try:
        producer = history.runs.step_run(origin)
    except NotFoundError:
        return own, FORGOTTEN
    return history.layout.step_dir(producer["run"], producer["name"]), f" (reused from run {producer['run']})"


def failure_tail(history: History, run_id: int, step: str) -> list[str]:
    """The last lines a failed step wrote to stderr (else to stdout), each cut to a screen's width,
    and the command that prints all of it: what the submitting terminal shows of a failure."""
    folder = history.layout.step_dir(run_id, step)
    for stream in ("stderr", "stdout"):
        try:
            with open(folder / f"{stream}.log", "rb") as handle:
                handle.seek(0, 2)
                handle.seek(max(0, handle.tell() - 16 * 1024))
                lines = handle.read().decode("utf-8", errors="replace").rstrip().splitlines()
        except OSError:
            continue
        if lines:
            cut = [line if len(line) <= FAILURE_TAIL_WIDTH else line[: FAILURE_TAIL_WIDTH - 1] + "…" for line in lines]
            return [f"  | {line}" for line in cut[-FAILURE_TAIL_LINES:]] + [
                f"  all of its {stream}: localpipe logs {run_id} {shlex.quote(step)}"
            ]
    return []


def follow_logs(history: History, run_id, step: str | None, echo: Callable, poll: float = FOLLOW_POLL_SECONDS) -> None:
    """Print new lines of every step's logs (prefixed by the step's name, and by the run it was
    reused from) until the run ends."""
    from localpipe.engine.recovery import recover_abandoned_runs

    number = history.runs.get(run_id)["id"]
    if step:
        history.runs.find_step(number, step)
    offsets: dict = {}
    while True:
        recover_abandoned_runs(history)
        final = history.runs.status(number).is_final
        for row in history.runs.steps(number):
            if step and row["name"] != step:
                continue
            folder, reused = log_folder(history, number, row)
            for stream in ("stdout", "stderr"):
                path = folder / f"{stream}.log"
                offsets[path] = print_new_lines(path, offsets.get(path, 0), f"[{row['name']}{reused}] ", echo, final)
        if final:
            return
        time.sleep(poll)


def print_new_lines(path, offset: int, prefix: str, echo: Callable, final: bool = False) -> int:
    """Print the complete lines of ``path`` after ``offset`` (and, when ``final``, a last line that
    has no line end); returns the new offset."""
    try:
        data = read_own(path, offset)
    except OSError:  # not written yet; or a link or a FIFO the step made, which are not read
        return offset
    complete = len(data) if final else data.rfind(b"\n") + 1
    for line in data[:complete].decode("utf-8", errors="replace").splitlines():
        echo(f"{prefix}{line}")
    return offset + complete
