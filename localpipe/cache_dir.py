"""Where localpipe keeps what every workspace of the machine shares: built environments, the
``azureml`` runtime links, downloaded files (``LOCALPIPE_CACHE_DIR`` moves it)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """localpipe's machine-wide cache: ``LOCALPIPE_CACHE_DIR``, else ``$XDG_CACHE_HOME/localpipe``,
    else ``~/.cache/localpipe``."""
    configured = os.environ.get("LOCALPIPE_CACHE_DIR")
    if configured:
        return Path(configured).expanduser().absolute()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base).absolute() / "localpipe"
