"""Built environments: virtual environments made for environment definitions, kept in a cache
shared by every workspace of the machine (docs/environments.md).

``cache.py`` owns the cache folder (one environment per definition digest, built aside and
renamed into place under a lock), ``build.py`` runs the installer (uv, or venv and pip),
``pythons.py`` finds this machine's Python interpreters.
"""

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
