"""A HyperDriveConfig submitted (docs/hyperdrive.md): its trials planned as the steps of one run
(``HyperDriveRun``, in ``client/runs.py``, is the handle of that run), and what `localpipe show` prints of them.

Each trial is the configuration's script with its sampled values appended to its arguments
(``--lr 0.01``, as Azure ML passes them), a step named ``HD_<index>`` that the ordinary scheduler
runs, reuses when its script, data and values did not change, caps at ``max_concurrent_runs`` and
ends early by the sweep's policy (``engine/sweep.py``).
"""

from __future__ import annotations

from localpipe.errors import HyperDriveConfigException
from localpipe.plan.sweep import plan_trials, ranked_trials, trial_arguments, wait_for_proposals

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
    config and its trials, best first (``ranked_trials``); ``steps`` the run's steps by name."""
    from localpipe.state import reader

    sweeps = history.runs.for_scheduler(run_id).graph.get("sweeps") or []
    metrics = reader.metrics(history.layout, run_id) if sweeps else []
    return [(sweep["primary_metric_config"], ranked_trials(sweep, metrics, steps)) for sweep in sweeps]
