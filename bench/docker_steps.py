"""Docker steps against the same steps run locally: the start overhead of one step, and 50 trivial
steps on 2 slots.

Every step is ``CommandStep(["python3", "-c", "pass"], allow_reuse=False)``, locally or in a
container of the test image (``localpipe-test/python:3.11``, made as .ci/docker makes it: run that
first). A step's time is its Running span as history.db records it (started_at to ended_at), for a
container from the launch to its removal (create, attach, start, wait, remove); the whole
`localpipe submit` wall time is printed too. Target: under 1 s more per step than locally.

    python bench/docker_steps.py [--repeats 5] [--steps 50] [--slots 2] [--image IMAGE]
"""

from __future__ import annotations

import sqlite3
import statistics
import textwrap
from pathlib import Path

from _common import base_parser, localpipe_argv, machine, set_child_env, temp_workspace, time_once

TARGET_OVERHEAD = 1.0

PIPELINE = """
    from localpipe import CommandStep, Environment, Pipeline, RunConfiguration, Workspace

    ws = Workspace.from_config()
    rc = RunConfiguration()
    if {docker}:
        rc.environment = Environment.from_docker_image("bench", "{image}")
    steps = [CommandStep(command=["python3", "-c", "pass"], name=f"s{{i}}", runconfig=rc, allow_reuse=False)
             for i in range({count})]
    pipeline = Pipeline(workspace=ws, steps=steps)
"""


def step_seconds(root: Path) -> list[float]:
    """The Running span of each step of the newest run."""
    with sqlite3.connect(root / ".localpipe" / "history.db") as db:
        rows = db.execute(
            "SELECT ended_at - started_at FROM step_run WHERE run_id = (SELECT max(id) FROM pipeline_run)"
        ).fetchall()
    return [row[0] for row in rows]


def submit(root: Path, docker: bool, count: int, image: str) -> tuple[float, list[float]]:
    (root / "pipeline.py").write_text(textwrap.dedent(PIPELINE.format(docker=docker, count=count, image=image)))
    wall, _ = time_once([*localpipe_argv(), "submit", "pipeline.py"], cwd=root)
    return wall, step_seconds(root)


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--image", default="localpipe-test/python:3.11")
    args = parser.parse_args()
    print(machine())
    set_child_env("LOCALPIPE_CPUS", str(args.slots))
    with temp_workspace("docker", args.keep) as root:
        one = {}
        for docker in (False, True):
            submit(root, docker, 1, args.image)  # warm-up: the interpreter's and the image's caches
            samples = [submit(root, docker, 1, args.image) for _ in range(args.repeats)]
            one[docker] = (statistics.median(s[0] for s in samples), statistics.median(s[1][0] for s in samples))
            where = "in Docker" if docker else "locally  "
            step, wall = one[docker][1], one[docker][0]
            print(f"one step {where}: step {step:.3f} s, submit {wall:.3f} s (median of {args.repeats})")
        overhead = one[True][1] - one[False][1]
        verdict = "met" if overhead < TARGET_OVERHEAD else "MISSED"
        print(f"start overhead of a Docker step: {overhead:.3f} s (target < {TARGET_OVERHEAD:g} s: {verdict})")
        for docker in (False, True):
            wall, steps = submit(root, docker, args.steps, args.image)
            where = "in Docker" if docker else "locally  "
            print(
                f"{args.steps} steps on {args.slots} slots {where}: {wall:.2f} s "
                f"(median step {statistics.median(steps):.3f} s)"
            )


if __name__ == "__main__":
    main()
