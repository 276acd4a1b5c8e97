"""What a step's environment is, as plain data: the interpreter it runs on, or the definition of
the virtual environment to build for it, with the digest that names that build.

Pure: the interpreters this machine has come in through ``Capacity.pythons()``. A definition's
digest covers what the build installs (the Python version, the requirements, pip's options),
not the environment's name or version, as Azure's environment hash does: two environments with
the same packages under different names are one build (docs/environments.md).
"""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from typing import Any

from localpipe.content.hashing import hash_bytes
from localpipe.plan import checks

# Conda packages whose PyPI distribution has another name.
CONDA_TO_PYPI = {
    "pytorch": "torch",
    "pytorch-cpu": "torch",
    "py-xgboost": "xgboost",
    "py-xgboost-cpu": "xgboost",
    "tensorflow-gpu": "tensorflow",
    "pytables": "tables",
    "python-graphviz": "graphviz",
    "msgpack-python": "msgpack",
    "matplotlib-base": "matplotlib",
    "py-opencv": "opencv-python",
    "opencv": "opencv-python",
    "pyqt": "PyQt5",
    "pyarrow-core": "pyarrow",
}
# Conda packages with no PyPI equivalent (system libraries, compilers, CUDA): they need a real conda.
CONDA_ONLY = frozenset(
    {
        "cudatoolkit",
        "cuda-toolkit",
        "cuda",
        "cudnn",
        "nccl",
        "magma",
        "openmpi",
        "mpich",
        "impi_rt",
        "libgcc",
        "libgcc-ng",
        "libstdcxx-ng",
        "gcc",
        "gxx",
        "gxx_linux-64",
        "openblas",
        "libblas",
        "blas",
        "mkl-service",
        "r-base",
        "ffmpeg",
        "git",
        "make",
    }
)
_CONDA_SPEC = re.compile(r"^(?:[\w.-]+::)?([A-Za-z0-9_.-]+)\s*(.*)$")


def resolve(label: str, environment, capacity, found: list[str], variables: dict[str, str]) -> dict[str, Any]:
    """The environment ``label`` runs in, as plain data (kept in the graph and, but for the
    interpreter's spelling, in the step's cache key); problems go to ``found``."""
    variables = _variables(label, {**environment.environment_variables, **variables}, found)
    extra = {"variables": variables} if variables else {}
    if environment.docker.enabled:
        return {"kind": "docker", "image": environment.docker.base_image, **extra}
    python = environment.python
    deps = python.conda_dependencies
    if python.user_managed_dependencies or not _installs_anything(deps):
        return {**interpreter_fingerprint(python.interpreter_path or sys.executable), **extra}  # a copy: cached
    name = environment.name or "unnamed"
    where = f'{label}: environment "{name}"'
    requirements, options, dropped = _requirements(where, deps, found) if deps is not None else ([], [], [])
    interpreter = _python(where, deps.get_python_version() if deps is not None else None, capacity, found)
    definition = {
        "python": interpreter["version"],
        "base": interpreter["identity"],
        "requirements": sorted(set(requirements), key=str.lower),
        "options": options,
    }
    return {
        "kind": "venv",
        "name": name,
        "digest": hash_bytes(json.dumps(definition, sort_keys=True).encode())[:32],
        **definition,
        "interpreter": interpreter["interpreter"],
        "dropped": dropped,
        **extra,
    }


@functools.lru_cache(maxsize=16)
def interpreter_fingerprint(interpreter: str) -> dict[str, Any]:
    """The interpreter ``interpreter`` as a step's environment. Its real file and prefix identify
    it: `python`, `python3.11` and a shim name the same one, while a virtual environment (a link
    to its base) has a prefix of its own."""
    return {
        "kind": "python",
        "interpreter": interpreter,
        "identity": os.path.realpath(interpreter),
        "prefix": sys.prefix if interpreter == sys.executable else None,
        "version": sys.version.split()[0],
    }


def _variables(label: str, variables: dict, found: list[str]) -> dict[str, str]:
    kept = {}
    for name, value in variables.items():
        if checks.variable_name(label, "environment variable", name, found):
            kept[name] = checks.text(label, f"environment variable {name}", value, found)
    return dict(sorted(kept.items()))


def _requirements(where: str, deps, found: list[str]) -> tuple[list[str], list[str], list[str]]:
    """(pip requirements, pip option lines, packages left out because localpipe provides them)."""
    requirements, dropped = [], []
    for spec in deps.conda_packages:
        match = _CONDA_SPEC.match(spec.strip())
        name, version = (match.group(1), match.group(2)) if match else (spec, "")
        if name.lower() == "python":
            continue
        if name.lower() in CONDA_ONLY:
            found.append(
                f'{where}: conda package "{name}" has no PyPI equivalent, and localpipe installs conda '
                "packages from PyPI: leave it out (PyTorch and TensorFlow wheels bring their own CUDA libraries)"
            )
            continue
        requirements.append(CONDA_TO_PYPI.get(name.lower(), name) + _pip_version(version))
    options = []
    for line in deps.pip_packages:
        if _provided_by_localpipe(line):
            dropped.append(line)
        else:
            requirements.append(line.strip())
    for line in deps.pip_options:
        options.append(line.strip())
    return requirements, options, dropped


def _installs_anything(deps) -> bool:
    """Whether ``deps`` ask for a Python version or a package localpipe does not provide itself."""
    if deps is None:
        return False
    packages = [*deps.pip_packages, *deps.conda_packages]
    wanted = [p for p in packages if not _provided_by_localpipe(p) and _name(p) not in ("python", "pip")]
    return bool(wanted) or deps.get_python_version() is not None


def _name(requirement: str) -> str:
    match = _CONDA_SPEC.match(requirement.strip())
    return (match.group(1) if match else requirement).lower()


def _provided_by_localpipe(requirement: str) -> bool:
    name = re.split(r"[\[=<>!~;@ ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")
    return name == "azureml" or name.startswith("azureml-")


def _pip_version(conda_version: str) -> str:
    """A conda version spec as pip's: ``=1.19`` and ``1.19`` (any 1.19.x) are ``==1.19.*``,
    ``==1.19.5`` stays; a build string (``=1.19.5=py38_0``) is left out."""
    version = conda_version.strip()
    if not version:
        return ""
    if version[0].isdigit():
        version = "=" + version
    if version.startswith("=="):
        return "==" + version[2:].split("=")[0]
    if version.startswith("="):
        number = version[1:].split("=")[0]
        return f"=={number}" if number.endswith("*") else f"=={number}.*"
    return version


def _python(where: str, requested: str | None, capacity, found: list[str]) -> dict[str, Any]:
    """The interpreter a built environment gets: the one localpipe runs on unless ``requested``
    (``python=3.10``) names another version. ``3`` takes any 3.x, ``3.10`` any 3.10.x: the micro
    version is not matched."""
    local = interpreter_fingerprint(sys.executable)
    wanted = _version(requested) if requested else ()
    if requested and not wanted:
        found.append(f'{where}: python version "{requested}" is not a version: write one like 3.11')
        return local
    if _version(local["version"])[: len(wanted)] == wanted:
        return local
    pythons = capacity.pythons() if capacity is not None else [(local["version"], sys.executable)]
    for version, path in pythons:
        if _version(version)[: len(wanted)] == wanted:
            return {"interpreter": path, "identity": os.path.realpath(path), "version": version}
    if capacity is not None and capacity.python_fallback and pythons:
        version, path = min(pythons, key=lambda p: _distance(_version(p[0]), wanted))
        return {"interpreter": path, "identity": os.path.realpath(path), "version": version}
    listed = ", ".join(f"{v} ({p})" for v, p in pythons) or "none"
    found.append(
        f"{where}: Python {requested} is not on this machine (found: {listed}): install it (pyenv, "
        "uv python install), or set LOCALPIPE_PYTHON_FALLBACK=closest to use the closest version"
    )
    return local


def _version(text: str) -> tuple[int, ...]:
    """The major and minor numbers of a version (``=3.10.4`` -> (3, 10), ``3`` -> (3,)); () if none."""
    match = re.match(r"^\s*[=~<>]*\s*(\d+)(?:\.(\d+))?", text)
    if not match:
        return ()
    return tuple(int(part) for part in match.groups() if part is not None)


def _distance(have: tuple[int, ...], wanted: tuple[int, ...]) -> tuple[int, int]:
    """How far ``have`` is from ``wanted``: majors first, then minors (the newer of two as close)."""
    major = abs(have[0] - wanted[0]) if have else 99
    minor = abs(have[1] - wanted[1]) if len(have) > 1 and len(wanted) > 1 else 0
    return (major * 100 + minor, -(have[1] if len(have) > 1 else 0))
