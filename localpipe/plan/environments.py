"""What a step's environment is, as plain data: the interpreter it runs on, or the definition of
the virtual environment to build for it, with the digest that names that build.

The interpreters this machine has come in through ``Capacity.pythons()``. A definition's digest
covers what the build installs (the Python version, the requirements in a canonical spelling,
pip's options, and the content of local files they name: wheels, folders, included requirement
files), not the environment's name or version, as Azure's environment hash does: two
environments with the same packages under different names are one build (docs/environments.md).
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import sys
import warnings
from typing import Any
from urllib.parse import unquote, urlparse

from localpipe.content.hashing import (
    StatCacheLike,
    context_digest,
    dataset_digest,
    digest_of,
    hash_bytes,
    hash_file,
    walk,
)
from localpipe.errors import UsageError
from localpipe.plan import checks
from localpipe.sdk.conda import local_path

AZUREML_IMAGES = "mcr.microsoft.com/azureml/"  # Azure ML's own base images (DEFAULT_CPU_IMAGE, ...)
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
# Conda packages with no PyPI equivalent that a step would miss (CUDA, MPI, compilers, R): refused.
CONDA_ONLY = frozenset(
    {
        "cudatoolkit",
        "cudatoolkit-dev",
        "cuda-toolkit",
        "cuda",
        "cuda-nvcc",
        "cuda-runtime",
        "cuda-libraries",
        "pytorch-cuda",
        "cpuonly",
        "cudnn",
        "nccl",
        "magma",
        "openmpi",
        "mpich",
        "impi_rt",
        "gcc",
        "gxx",
        "gxx_linux-64",
        "gcc_linux-64",
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
# What `conda env export` lists of the interpreter's own system libraries: the interpreter brings
# them, so they are left out (and named in the build log).
CONDA_SYSTEM = frozenset(
    {
        "_libgcc_mutex",
        "_openmp_mutex",
        "bzip2",
        "ca-certificates",
        "ld_impl_linux-64",
        "libffi",
        "libgcc",
        "libgcc-ng",
        "libgomp",
        "libnsl",
        "libsqlite",
        "libstdcxx-ng",
        "libuuid",
        "libzlib",
        "ncurses",
        "openssl",
        "readline",
        "sqlite",
        "tk",
        "tzdata",
        "xz",
        "zlib",
    }
)
# pip options a requirements list may hold; -r/-c are included in place, -e is refused.
OPTIONS = ("--index-url", "-i", "--extra-index-url", "--find-links", "-f", "--pre", "--trusted-host", "--no-index")
_INCLUDES = ("-r", "--requirement", "-c", "--constraint")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*")
_FILE_URL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*\s*(?:\[[^\]]*\]\s*)?@\s*(file:[^\s;]+)")
_CONDA_NAME = re.compile(r"^(?:[\w.-]+::)?([A-Za-z0-9_.-]+)")


def resolve(
    label: str, environment, capacity, found: list[str], variables: dict[str, str], docker=None, local: bool = True
) -> dict[str, Any]:
    """The environment ``label`` runs in, as plain data (kept in the graph and, but for the
    interpreter's spelling, in the step's cache key); problems go to ``found``. ``docker`` is the
    run configuration's ``DockerConfiguration``: it, or ``environment.docker.enabled``, asks for a
    container (docs/docker.md). ``local`` is False for a step that runs elsewhere (a Ray node),
    whose interpreter is not looked for here."""
    given = {**environment.environment_variables, **variables}
    variables = _variables(label, {**_conda_variables(label, environment, found), **given}, found)
    extra = {"variables": variables} if variables else {}
    if environment.docker.enabled or getattr(docker, "use_docker", False):
        container = _container(label, environment, docker, capacity, found)
        if container is not None:
            return {**container, **extra}
    python = environment.python
    deps = python.conda_dependencies
    if python.user_managed_dependencies or not _installs_anything(deps):
        # Azure's interpreter_path (its files say "python") is the step's only where you manage it.
        own = python.interpreter_path if python.user_managed_dependencies else None
        if own and local:
            _check_interpreter(label, environment.name, own, variables, found)
        # A copy (cached); its name, for get_environment, is not keyed (keys.py).
        return {**interpreter_fingerprint(own or sys.executable), "name": environment.name, **extra}
    name = environment.name or "unnamed"
    if not isinstance(name, str) or any(ord(c) < 32 or ord(c) == 127 for c in name):
        found.append(f"{label}: environment name {name!r} holds a control character (a line break): remove it")
        name = "unnamed"
    where = f'{label}: environment "{name}"'
    requirements, options, dropped, local = _requirements(where, deps, found)
    interpreter = _python(where, _python_spec(deps), capacity, found)
    definition = {
        "python": interpreter["version"],
        "base": interpreter["identity"],
        "requirements": sorted(set(requirements), key=lambda r: (r.lower(), r)),
        "options": options,
        "local": local,  # path -> content digest of each local file or folder the requirements name
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


def _check_interpreter(label: str, name, path, variables: dict[str, str], found: list[str]) -> None:
    """Whether ``python.interpreter_path`` is there to start, as a path or a name on the step's
    PATH (it would fail every step at its start, after the steps before it had run)."""
    if not isinstance(path, str):
        found.append(f'{label}: environment "{name}": python.interpreter_path {path!r} is not a path: give one')
        return
    located = path if os.sep in path else shutil.which(path, path=variables.get("PATH", os.environ.get("PATH")))
    if located is not None and os.path.isfile(located) and os.access(located, os.X_OK):
        return
    if located is None:
        why = "not found on PATH"
    else:
        why = "no such file" if not os.path.exists(located) else "not an executable file"
    found.append(
        f'{label}: environment "{name}": python.interpreter_path {path!r} is {why}: fix it, or leave it out to '
        "run on localpipe's interpreter"
    )


def _container(label: str, environment, docker, capacity, found: list[str]) -> dict[str, Any] | None:
    """The image a Docker step runs in, with the id that keys it (a new image under the same name
    reruns the step); None for one of Azure ML's own base images that this machine lacks, when
    ``capacity.azureml_image_fallback`` lets such a step run outside Docker (with a warning)."""
    section = environment.docker
    where = f'{label}: environment "{environment.name or "unnamed"}"'
    image, dockerfile = getattr(section, "image_reference", section.base_image), section.base_dockerfile
    registry = getattr(getattr(section, "base_image_registry", None), "address", None)
    given = getattr(section, "build_context", None)
    context = _build_context(where, given, found, getattr(capacity, "stat_cache", None))
    if given is not None:
        image = dockerfile = None  # Azure's build_context replaces the other two
        if context is None:  # its problem is said: no other about the image it replaced
            return {"kind": "docker", "image": None}
    machine = capacity.docker() if capacity is not None and getattr(capacity, "docker", None) else None
    problem = machine["problem"] if machine else None
    if context is None and not dockerfile and not (isinstance(image, str) and image.strip()):
        found.append(f"{where} runs in Docker but names no image: set docker.base_image or docker.base_dockerfile")
        return {"kind": "docker", "image": None}
    built_here = bool(dockerfile or context)
    image_id = machine["image"](image) if machine and not problem and not built_here else None
    if not built_here and machine and image_id is None:
        if image.startswith(AZUREML_IMAGES) and capacity.azureml_image_fallback:
            warnings.warn(
                f"Azure ML's base image {image} is not on this machine"
                + (" (and no Docker daemon answers)" if problem else "")
                + ": steps that ask for it run outside Docker, in an environment built from their packages; "
                f"to run them in the image: docker pull {image} (or docker load -i FILE.tar); "
                "LOCALPIPE_AZUREML_IMAGES=require makes this an error (docs/docker.md)",
                stacklevel=5,
            )
            return None
        invalid = machine.get("invalid", lambda name: None)(image) if not problem else None
        found.append(
            f"{label} runs in Docker: {problem}"
            if problem
            else f"{where}: Docker image {image} is not a name Docker accepts ({invalid}): "
            "name it as docker images lists it (lowercase, NAME:TAG or NAME@sha256:DIGEST)"
            if invalid
            else f"{where}: Docker image {image} is not on this machine (localpipe pulls nothing): "
            + (f"docker login {registry}, then docker pull {image}" if registry else f"docker pull {image}")
            + ", or docker load -i FILE.tar"
        )
    elif built_here and problem:
        found.append(f"{label} runs in Docker: {problem}")
    python = environment.python
    packages = {}
    if not python.user_managed_dependencies and _installs_anything(python.conda_dependencies):
        requirements, options, dropped, local = _requirements(where, python.conda_dependencies, found)
        layer = {"requirements": sorted(set(requirements), key=lambda r: (r.lower(), r)), "options": options,
                 "local": local}  # fmt: skip
        base = (
            image_id or image or (context or {}).get("context_digest") or hash_bytes((dockerfile or "").encode())[:32]
        )
        digest = hash_bytes(json.dumps({"base": base, **layer}, sort_keys=True).encode())[:32]
        packages = {"packages": layer, "packages_digest": digest, "dropped": dropped}
    configuration = docker if getattr(docker, "use_docker", False) else section
    arguments = list(getattr(configuration, "arguments", None) or [])
    if arguments:
        warnings.warn(
            f"{label}: Docker arguments {arguments} are not passed on (localpipe starts containers through "
            "the Docker API, not the docker command): the step runs without them",
            stacklevel=5,
        )
    shm_size = getattr(configuration, "shm_size", None) or "2g"
    if isinstance(shm_size, bool) or not (
        (isinstance(shm_size, int) and shm_size > 0) or (isinstance(shm_size, str) and _SIZE.fullmatch(shm_size))
    ):  # else the daemon's client refuses it as the step starts, after the steps before it ran
        found.append(
            f"{where}: shm_size {shm_size!r} is not a size: a whole number of bytes, "
            "or one with the unit b, k, m or g (512m, 4g)"
        )
    built = {"dockerfile": dockerfile, "dockerfile_digest": hash_bytes(dockerfile.encode())[:32]} if dockerfile else {}
    return {
        "kind": "docker",
        "image": None if built_here else image,
        "image_id": image_id,
        **built,
        **(context or {}),
        **packages,
        "interpreter": python.interpreter_path or "python3",
        "shm_size": shm_size,
    }


_SIZE = re.compile(r"\d+(\.\d+)?([bkmgBKMG][bB]?)?")  # as docker-py's parse_bytes reads a Docker size


def _build_context(
    where: str, context, found: list[str], stat_cache: StatCacheLike | None = None
) -> dict[str, Any] | None:
    """A Docker build context as plain data: its folder, its Dockerfile's path in it and the
    digest of the folder's content (an edit of a file rebuilds the image and reruns the step),
    through the workspace's ``stat_cache`` when planning has it (an unchanged file costs a stat)."""
    if context is None:
        return None
    folder, dockerfile = context.location, context.dockerfile_path or "Dockerfile"
    local = getattr(context.location_type, "value", context.location_type) in (None, "storageAccount")
    if not local or not isinstance(folder, str) or not os.path.isabs(folder):
        found.append(
            f"{where}: Docker build context {folder!r} is not a folder of this machine (localpipe fetches "
            "nothing): clone or copy it here and use DockerBuildContext.from_local_directory(ws, path)"
        )
        return None
    if not os.path.isfile(os.path.join(folder, dockerfile)):
        found.append(
            f"{where}: Docker build context {folder} has no {dockerfile}"
            + _not_a_folder(folder)
            + ": add it, or pass dockerfile_path= to DockerBuildContext.from_local_directory"
        )
        return None
    try:
        digest = build_context_digest(folder, dockerfile, stat_cache)
    except UsageError as exc:
        found.append(f"{where}: Docker build context {folder}: {exc}")
        return None
    return {"context": folder, "context_dockerfile": dockerfile, "context_digest": digest}


def _not_a_folder(folder: str) -> str:
    if os.path.isdir(folder):
        return ""
    return " (it is a file, not a folder)" if os.path.exists(folder) else " (the folder does not exist)"


def build_context_digest(folder: str, dockerfile: str, stat_cache: StatCacheLike | None = None) -> str:
    """The digest naming the image of a build context: the folder as the daemon is sent it, and the
    Dockerfile's path and text (``dockerfile_path`` may name one out of the folder); a file that
    ``stat_cache`` (``content.statcache.StatCache``) knows unchanged is not read. Raises
    ``UsageError`` for a file that cannot be read."""
    try:
        contents = [context_digest(folder, stat_cache), dockerfile, hash_file(os.path.join(folder, dockerfile))]
    except OSError as exc:
        raise UsageError(f"cannot read {dockerfile} ({exc.strerror}): fix its permissions") from None
    return hash_bytes(json.dumps(contents).encode())[:32]


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


def _conda_variables(label: str, environment, found: list[str]) -> dict:
    """A conda specification's ``variables:``, which conda sets as its environment is activated:
    under those of ``environment_variables``; none where you manage the interpreter."""
    python = environment.python
    if python.user_managed_dependencies or python.conda_dependencies is None:
        return {}
    given = python.conda_dependencies._variables()
    if not isinstance(given, dict):
        found.append(f'{label}: environment "{environment.name}": conda "variables" must map names to values')
        return {}
    return {name: str(value) if isinstance(value, (int, float)) else value for name, value in given.items()}


# -- requirements ------------------------------------------------------------------------------------
def _requirements(where: str, deps, found: list[str]) -> tuple[list[str], list[str], list[str], dict[str, str]]:
    """(pip requirements, pip option lines, what was left out and why, local path -> digest)."""
    requirements: list[str] = []
    options: list[str] = []
    dropped: list[str] = []
    local: dict[str, str] = {}
    for spec in deps.conda_packages:
        name, version = _conda_spec(spec)
        lowered = (name or "").lower()
        if name is None:
            found.append(f'{where}: conda package "{spec}" is not a package specification: write one like numpy=1.26')
        elif lowered == "python":
            continue
        elif lowered == "pip":
            dropped.append(f"{spec} (conda's installer: uv builds the environment)")
        elif lowered in CONDA_SYSTEM:
            dropped.append(f"{spec} (a system library the interpreter brings)")
        elif lowered in CONDA_ONLY:
            found.append(
                f'{where}: conda package "{name}" has no PyPI equivalent, and localpipe installs conda '
                "packages from PyPI: leave it out (PyTorch and TensorFlow wheels bring their own CUDA libraries)"
            )
        else:
            requirements.append(_canonical(CONDA_TO_PYPI.get(lowered, name) + _pip_version(version)))
    lines = [*deps.pip_options, *deps.pip_packages]
    _pip_lines(where, lines, requirements, options, dropped, local, found, depth=0)
    return requirements, options, dropped, local


def _pip_lines(where, lines, requirements, options, dropped, local, found, depth: int) -> None:
    for line in lines:
        text = line.strip() if isinstance(line, str) else ""
        if not isinstance(line, str) or any(c in text for c in "\n\r\0"):
            found.append(f"{where}: pip package {line!r} is not one line of text: give one package per entry")
        elif not text or text.startswith("#"):
            continue
        elif text.startswith("-"):
            _option(where, text, requirements, options, dropped, local, found, depth)
        elif _provided_by_localpipe(text):
            dropped.append(f"{text} (localpipe provides it)")
        elif _is_path(text):
            path = text[len("file:") :] if text.startswith("file:") else text
            if not os.path.isabs(path):
                found.append(
                    f'{where}: pip package "{text}" is a relative path: give it when the pipeline file loads '
                    "(localpipe makes it absolute then) or write it absolute"
                )
            elif not os.path.exists(path):
                found.append(f'{where}: pip package "{text}" does not exist: fix the path')
            else:
                local[path] = _local_digest(path)
                requirements.append(path)
        elif _FILE_URL.match(text):  # name @ file:///...: a local file too
            path = unquote(urlparse(_FILE_URL.match(text).group(1)).path)
            if not os.path.exists(path):
                found.append(f'{where}: pip package "{text}" does not exist: fix the path')
            else:
                local[path] = _local_digest(path)
                requirements.append(_with_options(text))
        else:
            requirements.append(_with_options(text))


def _local_digest(path: str) -> str:
    """The content of a local wheel or project folder a requirement names: of a folder, what its
    ignore files (.gitignore, .amlignore) keep, less what building it writes there (``build/``,
    ``*.egg-info``), which would otherwise make the next submission another definition."""
    if not os.path.isdir(path):
        return dataset_digest([path])
    kept = [
        found
        for found in walk(path, ignore=True)
        if found[0].split("/", 1)[0] != "build" and not any(part.endswith(".egg-info") for part in found[0].split("/"))
    ]
    return digest_of(kept).digest


def _option(where, text, requirements, options, dropped, local, found, depth: int) -> None:
    flag, _, value = text.replace("=", " ", 1).partition(" ")
    value = value.strip()
    if flag in ("-e", "--editable"):
        found.append(
            f'{where}: "{text}" is an editable install, which a shared environment cannot hold: give the path '
            "without -e (its content is then part of the definition)"
        )
    elif flag in _INCLUDES:
        if depth > 8 or not os.path.isabs(value) or not os.path.isfile(value):
            found.append(f'{where}: "{text}" names no readable file by an absolute path: fix the path')
            return
        if flag in ("-c", "--constraint"):  # passed on as it is: its content is part of the definition
            local[value] = dataset_digest([value])
            options.append(f"-c {value}")
        else:  # included in place, so that the definition holds its lines
            _pip_lines(where, _read_requirements(value), requirements, options, dropped, local, found, depth + 1)
    elif flag in ("-f", "--find-links") and "://" not in value:  # a local folder: its wheels are the definition's
        path = value[len("file:") :] if value.startswith("file:") else value
        if not os.path.isabs(path) or not os.path.exists(path):
            found.append(f'{where}: "{text}" names no folder by an absolute path: fix the path')
            return
        local[path] = dataset_digest([path])
        options.append(f"{flag} {value}")
    elif flag in OPTIONS:
        secret = _URL_USER.search(value)
        if secret and "${" not in secret.group(1):
            warnings.warn(
                f'{where}: "{flag}" has a password or token in its URL, which history.db keeps with the run and '
                "the environment's digest holds (a new token builds it again): write it as ${VAR} "
                "(https://user:${PIP_TOKEN}@host/simple), which the installer reads from the environment as it builds",
                stacklevel=2,
            )
        options.append(text)
    else:
        found.append(
            f'{where}: pip option "{text}" is not one localpipe passes on (it passes {", ".join(OPTIONS)}, '
            "and includes -r files): remove it"
        )


_URL_USER = re.compile(r"://([^/@\s]+)@")  # a URL's user part: user:password@ or token@


def _read_requirements(path: str) -> list[str]:
    """The lines of a requirements file, continuation lines joined, comments and blank lines left
    out, relative paths made absolute from its folder (as pip reads them)."""
    with open(path, encoding="utf-8") as f:
        text = f.read().replace("\\\r\n", " ").replace("\\\n", " ")
    lines = [re.sub(r"(^|\s)#.*", "", line).strip() for line in text.splitlines()]  # pip's comments
    folder = os.path.dirname(path)
    return [local_path(line, folder) for line in lines if line and not line.startswith("#")]


def _is_path(text: str) -> bool:
    return text.startswith(("/", "./", "../", "~", "file:")) or (
        os.sep in text and "://" not in text and "@" not in text
    )


def _with_options(line: str) -> str:
    """A requirement line in one spelling, the options of that requirement (pip-compile's
    ``--hash=sha256:...``) kept apart from it, one blank before each."""
    requirement, *flags = re.split(r"\s+(?=--)", line)
    return " ".join([_canonical(requirement), *(re.sub(r"\s+", " ", flag) for flag in flags)])


def _canonical(requirement: str) -> str:
    """One spelling per requirement: no blanks, the name and its extras as PEP 503 and 685
    normalise them (``TinyB == 1.0`` is ``tinyb==1.0``, ``Pandas[Excel, Perf]`` is
    ``pandas[excel,perf]``); a marker after ``;`` keeps its own blanks."""
    spec, semicolon, marker = requirement.partition(";")
    spec = re.sub(r"\s+", "", spec)
    name = _NAME.match(spec)
    if name:
        head, rest = _normalised(name.group(0)), spec[name.end() :]
        extras = re.match(r"\[([^\]]*)\]", rest)
        if extras:
            names = sorted({_normalised(extra) for extra in extras.group(1).split(",") if extra})
            head, rest = f"{head}[{','.join(names)}]", rest[extras.end() :]
        spec = head + rest
    return spec + (f"; {marker.strip()}" if semicolon else "")


def _normalised(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _installs_anything(deps) -> bool:
    """Whether ``deps`` ask for a Python version or a package localpipe does not provide itself."""
    if deps is None:
        return False
    packages = [*deps.pip_packages, *deps.conda_packages]
    wanted = [p for p in packages if not _provided_by_localpipe(p) and _name(p) not in ("python", "pip")]
    included = [o for o in deps.pip_options if o.split()[0].split("=")[0] not in OPTIONS]  # -r, -e and others
    return bool(wanted or included) or _python_spec(deps) is not None


def _name(requirement: str) -> str:
    match = _CONDA_NAME.match(requirement.strip()) if isinstance(requirement, str) else None
    return match.group(1).lower() if match else ""


def _provided_by_localpipe(requirement: str) -> bool:
    name = re.split(r"[\[=<>!~;@ ]", requirement.strip(), maxsplit=1)[0].lower().replace("_", "-")
    return name == "azureml" or name.startswith("azureml-")


def _conda_spec(spec: str) -> tuple[str | None, str]:
    """(name, version spec) of a conda match spec: ``numpy=1.19``, ``numpy 1.19.5 py38h0``,
    ``conda-forge::numpy>=1.19``, ``numpy[version='>=1.19']``; the build string is left out."""
    if not isinstance(spec, str):
        return None, ""
    match = _CONDA_NAME.match(spec.strip())
    if not match:
        return None, ""
    name, rest = match.group(1), spec.strip()[match.end() :].strip()
    if rest.startswith("["):
        version = re.search(r"version\s*=\s*['\"]?([^'\",\]]+)", rest)
        return name, version.group(1) if version else ""
    if rest and rest[0].isdigit():  # the space-separated form: name version [build]
        return name, rest.split()[0]
    return name, rest.split()[0] if rest else ""


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


# -- the Python version --------------------------------------------------------------------------
def _python_spec(deps) -> str | None:
    """What the definition asks of Python (``=3.10``, ``>=3.8,<3.12``), or None."""
    if deps is None:
        return None
    for spec in deps.conda_packages:
        name, version = _conda_spec(spec)
        if name is not None and name.lower() == "python":
            exact = re.match(r"^(==|=)?(?=\d)", version)
            if exact:  # conda env export's =3.10.4=h955ad1f_0: the version without its build string
                return exact.group(0) + version[exact.end() :].split("=")[0]
            return version or None
    return None


def _python(where: str, requested: str | None, capacity, found: list[str]) -> dict[str, Any]:
    """The interpreter a built environment gets: the one localpipe runs on if it satisfies
    ``requested``, else the newest other one that does. ``3.10`` (or ``=3.10``) takes any 3.10.x:
    the micro version is not matched; ``>=3.8,<3.12`` compares major and minor numbers."""
    local = interpreter_fingerprint(sys.executable)
    if not requested:
        return local
    accepts = _matcher(requested)
    if accepts is None:
        found.append(f'{where}: python version "{requested.lstrip("=")}" is not a version: write one like 3.11')
        return local
    if accepts(_version(local["version"])):
        return local
    pythons = capacity.pythons() if capacity is not None else [(local["version"], sys.executable)]
    fitting = sorted((p for p in pythons if accepts(_version(p[0]))), key=lambda p: _version(p[0]), reverse=True)
    if fitting:
        version, path = fitting[0]
        return {"interpreter": path, "identity": os.path.realpath(path), "version": version}
    if capacity is not None and capacity.python_fallback and pythons:
        wanted = _version(re.sub(r"^[=<>!~]+", "", requested.split(",")[0].strip()))
        version, path = min(pythons, key=lambda p: _distance(_version(p[0]), wanted))
        return {"interpreter": path, "identity": os.path.realpath(path), "version": version}
    listed = ", ".join(f"{v} ({p})" for v, p in pythons) or "none"
    found.append(
        f"{where}: Python {requested.lstrip('=')} is not on this machine (found: {listed}): install it (pyenv, "
        "uv python install), or set LOCALPIPE_PYTHON_FALLBACK=closest to use the closest version"
    )
    return local


_CLAUSE = re.compile(r"^(==|=|>=|<=|>|<|!=|~=)?\s*(\d+)(?:\.(\d+))?(?:\.(?:\d+|\*))?\*?$")


def _matcher(spec: str):
    """A function saying whether a (major, minor) version satisfies ``spec``; None if it is not one."""
    tests = []
    for clause in spec.replace(" ", "").split(","):
        match = _CLAUSE.match(clause)
        if not match:
            return None
        op = match.group(1) or "="
        want = tuple(int(part) for part in match.groups()[1:] if part is not None)
        tests.append((op, want))

    def accepts(have: tuple[int, ...]) -> bool:
        for op, want in tests:
            mine = have[: len(want)]
            ok = {
                "=": mine == want,
                "==": mine == want,
                "!=": mine != want,
                ">=": mine >= want,
                ">": mine > want,
                "<=": mine <= want,
                "<": mine < want,
                "~=": mine >= want and have[:1] == want[:1],
            }[op]
            if not ok:
                return False
        return True

    return accepts


def _version(text: str) -> tuple[int, ...]:
    """The major and minor numbers of a version (``3.10.4`` -> (3, 10), ``3`` -> (3,)); () if none."""
    match = re.match(r"^\s*(\d+)(?:\.(\d+))?", text)
    if not match:
        return ()
    return tuple(int(part) for part in match.groups() if part is not None)


def _distance(have: tuple[int, ...], wanted: tuple[int, ...]) -> tuple[int, int]:
    """How far ``have`` is from ``wanted``: majors first, then minors (the newer of two as close)."""
    major = abs(have[0] - wanted[0]) if have and wanted else 99
    minor = abs(have[1] - wanted[1]) if len(have) > 1 and len(wanted) > 1 else 0
    return (major * 100 + minor, -(have[1] if len(have) > 1 else 0))
