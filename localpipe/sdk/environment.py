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
import shutil
import subprocess
import sys
import tempfile
import warnings
from enum import Enum

from localpipe.errors import UserErrorException
from localpipe.sdk import curated
from localpipe.sdk.conda import CondaDependencies, local_path

DEFAULT_CPU_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04"
DEFAULT_GPU_IMAGE = "mcr.microsoft.com/azureml/openmpi4.1.0-cuda11.3-cudnn8-ubuntu20.04"
MPI_CPU_IMAGE = DEFAULT_CPU_IMAGE
MPI_GPU_IMAGE = DEFAULT_GPU_IMAGE
_DEFAULT_SHM_SIZE = "2g"
_CONDA_FILE_NAME = "conda_dependencies.yml"  # the files of Environment.save_to_directory, as Azure names them
_BASE_DOCKERFILE_FILE_NAME = "BaseDockerfile"
_DEFINITION_FILE_NAME = "azureml_environment.json"
_PLATFORMS = {"linux": "Linux", "darwin": "OSX", "win32": "Windows"}
_BUILD_LOCAL_OPTIONS = ("useDocker", "pushImageToWorkspaceAcr")
_CONTEXT_MAX_FILES, _CONTEXT_MAX_BYTES = 100, 1024 * 1024  # above them, Azure's SDK warns of a large context


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
        self._conda_dependencies_file: str | None = None

    @property
    def conda_dependencies_file(self) -> str | None:
        """Deprecated in the SDK: a conda specification file, read into ``conda_dependencies`` when
        set (a relative path from the working directory, where a pipeline file is run)."""
        return self._conda_dependencies_file

    @conda_dependencies_file.setter
    def conda_dependencies_file(self, path: str | None) -> None:
        if path is not None:
            self.conda_dependencies = CondaDependencies(path)
        self._conda_dependencies_file = path

    def _to_spec(self) -> dict:
        return {
            "user_managed_dependencies": self.user_managed_dependencies,
            "interpreter_path": self.interpreter_path,
            "conda_dependencies": self.conda_dependencies.as_dict() if self.conda_dependencies else None,
        }


class DockerBuildContext:
    """A Docker build context: a folder with a Dockerfile (``dockerfile_path``, relative to it) and
    the files it copies. ``from_local_directory`` makes one of a folder of this machine, which is
    read when a step needs the image (docs/docker.md): unlike Azure, which uploads the folder then,
    an edit of its files afterwards rebuilds the image. ``location`` is the folder's absolute path."""

    class LocationType(Enum):
        """Where the context is: Azure's Git repository or storage account (a local folder here)."""

        Git = "git"
        StorageAccount = "storageAccount"

    def __init__(self, location_type=None, location: str | None = None, dockerfile_path: str = "Dockerfile"):
        self.location_type = location_type
        self.location = location
        self.dockerfile_path = dockerfile_path or "Dockerfile"

    @staticmethod
    def from_local_directory(workspace, path: str | os.PathLike, dockerfile_path: str = "Dockerfile"):
        """The build context of the folder ``path``, with its Dockerfile at ``dockerfile_path``."""
        folder = os.path.abspath(path)
        if not os.path.isdir(folder):
            raise UserErrorException(f"{path} is not a valid directory: give the folder of the Docker build context")
        if not os.path.isfile(os.path.join(folder, dockerfile_path)):
            raise UserErrorException(
                f"Docker build context {folder} has no {dockerfile_path}: add it, or pass "
                "dockerfile_path= (relative to the folder)"
            )
        files = [os.path.join(top, name) for top, _, names in os.walk(folder) for name in names]
        size = sum(os.lstat(f).st_size for f in files)  # a link counts as itself: Docker sends the link
        if len(files) > _CONTEXT_MAX_FILES or size > _CONTEXT_MAX_BYTES:
            warnings.warn(
                f"Docker build context {folder} holds {len(files)} files ({size / 2**20:.1f} MiB): it is hashed "
                f"each time a step in it is planned, and Azure's SDK warns above {_CONTEXT_MAX_FILES} files or 1 MiB: "
                "keep only what the image needs there",
                stacklevel=2,
            )
        return DockerBuildContext(DockerBuildContext.LocationType.StorageAccount, folder, dockerfile_path)

    def _to_spec(self) -> dict:
        kind = self.location_type.value if isinstance(self.location_type, Enum) else self.location_type
        return {"location_type": kind, "location": self.location, "dockerfile_path": self.dockerfile_path}

    @staticmethod
    def _from_spec(spec) -> DockerBuildContext | None:
        """The context a definition holds (``_to_spec``'s dict, in either spelling), or None."""
        if spec is None or isinstance(spec, DockerBuildContext):
            return spec
        fields = {snake_case(key): value for key, value in spec.items()}
        kinds = {kind.value: kind for kind in DockerBuildContext.LocationType}
        kind = fields.get("location_type")
        return DockerBuildContext(kinds.get(kind, kind), fields.get("location"), fields.get("dockerfile_path"))

    def __repr__(self) -> str:
        return f"DockerBuildContext({self._to_spec()})"


class RegistryIdentity:
    """A managed identity a registry is reached with (``resource_id``, ``client_id``): Azure's; kept, unused here."""

    def __init__(self):
        self.resource_id = None
        self.client_id = None


class ContainerRegistry:
    """The registry ``base_image`` is in (``environment.docker.base_image_registry``): its ``address``
    (``myregistry.azurecr.io``), ``username``, ``password``, ``registry_identity``. localpipe pulls
    nothing: the image must be on this machine under the registry's name (``docker login ADDRESS``,
    then ``docker pull ADDRESS/IMAGE``); the password is never written to history.db (docs/docker.md)."""

    def __init__(self):
        self.address = None
        self.username = None
        self.password = None
        self.registry_identity = None

    def _to_spec(self) -> dict | None:
        """What a definition keeps of it: the address and user, never the password; None without an address."""
        return {"address": self.address, "username": self.username} if self.address else None

    @staticmethod
    def _from_spec(spec) -> ContainerRegistry:
        registry = spec if isinstance(spec, ContainerRegistry) else ContainerRegistry()
        if isinstance(spec, dict):
            registry.address, registry.username = spec.get("address"), spec.get("username")
        return registry

    def __repr__(self) -> str:
        return f"ContainerRegistry(address={self.address!r}, username={self.username!r})"


class DockerSection:
    """``environment.docker``: the image a step runs in when Docker is used: ``base_image`` (in
    ``base_image_registry``), ``base_dockerfile`` or ``build_context`` (docs/docker.md)."""

    def __init__(self, enabled: bool = False, base_image: str | None = DEFAULT_CPU_IMAGE, **options):
        self.enabled = enabled
        self.base_image = base_image
        self.base_image_registry = ContainerRegistry._from_spec(options.get("base_image_registry"))
        self.base_dockerfile = options.get("base_dockerfile")
        self.build_context = DockerBuildContext._from_spec(options.get("build_context"))
        self.shm_size = options.get("shm_size", _DEFAULT_SHM_SIZE)
        self.arguments = list(options.get("arguments") or [])
        self.shared_volumes = options.get("shared_volumes", True)

    def _to_spec(self) -> dict:
        spec = dict(vars(self))
        spec["build_context"] = self.build_context._to_spec() if self.build_context else None
        registry = self.base_image_registry._to_spec() if self.base_image_registry else None
        if registry:  # absent without an address: the definitions (and digests) of other images unchanged
            spec["base_image_registry"] = registry
        else:
            del spec["base_image_registry"]
        return spec

    @property
    def image_reference(self) -> str | None:
        """``base_image`` as Docker names it here: under ``base_image_registry``'s address, if it has one."""
        address = self.base_image_registry.address if self.base_image_registry else None
        image = self.base_image
        if address and isinstance(image, str) and not image.startswith(f"{address.rstrip('/')}/"):
            return f"{address.rstrip('/')}/{image}"
        return image


class SparkSection:
    """``environment.spark``: Spark packages to install on a Spark cluster. There is no Spark cluster
    here: what code written for Azure sets is accepted and changes nothing (the parallel-run sample sets
    ``precache_packages``)."""

    def __init__(self, repositories=None, packages=None, precache_packages: bool = True):
        self.repositories = list(repositories or [])
        self.packages = list(packages or [])
        self.precache_packages = precache_packages


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
        self.spark = SparkSection()
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
        lines = [re.sub(r"(^|\s)#.*", "", line).strip() for line in text.splitlines()]  # pip's comments
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
        """An environment whose steps run in a container of ``image`` (with the packages of a spec
        file, if one is given); the image must be on this machine (docs/docker.md)."""
        env = _with_packages(name, conda_specification, pip_requirements)
        env.docker.enabled = True  # on Azure every environment runs in its image; here, these ones
        env.docker.base_image = image
        if container_registry is not None:
            env.docker.base_image_registry = container_registry
        return env

    @staticmethod
    def from_dockerfile(
        name: str, dockerfile: str, conda_specification: str | None = None, pip_requirements: str | None = None
    ) -> Environment:
        """An environment whose steps run in the image built from ``dockerfile`` (its text, or the
        path of a file holding it), built on first use and reused while it is unchanged (docs/docker.md)."""
        if os.path.isfile(dockerfile):
            with open(dockerfile, encoding="utf-8") as f:
                dockerfile = f.read()
        env = _with_packages(name, conda_specification, pip_requirements)
        env.docker.enabled = True
        env.docker.base_image = None
        env.docker.base_dockerfile = dockerfile
        return env

    @staticmethod
    def from_docker_build_context(name: str, docker_build_context: DockerBuildContext) -> Environment:
        """An environment whose steps run in the image built from ``docker_build_context`` (a
        folder with a Dockerfile: ``DockerBuildContext.from_local_directory``), built on first use
        or by ``build`` and rebuilt when a file of the folder changes (docs/docker.md)."""
        if not isinstance(docker_build_context, DockerBuildContext):
            raise UserErrorException(
                f"docker_build_context must be a DockerBuildContext, not {type(docker_build_context).__name__}: "
                "make one with DockerBuildContext.from_local_directory(ws, path)"
            )
        env = Environment(name)
        env.python.user_managed_dependencies = True  # the image's own Python, as Azure runs it
        env.docker.enabled = True
        env.docker.base_image = None
        env.docker.build_context = docker_build_context
        return env

    def clone(self, new_name: str) -> Environment:
        """A copy of the environment under ``new_name``, not registered (version None)."""
        if not new_name:
            raise UserErrorException("Name is required to instantiate an Environment object")
        clone = _from_spec(new_name, None, self._to_spec())
        return clone

    @staticmethod
    def from_existing_conda_environment(name: str, conda_environment_name: str) -> Environment:
        """An environment with the packages of a conda environment of this machine, as
        ``conda env export --no-builds`` lists them (built with uv like any conda specification)."""
        conda = os.environ.get("CONDA_EXE") or shutil.which("conda")
        if not conda:
            raise UserErrorException(
                "conda is not installed on this machine (no conda on PATH, no CONDA_EXE): "
                "Environment.from_existing_conda_environment exports a conda environment with it; export one "
                "where conda is (conda env export --no-builds -n NAME > env.yml) and use "
                'Environment.from_conda_specification(name, "env.yml")'
            )
        listed = json.loads(_run_conda(conda, "env", "list", "--json")).get("envs", [])
        names = [os.path.basename(os.path.normpath(prefix)) for prefix in listed]
        if conda_environment_name not in names:
            raise UserErrorException(
                f"conda environment {conda_environment_name!r} does not exist: conda env list has {', '.join(names)}"
            )
        exported = _run_conda(conda, "env", "export", "--no-builds", "--name", conda_environment_name)
        with tempfile.TemporaryDirectory() as folder:
            spec = os.path.join(folder, "environment.yml")
            with open(spec, "w", encoding="utf-8") as f:
                f.write(exported)
            return Environment.from_conda_specification(name, spec)

    @staticmethod
    def add_private_pip_wheel(workspace, file_path: str | os.PathLike, exist_ok: bool = False) -> str:
        """Copy a wheel into the workspace (``.localpipe/private-packages/``, where Azure uploads it to
        the workspace's storage); returns its path, to give to ``add_pip_package``."""
        if not os.path.isfile(file_path):
            raise UserErrorException(f"Please make sure the wheel file exists at: {file_path}")
        return str(workspace.service.add_private_wheel(os.path.abspath(file_path), exist_ok))

    # -- folders --------------------------------------------------------------------------------------
    def save_to_directory(self, path: str | os.PathLike, overwrite: bool = False) -> None:
        """Write the definition to the folder ``path`` as Azure does: ``azureml_environment.json``,
        ``conda_dependencies.yml`` and, if there is one, ``BaseDockerfile``."""
        if os.path.exists(path) and not overwrite:
            raise FileExistsError(f"{path} exists: pass save_to_directory(path, overwrite=True) to write over it")
        os.makedirs(path, exist_ok=True)
        definition = self._to_azure()
        deps = self.python.conda_dependencies
        if deps is not None:
            deps.save_to_file(path, _CONDA_FILE_NAME)
        if self.docker.base_dockerfile:
            with open(os.path.join(path, _BASE_DOCKERFILE_FILE_NAME), "w", encoding="utf-8") as f:
                f.write(self.docker.base_dockerfile)
        del definition["python"]["condaDependencies"]
        definition["docker"].pop("baseDockerfile", None)
        with open(os.path.join(path, _DEFINITION_FILE_NAME), "w", encoding="utf-8") as f:
            json.dump(definition, f, indent=4)

    @staticmethod
    def load_from_directory(path: str | os.PathLike) -> Environment:
        """The environment a folder written by ``save_to_directory`` (here or by Azure's SDK) holds."""
        definition_path = os.path.join(path, _DEFINITION_FILE_NAME)
        try:
            with open(definition_path, encoding="utf-8") as f:
                definition = json.load(f)
        except FileNotFoundError:
            raise FileNotFoundError(
                f"{definition_path} does not exist: load_from_directory reads a folder that "
                "Environment.save_to_directory wrote"
            ) from None
        except json.JSONDecodeError as exc:
            raise UserErrorException(
                f"{definition_path} is not valid JSON ({exc.msg}, line {exc.lineno}): fix it"
            ) from None
        conda_file = os.path.join(path, _CONDA_FILE_NAME)
        if os.path.isfile(conda_file):
            definition.setdefault("python", {})["condaDependenciesFile"] = _CONDA_FILE_NAME
        env = Environment._from_azure(definition, os.fspath(path))
        dockerfile = os.path.join(path, _BASE_DOCKERFILE_FILE_NAME)
        if os.path.isfile(dockerfile):
            with open(dockerfile, encoding="utf-8") as f:
                env.docker.base_dockerfile = f.read()
        return env

    def build_local(self, workspace, platform: str | None = None, **kwargs) -> None:
        """Build this environment now on this machine, where its steps will find it, printing
        what was built: its Docker image with ``useDocker=True`` (or when ``docker.enabled``, as
        Azure's default), else its virtual environment in the environment cache
        (docs/environments.md). Registering it is not needed."""
        unknown = [key for key in kwargs if key not in _BUILD_LOCAL_OPTIONS]
        if unknown:
            raise TypeError(f"build_local() got an unexpected keyword argument {unknown[0]!r}")
        here = _PLATFORMS.get(sys.platform, sys.platform)
        if platform is not None and platform != here:
            raise UserErrorException(f"build_local(platform={platform!r}) builds on this machine, which is {here}")
        if kwargs.get("pushImageToWorkspaceAcr"):
            raise UserErrorException(
                "build_local(pushImageToWorkspaceAcr=True): there is no workspace container registry here; "
                "the image stays in this machine's Docker daemon: leave pushImageToWorkspaceAcr out"
            )
        if kwargs.get("useDocker", self.docker.enabled):
            details = _build_image(self, workspace, "build_local(useDocker=True)")
            print(details._summary())
            return
        built = workspace.service.build_environment(self)
        if built["kind"] == "venv":
            print(
                f'environment "{self.name}" ({built["digest"][:12]}) built: {built["path"]} '
                f"(Python {built['python']}, {len(built['packages'])} packages), log: {built['log']}"
            )
        else:
            print(f'environment "{self.name}": nothing to install, its steps run on {built["interpreter"]}')

    def build(self, workspace, image_build_compute: str | None = None) -> ImageBuildDetails:
        """Build this environment's Docker image now in this machine's daemon (Azure builds it in
        the cloud), and register the environment as Azure does (once it is built: a failed build
        registers nothing); a second build of the same definition reuses the image, and so do its
        steps. ``image_build_compute`` (a cluster for Azure's build) changes nothing here. A build
        that fails raises, with the log's path, where Azure's reports ``status`` "Failed"."""
        details = _build_image(self, workspace, "Environment.build")
        self.register(workspace)
        return details

    def get_image_details(self, workspace) -> DockerImageDetails:
        """The image this environment's steps run in, in Azure's shape: ``dockerImage`` (``name``,
        ``registry``: none here), ``pythonEnvironment`` (``interpreterPath``), ``imageExistsInRegistry``
        (whether it is built in this machine's daemon) and ``ingredients`` (``dockerfile``)."""
        return DockerImageDetails(workspace.service.image_details(self))

    # -- the workspace ------------------------------------------------------------------------------
    @staticmethod
    def get(workspace, name: str, version: str | None = None, label: str | None = None) -> Environment:
        """A curated environment (``AzureML-...``), or one registered in ``workspace``: its
        latest version, or ``version``."""
        if version is not None and label is not None:
            raise UserErrorException("Only one of version or label can be specified")
        if curated.is_curated(name):
            return _curated(name)
        if version is not None and not str(version).strip().isdigit():
            raise UserErrorException(
                f'version {version!r} of environment "{name}" is not a version number: give one such as "1", '
                "or none for the latest"
            )
        number, spec = workspace.service.environment(name, int(version) if version is not None else None, label)
        return _from_spec(name, number, spec)

    @staticmethod
    def label(workspace, name, version, labels) -> None:
        """Label version ``version`` of the registered environment ``name`` with ``labels`` (its
        labels become these); ``Environment.get(ws, name, label=...)`` finds it. A label names one
        version: giving it to another takes it from this one."""
        if isinstance(labels, str) or not all(isinstance(label, str) and label for label in labels):
            raise UserErrorException(f"labels must be a list of non-empty strings, not {labels!r}")
        workspace.service.label_environment(name, int(version), list(labels))

    @staticmethod
    def list(workspace) -> dict[str, Environment]:
        """Every environment ``workspace`` can use, by name: the curated ones and the latest
        version of each registered one."""
        return registered_environments(workspace)

    def register(self, workspace) -> Environment:
        """Keep this environment in the workspace under its name, as a new version when it changed;
        returns the registered version, a new object as the SDK's (later edits of this one, or a
        later register, do not change it)."""
        if not self.name:
            raise UserErrorException("Name is required to register an Environment: pass Environment(name)")
        self.version = str(workspace.service.register_environment(self.name, self._to_spec()))
        return copy.deepcopy(self)

    def _to_azure(self) -> dict:
        """The definition as Azure writes it (camelCase keys; the conda specification inline)."""
        spec = self._to_spec()
        return {
            "name": self.name,
            "version": self.version,
            "environmentVariables": spec["environment_variables"],
            "python": {camel_case(key): value for key, value in spec["python"].items()},
            "docker": {camel_case(key): value for key, value in spec["docker"].items()},
            "inferencingStackVersion": self.inferencing_stack_version,
        }

    @staticmethod
    def _from_azure(definition: dict, folder: str) -> Environment:
        """An environment from Azure's form of it (camelCase or snake_case keys); a
        ``condaDependenciesFile`` is read from ``folder``. Spark, Databricks and R are read past."""
        fields = {snake_case(key): value for key, value in definition.items()}
        spec = {"environment_variables": fields.get("environment_variables") or {}}
        for section in ("python", "docker"):
            spec[section] = {snake_case(key): value for key, value in (fields.get(section) or {}).items()}
        conda_file = spec["python"].pop("conda_dependencies_file", None)
        if not spec["python"].get("conda_dependencies") and conda_file:
            spec["python"]["conda_dependencies"] = CondaDependencies(os.path.join(folder, conda_file)).as_dict()
        env = _from_spec(fields.get("name"), fields.get("version"), spec)
        env.inferencing_stack_version = fields.get("inferencing_stack_version")
        return env

    def _to_spec(self) -> dict:
        return {
            "python": self.python._to_spec(),
            "docker": self.docker._to_spec(),
            "environment_variables": dict(self.environment_variables),
        }


class ImageBuildDetails:
    """What ``Environment.build`` did: the build is over when it returns (it runs here, not in the
    cloud), so ``status`` is ``Succeeded`` and ``wait_for_completion`` returns at once."""

    def __init__(self, details: dict):
        self._details = details
        self.image = details["image"]
        self.built = details["built"]  # the tags built now; none when the image was there already
        self.log_url = details["log"] and f"file://{details['log']}"

    @property
    def status(self) -> str:
        """``Succeeded``: a build that fails raises instead."""
        return "Succeeded"

    def get_log(self) -> str | None:
        """The build's output (its log file), or None when nothing was built."""
        if not self._details["log"] or not os.path.isfile(self._details["log"]):
            return None
        with open(self._details["log"], encoding="utf-8", errors="replace") as f:
            return f.read()

    def wait_for_completion(self, show_output: bool = True) -> ImageBuildDetails:
        """Returns this object; with ``show_output``, prints the status and the build's log."""
        if show_output:
            print(f"Image Build Status: {self.status}\n")
            print(self.get_log() or self._summary())
        return self

    def _summary(self) -> str:
        name = self._details["environment"]
        if self.built:
            return f'environment "{name}": image {self.image} built (log: {self._details["log"]})'
        return f'environment "{name}": image {self.image} is on this machine already: nothing to build'


class DockerImageDetails(dict):
    """An environment's image, as ``Environment.get_image_details`` returns it (Azure's dict)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)

    @property
    def image_exist(self) -> bool:
        """Whether the image is built in this machine's daemon."""
        return bool(self.get("imageExistsInRegistry"))

    @property
    def repository(self) -> str:
        """The image's name (``localpipe-context:<digest>``, or the image named)."""
        return self["dockerImage"]["name"]

    @property
    def registry(self) -> str | None:
        """The registry's address: None, there is none here."""
        return self["dockerImage"]["registry"]["address"]

    @property
    def image(self) -> str:
        """The image's full name: its registry's address, if any, then its name."""
        return self.repository if self.registry is None else f"{self.registry}/{self.repository}"

    @property
    def interpreter_path(self) -> str | None:
        """The Python a step runs in the image: ``python3``, or ``python.interpreter_path``."""
        return self["pythonEnvironment"]["interpreterPath"]

    @property
    def environment_path(self) -> str | None:
        """Azure's conda environment in the image: None (an environment's packages are a layer)."""
        return self["pythonEnvironment"]["condaEnvironmentPath"]

    @property
    def dockerfile(self) -> str | None:
        """The Dockerfile the image is built from (None for an image named)."""
        return (self.get("ingredients") or {}).get("dockerfile")


def _build_image(environment: Environment, workspace, caller: str) -> ImageBuildDetails:
    details = workspace.service.build_image(environment, caller)
    return ImageBuildDetails({**details, "environment": environment.name})


# The name of what a step with no environment of its own ran in: localpipe's interpreter.
DEFAULT_ENVIRONMENT_NAME = "localpipe-default"


def registered_environments(workspace) -> dict[str, Environment]:
    """The curated environments and the latest version of each one registered in ``workspace``."""
    found = {name: _curated(name) for name in curated.names()}
    for name, (version, spec) in workspace.service.environments().items():
        found[name] = _from_spec(name, version, spec)
    return found


def environment_of_step(planned: dict) -> Environment:
    """What a step ran in (its planned environment, ``plan.environments``), as an Environment: a
    built one with its Python and the requirements installed, a Docker image, or an interpreter
    (user-managed dependencies, ``interpreter_path``)."""
    env = Environment(planned.get("name") or DEFAULT_ENVIRONMENT_NAME)
    kind = planned.get("kind")
    if kind == "venv":
        env.python.user_managed_dependencies = False
        env.python.conda_dependencies = CondaDependencies.create(
            python_version=planned.get("python"), pip_packages=list(planned.get("requirements") or [])
        )
    elif kind == "docker":
        env.docker.enabled, env.docker.base_image = True, planned.get("image")
        env.docker.base_dockerfile = planned.get("dockerfile")
        if planned.get("context"):
            location = DockerBuildContext.LocationType.StorageAccount
            env.docker.build_context = DockerBuildContext(location, planned["context"], planned["context_dockerfile"])
    else:
        env.python.user_managed_dependencies = True
        env.python.interpreter_path = planned.get("interpreter")
    env.environment_variables = dict(planned.get("variables") or {})
    return env


def _curated(name: str) -> Environment:
    packages, image = curated.definition(name)
    env = Environment(curated.canonical(name))
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


def _run_conda(conda: str, *args: str) -> str:
    try:
        return subprocess.run([conda, *args], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        detail = (getattr(exc, "stderr", "") or str(exc)).strip().splitlines()
        raise UserErrorException(
            f"conda {' '.join(args)} failed: {detail[-1] if detail else exc}: check conda ({conda})"
        ) from None


def camel_case(key: str) -> str:
    """``user_managed_dependencies`` as Azure's files spell it: ``userManagedDependencies``."""
    head, *rest = key.split("_")
    return head + "".join(word[:1].upper() + word[1:] for word in rest)


def snake_case(key: str) -> str:
    """``userManagedDependencies`` as localpipe spells it (a snake_case key is left as it is)."""
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", key).lower()


def _with_packages(name: str, conda_specification, pip_requirements) -> Environment:
    """An environment with the packages of one spec file, or user-managed (an image's own Python)."""
    if conda_specification and pip_requirements:
        raise UserErrorException("pass either conda_specification or pip_requirements, not both")
    if conda_specification:
        return Environment.from_conda_specification(name, conda_specification)
    if pip_requirements:
        return Environment.from_pip_requirements(name, pip_requirements)
    env = Environment(name)
    env.python.user_managed_dependencies = True
    return env
