"""Modules and their versions (Azure ML's ``Module``, ``ModuleVersion``, ``ModuleVersionDescriptor``).

A module is a named container of versions kept in history.db; ``publish_python_script`` adds a
version: a script, its interface (input and output ports, parameters) and a snapshot of its source
folder, an object of the store taken as a published pipeline's step sources are
(``client.publishing.store_tree``), so that later edits of the folder change no version. A
``ModuleStep`` (sdk/modules.py) runs a version from that snapshot. docs/modules.md is the user's page.
"""

from __future__ import annotations

import os
import uuid
import warnings
from dataclasses import dataclass

from localpipe.client.publishing import history_of_workspace, store_tree
from localpipe.errors import UserErrorException
from localpipe.sdk.modules import InputPortDef, OutputPortDef, ParamDef, param_env_variable, port_fields
from localpipe.sdk.parameters import PipelineParameter

ACTIVE, DEPRECATED, DISABLED = "Active", "Deprecated", "Disabled"


def _records(workspace):
    return history_of_workspace(workspace).modules


class ModuleVersionDescriptor:
    """A version of a module by its ``version`` and ``module_version_id``."""

    def __init__(self, version, module_version_id):
        self._version = version
        self._module_version_id = module_version_id

    version = property(lambda self: self._version, doc="The version, as published.")
    module_version_id = property(lambda self: self._module_version_id, doc="The ModuleVersion's id (a GUID).")

    def __str__(self) -> str:
        return f"ModuleVersionDescriptor(Version: {self._version},\nModuleVersionId: {self._module_version_id})"

    __repr__ = __str__


class Module:
    """A named container of versions, one of them its default (``azureml.pipeline.core.module.Module``);
    make one with ``Module.create``, get one with ``Module.get``."""

    def __init__(
        self,
        workspace,
        module_id,
        name,
        description,
        status,
        default_version,
        module_version_list,
        _module_provider=None,
        _module_version_provider=None,
    ):
        self._workspace = workspace
        self._id = module_id
        self._name = name
        self._description = description
        self._status = status
        self._default_version = default_version
        self._module_version_list = module_version_list

    @classmethod
    def _from_record(cls, workspace, record: dict) -> Module:
        versions = [ModuleVersionDescriptor(v["version"], v["module_version_id"]) for v in record["versions"]]
        return cls(
            workspace,
            record["module_id"],
            record["name"],
            record["description"],
            record["status"],
            record["default_version"],
            versions,
        )

    def _refresh(self) -> None:
        fresh = Module._from_record(self._workspace, _records(self._workspace).module(self._id))
        self.__dict__.update(fresh.__dict__)

    @staticmethod
    def create(workspace, name, description, _workflow_provider=None) -> Module:
        """A new module ``name`` (unique in the workspace), with no version yet."""
        if not isinstance(name, str) or not name.strip():
            raise UserErrorException(f"a module needs a name (got {name!r}): pass name='...'")
        return Module._from_record(workspace, _records(workspace).create(str(uuid.uuid4()), name, description))

    @staticmethod
    def get(workspace, module_id=None, name=None, _workflow_provider=None) -> Module:
        """The module with ``module_id`` or ``name``; NotFoundError when the workspace has none."""
        if module_id is None and name is None:
            raise UserErrorException("Module.get needs module_id= or name=")
        return Module._from_record(workspace, _records(workspace).module(module_id, name))

    @staticmethod
    def get_versions(workspace, name, _workflow_provider=None) -> list[ModuleVersionDescriptor]:
        """The versions of the module ``name`` (ModuleVersionDescriptor), oldest first."""
        return Module.get(workspace, name=name).module_version_list()

    @staticmethod
    def process_source_directory(name, source_directory, script_name):
        """``source_directory``, once ``script_name`` is found in it; ValueError (the SDK's) when not."""
        script_path = os.path.join(source_directory, script_name)
        if not os.path.isfile(script_path):
            raise ValueError(
                f"Step [{name}]: script not found at: {os.path.abspath(script_path)}. Make sure to specify an "
                "appropriate source_directory on the Step or default_source_directory on the Pipeline."
            )
        return source_directory

    id = property(lambda self: self._id, doc="Its id (a GUID).")
    name = property(lambda self: self._name, doc="Its name, unique in the workspace.")
    description = property(lambda self: self._description, doc="Its description.")
    status = property(lambda self: self._status, doc="Active, Deprecated or Disabled.")
    default_version = property(lambda self: self._default_version, doc="Its default version, or None.")

    def module_version_list(self) -> list[ModuleVersionDescriptor]:
        """Its versions (ModuleVersionDescriptor), oldest first."""
        return list(self._module_version_list)

    def publish_python_script(
        self,
        script_name,
        description,
        inputs,
        outputs,
        params=None,
        create_sequencing_ports=True,
        version=None,
        is_default=False,
        source_directory=None,
        hash_paths=None,
        category=None,
        arguments=None,
        runconfig=None,
    ) -> ModuleVersion:
        """Add a version that runs ``script_name`` of ``source_directory`` (snapshotted now), with
        input and output ports ``inputs`` (InputPortDef) and ``outputs`` (OutputPortDef), parameters
        ``params`` (name -> default, or ParamDef) and, optionally, its own ``arguments`` and
        ``runconfig`` for the steps that give none. ``is_default`` makes it the default version.
        A version the module has, or a wrong port, is refused with one line, nothing recorded."""
        if hash_paths:
            warnings.warn(
                "hash_paths is deprecated: the whole source_directory is always hashed",
                DeprecationWarning,
                stacklevel=2,
            )
        if source_directory is None:
            raise UserErrorException(
                f'module "{self._name}": publish_python_script needs source_directory=, '
                f"the folder holding {script_name}"
            )
        Module.process_source_directory(self._name, source_directory, script_name)
        interface = _interface(self._name, inputs, outputs, params)
        from localpipe.content.hashing import walk

        history = history_of_workspace(self._workspace)
        row = {
            "module_version_id": str(uuid.uuid4()),
            "version": None if version is None else str(version),
            "description": description,
            "category": category,
            "script_name": script_name,
            "source": store_tree(history, source_directory, [rel for rel, _, _ in walk(source_directory)]),
            "interface": interface,
            "arguments": None if arguments is None else _annotated(self._name, arguments),
            "runconfig": None if runconfig is None else runconfig._to_azure(),
        }
        record = history.modules.add_version(self._id, row)
        if is_default:
            self.set_default_version(record["version"])
        self._refresh()
        return ModuleVersion(self._workspace, record, record["version"], None)

    def resolve(self, version=None) -> ModuleVersion:
        """The version to run: ``version`` when given; else the default version; else, of the versions
        not disabled, the highest when all are numbers like 1.2.3, else the last updated."""
        self._refresh()
        if version is not None:
            found = next((v for v in self._module_version_list if v.version == str(version)), None)
            if found is None:
                known = ", ".join(str(v.version) for v in self._module_version_list) or "none"
                raise UserErrorException(
                    f'module "{self._name}" has no version "{version}" (it has {known}): pass one of those'
                )
            return ModuleVersion.get(self._workspace, found.module_version_id)
        default = self.get_default()
        if default is not None:
            return default
        candidates = [ModuleVersion.get(self._workspace, v.module_version_id) for v in self._module_version_list]
        candidates = [v for v in candidates if v.status != DISABLED]
        if not candidates:
            raise UserErrorException(
                f'module "{self._name}" has no version to run (none published, or all disabled): publish one '
                "(module.publish_python_script) or enable one"
            )
        if all(_numbered(v.version) for v in candidates):
            return max(candidates, key=lambda v: tuple(int(part) for part in v.version.split(".")))
        return max(candidates, key=lambda v: v._record["updated_at"])

    def enable(self) -> None:
        """Make it Active: its versions can be used in new steps."""
        self._set_status(ACTIVE)

    def disable(self) -> None:
        """Disable it: a new ModuleStep of it is refused until it is enabled."""
        self._set_status(DISABLED)

    def deprecate(self) -> None:
        """Deprecate it: it still runs, and a new ModuleStep of it warns."""
        self._set_status(DEPRECATED)

    def _set_status(self, status: str) -> None:
        _records(self._workspace).update(self._id, status=status)
        self._status = status

    def get_default_version(self) -> str | None:
        """``default_version``."""
        return self._default_version

    def set_default_version(self, version_id) -> None:
        """Make ``version_id`` (a version it has: "1", "2", ...) the default; another is refused with one line."""
        if version_id is None:
            raise UserErrorException(f'module "{self._name}": pass the version to make the default')
        _records(self._workspace).update(self._id, default_version=str(version_id))
        self._default_version = str(version_id)

    def get_default(self) -> ModuleVersion | None:
        """The default version's ModuleVersion, or None when it has no default."""
        found = next((v for v in self._module_version_list if v.version == self._default_version), None)
        return None if found is None else ModuleVersion.get(self._workspace, found.module_version_id)

    def set_name(self, name) -> None:
        """Rename it; a name another module has is refused with one line."""
        if name is None:
            raise UserErrorException("No name was provided")
        _records(self._workspace).update(self._id, name=name)
        self._name = name

    def set_description(self, description) -> None:
        """Change its description."""
        if description is None:
            raise UserErrorException("No description was provided")
        _records(self._workspace).update(self._id, description=description)
        self._description = description

    def __str__(self) -> str:
        versions = [(v.version, v.module_version_id) for v in self._module_version_list]
        return f"Module(Name: {self._name},\nId: {self._id},\nDescription: {self._description},\nVersions: {versions})"

    __repr__ = __str__


@dataclass(frozen=True)
class StructuredInterface:
    """A module version's interface: its ``inputs`` (InputPortDef), ``outputs`` (OutputPortDef) and
    ``parameters`` (ParamDef)."""

    inputs: list
    outputs: list
    parameters: list


class ModuleVersion:
    """A version of a module (``azureml.pipeline.core.module.ModuleVersion``): made by
    ``Module.publish_python_script``, got with ``ModuleVersion.get`` or ``Module.resolve``."""

    def __init__(self, workspace, module_entity, version, _module_version_provider):
        self._workspace = workspace
        self._record = module_entity  # history.db's row of the version, with its module's id, name and status
        self._version = version

    @staticmethod
    def get(workspace, module_version_id=None, _workflow_provider=None) -> ModuleVersion:
        """The version ``module_version_id``; NotFoundError when the workspace has none."""
        record = _records(workspace).version(module_version_id)
        return ModuleVersion(workspace, record, record["version"], None)

    status = property(lambda self: self._record["status"], doc="Active, Deprecated or Disabled.")
    module_id = property(lambda self: self._record["module_id"], doc="The id of its module.")
    description = property(lambda self: self._record["description"], doc="Its description.")
    module_version_id = property(lambda self: self._record["module_version_id"], doc="Its id (a GUID).")
    version = property(lambda self: self._version, doc="Its version, as published.")
    category = property(lambda self: self._record["category"], doc="Its category, as published.")

    @property
    def interface(self) -> StructuredInterface:
        """Its input and output ports and parameters."""
        interface = self._record["interface"]
        return StructuredInterface(
            [InputPortDef(**fields) for fields in interface["inputs"]],
            [OutputPortDef(**fields) for fields in interface["outputs"]],
            [ParamDef(**fields) for fields in interface["parameters"]],
        )

    @property
    def runconfig(self):
        """The RunConfiguration published with it (its steps' unless they give one), or None."""
        from localpipe.sdk.runconfig import from_azure

        document = self._record["runconfig"]
        return None if document is None else from_azure(document, str(self._source_directory()), None, None)

    def module(self, _workflow_provider=None) -> Module:
        """Its Module."""
        return Module.get(self._workspace, module_id=self.module_id)

    def set_description(self, description) -> None:
        """Change its description."""
        if description is None:
            raise UserErrorException("No description was provided")
        self._update(description=description)

    def enable(self) -> None:
        """Make it Active."""
        self._update(status=ACTIVE)

    def disable(self) -> None:
        """Disable it: a module resolves past it, and a new ModuleStep of it is refused."""
        self._update(status=DISABLED)

    def deprecate(self) -> None:
        """Deprecate it: it still runs, and a new ModuleStep of it warns."""
        self._update(status=DEPRECATED)

    def _update(self, **changes) -> None:
        records = _records(self._workspace)
        records.update_version(self.module_version_id, **changes)
        self._record = records.version(self.module_version_id)

    def _source_directory(self):
        from localpipe.state.store import ObjectStore

        return ObjectStore(history_of_workspace(self._workspace).layout.objects).path(self._record["source"])

    def _step_definition(self) -> dict:
        """What a ModuleStep runs, read afresh (a status may have changed): plain data, the source
        snapshot's path and the RunConfiguration."""
        record = _records(self._workspace).version(self.module_version_id)
        return {
            **record,
            "source_directory": str(self._source_directory()),
            "runconfig": self.runconfig,
            **record["interface"],
        }

    def __str__(self) -> str:
        record = self._record
        return (
            f"ModuleVersion(status: {record['status']},\nversion: {self._version},\nmodule_id: {record['module_id']},\n"
            f"module_version_id: {record['module_version_id']})"
        )

    __repr__ = __str__


def _numbered(version) -> bool:
    """Whether ``version`` is numbers joined by dots (1, 2.0, 1.10.3): the SDK's semantic versions."""
    return isinstance(version, str) and all(part.isdigit() for part in version.split("."))


def _interface(module: str, inputs, outputs, params) -> dict:
    """The ports and parameters as plain data; a port that is not an InputPortDef or OutputPortDef,
    or a name given twice, is refused naming the module."""
    for what, ports, kind in (("inputs", inputs or [], InputPortDef), ("outputs", outputs or [], OutputPortDef)):
        for port in ports:
            if not isinstance(port, kind):
                raise UserErrorException(
                    f'module "{module}": {what} holds {port!r}, not an {kind.__name__}: pass {kind.__name__}(name=...)'
                )
    names = [port.name for port in [*(inputs or []), *(outputs or [])]]
    twice = sorted({name for name in names if names.count(name) > 1})
    if twice:
        raise UserErrorException(f'module "{module}": two ports are named "{twice[0]}": give each port its own name')
    parameters = []
    for name, value in (params or {}).items():
        definition = value if isinstance(value, ParamDef) else ParamDef(name, value, set_env_var=True)
        definition.env_var_override = definition.env_var_override or param_env_variable(name)
        parameters.append(port_fields(definition))
    return {
        "inputs": [port_fields(port) for port in inputs or []],
        "outputs": [port_fields(port) for port in outputs or []],
        "parameters": parameters,
    }


def _annotated(module: str, arguments) -> list[dict]:
    """A version's own arguments as plain data: ports and parameters by name, text as it is."""
    found = []
    for argument in arguments:
        if isinstance(argument, InputPortDef):
            found.append({"kind": "input", "value": argument.name})
        elif isinstance(argument, OutputPortDef):
            found.append({"kind": "output", "value": argument.name})
        elif isinstance(argument, PipelineParameter):
            found.append({"kind": "parameter", "value": argument.name, "default": argument.default_value})
        elif isinstance(argument, str):
            found.append({"kind": "string", "value": argument})
        else:
            raise UserErrorException(
                f'module "{module}": argument {argument!r} cannot be kept: pass text, an InputPortDef, an '
                "OutputPortDef or a PipelineParameter"
            )
    return found
