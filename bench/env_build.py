"""Environments: building one with one small pure-Python package, and what running in it costs.

1. First build: `localpipe submit` of a one-step pipeline whose environment installs `six`, in a
   fresh machine cache and with uv's own cache empty (so the package is downloaded from the
   index, as on a new machine), median of 3. Printed: the build's own time (as the build
   records it) and the whole submission's. Target: the build < 5 s.
2. Per-step cost: --steps independent do-nothing steps run on localpipe's interpreter, then the
   same steps in an already built environment (allow_reuse=False, so every submission runs
   them all), alternated, median of 3 each. Target: under 10 ms more per step.

    python bench/env_build.py [--steps 100] [--repeats 3]
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import textwrap
from pathlib import Path

from _common import base_parser, localpipe_argv, machine, set_child_env, summary_counts, temp_workspace, time_once

BUILD_TARGET = 5.0
STEP_TARGET_MS = 10.0

ONE_STEP = """
from azureml.core import Environment, Workspace
from azureml.core.conda_dependencies import CondaDependencies
from azureml.core.runconfig import RunConfiguration
from azureml.pipeline.core import Pipeline
from azureml.pipeline.steps import PythonScriptStep

rc = RunConfiguration()
rc.environment = Environment("bench")
rc.environment.python.conda_dependencies = CondaDependencies.create(pip_packages=["six"])
pipeline = Pipeline(Workspace.from_config(), [PythonScriptStep("step.py", source_directory="src", name="s",
                                                                runconfig=rc, allow_reuse=False)])
"""

MANY_STEPS = """
from azureml.core import Environment, Workspace
from azureml.core.conda_dependencies import CondaDependencies
from azureml.core.runconfig import RunConfiguration
from azureml.pipeline.core import Pipeline
from azureml.pipeline.steps import PythonScriptStep

rc = RunConfiguration()
if {built}:
    rc.environment = Environment("bench")
    rc.environment.python.conda_dependencies = CondaDependencies.create(pip_packages=["six"])
steps = [PythonScriptStep("step.py", source_directory="src", name=f"s{{i}}", arguments=[str(i)], runconfig=rc,
                          allow_reuse=False) for i in range({count})]
pipeline = Pipeline(Workspace.from_config(), steps)
"""


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"env_build: on {machine()}")
    with temp_workspace("env", keep=args.keep) as ws:
        (ws / "src").mkdir()
        (ws / "src" / "step.py").write_text("import six\n")
        (ws / "one.py").write_text(textwrap.dedent(ONE_STEP))
        builds, submits = [], []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory(prefix="localpipe-bench-cache-") as cache:
                set_child_env("LOCALPIPE_CACHE_DIR", str(Path(cache) / "localpipe"))
                set_child_env("UV_CACHE_DIR", str(Path(cache) / "uv"))
                seconds, proc = time_once([*localpipe_argv(), "submit", "one.py"], ws)
                (built,) = [p for p in (Path(cache) / "localpipe" / "envs").iterdir() if not p.name.startswith(".")]
                builds.append(json.loads((built / "localpipe-env.json").read_text())["build_seconds"])
                submits.append(seconds)
        build = statistics.median(builds)
        print(
            f"first build of an environment with six (uv cache empty): median {build:.2f} s "
            f"(samples {', '.join(f'{b:.2f}' for b in builds)}; target < {BUILD_TARGET:g} s: "
            f"{'met' if build < BUILD_TARGET else 'MISSED'})"
        )
        print(f"    whole submission: median {statistics.median(submits):.2f} s")

        set_child_env("LOCALPIPE_CACHE_DIR", str(ws.parent / "cache"))
        set_child_env("UV_CACHE_DIR", None)
        for built in (False, True):
            (ws / f"many_{built}.py").write_text(textwrap.dedent(MANY_STEPS.format(built=built, count=args.steps)))
        time_once([*localpipe_argv(), "submit", "many_True.py"], ws)  # builds the environment once
        times: dict[bool, list[float]] = {False: [], True: []}
        for _ in range(args.repeats):
            for built in (False, True):
                seconds, proc = time_once([*localpipe_argv(), "submit", f"many_{built}.py"], ws)
                if summary_counts(proc.stdout).get("completed") != args.steps:
                    sys.exit(f"bench: not every step completed: {proc.stdout.decode()[-400:]}")
                times[built].append(seconds)
        local, venv = statistics.median(times[False]), statistics.median(times[True])
        extra = (venv - local) / args.steps * 1000 * len(os.sched_getaffinity(0))
        print(
            f"{args.steps} steps on localpipe's interpreter: median {local:.3f} s "
            f"(samples {', '.join(f'{s:.3f}' for s in times[False])})"
        )
        print(
            f"{args.steps} steps in a built environment: median {venv:.3f} s "
            f"(samples {', '.join(f'{s:.3f}' for s in times[True])})"
        )
        print(
            f"per step: {extra:+.1f} ms of slot time in a built environment "
            f"(target < {STEP_TARGET_MS:g} ms: {'met' if extra < STEP_TARGET_MS else 'MISSED'})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
