"""The folder that gives a step running on another interpreter ``localpipe`` and ``azureml``.

A step in a built environment (a virtual environment of its own) must import ``localpipe`` (for
``Run.get_context()``) and the ``azureml`` shim, and nothing else of the environment localpipe is
installed in. ``step_pythonpath()`` makes, once per installation of localpipe, a folder holding
exactly two links, ``localpipe`` to the installed package and ``azureml`` to the shim's package,
to put on such a step's ``PYTHONPATH``, and a hidden ``.dependencies`` folder of links to the
libraries that the SDK's workspace calls need (peewee, blake3), which localpipe appends to the
end of ``sys.path`` of such a step (``LOCALPIPE_DEPENDENCIES``), after the environment's own
packages, so that they never shadow a version the environment installs.
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
DEPENDENCIES_FOLDER = ".dependencies"
# What `run.experiment.workspace` and its look-ups import (psutil: whether a run's scheduler is alive).
DEPENDENCIES = ("peewee", "playhouse", "blake3", "psutil")


def _dependency_links() -> dict[str, Path]:
    """Link name -> the installed file or folder of each of DEPENDENCIES (a module file keeps its name)."""
    import importlib.util

    links = {}
    for name in DEPENDENCIES:
        spec = importlib.util.find_spec(name)
        if spec is None or spec.origin is None:
            continue
        origin = Path(spec.origin)
        target = origin.parent if spec.submodule_search_locations else origin
        links[target.name] = target
    return links


def step_pythonpath(cache_root: Path) -> str:
    """``cache_root/runtime/<digest of the package's path>``, made if it is not there yet.

    Made aside and renamed into place, so that it is complete whenever it exists; another process
    making it at the same time is fine (the first rename wins), and one found incomplete or with a
    link leading elsewhere is replaced.
    """
    dependencies = _dependency_links()
    digest = hashlib.sha256(str([PACKAGE, *sorted(dependencies.values())]).encode()).hexdigest()[:16]
    folder = Path(cache_root) / "runtime" / digest
    if _complete(folder, dependencies):
        return str(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    made = Path(tempfile.mkdtemp(prefix=f".{digest}.", dir=folder.parent))
    try:
        os.chmod(made, 0o755)  # mkdtemp's 0700 would keep out a step running as another user (a container's)
        for name, target in LINKS.items():
            os.symlink(target, made / name, target_is_directory=True)
        os.mkdir(made / DEPENDENCIES_FOLDER, 0o755)
        for name, target in dependencies.items():
            os.symlink(target, made / DEPENDENCIES_FOLDER / name)
        try:
            os.rename(made, folder)
        except OSError as exc:
            if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
                raise
            if not _complete(folder, dependencies):  # not one a concurrent creator just made: a damaged one
                _replace(folder, made)
    finally:
        shutil.rmtree(made, ignore_errors=True)  # gone already when it was renamed; links are not followed
    return str(folder)


def _complete(folder: Path, dependencies: dict[str, Path]) -> bool:
    """Whether ``folder`` holds exactly the two links and the dependencies', leading where they should."""
    try:
        names = sorted(os.listdir(folder))
        inner = folder / DEPENDENCIES_FOLDER
        return (
            names == sorted([*LINKS, DEPENDENCIES_FOLDER])
            and all(os.readlink(folder / n) == str(t) for n, t in LINKS.items())
            and sorted(os.listdir(inner)) == sorted(dependencies)
            and all(os.readlink(inner / n) == str(t) for n, t in dependencies.items())
        )
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
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY) or not _complete(folder, _dependency_links()):
            raise
    finally:
        shutil.rmtree(aside, ignore_errors=True)
