"""Fit a logistic regression on the training split and save it."""

import argparse
import os
import pickle

import numpy as np
from sklearn.linear_model import LogisticRegression

from localpipe import Run

parser = argparse.ArgumentParser()
parser.add_argument("--splits", required=True)
parser.add_argument("--max-iter", type=int, required=True)
parser.add_argument("--model", required=True)
args = parser.parse_args()

data = np.loadtxt(os.path.join(args.splits, "train.csv"), delimiter=",")
model = LogisticRegression(max_iter=args.max_iter).fit(data[:, :-1], data[:, -1].astype(int))
with open(os.path.join(args.model, "model.pkl"), "wb") as handle:
    pickle.dump(model, handle)

run = Run.get_context()
run.log("train_accuracy", float(model.score(data[:, :-1], data[:, -1].astype(int))))
print(f"trained on {len(data)} rows")
