"""Split the iris data that ships with scikit-learn into train and test CSV files."""

import argparse
import os

import numpy as np
from sklearn.datasets import load_iris
from sklearn.model_selection import train_test_split

from localpipe import Run

parser = argparse.ArgumentParser()
parser.add_argument("--test-fraction", type=float, required=True)
parser.add_argument("--output", required=True)
args = parser.parse_args()

iris = load_iris()
x_train, x_test, y_train, y_test = train_test_split(
    iris.data, iris.target, test_size=args.test_fraction, random_state=0, stratify=iris.target
)
os.makedirs(args.output, exist_ok=True)
for name, x, y in (("train", x_train, y_train), ("test", x_test, y_test)):
    np.savetxt(os.path.join(args.output, f"{name}.csv"), np.column_stack([x, y]), delimiter=",", fmt="%.4f")

run = Run.get_context()
run.log("train_rows", len(y_train))
run.log("test_rows", len(y_test))
print(f"wrote {len(y_train)} training and {len(y_test)} test rows to {args.output}")
