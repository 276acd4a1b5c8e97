"""A module's interface (``InputPortDef``, ``OutputPortDef``, ``ParamDef`` of
``azureml.pipeline.core.graph``) and the step that runs one of its versions (``ModuleStep``).

A ModuleStep is a PythonScriptStep of the version's script, run from the version's source
snapshot (taken when it was published: later edits of the folder change nothing), with the
pipeline's data wired to the version's ports by ``inputs_map`` and ``outputs_map``. As in the
SDK, a wired input or output takes its port's name (``out_sum``, ``in1``), and a PipelineParameter
in ``arguments`` joins the step's ``params``. The version is resolved when the step is made
(``Module.resolve``); docs/modules.md is the user's page.
"""

from __future__ import annotations

import copy
import dataclasses
import re
import warnings

from localpipe.errors import UserErrorException
from localpipe.sdk.data import DataReference, DatasetConsumptionConfig, FileDataset, PipelineData, PipelineDataInput
from localpipe.sdk.parameters import PipelineParameter
from localpipe.sdk.steps import PythonScriptStep

DISABLED, DEPRECATED = "Disabled", "Deprecated"


class InputPortDef:
    """An input port of a module version: a name its ModuleSteps map data to (``inputs_map``)."""

    def __init__(
        self,
        name,
        data_types=None,
        default_datastore_mode=None,
        default_path_on_compute=None,
        is_optional=False,
        default_overwrite=None,
        default_data_reference_name=None,
        is_resource=False,
        label=None,
        additional_transformations=None,
        **kwargs,
    ):
        self._name = name
        self._data_types = data_types if data_types is not None else ["AnyFile", "AnyDirectory"]
        self._default_path_on_compute = default_path_on_compute
        self._is_optional = is_optional
        self._default_datastore_mode = default_datastore_mode
        self._default_overwrite = default_overwrite
        self._default_data_reference_name = default_data_reference_name
        self._is_resource = is_resource
        self._label = label
        self._additional_transformations = additional_transformations

    name = property(lambda self: self._name, doc="The port's name.")
    data_types = property(lambda self: self._data_types, doc='The data types it takes (["AnyFile", "AnyDirectory"]).')
    default_path_on_compute = property(
        lambda self: self._default_path_on_compute, doc="Where a downloaded input is placed in the step's inputs."
    )
    is_optional = property(lambda self: self._is_optional, doc="Whether a ModuleStep may leave it unmapped.")
    default_datastore_mode = property(
        lambda self: self._default_datastore_mode,
        doc='"mount" or "download": how a PipelineData mapped to it bare is consumed.',
    )
    default_overwrite = property(lambda self: self._default_overwrite, doc="Kept as given: a step's folder is new.")
    default_data_reference_name = property(lambda self: self._default_data_reference_name, doc="Kept as given.")
    is_resource = property(lambda self: self._is_resource, doc="Kept as given.")
    label = property(lambda self: self._label, doc="Its label, for people.")
    additional_transformations = property(lambda self: self._additional_transformations, doc="Kept as given.")

    def __repr__(self) -> str:
        return f"InputPortDef(name={self._name!r})"


class OutputPortDef:
    """An output port of a module version: a name its ModuleSteps map a PipelineData to (``outputs_map``)."""

    def __init__(
        self,
        name,
        default_datastore_name=None,
        default_datastore_mode=None,
        default_path_on_compute=None,
        is_directory=False,
        data_type=None,
        default_overwrite=None,
        training_output=None,
        label=None,
    ):
        self._name = name
        self._default_datastore_name = default_datastore_name
        self._default_datastore_mode = default_datastore_mode
        self._default_path_on_compute = default_path_on_compute
        self._is_directory = is_directory
        self._default_overwrite = default_overwrite
        self._training_output = training_output
        self._label = label
        self._data_type = data_type if data_type is not None else ("AnyDirectory" if is_directory else "AnyFile")

    name = property(lambda self: self._name, doc="The port's name.")
    default_datastore_name = property(lambda self: self._default_datastore_name, doc="Kept as given.")
    default_datastore_mode = property(lambda self: self._default_datastore_mode, doc="Kept as given.")
    default_path_on_compute = property(lambda self: self._default_path_on_compute, doc="Kept as given.")
    is_directory = property(
        lambda self: self._is_directory, doc="Kept as given: the PipelineData mapped to it says what the step writes."
    )
    data_type = property(lambda self: self._data_type, doc='"AnyDirectory" or "AnyFile" unless given.')
    default_overwrite = property(lambda self: self._default_overwrite, doc="Kept as given.")
    training_output = property(lambda self: self._training_output, doc="Kept as given.")
    label = property(lambda self: self._label, doc="Its label, for people.")

    def __repr__(self) -> str:
        return f"OutputPortDef(name={self._name!r})"


class ParamDef:
    """A parameter of a module version, with its default; a step gets it as ``AML_PARAMETER_<name>``."""

    def __init__(
        self,
        name,
        default_value=None,
        is_metadata_param=False,
        is_optional=False,
        set_env_var=False,
        calculate_hash=True,
        env_var_override=None,
    ):
        self.name = name
        self.default_value = default_value
        self.env_var_override = env_var_override
        self.is_metadata_param = is_metadata_param
        self.is_optional = is_optional
        self.calculate_hash = calculate_hash
        self.set_env_var = set_env_var

    def __repr__(self) -> str:
        return f"ParamDef(name={self.name!r}, default_value={self.default_value!r})"


PORT_FIELDS = {
    InputPortDef: (
        "name",
        "data_types",
        "default_datastore_mode",
        "default_path_on_compute",
        "is_optional",
        "default_overwrite",
        "default_data_reference_name",
        "is_resource",
        "label",
    ),
    OutputPortDef: (
        "name",
        "default_datastore_name",
        "default_datastore_mode",
        "default_path_on_compute",
        "is_directory",
        "data_type",
        "default_overwrite",
        "label",
    ),
    ParamDef: ("name", "default_value", "is_optional", "env_var_override"),
}


def port_fields(port) -> dict:
    """A port or parameter definition as plain data (what history.db keeps of it)."""
    return {name: getattr(port, name) for name in PORT_FIELDS[type(port)]}


def param_env_variable(name: str) -> str:
    """``AML_PARAMETER_<name>``, with what an environment variable's name cannot hold made "_" (the SDK's)."""
    return "AML_PARAMETER_" + re.sub(r"[~\W]", "_", name)


class ModuleStep(PythonScriptStep):
    """A step that runs a version of a Module (``azureml.pipeline.steps.ModuleStep``): give
    ``module_version``, or ``module`` and a ``version`` (left out, the module resolves one:
    its default, else the highest numbered, else the newest), and map the version's ports to the
    pipeline's data with ``inputs_map`` and ``outputs_map``. A disabled module or version is refused."""

    def __init__(
        self,
        module=None,
        version=None,
        module_version=None,
        inputs_map=None,
        outputs_map=None,
        compute_target=None,
        runconfig=None,
        runconfig_pipeline_params=None,
        arguments=None,
        params=None,
        name=None,
        _workflow_provider=None,
    ):
        if module is None and module_version is None:  # the SDK's words
            raise ValueError("Exactly one of module or module_version is required but both are missing")
        if module is not None and module_version is not None:
            raise ValueError("Exactly one of module or module_version is required but both are provided")
        self._module = module
        self._version = version if module is not None else module_version.version
        self._module_version = module_version if module_version is not None else module.resolve(version)
        definition = self._module_version._step_definition()
        _check_usable(definition)
        self.module_label = f'module "{definition["module_name"]}" version "{definition["version"]}"'
        self.ports = {
            "inputs": {p["name"]: bool(p["is_optional"]) for p in definition["inputs"]},
            "outputs": [p["name"] for p in definition["outputs"]],
        }
        self._module_wiring = {"inputs": dict(inputs_map or {}), "outputs": dict(outputs_map or {})}
        self.mapped = {what: list(self._module_wiring[what]) for what in ("inputs", "outputs")}  # checked by planning
        port_defs = {p["name"]: p for p in definition["inputs"]}
        wired = {
            port: _wired_input(port, data, port_defs.get(port)) for port, data in self._module_wiring["inputs"].items()
        }
        # The data mapped to an output becomes, for this step, an output named after its port; the
        # original still names it for the steps that consume it (output_name_of).
        self._wired_outputs = {
            port: (data, _wired_output(port, data)) for port, data in self._module_wiring["outputs"].items()
        }
        replaced = {id(data): wired[port] for port, data in self._module_wiring["inputs"].items()}
        replaced.update({id(data): clone for data, clone in self._wired_outputs.values()})
        if not arguments and definition["arguments"]:
            clones = {port: clone for port, (_, clone) in self._wired_outputs.items()}
            arguments = _version_arguments(definition["arguments"], wired, clones, params)
        arguments = [replaced.get(id(item), item) for item in arguments or []]
        super().__init__(
            script_name=definition["script_name"],
            name=name or definition["module_name"],
            arguments=arguments,
            compute_target=compute_target,
            runconfig=runconfig if runconfig is not None else definition["runconfig"],
            runconfig_pipeline_params=runconfig_pipeline_params,
            inputs=list(wired.values()),
            outputs=[clone for _, clone in self._wired_outputs.values()],
            params=_step_params(definition["parameters"], params, arguments),
            source_directory=definition["source_directory"],
        )
        self.default_name = None if name is not None else definition["module_name"]

    def output_name_of(self, data) -> str:
        """The name this step gives ``data``, one of its outputs: the port it is mapped to."""
        return next((port for port, (original, _) in self._wired_outputs.items() if data is original), data.name)


def _check_usable(definition: dict) -> None:
    module, version = definition["module_name"], definition["version"]
    if definition["module_status"] == DISABLED:
        raise UserErrorException(
            f'module "{module}" is disabled: enable it (Module.get(ws, name="{module}").enable()) to use it in a step'
        )
    if definition["status"] == DISABLED:
        raise UserErrorException(
            f'version "{version}" of module "{module}" is disabled: enable it '
            f'(ModuleVersion.get(ws, "{definition["module_version_id"]}").enable()) or use another version'
        )
    if DEPRECATED in (definition["module_status"], definition["status"]):
        what = (
            f'module "{module}"'
            if definition["module_status"] == DEPRECATED
            else f'version "{version}" of module "{module}"'
        )
        warnings.warn(f"{what} is deprecated: it still runs; move to another one", UserWarning, stacklevel=3)


def _wired_input(port: str, data, port_def: dict | None):
    """``data`` consumed under the port's name: a PipelineData bare by the port's default mode."""
    if isinstance(data, PipelineData):
        if port_def and port_def["default_datastore_mode"] == "download":
            return data.as_download(port, port_def["default_path_on_compute"])
        return data.as_mount(port)
    if isinstance(data, PipelineDataInput):
        return dataclasses.replace(data, name=port)
    if isinstance(data, DatasetConsumptionConfig):
        return DatasetConsumptionConfig(port, data.dataset, data.mode, data.path_on_compute)
    if isinstance(data, FileDataset):
        return data.as_named_input(port)
    if isinstance(data, DataReference):
        renamed = copy.copy(data)
        renamed.data_reference_name = port
        return renamed
    return data  # planning says what it is not


def _wired_output(port: str, data):
    if not isinstance(data, PipelineData):
        return data  # planning says it is not a PipelineData
    clone = copy.copy(data)  # shares the list of its producers with the original
    clone.name = clone.output_name = port
    return clone


def _step_params(definitions: list[dict], params: dict | None, arguments: list) -> dict:
    """The version's parameters' defaults, then the step's ``params``, then the PipelineParameters of
    its arguments (the SDK binds them as parameters too)."""
    given = dict(params or {})
    implicit = {item.name: item for item in arguments if isinstance(item, PipelineParameter)}
    for name, parameter in implicit.items():
        if name in given and given[name] is not parameter:  # the SDK's words
            raise UserErrorException(f"Parameter name {name} is already in use")
    defaults = {d["name"]: d["default_value"] for d in definitions if d["default_value"] is not None}
    return {**defaults, **given, **implicit}


def _version_arguments(annotated: list[dict], inputs: dict, outputs: dict, params: dict | None) -> list:
    """A version's own arguments, for a step that gives none: its ports as the data wired to them
    (a port not wired is left out: planning names it), its parameters as the step's values."""
    found = []
    for argument in annotated:
        kind, value = argument["kind"], argument["value"]
        if kind == "input" and value in inputs:
            found.append(inputs[value])
        elif kind == "output" and value in outputs:
            found.append(outputs[value])
        elif kind == "parameter":
            found.append((params or {}).get(value, PipelineParameter(value, argument["default"])))
        elif kind == "string":
            found.append(value)
    return found
