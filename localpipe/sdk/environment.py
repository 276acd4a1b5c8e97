"""Environments and run configurations, with the names and defaults of Azure ML SDK v1.

An ``Environment`` says what a step's Python has installed: the interpreter localpipe runs on
(user-managed, localpipe's default), or packages localpipe installs into a virtual environment
built for it (``python.conda_dependencies`` naming packages, ``user_managed_dependencies`` False).
Declarations only: building one is ``localpipe/envs/``'s work (docs/environments.md).
"""

from __future__ import annotations

import copy
import json
import os
import re
from typing import Any

from localpipe.errors import UserErrorException
from localpipe.sdk import curated

DEFAULT_CPU_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"
DEFAULT_GPU_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.3-cudnn8-ubuntu20.04"
MPI_CPU_IMAGE = DEFAULT_CPU_IMAGE
MPI_GPU_IMAGE = DEFAULT_GPU_IMAGE
_DEFAULT_SHM_SIZE = "2g"

_SPEC_KEYS = ("name", "channels", "dependencies", "prefix", "variables")
_NAME_END = re.compile(r"[\[=|<>~!;@ ]")


def package_name(requirement: str) -> str:
    """The distribution name of a pip or conda requirement: ``pandas`` of ``pandas[pyarrow]>=2``."""
    requirement = requirement.strip()
    if requirement.endswith(".whl"):
        return os.path.basename(requirement).split("-")[0]
    return _NAME_END.split(requirement, maxsplit=1)[0]


class CondaDependencies:
    """A conda environment specification: channels, conda packages (``python=3.11`` among them) and
    a ``pip:`` list, held as the YAML structure Azure keeps.

    ``CondaDependencies()`` is Azure's base specification: ``azureml-defaults`` as its only pip
    package (localpipe provides that API itself, so it installs nothing) and, unlike Azure (3.8),
    no Python version: the environment gets the interpreter localpipe runs on.
    """

    def __init__(self, conda_dependencies_file_path: str | os.PathLike | None = None, _underlying_structure=None):
        if _underlying_structure is not None:
            structure = copy.deepcopy(_underlying_structure)
        elif conda_dependencies_file_path is not None:
            structure = _read_yaml(conda_dependencies_file_path)
        else:
            structure = {
                "name": "project_environment",
                "dependencies": [{"pip": ["azureml-defaults"]}],
                "channels": ["anaconda", "conda-forge"],
            }
        if not isinstance(structure, dict):
            raise UserErrorException("Environment error: not a valid YAML structure")
        for key in structure:
            if key not in _SPEC_KEYS:
                raise UserErrorException(f"Environment error: unknown {key} key in environment specification")
        structure.setdefault("dependencies", [])
        self._structure = structure
        if conda_dependencies_file_path is not None and _underlying_structure is None:
            folder = os.path.dirname(os.path.abspath(conda_dependencies_file_path))
            self._pip_list()[:] = [local_path(line, folder) for line in self._pip_list()]

    @staticmethod
    def create(
        pip_indexurl: str | None = None,
        pip_packages: list[str] | None = None,
        conda_packages: list[str] | None = None,
        python_version: str | None = None,
        pin_sdk_version: bool = True,
    ) -> CondaDependencies:
        """A specification with these packages. Given ``pip_packages`` replace the default
        ``azureml-defaults``; ``python_version`` None means the interpreter localpipe runs on."""
        cd = CondaDependencies()
        if pip_indexurl:
            cd.set_pip_index_url(f"--index-url {pip_indexurl}")
            cd.set_pip_option("--extra-index-url https://pypi.python.org/simple")
        if python_version is not None:
            cd.set_python_version(python_version)
        if pip_packages is not None:
            cd.set_pip_requirements([p for p in cd.pip_options])
            for package in pip_packages:
                cd.add_pip_package(package)
        for package in conda_packages or []:
            cd.add_conda_package(package)
        return cd

    @staticmethod
    def merge_requirements(requirements: list[str]) -> list[str]:
        """One requirement per package, the version specifiers of repeated ones joined by commas."""
        merged: dict[str, list[str]] = {}
        for requirement in requirements:
            name = package_name(requirement)
            spec = requirement.strip()[len(name) :].strip()
            merged.setdefault(name, [])
            if spec and spec not in merged[name]:
                merged[name].append(spec)
        return [name + ",".join(specs) for name, specs in merged.items()]

    @staticmethod
    def sdk_origin_url() -> str:
        return "https://pypi.python.org/simple"

    # -- reading ------------------------------------------------------------------------------------
    @property
    def conda_channels(self):
        return iter(list(self._structure.get("channels") or []))

    @property
    def conda_packages(self):
        return iter(self._conda_list())

    @property
    def pip_packages(self):
        return iter([p for p in self._pip_list() if not p.startswith("-")])

    @property
    def pip_options(self):
        return iter([p for p in self._pip_list() if p.startswith("-")])

    def get_python_version(self) -> str | None:
        for item in self._conda_list():
            if package_name(item) == "python":
                return item[len("python") :].lstrip("=<>!~ ") or None
        return None

    def serialize_to_string(self) -> str:
        import yaml

        return yaml.safe_dump(self._structure, sort_keys=False)

    def as_dict(self) -> dict:
        return json.loads(json.dumps(self._structure))

    def save(self, path: str | os.PathLike | None = None) -> str:
        """Write the specification as conda YAML to ``path`` (a file); returns its absolute path."""
        path = os.path.abspath(path or "conda_dependencies.yml")
        if os.path.isdir(path):
            raise UserErrorException(f"{path} is a folder: pass the path of a file to write")
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.serialize_to_string())
        return path

    def __eq__(self, other) -> bool:
        return isinstance(other, CondaDependencies) and other._structure == self._structure

    def __repr__(self) -> str:
        return f"CondaDependencies({self.as_dict()!r})"

    # -- changing -----------------------------------------------------------------------------------
    def set_python_version(self, version: str) -> None:
        deps = self._structure["dependencies"]
        for i, item in enumerate(deps):
            if isinstance(item, str) and package_name(item) == "python":
                deps[i] = f"python={version}"
                return
        deps.insert(0, f"python={version}")

    def add_channel(self, channel: str) -> None:
        channels = self._structure.setdefault("channels", [])
        if channel not in channels:
            channels.append(channel)

    def remove_channel(self, channel: str) -> None:
        channels = self._structure.get("channels") or []
        if channel in channels:
            channels.remove(channel)

    def add_conda_package(self, conda_package: str) -> None:
        if package_name(conda_package) == "python":  # replaces the python entry (python=3.10, python>=3.9)
            deps = self._structure["dependencies"]
            deps[:] = [d for d in deps if not (isinstance(d, str) and package_name(d) == "python")]
            deps.insert(0, conda_package)
        elif conda_package not in self._conda_list():
            self._structure["dependencies"].append(conda_package)

    def remove_conda_package(self, conda_package: str) -> None:
        if package_name(conda_package) == "python":
            raise UserErrorException("python must not be removed from conda dependencies")
        deps = self._structure["dependencies"]
        if conda_package in deps:
            deps.remove(conda_package)

    def add_pip_package(self, pip_package: str) -> None:
        if not isinstance(pip_package, str) or not pip_package.strip() or pip_package.startswith("-"):
            raise UserErrorException(f"Invalid package name {pip_package!r}: pass a name such as 'pandas==2.2'")
        self.remove_pip_package(pip_package)
        self._pip_list(create=True).append(local_path(pip_package, os.getcwd()))

    def remove_pip_package(self, pip_package: str) -> None:
        name = package_name(pip_package).lower()
        pips = self._pip_list()
        pips[:] = [p for p in pips if p.startswith("-") or package_name(p).lower() != name]

    def set_pip_option(self, pip_option: str) -> None:
        if not pip_option.startswith("-"):
            raise UserErrorException(f"Invalid pip option {pip_option!r}: an option starts with '-'")
        self.remove_pip_option(pip_option)
        self._pip_list(create=True).insert(0, pip_option)

    def remove_pip_option(self, pip_option: str) -> None:
        key = pip_option.split()[0].split("=")[0]
        pips = self._pip_list()
        pips[:] = [p for p in pips if not (p.startswith("-") and p.split()[0].split("=")[0] == key)]

    def set_pip_index_url(self, index_url: str) -> None:
        self.set_pip_option(index_url)

    def set_pip_requirements(self, pip_requirements: list[str]) -> None:
        """Replace the whole pip list (options included) with these lines."""
        self._pip_list(create=True)[:] = [local_path(line, os.getcwd()) for line in pip_requirements]

    # -- the structure ------------------------------------------------------------------------------
    def _conda_list(self) -> list[str]:
        return [item for item in self._structure["dependencies"] if isinstance(item, str)]

    def _pip_list(self, create: bool = False) -> list[str]:
        for item in self._structure["dependencies"]:
            if isinstance(item, dict) and "pip" in item:
                if item["pip"] is None:
                    item["pip"] = []
                return item["pip"]
        pips: list[str] = []
        if create:
            self._structure["dependencies"].append({"pip": pips})
        return pips


def local_path(line, folder: str):
    """``line`` with a relative local path in it (``./dist/x.whl``, ``-r base.txt``) made absolute
    from ``folder``: the definition must mean the same files wherever it is built."""
    if not isinstance(line, str):
        return line
    text = line.strip()
    flag, _, value = text.partition(" ")
    if flag in ("-r", "--requirement", "-c", "--constraint") and value.strip():
        return f"{flag} {os.path.join(folder, os.path.expanduser(value.strip()))}"
    if text.startswith(("./", "../", "~")) or (os.sep in text and not text.startswith(("-", "/")) and ":" not in text):
        return os.path.normpath(os.path.join(folder, os.path.expanduser(text)))
    return line


def _read_yaml(path: str | os.PathLike) -> Any:
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except OSError as exc:
        raise UserErrorException(
            f"conda specification {path} cannot be read ({exc.strerror}): check the path"
        ) from None
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" at line {line + 1}" if line is not None else ""
        raise UserErrorException(f"conda specification {path} is not valid YAML{where}: fix it") from None


class PythonSection:
    """``environment.python``: the interpreter and its packages.

    ``user_managed_dependencies`` True runs the step on ``interpreter_path`` (default: the one
    localpipe runs on) with what is installed there. False, Azure's default, builds a virtual
    environment from ``conda_dependencies`` when they name a package localpipe does not provide
    itself or a Python version; with nothing to install (``RunConfiguration()`` as it comes),
    the step runs on localpipe's interpreter, where Azure would build an environment of its own.
    """

    def __init__(
        self,
        user_managed_dependencies: bool = False,
        interpreter_path: str | None = None,
        conda_dependencies: CondaDependencies | None = None,
    ):
        self.user_managed_dependencies = user_managed_dependencies
        self.interpreter_path = interpreter_path
        self.conda_dependencies = conda_dependencies if conda_dependencies is not None else CondaDependencies()

    def _to_spec(self) -> dict:
        return {
            "user_managed_dependencies": self.user_managed_dependencies,
            "interpreter_path": self.interpreter_path,
            "conda_dependencies": self.conda_dependencies.as_dict() if self.conda_dependencies else None,
        }


class DockerSection:
    """``environment.docker``: the image a step runs in when Docker is used (the Docker issue)."""

    def __init__(self, enabled: bool = False, base_image: str | None = DEFAULT_CPU_IMAGE, **options):
        self.enabled = enabled
        self.base_image = base_image
        self.base_dockerfile = options.get("base_dockerfile")
        self.shm_size = options.get("shm_size", _DEFAULT_SHM_SIZE)
        self.arguments = list(options.get("arguments") or [])
        self.shared_volumes = options.get("shared_volumes", True)

    def _to_spec(self) -> dict:
        return dict(vars(self))


class Environment:
    """A named definition of what a step runs in: Python packages, variables, an image.

    Two environments with the same definition under different names are the same environment:
    built once (``docs/environments.md``).
    """

    def __init__(self, name: str, _skip_defaults: bool = False):
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Environment name expected str, {type(name).__name__} found")
        self.name = name
        self.version: str | None = None
        self.python = PythonSection()
        self.docker = DockerSection()
        self.environment_variables: dict[str, str] = {}
        self.inferencing_stack_version: str | None = None

    def __repr__(self) -> str:
        return json.dumps({"name": self.name, "version": self.version, **self._to_spec()}, indent=4, sort_keys=True)

    def __str__(self) -> str:
        return f"Environment(Name: {self.name},\nVersion: {self.version})"

    # -- from files ---------------------------------------------------------------------------------
    @staticmethod
    def from_conda_specification(name: str, file_path: str | os.PathLike) -> Environment:
        """An environment with the packages of a conda YAML file (its ``pip:`` section included)."""
        env = Environment(name)
        env.python.conda_dependencies = CondaDependencies(conda_dependencies_file_path=file_path)
        env.python.user_managed_dependencies = False
        return env

    @staticmethod
    def from_pip_requirements(name: str, file_path: str | os.PathLike, pip_version: str | None = None) -> Environment:
        """An environment with the packages of a pip requirements file, kept line by line."""
        try:
            with open(file_path, encoding="utf-8") as f:  # continuation lines (pip-compile's hashes) joined
                text = f.read().replace("\\\r\n", " ").replace("\\\n", " ")
        except OSError as exc:
            raise UserErrorException(
                f"requirements file {file_path} cannot be read ({exc.strerror}): check the path"
            ) from None
        folder = os.path.dirname(os.path.abspath(file_path))
        lines = [line.split(" #", 1)[0].strip() for line in text.splitlines()]
        env = Environment(name)
        deps = env.python.conda_dependencies
        deps._pip_list(create=True)[:] = [
            local_path(line, folder) for line in lines if line and not line.startswith("#")
        ]
        deps.add_conda_package(f"pip={pip_version}" if pip_version else "pip")
        env.python.user_managed_dependencies = False
        return env

    @staticmethod
    def from_docker_image(
        name: str,
        image: str,
        container_registry=None,
        conda_specification: str | None = None,
        pip_requirements: str | None = None,
    ) -> Environment:
        """An environment running in ``image`` (with the packages of a spec file, if one is given)."""
        if conda_specification and pip_requirements:
            raise UserErrorException("pass either conda_specification or pip_requirements, not both")
        if conda_specification:
            env = Environment.from_conda_specification(name, conda_specification)
        elif pip_requirements:
            env = Environment.from_pip_requirements(name, pip_requirements)
        else:
            env = Environment(name)
            env.python.user_managed_dependencies = True
        env.docker.base_image = image
        return env

    def clone(self, new_name: str) -> Environment:
        if not new_name:
            raise UserErrorException("Name is required to instantiate an Environment object")
        clone = _from_spec(new_name, None, self._to_spec())
        return clone

    # -- the workspace ------------------------------------------------------------------------------
    @staticmethod
    def get(workspace, name: str, version: str | None = None, label: str | None = None) -> Environment:
        """A curated environment (``AzureML-...``), or one registered in ``workspace``: its
        latest version, or ``version``."""
        if version is not None and label is not None:
            raise UserErrorException("Only one of version or label can be specified")
        if curated.is_curated(name):
            return _curated(name)
        number, spec = workspace.service.environment(name, int(version) if version is not None else None)
        return _from_spec(name, number, spec)

    @staticmethod
    def list(workspace) -> dict[str, Environment]:
        """Every environment ``workspace`` can use, by name: the curated ones and the latest
        version of each registered one."""
        return registered_environments(workspace)

    def register(self, workspace) -> Environment:
        """Keep this environment in the workspace under its name, as a new version when it changed."""
        if not self.name:
            raise UserErrorException("Name is required to register an Environment: pass Environment(name)")
        self.version = str(workspace.service.register_environment(self.name, self._to_spec()))
        return self

    def _to_spec(self) -> dict:
        return {
            "python": self.python._to_spec(),
            "docker": self.docker._to_spec(),
            "environment_variables": dict(self.environment_variables),
        }


def registered_environments(workspace) -> dict[str, Environment]:
    """The curated environments and the latest version of each one registered in ``workspace``."""
    found = {name: _curated(name) for name in curated.names()}
    for name, (version, spec) in workspace.service.environments().items():
        found[name] = _from_spec(name, version, spec)
    return found


def _curated(name: str) -> Environment:
    packages, image = curated.definition(name)
    env = Environment(name)
    env.version = "1"
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=packages)
    env.python.user_managed_dependencies = False
    env.docker.base_image = DEFAULT_GPU_IMAGE if image == "gpu" else DEFAULT_CPU_IMAGE
    return env


def _from_spec(name: str, version: int | None, spec: dict) -> Environment:
    env = Environment(name)
    env.version = str(version) if version is not None else None
    python = spec.get("python") or {}
    deps = python.get("conda_dependencies")
    if deps and "pip_packages" in deps:  # registered before localpipe kept Azure's structure
        old = deps
        deps = CondaDependencies.create(
            pip_packages=old["pip_packages"], conda_packages=old["conda_packages"], python_version=old["python_version"]
        ).as_dict()
    env.python = PythonSection(
        bool(python.get("user_managed_dependencies")),
        python.get("interpreter_path"),
        CondaDependencies(_underlying_structure=deps) if deps else None,
    )
    docker = dict(spec.get("docker") or {})
    env.docker = DockerSection(docker.pop("enabled", False), docker.pop("base_image", DEFAULT_CPU_IMAGE), **docker)
    env.environment_variables = dict(spec.get("environment_variables") or {})
    return env


class DockerConfiguration:
    """``RunConfiguration.docker``: whether and how the step runs in a container (the Docker issue)."""

    def __init__(self, use_docker: bool = False, shared_volumes: bool = True, arguments=None, shm_size: str = "2g"):
        self.use_docker = use_docker
        self.shared_volumes = shared_volumes
        self.arguments = list(arguments or [])
        self.shm_size = shm_size


class RunConfiguration:
    """Where and in what a step runs: ``target`` (a compute target or its name), ``environment``,
    ``environment_variables`` set for the step, and localpipe's ``timeout_seconds`` and
    ``max_retries``."""

    def __init__(
        self,
        script: str | None = None,
        arguments=None,
        framework: str | None = None,
        communicator: str | None = None,
        conda_dependencies: CondaDependencies | None = None,
        _history_enabled=None,
        _path=None,
        _name=None,
        command=None,
        *,
        target: object = "local",
        environment: Environment | None = None,
        timeout_seconds: float | None = None,
        max_retries: int = 0,
    ):
        self.script = script
        self.arguments = list(arguments or [])
        self.framework = framework or "Python"
        self.communicator = communicator or "None"
        self.command = command or ""
        self.target = target
        self.environment = environment if environment is not None else Environment("default-environment")
        if conda_dependencies is not None:
            self.environment.python.conda_dependencies = conda_dependencies
        self.environment_variables: dict[str, str] = {}
        self.docker = DockerConfiguration()
        self.node_count = 1
        self.timeout_seconds = timeout_seconds
        self.max_retries = max_retries

    @property
    def max_run_duration_seconds(self) -> float | None:
        """Azure's name for ``timeout_seconds``."""
        return self.timeout_seconds

    @max_run_duration_seconds.setter
    def max_run_duration_seconds(self, value: float | None) -> None:
        self.timeout_seconds = value
