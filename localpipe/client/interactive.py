"""Interactive runs: ``run = experiment.start_logging(); run.log(...); run.complete()``, a run logged
from a notebook or any Python session rather than run by localpipe (the SDK's ``Experiment.start_logging``).

It is recorded as a run of its experiment, Running from the start, with the calling process noted
as the one that runs it: if that process ends without ``complete()``, the run is marked Failed by
the next command that looks, as a run whose scheduler died is. What it logs, its tags, properties,
files and child runs are those of one step run that holds them (named ``interactive``), as a
script run's are those of its one step; `localpipe show` lists it, and its child runs under it.
The session is not a step: it writes history.db itself, through ``state/``.
"""

from __future__ import annotations

import os

from localpipe.client.runs import INTERACTIVE_RUN, InteractiveRun
from localpipe.errors import UsageError

HOLDER = "interactive"  # the step run holding what an interactive run logs
INTERACTIVE = {"localpipe.runsource": INTERACTIVE_RUN}  # the property that says a run is one
OUTPUTS_DIR = "./outputs"  # the SDK's default folder kept as an interactive run's files at completion


def start_logging(
    experiment,
    name=None,
    run_id=None,
    outputs=None,
    snapshot_directory=".",
    tags=None,
    properties=None,
    display_name=None,
    description=None,
) -> InteractiveRun:
    """The SDK's ``Run._start_logging`` keywords; ``run_id`` cannot be chosen (runs are numbered)."""
    from localpipe.client.run_base import _history_of
    from localpipe.engine.resources import process_start
    from localpipe.state.runs import InteractiveRun as NewInteractiveRun

    if run_id is not None:
        raise UsageError(f"start_logging(run_id={run_id!r}): localpipe numbers runs itself: leave run_id out")
    if outputs is True or outputs is None:
        outputs = OUTPUTS_DIR
    new = NewInteractiveRun(
        experiment.name,
        HOLDER,
        os.getpid(),
        process_start(),
        tags=dict(tags or {}),
        properties={**(properties or {}), **INTERACTIVE},
        display_name=display_name or name,
        description=description,
    )
    run_id, _ = _history_of(experiment.workspace).runs.record_interactive(new)
    if outputs and not os.path.lexists(outputs):  # made, as the SDK makes it: its tutorials save there without
        os.makedirs(outputs, exist_ok=True)  # making it (a file of that name is left alone: nothing is kept then)
    run = InteractiveRun(experiment, run_id, outputs=os.path.abspath(outputs) if outputs else None)
    if snapshot_directory:
        run.take_snapshot(snapshot_directory)
    return run
