"""Azure ML's ``CondaDependencies``: a conda environment specification (channels, conda packages,
a ``pip:`` list) kept as the YAML structure Azure keeps, with Azure's methods to change it.
Declarations only: what gets installed from it is ``plan/environments.py``'s work.
"""

from __future__ import annotations

import copy
import json
import os
import re
from typing import Any

from localpipe.errors import UserErrorException

_SPEC_KEYS = ("name", "channels", "dependencies", "prefix", "variables")
CPU, GPU = "cpu", "gpu"  # the core types of add_tensorflow_*_package and add_cntk_package
CNTK_DEFAULT_VERSION = "2.7"
AZUREML_DIR, AML_CONFIG_DIR = ".azureml", "aml_config"  # where Azure keeps a project's run configurations
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

    DEFAULT_NUMBER_OF_CONDA_PACKAGES = 0
    DEFAULT_NUMBER_OF_PIP_PACKAGES = 0

    def __init__(self, conda_dependencies_file_path: str | os.PathLike | None = None, _underlying_structure=None):
        if _underlying_structure is not None:
            structure = copy.deepcopy(_underlying_structure)
        elif conda_dependencies_file_path is not None:
            structure = read_yaml(conda_dependencies_file_path)
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
        if structure.get("dependencies") is None:  # "dependencies:" with nothing under it yet
            structure["dependencies"] = []
        if conda_dependencies_file_path is not None and _underlying_structure is None:
            _check_dependencies(structure["dependencies"], f"conda specification {conda_dependencies_file_path}")
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
        """The package index Azure's SDK names as its origin (for code that reads it; nothing installs from
        it here)."""
        return "https://pypi.python.org/simple"

    # -- reading ------------------------------------------------------------------------------------
    @property
    def conda_channels(self):
        """An iterator over the conda channels."""
        return iter(list(self._structure.get("channels") or []))

    @property
    def conda_packages(self):
        """An iterator over the conda packages (``python=3.x`` among them)."""
        return iter(self._conda_list())

    @property
    def pip_packages(self):
        """An iterator over the pip packages (without the pip options)."""
        return iter([p for p in self._pip_list() if not p.startswith("-")])

    @property
    def pip_options(self):
        """An iterator over the pip options (``--index-url ...``, ``--extra-index-url ...``)."""
        return iter([p for p in self._pip_list() if p.startswith("-")])

    def get_python_version(self) -> str | None:
        """The version of the ``python`` conda package (``3.10``), or None when none is given."""
        for item in self._conda_list():
            if package_name(item) == "python":
                return item[len("python") :].lstrip("=<>!~ ") or None
        return None

    def serialize_to_string(self) -> str:
        """The definition as conda environment YAML."""
        import yaml

        return yaml.safe_dump(self._structure, sort_keys=False)

    def as_dict(self) -> dict:
        """The definition as a dict (a copy): ``name``, ``channels``, ``dependencies`` with its ``pip`` list."""
        return json.loads(json.dumps(self._structure))

    def get_default_number_of_packages(self) -> tuple[int, int]:
        """How many conda and pip packages ``CondaDependencies()`` has: (0, 1), azureml-defaults."""
        if self.DEFAULT_NUMBER_OF_CONDA_PACKAGES == 0 and self.DEFAULT_NUMBER_OF_PIP_PACKAGES == 0:
            base = CondaDependencies()
            self.DEFAULT_NUMBER_OF_CONDA_PACKAGES = len(list(base.conda_packages))
            self.DEFAULT_NUMBER_OF_PIP_PACKAGES = len(list(base.pip_packages))
        return self.DEFAULT_NUMBER_OF_CONDA_PACKAGES, self.DEFAULT_NUMBER_OF_PIP_PACKAGES

    def save(self, path: str | os.PathLike | None = None) -> str:
        """Write the specification as conda YAML to ``path`` (a file); returns its absolute path."""
        path = os.path.abspath(path or "conda_dependencies.yml")
        if os.path.isdir(path):
            raise UserErrorException(f"{path} is a folder: pass the path of a file to write")
        with open(path, "w", encoding="utf-8") as f:
            f.write(self.serialize_to_string())
        return path

    def save_to_file(self, base_directory: str | os.PathLike, conda_file_path: str | None = None) -> str:
        """Azure's older ``save``: write to ``conda_file_path`` under ``base_directory`` (by default
        ``.azureml/auto_conda_dependencies.yml``); returns that relative path."""
        if not conda_file_path:
            conda_file_path = f"{run_config_dir_name(base_directory)}/auto_conda_dependencies.yml"
        relative = str(conda_file_path).replace("\\", "/")
        full_path = os.path.join(os.path.abspath(base_directory), relative)
        os.makedirs(os.path.dirname(full_path), exist_ok=True)
        with open(full_path, "w", encoding="utf-8") as f:
            f.write(self.serialize_to_string())
        return relative

    def __eq__(self, other) -> bool:
        return isinstance(other, CondaDependencies) and other._structure == self._structure

    def __repr__(self) -> str:
        return f"CondaDependencies({self.as_dict()!r})"

    # -- changing -----------------------------------------------------------------------------------
    def set_python_version(self, version: str) -> None:
        """Replace the ``python`` conda package with ``python=version``."""
        deps = self._structure["dependencies"]
        for i, item in enumerate(deps):
            if isinstance(item, str) and package_name(item) == "python":
                deps[i] = f"python={version}"
                return
        deps.insert(0, f"python={version}")

    def add_channel(self, channel: str) -> None:
        """Add a conda channel (once). The channels are recorded; packages come from PyPI here (no conda is run)."""
        channels = self._structure.setdefault("channels", [])
        if channel not in channels:
            channels.append(channel)

    def remove_channel(self, channel: str) -> None:
        """Remove a conda channel, if it is there."""
        channels = self._structure.get("channels") or []
        if channel in channels:
            channels.remove(channel)

    def add_conda_package(self, conda_package: str) -> None:
        """Add a conda package (once; ``python...`` replaces the Python version). Here it is installed from
        PyPI under its PyPI name: a conda-only package is refused when the pipeline is validated."""
        if package_name(conda_package) == "python":  # replaces the python entry (python=3.10, python>=3.9)
            deps = self._structure["dependencies"]
            deps[:] = [d for d in deps if not (isinstance(d, str) and package_name(d) == "python")]
            deps.insert(0, conda_package)
        elif conda_package not in self._conda_list():
            self._structure["dependencies"].append(conda_package)

    def remove_conda_package(self, conda_package: str) -> None:
        """Remove a conda package, if it is there (``python`` cannot be removed)."""
        if package_name(conda_package) == "python":
            raise UserErrorException("python must not be removed from conda dependencies")
        deps = self._structure["dependencies"]
        if conda_package in deps:
            deps.remove(conda_package)

    def add_pip_package(self, pip_package: str) -> None:
        """Add a pip requirement (``pandas==2.2``), replacing one of the same name; a relative local path
        (``./dist/x.whl``) is made absolute from the current folder."""
        if not isinstance(pip_package, str) or not pip_package.strip() or pip_package.startswith("-"):
            raise UserErrorException(f"Invalid package name {pip_package!r}: pass a name such as 'pandas==2.2'")
        self.remove_pip_package(pip_package)
        self._pip_list(create=True).append(local_path(pip_package, os.getcwd()))

    def remove_pip_package(self, pip_package: str) -> None:
        """Remove the pip requirement of that package name (any version)."""
        name = package_name(pip_package).lower()
        pips = self._pip_list()
        pips[:] = [p for p in pips if p.startswith("-") or package_name(p).lower() != name]

    def set_pip_option(self, pip_option: str) -> None:
        """Set a pip option (``--extra-index-url URL``), replacing one with the same flag."""
        if not pip_option.startswith("-"):
            raise UserErrorException(f"Invalid pip option {pip_option!r}: an option starts with '-'")
        self.remove_pip_option(pip_option)
        self._pip_list(create=True).insert(0, local_path(pip_option, os.getcwd()))

    def remove_pip_option(self, pip_option: str) -> None:
        """Remove the pip option with that flag."""
        key = pip_option.split()[0].split("=")[0]
        pips = self._pip_list()
        pips[:] = [p for p in pips if not (p.startswith("-") and p.split()[0].split("=")[0] == key)]

    def set_pip_index_url(self, index_url: str) -> None:
        """Set the pip option ``index_url`` (the whole option: ``--index-url URL``), as in the SDK."""
        self.set_pip_option(index_url)

    def set_pip_requirements(self, pip_requirements: list[str]) -> None:
        """Replace the whole pip list (options included) with these lines."""
        self._pip_list(create=True)[:] = [local_path(line, os.getcwd()) for line in pip_requirements]

    def add_cntk_package(self, core_type: str = CPU) -> None:
        """Microsoft's Cognitive Toolkit as Azure adds it (``cntk==2.7``; it has no wheel for a
        current Python, so its build fails saying so)."""
        _check_core_type(core_type)
        self._remove_pip_prefixed("cntk")
        self.add_pip_package(f"cntk{'-gpu' if core_type.lower() == GPU else ''}=={CNTK_DEFAULT_VERSION}")

    def add_tensorflow_pip_package(self, core_type: str = CPU, version: str | None = None) -> None:
        """``tensorflow``, pinned to ``version`` when given. Unlike Azure (2.2.0, which has no wheel
        for a current Python) no version is pinned by default; ``gpu`` adds the same package, since
        TensorFlow's wheel has served CPUs and GPUs alike from 2.1 on (``tensorflow-gpu`` is gone)."""
        _check_core_type(core_type)
        self._remove_pip_prefixed("tensorflow")
        self.add_pip_package(f"tensorflow=={version}" if version else "tensorflow")

    def add_tensorflow_conda_package(self, core_type: str = CPU, version: str | None = None) -> None:
        """The conda package ``tensorflow`` (``tensorflow-gpu`` for ``gpu``), installed from PyPI
        as ``tensorflow``; unpinned unless ``version`` is given (Azure pins 2.2.0)."""
        _check_core_type(core_type)
        for package in [p for p in self._conda_list() if p.startswith("tensorflow")]:
            self.remove_conda_package(package)
        name = "tensorflow-gpu" if core_type.lower() == GPU else "tensorflow"
        self.add_conda_package(f"{name}={version}" if version else name)

    def _remove_pip_prefixed(self, prefix: str) -> None:
        pips = self._pip_list()
        pips[:] = [p for p in pips if not (isinstance(p, str) and p.startswith(prefix))]

    # -- the structure ------------------------------------------------------------------------------
    def _variables(self):
        """The specification's ``variables:`` as written (conda sets them as it activates it)."""
        return self._structure.get("variables") or {}

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


def _check_dependencies(dependencies, where: str) -> None:
    """Refuse what conda would not take: dependencies that are not a list of package
    specifications with at most one ``pip:`` list of them."""
    if not isinstance(dependencies, list):
        raise UserErrorException(
            f"Environment error: {where}: its dependencies are not a list: write one package a line"
        )
    sections = sum(isinstance(item, dict) and set(item) == {"pip"} for item in dependencies)
    if sections > 1:  # conda keeps the last, Azure's SDK read the first
        raise UserErrorException(f"Environment error: {where}: it has {sections} pip: sections: join them into one")
    for item in dependencies:
        if isinstance(item, dict) and set(item) == {"pip"}:
            if item["pip"] is not None and not isinstance(item["pip"], list):
                raise UserErrorException(
                    f"Environment error: {where}: its pip: section is not a list: write one package a line under it"
                )
            for line in item["pip"] or []:
                if not isinstance(line, str):
                    raise UserErrorException(
                        f"Environment error: {where}: {line!r} is not a package specification: quote it"
                    )
        elif not isinstance(item, str):
            raise UserErrorException(
                f"Environment error: {where}: {item!r} is not a package specification: write one like numpy=1.26"
            )


def _check_core_type(core_type: str) -> None:
    if core_type not in (CPU, GPU):
        raise UserErrorException(f"Invalid core type {core_type}. Only accept 'cpu' or 'gpu'")


def run_config_dir_name(project: str | os.PathLike) -> str:
    """``aml_config`` when the project has that older folder, else ``.azureml``."""
    return AML_CONFIG_DIR if os.path.isdir(os.path.join(project, AML_CONFIG_DIR)) else AZUREML_DIR


def local_path(line, folder: str):
    """``line`` with a relative local path in it (``./dist/x.whl``, ``-r base.txt``, ``-f wheels``) made absolute
    from ``folder``: the definition must mean the same files wherever it is built."""
    if not isinstance(line, str):
        return line
    text = line.strip()
    option = re.match(r"^(-[A-Za-z]|--[A-Za-z-]+)(?:=|\s+)(.+)$", text)
    flag, value = (option.group(1), option.group(2).strip()) if option else (text, "")
    if flag in ("-r", "--requirement", "-c", "--constraint") and value:
        return f"{flag} {os.path.join(folder, os.path.expanduser(value))}"
    if flag in ("-f", "--find-links") and value and "://" not in value:  # a folder of wheels
        return f"{flag} {os.path.normpath(os.path.join(folder, os.path.expanduser(value)))}"
    if text.startswith(("./", "../", "~")) or (os.sep in text and not text.startswith(("-", "/")) and ":" not in text):
        return os.path.normpath(os.path.join(folder, os.path.expanduser(text)))
    return line


def read_yaml(path: str | os.PathLike, what: str = "conda specification") -> Any:
    """The YAML document of ``path`` (``what`` names it in errors)."""
    import yaml

    try:
        with open(path, encoding="utf-8") as f:
            return yaml.safe_load(f)
    except OSError as exc:
        raise UserErrorException(f"{what} {path} cannot be read ({exc.strerror}): check the path") from None
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" at line {line + 1}" if line is not None else ""
        raise UserErrorException(f"{what} {path} is not valid YAML{where}: fix it") from None
