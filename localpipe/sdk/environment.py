"""Environments and run configurations: what a step runs in and on which compute target."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass
class PythonSection:
    """``environment.python``: the interpreter and its packages."""

    user_managed_dependencies: bool = True
    interpreter_path: str | None = None
    conda_dependencies: CondaDependencies | None = None


@dataclass
class DockerSection:
    """``environment.docker``: run the step in a container."""

    enabled: bool = False
    base_image: str | None = None


@dataclass
class CondaDependencies:
    """A package specification; ``CondaDependencies.create(pip_packages=[...], conda_packages=[...])``."""

    pip_packages: list[str] = field(default_factory=list)
    conda_packages: list[str] = field(default_factory=list)
    python_version: str | None = None

    @classmethod
    def create(cls, pip_packages=None, conda_packages=None, python_version=None, **_ignored) -> CondaDependencies:
        return cls(list(pip_packages or []), list(conda_packages or []), python_version)


@dataclass
class Environment:
    """A named environment; by default the interpreter localpipe itself runs on."""

    name: str = "default"
    version: str | None = None
    python: PythonSection = field(default_factory=PythonSection)
    docker: DockerSection = field(default_factory=DockerSection)
    environment_variables: dict[str, str] = field(default_factory=dict)

    @classmethod
    def get(cls, workspace, name: str, version: str | None = None) -> Environment:
        """A registered environment (see ``register``)."""
        number, spec = workspace.service.environment(name, int(version) if version is not None else None)
        return _from_spec(name, number, spec)

    def register(self, workspace) -> Environment:
        """Keep this environment in the workspace under its name, as a new version when it changed."""
        spec = dataclasses.asdict(self)
        spec.pop("version", None)
        self.version = str(workspace.service.register_environment(self.name, spec))
        return self


def registered_environments(workspace) -> dict[str, Environment]:
    """The latest version of each environment registered in ``workspace``; ``default`` when there is none."""
    found = {
        name: _from_spec(name, version, spec) for name, (version, spec) in workspace.service.environments().items()
    }
    return found or {"default": Environment()}


def _from_spec(name: str, version: int, spec: dict) -> Environment:
    spec = dict(spec)
    python = dict(spec.pop("python"))
    deps = python.pop("conda_dependencies")
    return Environment(
        name=name,
        version=str(version),
        python=PythonSection(**python, conda_dependencies=CondaDependencies(**deps) if deps else None),
        docker=DockerSection(**spec.pop("docker")),
        environment_variables=spec.get("environment_variables", {}),
    )


@dataclass
class RunConfiguration:
    """Where and in what a step runs: ``target`` (a compute target or its name) and ``environment``."""

    target: object = "local"
    environment: Environment = field(default_factory=Environment)
    timeout_seconds: float | None = None
    max_retries: int = 0
