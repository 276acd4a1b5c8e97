"""A HyperDriveConfig submitted (docs/hyperdrive.md): its trials planned as the steps of one run
(``HyperDriveRun``, in ``client/runs.py``, is the handle of that run), and what `localpipe show` prints of them.

Each trial is the configuration's script with its sampled values appended to its arguments
(``--lr 0.01``, as Azure ML passes them), a step named ``HD_<index>`` that the ordinary scheduler
runs, reuses when its script, data and values did not change, caps at ``max_concurrent_runs`` and
ends early by the sweep's policy (``engine/sweep.py``).
"""

from __future__ import annotations

import json

from localpipe.client.runs import _is_number
from localpipe.errors import HyperDriveConfigException
from localpipe.plan.sweep import plan_trials, trial_arguments, wait_for_proposals

TRIAL_PREFIX = "HD_"


def sweep_pipeline(workspace, config):
    """The pipeline of ``config``'s trials, with the sweep it is recorded with (``Pipeline.sweeps``)."""
    from localpipe.sdk.pipeline import Pipeline

    trials, sweep = plan_trials(config, TRIAL_PREFIX)
    steps = [config.run_config.step(name=name, extra_arguments=trial_arguments(values), allow_reuse=True)
             for name, values in trials.items()]  # fmt: skip
    wait_for_proposals(steps, sweep)
    names = {o.name for step in steps[:1] for o in step.outputs}
    if names and len(steps) > 1:
        raise HyperDriveConfigException(
            f"HyperDriveConfig: run_config's output_data ({', '.join(sorted(names))}) would be written by every "
            "trial: write files under ./outputs instead (each trial keeps its own)"
        )
    pipeline = Pipeline(workspace, steps)
    pipeline.sweeps = [sweep]
    return pipeline


def trial_rows(history, run_id: int, steps: dict[str, dict]) -> list[tuple[dict, list[dict]]]:
    """What `localpipe show` prints of each sweep of a run (none for most runs): its primary metric
    config and, per trial, ``{"name", "status", "values", "best"}``, best first; ``steps`` the run's
    steps by name (their status, and the values Bayesian sampling proposed in their properties)."""
    from localpipe.state import reader

    sweeps = history.runs.for_scheduler(run_id).graph.get("sweeps") or []
    logged: dict[str, list] = {}
    if sweeps:
        for row in reader.metrics(history.layout, run_id):
            logged.setdefault(row["step"], []).append(row)
    found = []
    for sweep in sweeps:
        metric, maximize = sweep["primary_metric_config"]["name"], sweep["primary_metric_config"]["goal"] == "maximize"
        rows = []
        for name, values in sweep["trials"].items():
            mine = [r["value"] for r in logged.get(name, []) if r["name"] == metric and _is_number(r["value"])]
            best = (max if maximize else min)(mine) if mine else None
            step = steps.get(name, {})
            if values is None:  # proposed while the run went on (none yet: not decided)
                values = json.loads((step.get("properties") or {}).get("hyperparameters", "{}")).items()
            rows.append({"name": name, "status": step.get("status"), "values": dict(values), "best": best})
        rows.sort(key=lambda r: (r["best"] is None, -(r["best"] or 0) if maximize else (r["best"] or 0)))
        found.append((sweep["primary_metric_config"], rows))
    return found
