"""A HyperDriveConfig submitted (docs/hyperdrive.md): its trials planned as the steps of one run
(``HyperDriveRun``, in ``client/runs.py``, is the handle of that run), and what `localpipe show` prints of them.

Each trial is the configuration's script with its sampled values appended to its arguments
(``--lr 0.01``, as Azure ML passes them), a step named ``HD_<index>`` that the ordinary scheduler
runs, reuses when its script, data and values did not change, caps at ``max_concurrent_runs`` and
ends early by the sweep's policy (``engine/sweep.py``).
"""

from __future__ import annotations

import random

from localpipe.client.runs import _is_number
from localpipe.errors import HyperDriveConfigException
from localpipe.plan.sweep import argument_name, sample

TRIAL_PREFIX = "HD_"


def sweep_pipeline(workspace, config):
    """The pipeline of ``config``'s trials, with the sweep it is recorded with (``Pipeline.sweeps``)."""
    from localpipe.sdk.pipeline import Pipeline

    sweep = config.sweep()
    generator = sweep["generator_config"]
    seed = (generator.get("properties") or {}).get("rndseed")
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)  # recorded with the run: its draw can be repeated
    trials = {
        f"{TRIAL_PREFIX}{index}": values
        for index, values in enumerate(sample(generator, sweep["max_total_runs"], seed))
    }
    steps = [config.run_config.step(name=name, extra_arguments=_arguments(values), allow_reuse=True)
             for name, values in trials.items()]  # fmt: skip
    names = {o.name for step in steps[:1] for o in step.outputs}
    if names and len(steps) > 1:
        raise HyperDriveConfigException(
            f"HyperDriveConfig: run_config's output_data ({', '.join(sorted(names))}) would be written by every "
            "trial: write files under ./outputs instead (each trial keeps its own)"
        )
    pipeline = Pipeline(workspace, steps)
    # Each trial's values as pairs: history.db keeps JSON with sorted keys, and the order is the space's.
    pipeline.sweeps = [
        {**sweep, "seed": seed, "trials": {name: list(values.items()) for name, values in trials.items()}}
    ]
    return pipeline


def _arguments(values: dict) -> list[str]:
    return [part for name, value in values.items() for part in (argument_name(name), str(value))]


def trial_rows(history, run_id: int, statuses: dict[str, str]) -> tuple[dict, list[dict]] | None:
    """What `localpipe show` prints of a HyperDrive run: its primary metric config and, per trial,
    ``{"name", "status", "values", "best"}`` (best first); None for a run without a sweep."""
    from localpipe.state import reader

    sweeps = history.runs.for_scheduler(run_id).graph.get("sweeps")
    if not sweeps:
        return None
    sweep = sweeps[0]
    metric, maximize = sweep["primary_metric_config"]["name"], sweep["primary_metric_config"]["goal"] == "maximize"
    logged: dict[str, list] = {}
    for row in reader.metrics(history.layout, run_id):
        if row["name"] == metric and _is_number(row["value"]):
            logged.setdefault(row["step"], []).append(row["value"])
    rows = [
        {"name": name, "status": statuses.get(name), "values": dict(values),
         "best": (max if maximize else min)(logged[name]) if name in logged else None}
        for name, values in sweep["trials"].items()
    ]  # fmt: skip
    rows.sort(key=lambda r: (r["best"] is None, -(r["best"] or 0) if maximize else (r["best"] or 0)))
    return sweep["primary_metric_config"], rows
