"""A compact live view of a run on a terminal (rich): queued, running and finished steps."""

from __future__ import annotations

import time

from localpipe.status import RunStatus

STYLES = {
    RunStatus.COMPLETED: "green",
    RunStatus.REUSED: "cyan",
    RunStatus.FAILED: "bold red",
    RunStatus.CANCELED: "yellow",
    RunStatus.RUNNING: "bold",
    RunStatus.QUEUED: "dim",
    RunStatus.PREPARING: "dim",
}
SHOWN_FINISHED = 8  # finished steps kept on screen; the rest are counted


class LiveProgress:
    """A Reporter that redraws a table: running steps with elapsed time, queued ones, recent ends."""

    closed = None  # a terminal is not closed under a running program as a pipe is (its hang-up ends it)

    def __init__(self, steps: list[str], failure=None, progress=None):
        from rich.console import Console
        from rich.live import Live

        self.status = {name: RunStatus.NOT_STARTED for name in steps}
        self.reason: dict[str, str] = {}
        self.started: dict[str, float] = {}
        self.placement: dict[str, str] = {}
        self.ended: list[str] = []
        self.counts: dict[str, int] = {}
        self.failure = failure  # step -> the lines to print under its failure
        self.progress = progress  # step -> a line on how far it is (a ParallelRunStep's batches), or None
        self.console = Console()
        self.live = Live(console=self.console, refresh_per_second=4, get_renderable=self._render, transient=False)

    def __enter__(self):
        self.live.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self.live.__exit__(*exc)

    def step_changed(self, step: str, status: RunStatus, reason: str | None, placement: dict | None = None) -> None:
        from rich.markup import escape

        self.status[step] = status
        if reason:
            self.reason[step] = reason
        if placement:
            self.placement[step] = describe_placement(placement)
        if status is RunStatus.RUNNING:
            self.started[step] = time.monotonic()
        if status.is_final:
            self.counts[status.value] = self.counts.get(status.value, 0) + 1
            self.ended.append(step)
            if status is RunStatus.FAILED:
                self.console.print(f"[bold red]{step} failed:[/] {escape(reason or '')}")
                for line in self.failure(step) if self.failure else []:
                    self.console.print(line, markup=False, highlight=False)

    def run_finished(self, status: RunStatus) -> None:
        self.live.refresh()

    def environment_changed(self, name: str, digest: str, state: str, detail: str) -> None:
        style = {"failed": "bold red", "built": "green"}.get(state, "dim")
        self.console.print(f'[{style}]environment "{name}" ({digest[:12]}) {state}:[/] {detail}')

    def _render(self):
        from rich.table import Table

        table = Table(box=None, pad_edge=False, show_header=True, header_style="bold")
        for column in ("step", "status", "time", "placement", "reason"):
            table.add_column(column, overflow="fold" if column == "reason" else "ellipsis")
        running = [s for s, st in self.status.items() if st in (RunStatus.RUNNING, RunStatus.FINALIZING)]
        for step in self.ended[-SHOWN_FINISHED:]:
            self._row(table, step)
        for step in running:
            self._row(table, step)
        queued = sum(st in (RunStatus.QUEUED, RunStatus.PREPARING) for st in self.status.values())
        waiting = sum(st is RunStatus.NOT_STARTED for st in self.status.values())
        done = ", ".join(f"{n} {word.lower()}" for word, n in self.counts.items())
        table.caption = f"{len(running)} running, {queued} queued, {waiting} waiting" + (f"; {done}" if done else "")
        return table

    def _row(self, table, step: str) -> None:
        status = self.status[step]
        elapsed = (
            f"{time.monotonic() - self.started[step]:.1f}s" if step in self.started and not status.is_final else ""
        )
        table.add_row(
            step,
            f"[{STYLES.get(status, '')}]{status.value}[/]",
            elapsed,
            self.placement.get(step, ""),
            (self.progress(step) if self.progress and status is RunStatus.RUNNING else None)
            or self.reason.get(step, ""),
        )


def describe_placement(placement: dict) -> str:
    """``2 CPU, GPU 0,1, 4.0 GiB`` for a placement recorded by the scheduler."""
    text = f"{placement['cpus']} CPU"
    if placement.get("gpus"):
        text += f", GPU {','.join(map(str, placement['gpus']))}"
    if placement.get("memory"):
        text += f", {placement['memory'] / 2**30:.1f} GiB"
    if placement.get("executor") == "ray":
        text += " on Ray"
    return text
