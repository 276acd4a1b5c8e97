"""Resubmitting a 1,000-step pipeline that changed nothing: the whole `localpipe submit` process.

Generates 40 levels of 25 steps (each step its own source folder and script; a step at level
k > 0 reads one or two outputs of level k-1 through ``.as_input()`` and writes a small file),
submits it once cold (every step runs), then times whole resubmissions, every step Reused.

Target: a fully reused resubmission in under 0.5 s (issue 16; it was 1 s before), median of 5,
wall clock, a real process.

    python bench/reuse_1000.py              # the figures
    python bench/reuse_1000.py --profile    # also cProfile one resubmission and -X importtime
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from _common import (
    base_parser,
    generate_layered,
    last_run_steps,
    localpipe_argv,
    machine,
    print_profile,
    report,
    run,
    script_interpreter,
    summary_counts,
    temp_workspace,
    time_command,
    time_once,
)

TARGET_SECONDS = 0.5  # issue 16's (1 s before it)


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--levels", type=int, default=40)
    parser.add_argument("--width", type=int, default=25)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--profile", action="store_true", help="Also run one resubmission under cProfile and one under -X importtime."
    )
    args = parser.parse_args()
    total = args.levels * args.width
    print(f"reuse_{total}: {args.levels} levels x {args.width} steps on {machine()}")

    with temp_workspace("reuse", keep=args.keep) as ws:
        pipeline = generate_layered(ws / "gen", args.levels, args.width)
        submit = [*localpipe_argv(), "submit", str(pipeline.relative_to(ws))]

        cold, proc = time_once(submit, cwd=ws)
        counts = summary_counts(proc.stdout)
        print(f"cold submit (every step runs): {cold:.2f} s  {counts}")
        if counts.get("completed") != total:
            sys.exit(f"bench: the cold run completed {counts.get('completed', 0)} of {total} steps")

        def all_reused(done) -> None:
            got = summary_counts(done.stdout).get("reused", 0)
            if got != total:
                sys.exit(
                    f"bench: a resubmission reused {got} of {total} steps, not all: the figure "
                    "would not be of a fully reused run"
                )

        timing = time_command(f"reused resubmit of {total} steps", submit, ws, args.repeats, check=all_reused)
        report(timing, TARGET_SECONDS)
        steps = last_run_steps(ws)
        print(f"steps Reused in the last resubmission (history.db): {steps.get('Reused', 0)} of {total}  {steps}")

        if args.profile:
            profile(submit, ws, all_reused)
    return 0


def profile(submit: list[str], ws: Path, check) -> None:
    """cProfile one more reused resubmission, then list its slowest imports with -X importtime."""
    script = submit[0]
    python = script_interpreter(script)
    with tempfile.TemporaryDirectory() as tmp:
        stats = Path(tmp) / "submit.prof"
        check(run([python, "-m", "cProfile", "-o", str(stats), script, *submit[1:]], cwd=ws))
        print("\ncProfile of one reused resubmission, top 15 by cumulative time:")
        print_profile(stats, 15)

    proc = run([python, "-X", "importtime", script, *submit[1:]], cwd=ws)
    check(proc)
    rows = []
    for line in proc.stderr.decode(errors="replace").splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = (part.strip() for part in line[len("import time:") :].split("|"))
            if cumulative.isdigit():
                rows.append((int(cumulative), name))
    print("-X importtime of one reused resubmission, top 10 imports by cumulative microseconds:")
    for cumulative, name in sorted(rows, reverse=True)[:10]:
        print(f"    {cumulative / 1000:8.1f} ms  {name}")


if __name__ == "__main__":
    sys.exit(main())
