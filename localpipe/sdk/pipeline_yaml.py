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

import contextlib
import functools
import os
import warnings
from collections.abc import Iterator

from localpipe.errors import LocalpipeError, PipelineYamlError
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
# The keys read (a ModuleStep's id too), to warn of one misspelt (allow_resue: false would be ignored).
STEP_KEYS = {
    "type", "name", "script_name", "source_directory", "arguments", "parameters", "inputs", "outputs",
    "side_inputs", "compute", "runconfig", "runconfig_parameters", "allow_reuse", "version", "hash_paths",
    "parallel_run_config", "models_id", "id", *LEGACY_KEYS,
}  # fmt: skip
INPUT_KEYS = {"source", "bind_mode", "type", "path_on_compute", "overwrite"}
OUTPUT_KEYS = {"destination", "datastore", "bind_mode", "type", "path_on_compute", "overwrite", "as_dataset",
               "is_directory"}  # fmt: skip


def load_steps(workspace, filename) -> tuple[list, str | None, list[str]]:
    """The steps of the pipeline YAML ``filename``, its description and the other files it read (its
    runconfig and parallel_run_config files, absolute); PipelineYamlError (a ValueError) naming the
    file, the thing at fault and the fix, for a file that is not one."""
    where = os.fspath(filename)
    document = read(where)
    if not isinstance(document, dict) or "pipeline" not in document:
        raise PipelineYamlError(
            f'{where}: Pipeline Yaml file must have a "pipeline:" section: put the pipeline\'s keys '
            "(parameters, data_references, steps) under a top-level pipeline:"
        )
    with _naming(where, where):
        return _load_section(workspace, where, _mapping(where, "pipeline", document["pipeline"]))


def _load_section(workspace, where: str, section: dict) -> tuple[list, str | None, list[str]]:
    description = section.get("name")
    if "name" in section:
        warnings.warn("Pipeline yaml parameter name is being deprecated. Use description instead.", stacklevel=4)
    description = section.get("description", description)
    reader = _Reader(workspace, where, section)
    steps = section.get("steps")
    if not steps:
        raise PipelineYamlError(
            f"{where}: Pipeline Yaml file must have at least one step defined: add steps: with one entry "
            "per step (type: PythonScriptStep, script_name: ...)"
        )
    found = []
    for name, body in _mapping(where, "steps", steps).items():
        with _naming(where, f"{where}: step {name}"):
            found.append(reader.step(str(name), _mapping(where, f"step {name}", body)))
    return found, description, sorted(reader.files)


@contextlib.contextmanager
def _naming(where: str, prefix: str) -> Iterator[None]:
    """An error of localpipe's while reading (a datastore or dataset the file names that is not
    there) says where in the file, its class kept (``Dataset.get_by_name``'s UserErrorException)."""
    try:
        yield
    except PipelineYamlError:
        raise  # it names the file and the place already
    except LocalpipeError as exc:
        if not str(exc).startswith(where):
            exc.args = (f"{prefix}: {exc}", *exc.args[1:])
        raise


def read(where: str):
    """The YAML document in the file ``where`` (plain data only: no tag builds an object); a syntax
    error, or a key given twice in one mapping, is one line with its line number."""
    import yaml

    with open(where, "rb") as handle:  # bytes: YAML reads UTF-8, or UTF-16 by its byte order mark
        text = handle.read()
    try:
        document = yaml.load(text, Loader=_unique_keys_loader())  # a SafeLoader: no tag runs code
    except yaml.reader.ReaderError as exc:
        raise PipelineYamlError(
            f"{where}: byte {exc.position} is not text YAML reads ({exc.reason}): save the file as UTF-8"
        ) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        line = f"line {mark.line + 1}" if mark is not None else "somewhere"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PipelineYamlError(f"{where}: YAML syntax error at {line}: {problem}: fix the file there") from None
    if _count_values(document, MAX_VALUES) > MAX_VALUES:
        raise PipelineYamlError(
            f"{where}: the file expands to more than {MAX_VALUES} values (its aliases, *name, repeat "
            "anchors that repeat others): write the repeated parts out, or alias them less deeply"
        )
    return document


MAX_VALUES = 1_000_000  # a pipeline of thousands of steps has far fewer; nested aliases can make billions


def _count_values(value, limit: int) -> int:
    """How many values ``value`` holds, each alias counted every time it is used; stops past ``limit``
    (a document is a tree of values, where one object may be reached many times)."""
    count, pending = 0, [value]
    while pending and count <= limit:
        value = pending.pop()
        count += 1
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)
    return count


@functools.lru_cache(maxsize=None)
def _unique_keys_loader():
    """yaml.SafeLoader (libyaml's when installed) refusing a key given twice in one mapping, which
    it keeps the last of: a step copied under the same name would vanish. Keys a merge
    (``<<: *anchor``) brings are not counted: overriding them is what a merge is for."""
    import yaml

    class UniqueKeyLoader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # libyaml: 4 times faster
        def construct_mapping(self, node, deep=False):
            if isinstance(node, yaml.MappingNode):
                seen = {}
                for key_node, _ in node.value:
                    if key_node.tag == "tag:yaml.org,2002:merge" or not isinstance(key_node, yaml.ScalarNode):
                        continue
                    key = self.construct_object(key_node)
                    if key in seen:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"key {key!r} is given twice (first at line {seen[key]})", key_node.start_mark
                        )
                    seen[key] = key_node.start_mark.line + 1
            return super().construct_mapping(node, deep=deep)

    return UniqueKeyLoader


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
        compute = section.get("default_compute")
        self.default_compute = compute if compute is None else self.name("default_compute", compute)
        self.parameters = self._parameters(section.get("parameters") or {})
        self.references = self._references(section.get("data_references") or {})
        self.data: dict[str, PipelineData] = {}
        self.files: set[str] = set()  # the runconfig and parallel_run_config files read

    def fail(self, message: str):
        raise PipelineYamlError(f"{self.where}: {message}")

    def name(self, what: str, value) -> str:
        """``value``, a name (of a parameter, data, step type, file): text, else one line naming ``what``."""
        if not isinstance(value, str) or not value:
            self.fail(f"{what} is {type(value).__name__} {value!r}, not a name: write it as text")
        return value

    # -- the pipeline's sections ------------------------------------------------------------------
    def _parameters(self, section) -> dict[str, PipelineParameter]:
        found = {}
        for name, body in _mapping(self.where, "parameters", section).items():
            if not isinstance(body, dict) or "type" not in body:
                self.fail(
                    f"Parameter {name} must specify a type of string, int, float, bool, or datapath: add type: under it"
                )
            kind = self.name(f"the type of parameter {name}", body["type"])
            if kind == "datapath":
                default = body.get("default")
                if default is not None:
                    if not isinstance(default, dict) or not {"datastore", "path_on_datastore"} <= set(default):
                        self.fail(
                            f"Default value for datapath parameter {name} must specify datastore and path_on_datastore"
                        )
                    store = self._datastore(self.name(f"parameter {name}: datastore", default["datastore"]))
                    path = self.name(f"parameter {name}: path_on_datastore", default["path_on_datastore"])
                    default = DataPath(store, path, default.get("name"))
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
        """The SDK's defaults: 0, 0.0 and False when none is given (a string's is None). A value is
        taken as written or from its text ("40", "false"), never cut or guessed: int(3.7) would be 3
        and bool("false") True."""
        convert = PARAMETER_TYPES[kind]
        if "default" not in body:
            return None if kind == "string" else convert()
        value, wrong = body["default"], f"parameter {name}: default {body['default']!r} is not a {kind}: fix it"
        if kind == "bool":
            text = str(value).lower() if isinstance(value, (bool, str)) else None
            if text not in ("true", "false"):
                self.fail(wrong)
            return text == "true"
        if not isinstance(value, (str, int, float)) or (isinstance(value, bool) and kind != "string"):
            self.fail(wrong)
        try:
            taken = convert(value)
        except ValueError:
            self.fail(wrong)
        if kind == "int" and taken != float(value):
            self.fail(wrong)
        return taken

    def _datastore(self, name) -> Datastore:
        return Datastore(self.workspace, name)

    def _references(self, section) -> dict:
        found = {}
        for name, body in _mapping(self.where, "data_references", section).items():
            body = _mapping(self.where, f"data reference {name}", body)
            if "datastore" in body and "path_on_datastore" in body:
                store = self._datastore(self.name(f"data reference {name}: datastore", body["datastore"]))
                path = self.name(f"data reference {name}: path_on_datastore", body["path_on_datastore"])
                found[name] = DataReference(store, name, path)
            elif "datastore" in body and any(key.startswith("sql_") for key in body):
                self.fail(f"data reference {name} reads an Azure SQL database, which needs Azure: use a folder")
            elif "dataset_name" in body:
                found[name] = Dataset.get_by_name(
                    self.workspace, self.name(f"data reference {name}: dataset_name", body["dataset_name"])
                )
            elif "dataset_id" in body:
                found[name] = Dataset.get_by_id(
                    self.workspace, self.name(f"data reference {name}: dataset_id", body["dataset_id"])
                )
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
            warnings.warn(f"{kind} section is being deprecated. Use type instead.", stacklevel=5)
        section = _mapping(self.where, f"step {name}", section)
        self._unread(f"step {name}", {**body, **section}, STEP_KEYS)
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
            hash_paths=self._hash_paths(name, hash_paths),
        )

    def _file(self, name: str, key: str, path) -> str:
        """``path``, a file the step's ``key`` names; relative to the current folder, as in the SDK."""
        if not os.path.exists(self.name(f"step {name}: {key}", path)):
            self.fail(
                f"step {name}: {key} {path} does not exist (in {os.getcwd()}; `localpipe submit` reads a YAML in "
                "its own folder): fix the path"
            )
        self.files.add(os.path.abspath(path))
        return path

    def _compute(self, name: str, body: dict) -> str | None:
        compute = body.get("compute", self.default_compute)
        return compute if compute is None else self.name(f"step {name}: compute", compute)

    def _hash_paths(self, name: str, hash_paths) -> list[str] | None:
        if hash_paths is None:
            return None
        if not isinstance(hash_paths, list):
            self.fail(f"hash_paths for step {name} is not a list: write one - item per path")
        return [self.name(f"step {name}: a hash_paths item", path) for path in hash_paths]

    def _kind(self, name: str, body: dict) -> str:
        kind = body.get("type")
        if kind is not None:
            kind = self.name(f"the type of step {name}", kind)
        else:
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

        runconfig = body.get("runconfig")
        return {
            "compute_target": self._compute(name, body),
            "runconfig": RunConfiguration.load(self._file(name, "runconfig", runconfig)) if runconfig else None,
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
                self.name(f"{what} of step {name}: the source of {key}", value["source"])
                if value["source"] not in self.parameters:
                    known = ", ".join(self.parameters) or "none"
                    self.fail(
                        f"Parameter {key} for step {name} is assigned to source {value['source']}, which doesn't "
                        f"exist: declare it under pipeline: parameters: (declared: {known})"
                    )
                value = self._not_datapath(name, self.parameters[value["source"]])
            elif isinstance(value, (dict, list)) or value is None:  # {src: P}: a source: misspelt, say
                self.fail(
                    f"{what} of step {name}: {key} is {type(value).__name__} {value!r}: give a value, or "
                    "source: NAME for a pipeline parameter"
                )
            found[str(key)] = value
        return found

    def _inputs(self, name: str, what: str, section) -> dict:
        found = {}
        for key, body in _mapping(self.where, f"{what} of step {name}", section).items():
            key = str(key)
            if not isinstance(body, dict) or "source" not in body:
                self.fail(f"Input {key} for step {name} must have a source assignment: add source: under it")
            source = self.name(f"step {name}: the source of input {key}", body["source"])
            self._unread(f"step {name}: input {key}", body, INPUT_KEYS)
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
            destination = self.name(f"step {name}: the destination of output {key}", body["destination"])
            self._unread(f"step {name}: output {key}", body, OUTPUT_KEYS)
            if destination in self.references or destination in self.parameters:
                what = "data reference" if destination in self.references else "pipeline parameter"
                self.fail(
                    f"step {name}: the destination of output {key} is {destination}, the name of a {what}, which "
                    f"the steps reading {destination} would get instead: give the output another destination"
                )
            data = self.data.get(destination)
            settings = {
                "datastore": self._datastore(self.name(f"step {name}: output {key}: datastore", body["datastore"]))
                if body.get("datastore")
                else None,
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
            value = table[key]  # a side input too: its path (the SDK passes its text)
            resolved.append(self._not_datapath(name, value) if prefix == "parameter:" else value)
        return resolved

    def _unread(self, what: str, body: dict, known: set[str]) -> None:
        """A warning for each key of ``body`` not read (the SDK ignores them too), with the likely one."""
        import difflib

        for key in body:
            if key not in known:
                close = difflib.get_close_matches(str(key), known, n=1)
                hint = f": did you mean {close[0]}?" if close else f" (it reads {', '.join(sorted(known))})"
                warnings.warn(f"{self.where}: {what}: key {key} is not read{hint}", stacklevel=6)

    def _not_datapath(self, name: str, value):
        if isinstance(value, PipelineParameter) and isinstance(value.default_value, DataPath):
            self.fail(
                f"step {name}: {value.name} is a datapath parameter, which the step would get as text: name it "
                f"as an input (inputs: {{data: {{source: {value.name}}}}}) and pass input:data"
            )
        return value

    def _parallel(self, name, display, body, arguments, inputs, side_inputs, outputs, allow_reuse):
        from localpipe.sdk.parallel_run import ParallelRunConfig, ParallelRunStep

        if not body.get("parallel_run_config"):
            self.fail(f"step {name} is a ParallelRunStep without parallel_run_config: name its YAML file")
        if body.get("models_id"):
            self.fail(f"step {name}: models_id is not built yet: load the models in the entry script's init()")
        path = self._file(name, "parallel_run_config", body["parallel_run_config"])
        try:
            config = ParallelRunConfig.load_yaml(self.workspace, path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            self.fail(
                f"step {name}: parallel_run_config {path} is not a file ParallelRunConfig.save_to_yaml wrote "
                f"({type(exc).__name__}: {exc}): save the configuration with it"
            )
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
