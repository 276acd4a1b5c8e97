"""Train two tiny models on the prepared images and write their test accuracy to results.json.

- ``majority``: always predicts the most frequent training label (the baseline);
- ``bar_threshold``: an image's feature is its brightest row mean minus its brightest column
  mean (positive for a horizontal bar); the threshold is the midpoint of the two class means.
"""

import argparse
import csv
import json
import os
import statistics
from collections import Counter

SIDE = 5

parser = argparse.ArgumentParser()
parser.add_argument("--prepped_data", required=True, help="folder with prepped.csv")
parser.add_argument("--training_results", required=True, help="folder to write results.json into")
args = parser.parse_args()


def bar_feature(pixels: list[float]) -> float:
    rows = [pixels[r * SIDE : (r + 1) * SIDE] for r in range(SIDE)]
    columns = [pixels[c::SIDE] for c in range(SIDE)]
    return max(map(statistics.fmean, rows)) - max(map(statistics.fmean, columns))


with open(os.path.join(args.prepped_data, "prepped.csv"), newline="") as handle:
    images = [(label, split, [float(p) for p in pixels]) for _, label, split, *pixels in csv.reader(handle)]
train = [(label, bar_feature(pixels)) for label, split, pixels in images if split == "train"]
test = [(label, bar_feature(pixels)) for label, split, pixels in images if split == "test"]

majority = Counter(label for label, _ in train).most_common(1)[0][0]
means = {label: statistics.fmean(f for lab, f in train if lab == label) for label in {lab for lab, _ in train}}
threshold = statistics.fmean(means.values())
above = max(means, key=means.get)  # the label whose images lie above the threshold
below = min(means, key=means.get)


def accuracy(predict) -> float:
    return sum(predict(feature) == label for label, feature in test) / len(test)


results = {
    "majority": {"accuracy": accuracy(lambda f: majority), "label": majority},
    "bar_threshold": {
        "accuracy": accuracy(lambda f: above if f > threshold else below),
        "threshold": round(threshold, 4),
        "above": above,
    },
}
os.makedirs(args.training_results, exist_ok=True)
with open(os.path.join(args.training_results, "results.json"), "w") as handle:
    json.dump(results, handle, indent=2, sort_keys=True)
print(
    f"trained on {len(train)} images, tested on {len(test)}: "
    + ", ".join(f"{name} {r['accuracy']:.2f}" for name, r in results.items())
)
