"""Score the trained model on the test split and log its accuracy."""

import argparse
import os
import pickle

import numpy as np

from localpipe import Run

parser = argparse.ArgumentParser()
parser.add_argument("--splits", required=True)
parser.add_argument("--model", required=True)
args = parser.parse_args()

data = np.loadtxt(os.path.join(args.splits, "test.csv"), delimiter=",")
with open(os.path.join(args.model, "model.pkl"), "rb") as handle:
    model = pickle.load(handle)
x, y = data[:, :-1], data[:, -1].astype(int)
accuracy = float(model.score(x, y))

run = Run.get_context()
run.log("accuracy", accuracy)
for label in sorted(set(y)):
    mask = y == label
    run.log_row("per_class", label=int(label), accuracy=float(model.score(x[mask], y[mask])))
print(f"test accuracy: {accuracy:.4f}")
