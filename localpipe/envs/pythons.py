"""The Python interpreters of this machine, for environments that ask for a Python version.

Looked for only when a definition asks for a version other than the one localpipe runs on:
``python3.X`` on PATH, pyenv's versions, uv's managed Pythons and the system's. Each is asked
its version once; the answers are kept in ``<cache>/pythons.json`` by file identity.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ASK = "import sys; print('%d.%d.%d' % sys.version_info[:3])"


def candidates() -> list[str]:
    names = ["python3", "python", *(f"python3.{minor}" for minor in range(6, 20))]
    found = [sys.executable, *filter(None, (shutil.which(name) for name in names))]
    pyenv = os.environ.get("PYENV_ROOT") or os.path.expanduser("~/.pyenv")
    uv_pythons = os.environ.get("UV_PYTHON_INSTALL_DIR") or os.path.expanduser("~/.local/share/uv/python")
    for pattern in (f"{pyenv}/versions/*/bin/python3", f"{uv_pythons}/*/bin/python3", "/usr/bin/python3.*"):
        found += sorted(glob.glob(pattern))
    return found


def find_pythons(cache: Path) -> list[tuple[str, str]]:
    """(version, path) of each distinct interpreter found, the one localpipe runs on first."""
    known = _read(cache)
    seen: set[str] = set()
    found: list[tuple[str, str]] = []
    for path in candidates():
        real = os.path.realpath(path)
        if real in seen or not os.access(real, os.X_OK) or real.endswith("-config"):
            continue
        seen.add(real)
        try:
            st = os.stat(real)
        except OSError:
            continue
        identity = f"{real}:{st.st_size}:{st.st_mtime_ns}"
        if identity not in known:
            known[identity] = _ask(path)
        if known[identity]:
            found.append((known[identity], path))
    _write(cache, known)
    return found


def _ask(path: str) -> str | None:
    try:
        out = subprocess.run([path, "-c", ASK], capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _read(cache: Path) -> dict[str, str | None]:
    """The versions known, by identity; what is not a version (JSON of another shape: a copy gone
    wrong, an edit by hand) is asked again."""
    try:
        known = json.loads(cache.read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(known, dict):
        return {}
    return {identity: version for identity, version in known.items() if version is None or isinstance(version, str)}


def _write(cache: Path, known: dict) -> None:
    try:
        cache.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache.with_name(f"{cache.name}.{os.getpid()}")
        temporary.write_text(json.dumps(known, indent=1))
        os.replace(temporary, cache)
    except OSError:
        pass  # only a cache
