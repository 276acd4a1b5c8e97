"""Small wheels made on the spot, so that environment builds are tested without a package index.

``make_wheel`` writes a real wheel (PEP 427: the module, METADATA, WHEEL and RECORD in a zip) that
uv and pip install like any other; the tests point the installer at their folder with
``UV_FIND_LINKS`` and ``UV_OFFLINE`` (``offline_index``).
"""

from __future__ import annotations

import base64
import hashlib
import zipfile
from pathlib import Path


def make_wheel(
    folder: Path, name: str, version: str, code: str, requires: list[str] = (), single_file: bool = False
) -> Path:
    """A pure-Python wheel of distribution ``name`` holding the module ``name`` (dashes as
    underscores) with ``code`` as its ``__init__.py`` (as its file ``name.py``, in site-packages
    itself, with ``single_file``, as six or threadpoolctl are)."""
    module = name.replace("-", "_")
    dist_info = f"{module}-{version}.dist-info"
    files = {
        f"{module}.py" if single_file else f"{module}/__init__.py": code,
        f"{dist_info}/METADATA": "Metadata-Version: 2.1\n"
        f"Name: {name}\nVersion: {version}\n" + "".join(f"Requires-Dist: {r}\n" for r in requires),
        f"{dist_info}/WHEEL": (
            "Wheel-Version: 1.0\nGenerator: localpipe-tests\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
        ),
    }
    record = []
    for path, text in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(text.encode()).digest()).rstrip(b"=").decode()
        record.append(f"{path},sha256={digest},{len(text.encode())}")
    record.append(f"{dist_info}/RECORD,,")
    files[f"{dist_info}/RECORD"] = "\n".join(record) + "\n"
    folder.mkdir(parents=True, exist_ok=True)
    wheel = folder / f"{module}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
    return wheel


def offline_index(folder: Path) -> dict[str, str]:
    """Environment variables that make uv (and pip) install from ``folder`` only, never asking an
    index (uv has no variable for --no-index: UV_OFFLINE keeps it off the network)."""
    return {"UV_FIND_LINKS": str(folder), "UV_OFFLINE": "1", "PIP_FIND_LINKS": str(folder), "PIP_NO_INDEX": "1"}
