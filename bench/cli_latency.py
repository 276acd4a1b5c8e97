"""Latency of `localpipe --help` and `localpipe runs` on a history.db holding 10,000 step runs.

The history is written directly, not by running pipelines (100 submissions of a 100-step
pipeline would take many minutes here): the script opens the workspace's history.db with the
project's own ``localpipe.state.history.History`` and bulk-inserts rows through its peewee
models (one experiment, one stored graph, 100 pipeline runs of 100 step runs each, statuses
mixed as a real history has them), so the schema and indexes are exactly localpipe's.

Target: under 0.3 s each (median of 10, wall clock, a real process).

    python bench/cli_latency.py [--runs 100] [--steps-per-run 100] [--repeats 10]
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from _common import base_parser, localpipe_argv, machine, report, script_interpreter, temp_workspace, time_command

TARGET_SECONDS = 0.3
STATUSES = ("Completed", "Reused", "Reused", "Reused", "Failed", "Canceled")


def fill_history(root: Path, runs: int, steps_per_run: int) -> int:
    """Bulk-insert ``runs`` finished pipeline runs of ``steps_per_run`` step runs; returns the step-run count."""
    from localpipe.state.history import History, close_all
    from localpipe.state.layout import Layout

    history = History.open(Layout.of(root / ".localpipe"))
    db, m = history.db, history.tables
    now = time.time()
    names = [f"step_{i:03d}" for i in range(steps_per_run)]
    graph = {"steps": [], "parameters": {}, "description": "bench: filled history"}
    with db.atomic():
        experiment = m.Experiment.create(name="bench")
        stored = m.PipelineGraph.create(digest="bench-graph", description="bench", graph=graph)
        for r in range(runs):
            started = now - (runs - r) * 60
            run = m.PipelineRun.create(
                experiment=experiment,
                pipeline=stored,
                status="Completed",
                submitted_at=started,
                started_at=started,
                ended_at=started + 30,
            )
            rows = [
                {
                    "run": run.id,
                    "name": name,
                    "status": STATUSES[(r + i) % len(STATUSES)],
                    "reason": "runs: no earlier run",
                    "cache_key": f"{r:04d}{i:04d}" * 8,
                    "started_at": started,
                    "ended_at": started + 1,
                    "exit_code": 0,
                }
                for i, name in enumerate(names)
            ]
            for start in range(0, len(rows), 50):  # stays under SQLite's bound-variable cap
                m.StepRun.insert_many(rows[start : start + 50]).execute()
    total = m.StepRun.select().count()
    close_all()
    return total


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--steps-per-run", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=10)
    args = parser.parse_args()
    print(f"cli_latency: on {machine()}")

    with temp_workspace("cli", keep=args.keep) as ws:
        started = time.perf_counter()
        total = fill_history(ws, args.runs, args.steps_per_run)
        print(
            f"history.db: {args.runs} runs, {total} step runs, written in "
            f"{time.perf_counter() - started:.2f} s ({(ws / '.localpipe' / 'history.db').stat().st_size // 1024} KiB)"
        )

        lp = localpipe_argv()
        python = script_interpreter(lp[0])
        # The floor: this interpreter starting with its site-packages and doing nothing.
        report(time_command("python -c pass (floor)", [python, "-c", "pass"], ws, args.repeats, warmup=1))
        report(time_command("localpipe --help", [*lp, "--help"], ws, args.repeats, warmup=1), TARGET_SECONDS)
        report(time_command("localpipe runs", [*lp, "runs"], ws, args.repeats, warmup=1), TARGET_SECONDS)
        report(
            time_command(
                f"localpipe show {args.runs} ({args.steps_per_run} steps, no target)",
                [*lp, "show", str(args.runs)],
                ws,
                args.repeats,
                warmup=1,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
