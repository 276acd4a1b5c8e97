"""Steps on a Ray target against the same steps run locally, and the cold start of a local Ray.

Every step is ``CommandStep(["python3", "-c", "pass"], allow_reuse=False)``, independent of the
others, on the local target (LOCALPIPE_CPUS slots) or on a ``RayCompute`` target of a local Ray
with as many CPUs, started by this script (dashboard off, 100 MiB object store). For each it
prints the `localpipe submit` wall time, the scheduler's CPU seconds (the submit process and, for
local steps, its step supervisor: on Ray the supervisors run in Ray's workers, which are not
counted), per step, and the median Running span that history.db records. The Ray runs are made
twice: the first starts Ray's worker processes (cold), the second finds them (warm). The cold
start is a fresh process's ``import ray``, ``ray.init()`` of a local Ray and its first task's
round trip (a worker's start), each timed. docs/scale-out.md has the figures of this machine.

    python bench/ray_steps.py [--steps 200] [--cpus 2] [--repeats 3]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path

from _common import _child_env, base_parser, localpipe_argv, machine, run_submit, set_child_env, temp_workspace
from docker_steps import step_seconds

OBJECT_STORE = 100 * 2**20

PIPELINE = """
    from localpipe import CommandStep, ComputeTarget, Pipeline, RayCompute, Workspace

    ws = Workspace.from_config()
    target = None
    if {address!r}:
        target = ComputeTarget.create(ws, "ray", RayCompute.provisioning_configuration(address={address!r}))
    steps = [CommandStep(command=["python3", "-c", "pass"], name=f"s{{i}}", compute_target=target, allow_reuse=False)
             for i in range({count})]
    pipeline = Pipeline(workspace=ws, steps=steps)
"""

COLD_START = """
import json, time
started = time.perf_counter()
import ray
imported = time.perf_counter()
ray.init(address="local", num_cpus={cpus}, include_dashboard=False, object_store_memory={store}, log_to_driver=False)
initialized = time.perf_counter()
ray.get(ray.remote(lambda: None).remote())
answered = time.perf_counter()
ray.shutdown()
times = {{"import": imported - started, "init": initialized - imported, "first_task": answered - initialized}}
print(json.dumps(times))
"""


def cold_start(cpus: int) -> dict[str, float]:
    script = COLD_START.format(cpus=cpus, store=OBJECT_STORE)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=_child_env, check=True)
    return json.loads(proc.stdout.splitlines()[-1])


def submit(root: Path, address: str, count: int, label: str) -> None:
    (root / "pipeline.py").write_text(textwrap.dedent(PIPELINE.format(address=address, count=count)))
    sample = run_submit([*localpipe_argv(), "submit", "pipeline.py"], root, _child_env)
    if sample.completed != count:
        sys.exit(f"bench: {label}: {sample.completed} of {count} steps completed")
    print(
        f"{label}: {sample.wall:.2f} s ({sample.wall / count * 1000:.1f} ms a step), scheduler CPU "
        f"{sample.cpu:.2f} s ({sample.cpu / count * 1000:.1f} ms a step), median Running span "
        f"{statistics.median(step_seconds(root)) * 1000:.0f} ms"
    )


def main() -> None:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(machine())
    starts = [cold_start(args.cpus) for _ in range(args.repeats)]
    parts = {part: statistics.median(s[part] for s in starts) for part in starts[0]}
    print(
        f"cold start of a local Ray (median of {args.repeats}): import ray {parts['import']:.2f} s, ray.init "
        f"{parts['init']:.2f} s, first task {parts['first_task']:.2f} s; {sum(parts.values()):.2f} s in all"
    )
    import ray

    cluster = ray.init(
        address="local", num_cpus=args.cpus, include_dashboard=False, object_store_memory=OBJECT_STORE,
        log_to_driver=False,
    )  # fmt: skip
    address = cluster.address_info["gcs_address"]
    # A local Ray turns on token authentication in the process that starts it; its clients must ask for it too.
    set_child_env("RAY_AUTH_MODE", os.environ.get("RAY_AUTH_MODE"))
    set_child_env("LOCALPIPE_CPUS", str(args.cpus))
    try:
        with temp_workspace("ray", args.keep) as root:
            submit(root, "", 1, "1 step locally (warm-up)")
            submit(root, "", 1, "1 step locally")
            submit(root, address, 1, "1 step on Ray, its first run (cold workers)")
            submit(root, address, 1, "1 step on Ray")
            submit(root, "", args.steps, f"{args.steps} steps locally on {args.cpus} slots")
            submit(root, address, args.steps, f"{args.steps} steps on Ray, {args.cpus} CPUs, workers started")
            submit(root, address, args.steps, f"{args.steps} steps on Ray, {args.cpus} CPUs, again")
    finally:
        ray.shutdown()


if __name__ == "__main__":
    main()
