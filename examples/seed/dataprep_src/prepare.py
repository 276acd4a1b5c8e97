"""Prepare the "images": read each small grey-scale CSV image, scale its pixels to [0, 1], split train/test.

Writes ``prepped.csv`` into the output folder: one row per image with its file name, label,
split (every third image of each label is held out for testing) and its normalised pixels,
row by row.
"""

import argparse
import csv
import os
from collections import Counter

from azureml.core import Run

parser = argparse.ArgumentParser()
parser.add_argument("--input", required=True, help="folder with labels.csv and one CSV per image")
parser.add_argument("--output", required=True, help="folder to write prepped.csv into")
args = parser.parse_args()

with open(os.path.join(args.input, "labels.csv"), newline="") as handle:
    labels = list(csv.DictReader(handle))

rows = []
per_label: Counter = Counter()
for item in labels:
    with open(os.path.join(args.input, item["file"]), newline="") as handle:
        pixels = [int(value) for row in csv.reader(handle) for value in row]
    low, high = min(pixels), max(pixels)
    scaled = [(p - low) / (high - low) if high > low else 0.0 for p in pixels]
    per_label[item["label"]] += 1
    split = "test" if per_label[item["label"]] % 3 == 0 else "train"
    rows.append([item["file"], item["label"], split, *(f"{p:.4f}" for p in scaled)])

# localpipe creates the output folder; makedirs keeps the script runnable on Azure ML too.
os.makedirs(args.output, exist_ok=True)
with open(os.path.join(args.output, "prepped.csv"), "w", newline="") as handle:
    csv.writer(handle).writerows(rows)

Run.get_context().log("images", len(rows))
print(f"prepared {len(rows)} images into {args.output}")
