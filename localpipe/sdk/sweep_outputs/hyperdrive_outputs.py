"""A HyperDriveStep's own step (docs/hyperdrive.md): once its trials have ended, write its
``TrainingOutput("Metrics")`` (every trial's metrics as JSON: ``{trial: {metric: values}}``) and its
``TrainingOutput("Model", model_file=...)`` (that file of the trial with the best primary metric).

It runs as any step's script does, and reads the trials through the run handles a script has.
"""

import argparse
import json
import math
import sys
from pathlib import Path

from azureml.core import Run

parser = argparse.ArgumentParser()
parser.add_argument("--trials", required=True, help="the trials' step names, as JSON")
parser.add_argument("--metric", required=True)
parser.add_argument("--goal", choices=("maximize", "minimize"), required=True)
parser.add_argument("--metrics-output")
parser.add_argument("--model-output")
parser.add_argument("--model-file")
args = parser.parse_args()

pipeline_run = Run.get_context().parent
trials = {name: pipeline_run.find_step_run(name)[0] for name in json.loads(args.trials)}
metrics = {name: trial.get_metrics() for name, trial in trials.items()}
if args.metrics_output:
    values = {name: {k: v if isinstance(v, list) else [v] for k, v in found.items()} for name, found in metrics.items()}
    Path(args.metrics_output).write_text(json.dumps(values, indent=1, sort_keys=True))


def best_of(name):
    logged = metrics[name].get(args.metric)
    logged = [
        v
        for v in (logged if isinstance(logged, list) else [logged])
        if isinstance(v, (int, float)) and (isinstance(v, int) or math.isfinite(v))  # not NaN nor inf
    ]
    return (max if args.goal == "maximize" else min)(logged) if logged else None


if args.model_output:
    ranked = [n for n in trials if trials[n].get_status() in ("Completed", "Reused") and best_of(n) is not None]
    if not ranked:
        sys.exit(f"no completed trial logged {args.metric}: there is no best model to output")
    best = (max if args.goal == "maximize" else min)(ranked, key=best_of)
    try:
        trials[best].download_file(args.model_file, args.model_output)
    except Exception as exc:  # noqa: BLE001  (the step's reason: which file, which trial)
        sys.exit(f'the best trial "{best}" has no file {args.model_file}: {exc}')
    print(f"best trial: {best} ({args.metric} {best_of(best)})")
