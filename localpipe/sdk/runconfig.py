"""Azure ML's ``RunConfiguration``: where and in what a step runs, and its file form.

``save`` and ``load`` read and write Azure's run configuration files (``.azureml/NAME``, YAML
with Azure's camelCase keys, the conda specification in a file beside it), so that a
configuration saved by the SDK or the Azure CLI loads here and the other way round.
"""

from __future__ import annotations

import os

from localpipe.errors import UserErrorException
from localpipe.sdk.conda import AML_CONFIG_DIR, AZUREML_DIR, CondaDependencies, read_yaml, run_config_dir_name
from localpipe.sdk.environment import Environment, camel_case, snake_case
from localpipe.sdk.history_config import HistoryConfiguration

RUNCONFIG_EXTENSION = ".runconfig"
_DOCKER_KEYS = ("use_docker", "shared_volumes", "arguments", "shm_size")


class DockerConfiguration:
    """``RunConfiguration.docker``: whether and how the step runs in a container (the Docker issue)."""

    def __init__(self, use_docker: bool = False, shared_volumes: bool = True, arguments=None, shm_size: str = "2g"):
        self.use_docker = use_docker
        self.shared_volumes = shared_volumes
        self.arguments = list(arguments or [])
        self.shm_size = shm_size


class MpiConfiguration:
    """``ScriptRunConfig(distributed_job_config=...)`` for an MPI job: one machine runs the script
    once, as one process (``ScriptRunConfig`` warns); the counts are kept as given."""

    def __init__(self, process_count_per_node: int = 1, node_count: int = 1):
        self.process_count_per_node = process_count_per_node
        self.node_count = node_count


class PyTorchConfiguration:
    """``distributed_job_config`` for a PyTorch distributed job: run once here, as ``MpiConfiguration``."""

    def __init__(self, communication_backend: str = "Nccl", process_count: int | None = None, node_count: int = 1):
        self.communication_backend = communication_backend
        self.process_count = process_count
        self.node_count = node_count


class TensorflowConfiguration:
    """``distributed_job_config`` for a TensorFlow parameter-server job: run once here, as ``MpiConfiguration``."""

    def __init__(self, worker_count: int = 1, parameter_server_count: int = 1):
        self.worker_count = worker_count
        self.parameter_server_count = parameter_server_count


class RunConfiguration:
    """Where and in what a step runs: ``target`` (a compute target or its name), ``environment``,
    ``environment_variables`` set for the step, ``max_run_duration_seconds`` (the step's time
    limit; ``timeout_seconds`` is localpipe's name for it) and localpipe's ``max_retries``.

    ``node_count`` above 1 has no meaning on one machine (a step is one process): planning warns.
    ``_history_enabled`` (Azure's output collection) changes nothing here.

    ``data`` (name: ``dataset.as_named_input(name)``), ``data_references`` (name: a DataReference or
    its ``to_config()``) and ``output_data`` (name: an OutputFileDatasetConfig) are what a script run
    (``ScriptRunConfig``) consumes and produces besides its arguments: its step's inputs and outputs;
    an argument ``str(data_reference)`` (``$AZUREML_DATAREFERENCE_name``) is the reference's path.
    A pipeline step takes its data in ``inputs``, ``outputs`` and ``arguments`` instead.
    """

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
        self._path = _path  # where save() writes by default, as load() found it
        self._name = _name
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
        self.data: dict = {}
        self.data_references: dict = {}
        self.output_data: dict = {}
        self.docker = DockerConfiguration()
        self.node_count = 1
        self.history = HistoryConfiguration()
        self.timeout_seconds = timeout_seconds
        self.max_retries = max_retries

    @property
    def max_run_duration_seconds(self) -> float | None:
        """Azure's name for ``timeout_seconds``: the step fails when it runs longer."""
        return self.timeout_seconds

    @max_run_duration_seconds.setter
    def max_run_duration_seconds(self, value: float | None) -> None:
        self.timeout_seconds = value

    # -- files --------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike | None = None, name: str | None = None, separate_environment_yaml=False):
        """Write the configuration as Azure does: to ``path/.azureml/name`` when ``path`` is a
        project folder (the current one by default), else to the file ``path``. Its conda
        specification goes beside it in ``NAME_conda_dependencies.yml`` (Azure's one
        ``conda_dependencies.yml`` would be shared by every configuration of the project), and with
        ``separate_environment_yaml`` the environment section in ``NAME_environment.yml``."""
        path = os.fspath(path or self._path or os.getcwd())
        if os.path.isdir(path):
            name = name or self._name
            if not name:
                raise UserErrorException(
                    f"Cannot save a runconfig without a name specified: pass save({path!r}, name=...)"
                )
            folder = run_config_dir_name(path)
            os.makedirs(os.path.join(path, folder), exist_ok=True)
            project, file_path, prefix = path, os.path.join(path, folder, name), f"{folder}/"
        else:
            project = os.path.dirname(os.path.abspath(path))
            if not os.path.isdir(project):
                raise UserErrorException(f"{path} argument is invalid: its folder {project} does not exist")
            file_path, prefix = path, ""
        stem = _stem(os.path.basename(file_path))
        document = self._to_azure()
        environment = document["environment"]
        del environment["python"]["condaDependencies"]
        environment["python"]["condaDependenciesFile"] = f"{prefix}{stem}_conda_dependencies.yml"
        if separate_environment_yaml:
            document["environment"] = f"{prefix}{stem}_environment.yml"
            _write_yaml(os.path.join(project, document["environment"]), environment)
        _write_yaml(file_path, document)
        self.environment.python.conda_dependencies.save_to_file(project, environment["python"]["condaDependenciesFile"])

    @staticmethod
    def load(path: str | os.PathLike, name: str | None = None) -> RunConfiguration:
        """The configuration in the file ``path``, or ``name`` in the project folder ``path``
        (``.azureml/`` or ``aml_config/``, with or without ``.runconfig``)."""
        path = os.fspath(path or os.getcwd())
        project_case = not os.path.isfile(path)
        if project_case and name:
            full = os.path.join(path, run_config_dir_name(path), name)
            candidates = [full, full + RUNCONFIG_EXTENSION, os.path.join(path, name + RUNCONFIG_EXTENSION)]
        else:
            candidates = [path, path + RUNCONFIG_EXTENSION]
        found = next((c for c in candidates if os.path.isfile(c)), None)
        if found is None:
            raise UserErrorException(
                f"Failed to load RunConfiguration from path={path} name={name}: no such file "
                "(RunConfiguration.save(path, name) writes path/.azureml/name)"
            )
        document = read_yaml(found, "run configuration")
        if not isinstance(document, dict):
            raise UserErrorException(f"run configuration {found} is not a mapping of Azure's keys: fix it")
        project = path if project_case else os.path.dirname(os.path.abspath(found))
        if os.path.basename(project) in (AZUREML_DIR, AML_CONFIG_DIR):  # a project's file, given by its path
            project = os.path.dirname(project)
        return from_azure(document, project, path, os.path.basename(found) if project_case else None)

    @staticmethod
    def delete(path: str | os.PathLike, name: str) -> None:
        """Remove the saved configuration ``name`` of the project folder ``path``."""
        removed = False
        for folder in (AML_CONFIG_DIR, AZUREML_DIR):
            for file_name in (name, name + RUNCONFIG_EXTENSION):
                candidate = os.path.join(path, folder, file_name)
                if os.path.isfile(candidate):
                    os.remove(candidate)
                    removed = True
        if not removed:
            raise UserErrorException(f"Run config {name} not found in {os.path.join(path, AZUREML_DIR)}")

    def _to_azure(self) -> dict:
        target = self.target if isinstance(self.target, str) or self.target is None else self.target.name
        for section in ("data", "data_references", "output_data"):
            if getattr(self, section):
                raise UserErrorException(
                    f"RunConfiguration.{section} holds data objects, which a saved run configuration cannot "
                    f"keep: save it without them and set {section} on the configuration you load"
                )
        for argument in self.arguments:
            if not isinstance(argument, (str, int, float, bool)):
                raise UserErrorException(
                    f"RunConfiguration.arguments holds {argument!r}, which a saved run configuration "
                    "cannot keep: save only text arguments (a step's data goes in the step's arguments)"
                )
        document = {
            "script": self.script,
            "arguments": list(self.arguments),
            "target": target,
            "framework": self.framework,
            "communicator": self.communicator,
            "maxRunDurationSeconds": self.max_run_duration_seconds,
            "nodeCount": self.node_count,
            "environment": self.environment._to_azure(),
            "docker": {camel_case(key): getattr(self.docker, key) for key in _DOCKER_KEYS},
            "command": self.command,
            "environmentVariables": dict(self.environment_variables),
        }
        if self.max_retries:
            document["maxRetries"] = self.max_retries  # localpipe's; Azure has no retries
        return document


def from_azure(document: dict, project: str, path: str | None, name: str | None) -> RunConfiguration:
    """A RunConfiguration from a saved document (camelCase keys as Azure writes them, or snake_case).
    Sections with no meaning on one machine (history, spark, hdi, mpi, ...) are read past."""
    fields = {snake_case(key): value for key, value in document.items()}
    config = RunConfiguration(
        script=fields.get("script"),
        arguments=fields.get("arguments"),
        framework=fields.get("framework"),
        communicator=fields.get("communicator"),
        command=fields.get("command"),
        _path=path,
        _name=name,
    )
    config.target = fields.get("target") or "local"
    config.max_run_duration_seconds = fields.get("max_run_duration_seconds")
    config.node_count = fields.get("node_count") or 1
    config.max_retries = fields.get("max_retries") or 0
    config.environment_variables = dict(fields.get("environment_variables") or {})
    environment = fields.get("environment")
    if isinstance(environment, str):  # saved with separate_environment_yaml
        environment = read_yaml(os.path.join(project, environment), "environment")
    if environment:
        config.environment = Environment._from_azure(environment, project)
    docker = {snake_case(key): value for key, value in (fields.get("docker") or {}).items()}
    config.docker = DockerConfiguration(**{key: docker[key] for key in _DOCKER_KEYS if key in docker})
    return config


def _stem(file_name: str) -> str:
    """``train`` of ``train.runconfig``, ``train.yml`` or ``train``."""
    return os.path.splitext(file_name)[0]


def _write_yaml(path: str, document: dict) -> None:
    import yaml

    with open(path, "w", encoding="utf-8") as f:
        yaml.safe_dump(document, f, sort_keys=False)
