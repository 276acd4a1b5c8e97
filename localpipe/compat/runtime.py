"""The folder that gives a step running on another interpreter ``localpipe`` and ``azureml``.

A step in a built environment (a virtual environment of its own) must import ``localpipe`` (for
``Run.get_context()``) and the ``azureml`` shim, and nothing else of the environment localpipe is
installed in. ``step_pythonpath()`` makes, once per installation of localpipe, a folder holding
exactly two links, ``localpipe`` to the installed package and ``azureml`` to the shim's package,
to put on such a step's ``PYTHONPATH``.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent  # the installed localpipe package folder
LINKS = {"localpipe": PACKAGE, "azureml": PACKAGE / "compat" / "shim" / "azureml"}


def step_pythonpath(cache_root: Path) -> str:
    """``cache_root/runtime/<digest of the package's path>``, made if it is not there yet.

    Made aside and renamed into place, so that it is complete whenever it exists; another process
    making it at the same time is fine (the first rename wins), and one found incomplete or with a
    link leading elsewhere is replaced.
    """
    digest = hashlib.sha256(str(PACKAGE).encode()).hexdigest()[:16]
    folder = Path(cache_root) / "runtime" / digest
    if _complete(folder):
        return str(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    made = Path(tempfile.mkdtemp(prefix=f".{digest}.", dir=folder.parent))
    try:
        os.chmod(made, 0o755)  # mkdtemp's 0700 would keep out a step running as another user (a container's)
        for name, target in LINKS.items():
            os.symlink(target, made / name, target_is_directory=True)
        try:
            os.rename(made, folder)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            if not _complete(folder):  # not one a concurrent creator just made: a damaged one
                _replace(folder, made)
    finally:
        shutil.rmtree(made, ignore_errors=True)  # gone already when it was renamed; links are not followed
    return str(folder)


def _complete(folder: Path) -> bool:
    """Whether ``folder`` holds exactly the two links, leading where they should."""
    try:
        names = sorted(os.listdir(folder))
        return names == sorted(LINKS) and all(os.readlink(folder / n) == str(t) for n, t in LINKS.items())
    except OSError:
        return False


def _replace(folder: Path, made: Path) -> None:
    """Swap the damaged ``folder`` for ``made``: moved aside first, so that no other process sees
    it half-removed."""
    aside = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old.", dir=folder.parent))
    try:
        os.rename(folder, aside / "old")
    except FileNotFoundError:  # another process moved it aside first
        pass
    try:
        os.rename(made, folder)
    except OSError as exc:
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not _complete(folder):
            raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)
