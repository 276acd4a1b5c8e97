"""Compare the trained models: pick the one with the best test accuracy and log it."""

import argparse
import json
import os

from azureml.core import Run

parser = argparse.ArgumentParser()
parser.add_argument("--training_results", required=True, help="folder with results.json")
args = parser.parse_args()

with open(os.path.join(args.training_results, "results.json")) as handle:
    results = json.load(handle)
best = max(sorted(results), key=lambda name: results[name]["accuracy"])

run = Run.get_context()
for name in sorted(results):
    run.log_row("models", model=name, accuracy=results[name]["accuracy"])
run.log("accuracy", results[best]["accuracy"])
run.tag("best_model", best)
print(f"best model: {best} (test accuracy {results[best]['accuracy']:.2f})")
