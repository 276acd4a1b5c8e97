"""A pipeline written as YAML, in the format of Azure ML SDK v1's ``Pipeline.load_yaml``.

``load_steps`` reads the file into the SDK's declarations (steps, with their parameters, data
references and the PipelineData between them) and the pipeline's description, as the SDK's own
``_PipelineYamlParser`` does; ``Pipeline.load_yaml`` makes the Pipeline of them. Keys and checks
follow the SDK's parser, its ValueErrors included (``PipelineYamlError`` is one, with the file
named and the fix said). Relative paths (``runconfig``, ``parallel_run_config``,
``source_directory``) are taken from the current directory, as the SDK takes them;
``localpipe submit pipeline.yml`` runs with the file's folder as the current directory.
docs/pipeline-yaml.md is the user's page; ``client/pipeline_yaml.py`` writes the format.
"""

from __future__ import annotations

import os
import warnings

from localpipe.errors import PipelineYamlError
from localpipe.sdk.data import (
    DataPath,
    DataPathComputeBinding,
    DataReference,
    Dataset,
    DatasetConsumptionConfig,
    Datastore,
    FileDataset,
    PipelineData,
)
from localpipe.sdk.parameters import PipelineParameter

PARAMETER_TYPES = {"string": str, "int": int, "float": float, "bool": bool}
INPUT_MODES = ("mount", "download")
DATASET_MODES = (*INPUT_MODES, "direct")  # localpipe's: a dataset given to the step as itself
OUTPUT_MODES = ("mount", "upload")
# The SDK's step types: the ``type:`` value, and the deprecated section key that means the same.
PYTHON, PARALLEL, MODULE = "PythonScriptStep", "ParallelRunStep", "ModuleStep"
LEGACY_KEYS = {"python_script_step": PYTHON, "parallel_run_step": PARALLEL, "module": MODULE}
CLOUD_STEPS = {
    "AdlaStep": ("adla_step", "Azure Data Lake Analytics"),
    "DatabricksStep": ("databricks_step", "Azure Databricks"),
    "DataTransferStep": ("data_transfer_step", "Azure Data Factory"),
    "AzureBatchStep": ("azurebatch_step", "Azure Batch"),
}
REFERENCE_ARGUMENTS = ("input:", "output:", "side_input:", "parameter:")


def load_steps(workspace, filename) -> tuple[list, str | None]:
    """The steps of the pipeline YAML ``filename`` and its description; PipelineYamlError (a
    ValueError) naming the file, the thing at fault and the fix, for a file that is not one."""
    where = os.fspath(filename)
    document = read(where)
    if not isinstance(document, dict) or "pipeline" not in document:
        raise PipelineYamlError(
            f'{where}: Pipeline Yaml file must have a "pipeline:" section: put the pipeline\'s keys '
            "(parameters, data_references, steps) under a top-level pipeline:"
        )
    section = _mapping(where, "pipeline", document["pipeline"])
    description = section.get("name")
    if "name" in section:
        warnings.warn("Pipeline yaml parameter name is being deprecated. Use description instead.", stacklevel=3)
    description = section.get("description", description)
    reader = _Reader(workspace, where, section)
    steps = section.get("steps")
    if not steps:
        raise PipelineYamlError(
            f"{where}: Pipeline Yaml file must have at least one step defined: add steps: with one entry "
            "per step (type: PythonScriptStep, script_name: ...)"
        )
    steps = _mapping(where, "steps", steps)
    return [reader.step(str(name), _mapping(where, f"step {name}", body)) for name, body in steps.items()], description


def read(where: str):
    """The YAML document in the file ``where``; a syntax error is one line with its line number."""
    import yaml

    with open(where, encoding="utf-8") as handle:
        text = handle.read()
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = f"line {mark.line + 1}" if mark is not None else "somewhere"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PipelineYamlError(f"{where}: YAML syntax error at {line}: {problem}: fix the file there") from None


def _mapping(where: str, what: str, value) -> dict:
    if not isinstance(value, dict):
        raise PipelineYamlError(
            f"{where}: {what} is {type(value).__name__} {value!r}, not a mapping: write it as key: value lines"
        )
    return value


class _Reader:
    """What the steps of one file share: its parameters, data references and PipelineData by name."""

    def __init__(self, workspace, where: str, section: dict):
        self.workspace = workspace
        self.where = where
        self.default_compute = section.get("default_compute")
        self.parameters = self._parameters(section.get("parameters") or {})
        self.references = self._references(section.get("data_references") or {})
        self.data: dict[str, PipelineData] = {}

    def fail(self, message: str):
        raise PipelineYamlError(f"{self.where}: {message}")

    # -- the pipeline's sections ------------------------------------------------------------------
    def _parameters(self, section) -> dict[str, PipelineParameter]:
        found = {}
        for name, body in _mapping(self.where, "parameters", section).items():
            if not isinstance(body, dict) or "type" not in body:
                self.fail(
                    f"Parameter {name} must specify a type of string, int, float, bool, or datapath: add type: under it"
                )
            kind = body["type"]
            if kind == "datapath":
                default = body.get("default")
                if default is not None:
                    if not isinstance(default, dict) or not {"datastore", "path_on_datastore"} <= set(default):
                        self.fail(
                            f"Default value for datapath parameter {name} must specify datastore and path_on_datastore"
                        )
                    store = self._datastore(default["datastore"])
                    default = DataPath(store, default["path_on_datastore"], default.get("name"))
            elif kind in PARAMETER_TYPES:
                default = self._default(name, kind, body)
            else:
                self.fail(
                    f"Parameter type {kind} currently unsupported (parameter {name}): "
                    "use string, int, float, bool or datapath"
                )
            found[str(name)] = PipelineParameter(str(name), default)
        return found

    def _default(self, name, kind: str, body: dict):
        """The SDK's defaults: 0, 0.0 and False when none is given (a string's is None)."""
        convert = PARAMETER_TYPES[kind]
        if "default" not in body:
            return None if kind == "string" else convert()
        try:
            return convert(body["default"])
        except (TypeError, ValueError):
            self.fail(f"parameter {name}: default {body['default']!r} is not a {kind}: fix it")

    def _datastore(self, name) -> Datastore:
        return Datastore(self.workspace, name)

    def _references(self, section) -> dict:
        found = {}
        for name, body in _mapping(self.where, "data_references", section).items():
            body = _mapping(self.where, f"data reference {name}", body)
            if "datastore" in body and "path_on_datastore" in body:
                found[name] = DataReference(self._datastore(body["datastore"]), name, body["path_on_datastore"])
            elif "datastore" in body and any(key.startswith("sql_") for key in body):
                self.fail(f"data reference {name} reads an Azure SQL database, which needs Azure: use a folder")
            elif "dataset_name" in body:
                found[name] = Dataset.get_by_name(self.workspace, body["dataset_name"])
            elif "dataset_id" in body:
                found[name] = Dataset.get_by_id(self.workspace, body["dataset_id"])
            else:
                self.fail(
                    f"Unrecognized data reference type for data reference {name}: give datastore and "
                    "path_on_datastore, or dataset_name, or dataset_id"
                )
        return found

    # -- a step --------------------------------------------------------------------------------------
    def step(self, name: str, body: dict):
        kind = self._kind(name, body)
        section = body if "type" in body else body[next(k for k, v in LEGACY_KEYS.items() if v == kind)]
        if "type" not in body:
            warnings.warn(f"{kind} section is being deprecated. Use type instead.", stacklevel=4)
        section = _mapping(self.where, f"step {name}", section)
        params = self._assignments(name, "parameters", body.get("parameters") or {})
        inputs = self._inputs(name, "inputs", body.get("inputs") or {})
        side_inputs = self._inputs(name, "side_inputs", body.get("side_inputs") or {})
        outputs = self._outputs(name, body.get("outputs") or {})
        arguments = self._arguments(name, body.get("arguments") or [], inputs, outputs, side_inputs, params)
        allow_reuse = section.get("allow_reuse", True)
        if not isinstance(allow_reuse, bool):
            self.fail(f"allow_reuse for step {name} must be a bool: write true or false")
        if kind == MODULE:  # its name: is the module's; the step is named by its key
            return self._module_step(name, section, body, arguments, inputs, outputs, params)
        display = self._text(name, section, "name") or name  # the YAML key when no name: is given
        if kind == PARALLEL:
            return self._parallel(name, display, body, arguments, inputs, side_inputs, outputs, allow_reuse)
        from localpipe.sdk.steps import PythonScriptStep

        script = self._text(name, section, "script_name")
        if not script:
            self.fail(f"Step {name} does not contain a script name: add script_name: under it")
        hash_paths = section.get("hash_paths")
        return PythonScriptStep(
            script_name=script,
            name=display,
            arguments=arguments,
            **self._placement(name, body),
            inputs=list(inputs.values()),
            outputs=list(outputs.values()),
            params=params,
            source_directory=self._text(name, section, "source_directory"),
            allow_reuse=allow_reuse,
            version=self._text(name, section, "version"),
            hash_paths=list(hash_paths) if hash_paths is not None else None,
        )

    def _kind(self, name: str, body: dict) -> str:
        kind = body.get("type")
        if kind is None:
            legacy = [LEGACY_KEYS[key] for key in LEGACY_KEYS if key in body]
            cloud = [step for step, (key, _) in CLOUD_STEPS.items() if key in body]
            kind = (legacy or cloud or [None])[0]
        if kind in CLOUD_STEPS:
            self.fail(
                f"step {name} is a {kind}, which needs Azure ({CLOUD_STEPS[kind][1]}): run it as a PythonScriptStep "
                "on this machine, or submit this pipeline to Azure ML"
            )
        if kind not in (PYTHON, PARALLEL, MODULE):
            what = f"type {kind!r} is not a step type" if kind is not None else "has no type"
            self.fail(f"step {name} {what}: give it type: PythonScriptStep (or ParallelRunStep, ModuleStep)")
        return kind

    def _placement(self, name: str, body: dict) -> dict:
        """Where and how a PythonScriptStep or a ModuleStep runs: its compute, runconfig file and the
        pipeline parameters assigned to runconfig values."""
        from localpipe.sdk.runconfig import RunConfiguration

        return {
            "compute_target": body.get("compute", self.default_compute),
            "runconfig": RunConfiguration.load(body["runconfig"]) if body.get("runconfig") else None,
            "runconfig_pipeline_params": self._assignments(
                name, "runconfig_parameters", body.get("runconfig_parameters")
            ),
        }

    def _module_step(self, name: str, section: dict, body: dict, arguments, inputs, outputs, params):
        """A ModuleStep of the module named by ``id`` or ``name`` (its ``version``, or the one it
        resolves), its ports mapped to the step's inputs and outputs by their names, as the SDK's
        parser makes it."""
        from localpipe.errors import NotFoundError
        from localpipe.sdk.modules import ModuleStep

        if "id" not in section and "name" not in section:
            self.fail(f"Step {name} does not contain a module ID or name (one must be specified): add id: or name:")
        module_id, module_name, version = (self._text(name, section, key) for key in ("id", "name", "version"))
        try:
            module = self.workspace.service.module(module_id, module_name)
        except NotFoundError as exc:
            self.fail(f"step {name}: {exc}")
        return ModuleStep(
            module=module,
            version=version,
            inputs_map=inputs,
            outputs_map=outputs,
            **self._placement(name, body),
            arguments=arguments,
            params=params,
            name=name,
        )

    def _text(self, name: str, section: dict, key: str) -> str | None:
        value = section.get(key)
        if value and not isinstance(value, str):
            self.fail(f"{key} for step {name} must be a string: quote it")
        return value

    def _assignments(self, name: str, what: str, section) -> dict:
        """``parameters`` (or ``runconfig_parameters``): values, or ``source:`` a pipeline parameter."""
        found = {}
        for key, value in _mapping(self.where, f"{what} of step {name}", section or {}).items():
            if isinstance(value, dict) and "source" in value:
                if value["source"] not in self.parameters:
                    known = ", ".join(self.parameters) or "none"
                    self.fail(
                        f"Parameter {key} for step {name} is assigned to source {value['source']}, which doesn't "
                        f"exist: declare it under pipeline: parameters: (declared: {known})"
                    )
                value = self.parameters[value["source"]]
            found[str(key)] = value
        return found

    def _inputs(self, name: str, what: str, section) -> dict:
        found = {}
        for key, body in _mapping(self.where, f"{what} of step {name}", section).items():
            key = str(key)
            if not isinstance(body, dict) or "source" not in body:
                self.fail(f"Input {key} for step {name} must have a source assignment: add source: under it")
            source = body["source"]
            mode = body.get("bind_mode", body.get("type", "mount"))
            path_on_compute = body.get("path_on_compute")
            reference = self.references.get(source)
            allowed = DATASET_MODES if isinstance(reference, FileDataset) else INPUT_MODES
            if mode not in allowed:
                self.fail(
                    f"Input bind_mode/type {mode} for input {key} in step {name} must be "
                    f"{' or '.join(allowed)}: fix bind_mode"
                )
            parameter = self.parameters.get(source)
            if parameter is not None and isinstance(parameter.default_value, DataPath):
                binding = DataPathComputeBinding(mode, path_on_compute, bool(body.get("overwrite")))
                found[key] = (parameter, binding)
            elif isinstance(reference, DataReference):
                found[key] = DataReference(reference.datastore, key, reference.path_on_datastore, mode, path_on_compute)
            elif isinstance(reference, FileDataset):
                found[key] = DatasetConsumptionConfig(key, reference, mode, path_on_compute)
            else:
                data = self.data.setdefault(source, PipelineData(source))
                found[key] = data.as_download(key, path_on_compute) if mode == "download" else data.as_mount(key)
        return found

    def _outputs(self, name: str, section) -> dict:
        found = {}
        for key, body in _mapping(self.where, f"outputs of step {name}", section).items():
            key = str(key)
            if not isinstance(body, dict) or "destination" not in body:
                self.fail(f"Output {key} for step {name} must have a destination assignment: add destination:")
            mode = body.get("bind_mode", body.get("type", "mount"))
            if mode not in OUTPUT_MODES:
                self.fail(
                    f"Output bind_mode/type {mode} for output {key} in step {name} must be mount or upload: "
                    "fix bind_mode"
                )
            destination = body["destination"]
            data = self.data.get(destination)
            settings = {
                "datastore": self._datastore(body["datastore"]) if body.get("datastore") else None,
                "output_name": key,
                "output_mode": mode,
                "output_overwrite": body.get("overwrite"),
                "is_directory": body.get("is_directory", True) is not False,  # localpipe's: false, a file
            }
            if data is None:  # else a step read it first: the same data, its settings given now
                data = self.data[destination] = PipelineData(
                    destination, output_path_on_compute=body.get("path_on_compute"), **settings
                )
            else:
                data.__dict__.update(settings)
            found[key] = data.as_dataset() if body.get("as_dataset") else data
        return found

    def _arguments(self, name: str, arguments, inputs, outputs, side_inputs, params) -> list:
        if not isinstance(arguments, list):
            self.fail(f"arguments of step {name} is not a list: write one - item per argument")
        # ``parameter:NAME``: the step's parameter NAME, else (localpipe's) the pipeline parameter NAME
        tables = {"input:": inputs, "output:": outputs, "side_input:": side_inputs}
        tables["parameter:"] = {**self.parameters, **params}
        resolved = []
        for argument in arguments:
            prefix = next(
                (p for p in REFERENCE_ARGUMENTS if isinstance(argument, str) and argument.startswith(p)), None
            )
            if prefix is None:
                resolved.append(argument)
                continue
            key, table = argument[len(prefix) :], tables[prefix]
            if key not in table:
                section = {"input:": "inputs", "output:": "outputs", "side_input:": "side_inputs"}.get(
                    prefix, "parameters"
                )
                self.fail(
                    f'step {name}: argument "{argument}" names no {prefix[:-1]} of the step '
                    f"(its {section}: {', '.join(table) or 'none'}): add it under {section}: or fix the name"
                )
            resolved.append(table[key])  # a side input too: its path (the SDK passes its text)
        return resolved

    def _parallel(self, name, display, body, arguments, inputs, side_inputs, outputs, allow_reuse):
        from localpipe.sdk.parallel_run import ParallelRunConfig, ParallelRunStep

        if not body.get("parallel_run_config"):
            self.fail(f"step {name} is a ParallelRunStep without parallel_run_config: name its YAML file")
        if body.get("models_id"):
            self.fail(f"step {name}: models_id is not built yet: load the models in the entry script's init()")
        config = ParallelRunConfig.load_yaml(self.workspace, body["parallel_run_config"])
        consumed = [_named(key, value) for key, value in inputs.items()]
        return ParallelRunStep(
            name=display,
            parallel_run_config=config,
            inputs=consumed,
            output=next(iter(outputs.values()), None),
            side_inputs=[_named(key, value) for key, value in side_inputs.items()],
            arguments=arguments,
            allow_reuse=allow_reuse,
        )


def _named(key: str, value):
    """A ParallelRunStep's input, as the SDK gives it: the dataset ``as_named_input(key)``."""
    if isinstance(value, DatasetConsumptionConfig):
        return DatasetConsumptionConfig(key, value.dataset)
    return value
