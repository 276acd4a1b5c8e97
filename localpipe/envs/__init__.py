"""Built environments: virtual environments made for environment definitions, kept in a cache
shared by every workspace of the machine (docs/environments.md).

``cache.py`` owns the cache folder (one environment per definition digest, built aside and
renamed into place under a lock), ``build.py`` runs the installer (uv, or venv and pip),
``pythons.py`` finds this machine's Python interpreters.
"""

from __future__ import annotations

from localpipe.cache_dir import cache_root

__all__ = ["cache_root"]
