"""``azureml.opendatasets``: the one Azure Open Dataset that Python already ships, ``Diabetes``.

Azure's copy (the "Sample: Diabetes" dataset: 442 patients, ten measurements and the disease's
progression a year later, ``Y``) is the data of Efron et al., "Least Angle Regression" (2004), which
scikit-learn ships too (``load_diabetes(scaled=False)``): the same rows, in the same order, with the
same values. localpipe reads that copy, so the tutorials that start with it run without a network;
the other open datasets live on Azure's storage only and are not here.
"""

from __future__ import annotations

import os
import tempfile

from localpipe.cache_dir import cache_root
from localpipe.errors import UsageError

# Azure's columns, in its order, and which of them are integers there (bigint) rather than doubles.
DIABETES_COLUMNS = ["AGE", "SEX", "BMI", "BP", "S1", "S2", "S3", "S4", "S5", "S6", "Y"]
DIABETES_INTEGERS = {"AGE", "SEX", "S1", "S6", "Y"}


class Diabetes:
    """The Sample Diabetes public dataset: ``Diabetes.get_tabular_dataset()``."""

    @classmethod
    def get_tabular_dataset(cls, enable_telemetry: bool = True):
        """The dataset as a TabularDataset (``enable_telemetry`` changes nothing: nothing is sent)."""
        from localpipe.sdk.data import Dataset

        return Dataset.Tabular.from_delimited_files(_diabetes_csv())

    @classmethod
    def get_file_dataset(cls, enable_telemetry: bool = True):
        """The dataset as a FileDataset: one CSV file (Azure's holds Parquet files of the same rows)."""
        from localpipe.sdk.data import Dataset

        return Dataset.File.from_files(_diabetes_csv())


def _diabetes_csv() -> str:
    """The dataset as a CSV file in the machine's cache, written once from scikit-learn's copy."""
    path = cache_root() / "opendatasets" / "diabetes.csv"
    if path.exists():
        return str(path)
    try:
        from sklearn.datasets import load_diabetes
    except ImportError:
        raise UsageError(
            "azureml.opendatasets.Diabetes is read from scikit-learn's copy of the dataset (the same 442 "
            "rows as Azure's), and scikit-learn is not installed: pip install scikit-learn"
        ) from None
    data = load_diabetes(scaled=False)
    lines = [",".join(DIABETES_COLUMNS)]
    for features, target in zip(data.data, data.target):
        values = [*features, target]
        lines.append(",".join(
            str(int(v)) if name in DIABETES_INTEGERS else repr(float(v))
            for name, v in zip(DIABETES_COLUMNS, values)
        ))  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".diabetes-")
    with os.fdopen(handle, "w") as out:
        out.write("\n".join(lines) + "\n")
    os.replace(temporary, path)  # whole or not at all: another process may be writing it too
    return str(path)
