"""200 independent do-nothing steps through `localpipe submit`, against `xargs -P2 -n1 python`.

Both run the same 200 scripts (one per source folder, each doing nothing) with as many at a
time as the machine has CPU slots (the scheduler's default; 2 here), so the ratio is what
localpipe's planning, snapshots, bookkeeping and process handling add per step.

Target: localpipe's wall time / xargs's <= 1.3.

    python bench/parallel_200.py [--steps 200] [--repeats 3]
"""

from __future__ import annotations

import os
import statistics
import sys

from _common import (
    base_parser,
    generate_independent,
    last_run_steps,
    localpipe_argv,
    machine,
    script_interpreter,
    summary_counts,
    temp_workspace,
    time_once,
)

TARGET_RATIO = 1.3


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    slots = len(os.sched_getaffinity(0))
    print(f"parallel_{args.steps}: {args.steps} independent steps, {slots} slots, on {machine()}")

    with temp_workspace("parallel", keep=args.keep) as ws:
        # allow_reuse=False: every submission runs all the steps, so repeats need no fresh workspace.
        pipeline, scripts = generate_independent(ws / "gen", args.steps, allow_reuse=False)
        submit = [*localpipe_argv(), "submit", str(pipeline.relative_to(ws))]
        # The steps run with the interpreter localpipe runs on; give xargs the same one.
        python = script_interpreter(submit[0])
        # Paths go to xargs NUL-separated on stdin: no shell, and no quoting of user data.
        xargs = ["xargs", "-0", "-P", str(slots), "-n", "1", python]
        paths = b"\0".join(os.fsencode(p) for p in scripts)

        ours, theirs = [], []
        for _ in range(args.repeats):  # interleaved, so that drift in the machine hits both alike
            seconds, proc = time_once(submit, ws)
            completed = summary_counts(proc.stdout).get("completed", 0)
            if completed != args.steps:
                sys.exit(f"bench: localpipe completed {completed} of {args.steps} steps")
            ours.append(seconds)
            seconds, _ = time_once(xargs, ws, stdin=paths)
            theirs.append(seconds)

        steps = last_run_steps(ws)
        print(
            f"localpipe submit: median {statistics.median(ours):.3f} s, min {min(ours):.3f} s  "
            f"(samples {', '.join(f'{s:.3f}' for s in ours)}; last run in history.db: {steps})"
        )
        print(
            f"xargs -P{slots} -n1: median {statistics.median(theirs):.3f} s, min {min(theirs):.3f} s  "
            f"(samples {', '.join(f'{s:.3f}' for s in theirs)})"
        )
        ratio = statistics.median(ours) / statistics.median(theirs)
        per_step = (statistics.median(ours) - statistics.median(theirs)) * slots / args.steps
        print(
            f"ratio localpipe / xargs: {ratio:.2f}  (target <= {TARGET_RATIO:g}: "
            f"{'met' if ratio <= TARGET_RATIO else 'MISSED'}); "
            f"localpipe adds {per_step * 1000:.0f} ms of slot time per step"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
