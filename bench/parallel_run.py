"""10,000 trivial items through a ParallelRunStep, against the same run() in a plain loop and in a
multiprocessing.Pool of 2 (issue 20).

The items are 10,000 small files (a FileDataset); ``run(mini_batch)`` returns each file's name.
Three ways, each a whole process, each writing the same lines in the same order:

- ``localpipe submit`` of a one-step pipeline: a ParallelRunStep with 2 workers,
  ``mini_batch_size`` 10 (1,000 mini-batches), its per-batch cache cleared before each repeat so
  that every batch runs;
- a plain loop in one process: ``init()``, then ``run()`` on each batch of 10 files;
- a ``multiprocessing.Pool(2)`` whose workers call ``init()`` once and ``run()`` per batch.

- and, for what localpipe costs around any step over this dataset, ``localpipe submit`` of a
  PythonScriptStep that takes the same dataset and does nothing (the "floor": start-up,
  planning, hashing the dataset for the step's cache key, placing it, recording the run).

Printed: the medians, the ratio to the pool (target <= 1.2), the step's own time (its process,
from the step's start to its end, without planning and submission), the submission less the
floor against the pool, and the overhead per mini-batch: (the step's time - the loop's) / batches.
A first, untimed round compiles what each way imports (a user's install has its byte-code).

    python bench/parallel_run.py [--items 10000] [--batch 10] [--repeats 3]
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
import textwrap

from _common import base_parser, localpipe_argv, machine, script_interpreter, temp_workspace, time_once

TARGET_RATIO = 1.2

ENTRY = """
import os

def init():
    pass

def run(mini_batch):
    return [os.path.basename(path) for path in mini_batch]
"""

PIPELINE = """
from azureml.core import Dataset, Environment, Workspace
from azureml.pipeline.core import Pipeline, PipelineData
from azureml.pipeline.steps import ParallelRunConfig, ParallelRunStep

ws = Workspace.from_config()
config = ParallelRunConfig(environment=Environment("bench"), entry_script="score.py", source_directory="src",
                           mini_batch_size={batch}, error_threshold=-1, output_action="append_row",
                           compute_target="local", node_count=1, process_count_per_node=2)
out = PipelineData("scores", datastore=ws.get_default_datastore())
step = ParallelRunStep("score", config, inputs=[Dataset.File.from_files("data").as_named_input("files")],
                       output=out, allow_reuse=False)
pipeline = Pipeline(ws, [step])
"""

# The floor: the same dataset into a step that does nothing.
FLOOR = """
from azureml.core import Dataset, Workspace
from azureml.pipeline.core import Pipeline
from azureml.pipeline.steps import PythonScriptStep

ws = Workspace.from_config()
step = PythonScriptStep(script_name="nothing.py", source_directory="floor", allow_reuse=False,
                        arguments=[Dataset.File.from_files("data").as_named_input("files")])
pipeline = Pipeline(ws, [step])
"""

# The loop and the pool: the same entry script, the same batches, the same output file.
BASELINE = """
import multiprocessing, os, sys
sys.path.insert(0, "src")
import score

def batches(folder, size):
    files = sorted(os.path.join(folder, name) for name in os.listdir(folder))
    return [files[i : i + size] for i in range(0, len(files), size)]

def main(mode, size):
    work = batches("data", size)
    if mode == "loop":
        score.init()
        results = [score.run(batch) for batch in work]
    else:
        with multiprocessing.Pool(2, initializer=score.init) as pool:
            results = pool.map(score.run, work, chunksize=1)
    with open(f"{mode}.txt", "w") as out:
        for rows in results:
            out.write("".join(f"{row}\\n" for row in rows))

if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]))
"""


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=10_000)
    parser.add_argument("--batch", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    batches = -(-args.items // args.batch)
    print(f"parallel_run: {args.items} items in {batches} mini-batches of {args.batch}, 2 workers, on {machine()}")
    with temp_workspace("parallel-run", keep=args.keep) as ws:
        (ws / "src").mkdir()
        (ws / "src" / "score.py").write_text(textwrap.dedent(ENTRY))
        (ws / "data").mkdir()
        for number in range(args.items):
            (ws / "data" / f"item{number:06d}.txt").write_text(f"{number}\n")
        (ws / "pipeline.py").write_text(PIPELINE.format(batch=args.batch))
        (ws / "floor.py").write_text(FLOOR)
        (ws / "floor").mkdir()
        (ws / "floor" / "nothing.py").write_text("")
        (ws / "baseline.py").write_text(BASELINE)
        submit = [*localpipe_argv(), "submit", "pipeline.py"]
        python = script_interpreter(submit[0])
        times: dict[str, list[float]] = {"localpipe": [], "step": [], "floor": [], "loop": [], "pool": []}
        for repeat in range(-1, args.repeats):  # interleaved, so that drift in the machine hits all alike
            shutil.rmtree(ws / ".localpipe" / "parallel-cache", ignore_errors=True)
            seconds, _ = time_once(submit, ws)
            step = _step_seconds(ws, 2 * repeat + 3)  # runs 1 and 2 are the warm-up's
            floor = time_once([*localpipe_argv(), "submit", "floor.py"], ws)[0]
            baseline = {
                mode: time_once([python, "baseline.py", mode, str(args.batch)], ws)[0] for mode in ("loop", "pool")
            }
            if repeat < 0:
                continue  # the warm-up: each way's modules compiled, as a user's install has them after its first use
            times["localpipe"].append(seconds), times["step"].append(step), times["floor"].append(floor)
            for mode, seconds in baseline.items():
                times[mode].append(seconds)
        expected = (ws / "loop.txt").read_text()
        if (ws / "pool.txt").read_text() != expected or _output(ws, 2 * args.repeats + 1) != expected:
            sys.exit("bench: the three ways did not write the same lines")
    medians = {name: statistics.median(values) for name, values in times.items()}
    for name, value in medians.items():
        print(f"  {name:<9} median {value:.3f} s  (samples {', '.join(f'{v:.3f}' for v in times[name])})")
    ratio = medians["localpipe"] / medians["pool"]
    step_ratio = medians["step"] / medians["pool"]
    verdict = "met" if ratio <= TARGET_RATIO else "MISSED"
    print(f"  localpipe submit / pool: {ratio:.2f} (target <= {TARGET_RATIO}: {verdict})")
    print(f"  the step alone / pool:   {step_ratio:.2f}")
    print(f"  (localpipe submit - floor) / pool: {(medians['localpipe'] - medians['floor']) / medians['pool']:.2f}")
    overhead = (medians["step"] - medians["loop"]) / batches
    print(f"  overhead per mini-batch (step - loop) / {batches}: {overhead * 1e3:.3f} ms")
    print(f"  items per second: step {args.items / medians['step']:.0f}, pool {args.items / medians['pool']:.0f}")
    return 0


def _step_seconds(ws, run_id: int) -> float:
    """The step's own time: its process's start to its end, as `localpipe show --json` gives them."""
    shown = json.loads(time_once([*localpipe_argv(), "show", str(run_id), "--json"], ws)[1].stdout)
    step = shown["steps"][0]
    return step["ended_at"] - step["started_at"]


def _output(ws, run_id: int) -> str:
    found = json.loads(time_once([*localpipe_argv(), "outputs", str(run_id), "--json"], ws)[1].stdout)
    path = found[0]["path"] if isinstance(found, list) else next(iter(found.values()))
    return open(f"{path}/parallel_run_step.txt").read()


if __name__ == "__main__":
    sys.exit(main())
