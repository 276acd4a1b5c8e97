"""Curated environments: Azure ML's prebuilt ``AzureML-...`` environments, as definitions built
like any other on first use.

Each keeps the main packages of Azure's published definition (the legacy list of 2020 and
``Azure/azureml-assets``) and leaves out what localpipe provides itself (``azureml-*``) or what
serves Azure's own services (``mlflow`` for its tracking server, ``ipykernel``, ``horovod``,
MPI). Azure pins versions for the Python of its image (3.6 to 3.10); here the Python is the one
localpipe runs on, so a version is pinned only where the name promises one and it installs on a
current Python, or where Azure's samples need Azure's pin and the Python allows it (docs/environments.md
lists them).
"""

from __future__ import annotations

from localpipe.errors import NotFoundError

PREFIX = "AzureML-"

_SKLEARN = ["scikit-learn", "pandas", "numpy", "scipy", "matplotlib", "psutil", "tqdm"]
_LIGHTGBM = ["lightgbm", "xgboost", "scikit-learn", "dask", "distributed", "pandas", "numpy", "scipy"]
_TORCH = ["torch", "torchvision", "torchaudio"]

# name -> (pip packages, Azure's base image: the default CPU or GPU one). The conda packages of
# Azure's definitions are PyPI packages of the same name, so all are listed as pip packages.
CURATED: dict[str, tuple[list[str], str]] = {
    "AzureML-Minimal": ([], "cpu"),
    "AzureML-Tutorial": (
        ["pandas", "numpy", "tqdm", "scikit-learn", "matplotlib", "sklearn-pandas"],
        "cpu",
    ),
    "AzureML-Scikit-learn-0.20.3": (["scikit-learn", "scipy", "joblib"], "cpu"),
    "AzureML-sklearn-0.24-ubuntu18.04-py37-cpu": (_SKLEARN, "cpu"),
    "AzureML-sklearn-1.0-ubuntu20.04-py38-cpu": (_SKLEARN, "cpu"),
    "AzureML-sklearn-1.0": (["scikit-learn", "pandas", "scipy", "numpy", "joblib", "matplotlib"], "cpu"),
    # Azure pins numpy 1.22 on its Python 3.10; 1.23 is the last with np.str and np.float (its sklearn
    # sample calls them) and installs up to 3.11; on a later Python, scikit-learn brings the newest.
    "AzureML-sklearn-1.5": (
        ["scikit-learn~=1.5.0", "pandas", "scipy", 'numpy<1.24; python_version < "3.12"', "joblib"],
        "cpu",
    ),
    "AzureML-lightgbm-3.2-ubuntu18.04-py37-cpu": (_LIGHTGBM, "cpu"),
    "AzureML-lightgbm-3.3": (["lightgbm", "xgboost", "scikit-learn", "distributed", "pandas"], "cpu"),
    "AzureML-PyTorch-1.6-CPU": (["torch", "torchvision"], "cpu"),
    "AzureML-PyTorch-1.6-GPU": (["torch", "torchvision"], "gpu"),
    "AzureML-pytorch-1.10-ubuntu18.04-py38-cuda11-gpu": (_TORCH, "gpu"),
    "AzureML-acpt-pytorch-2.8-cuda12.6": ([*_TORCH, "transformers"], "gpu"),
    "AzureML-TensorFlow-2.2-CPU": (["tensorflow"], "cpu"),
    "AzureML-TensorFlow-2.3-GPU": (["tensorflow"], "gpu"),
    "AzureML-tensorflow-2.16-cuda12": (["tensorflow~=2.16.0", "tensorboard", "pandas", "numpy"], "gpu"),
}


def names() -> list[str]:
    return list(CURATED)


def is_curated(name: str) -> bool:
    """Whether ``name`` is in the curated namespace (``AzureML-``), known or not."""
    return isinstance(name, str) and name.lower().startswith(PREFIX.lower())


def canonical(name: str) -> str:
    """The curated environment ``name`` as Azure spells it: found whatever its case, as Azure finds
    it (its sklearn sample asks for ``azureml-sklearn-1.5``); NotFoundError listing the curated names."""
    for known in CURATED:
        if known.lower() == name.lower():
            return known
    raise NotFoundError(
        f'curated environment "{name}" does not exist: use one of {", ".join(CURATED)}, '
        "or build your own with Environment(name)"
    )


def definition(name: str) -> tuple[list[str], str]:
    """The pip packages and the kind of image ("cpu" or "gpu") of the curated environment ``name``
    (any case); NotFoundError listing the curated names."""
    return CURATED[canonical(name)]
