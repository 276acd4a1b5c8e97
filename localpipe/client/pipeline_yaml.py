"""Writing a planned graph as a pipeline YAML that ``Pipeline.load_yaml`` reads back (the SDK's
``PipelineRun.save``, ``PublishedPipeline.save``, ``PipelineDraft.save``).

The SDK writes the graph of a pipeline of ModuleSteps; localpipe's steps are scripts, so each is
written as a ``type: PythonScriptStep`` step of the same format, with what makes its cache key:
script, source directory, arguments (``input:``, ``output:``, ``parameter:``), parameters
(``source:`` the pipeline parameter a value came from), inputs, outputs, version, compute target
and, in a run configuration file beside the YAML, its environment. A ParallelRunStep is a
``type: ParallelRunStep`` step: its configuration, read back from its driver's arguments, in a
``ParallelRunConfig.save_to_yaml`` file beside the YAML naming a registered environment, its inputs,
side inputs, output and own arguments in the step. Loading the file gives the same graph and cache
keys, so a submission of it reuses the steps of the run it was saved from. What the format cannot
say (a CommandStep, ``run_after``, a dataset parameter, ...) is refused in one line before anything
is written. docs/pipeline-yaml.md is the user's page.
"""

from __future__ import annotations

import os
import sys

from localpipe.errors import UserErrorException
from localpipe.state.layout import safe_name

RUNCONFIG_SUFFIX = ".runconfig"
PARALLEL_CONFIG_SUFFIX = ".parallel_run_config.yml"
# The driver's options a ParallelRunStep's arguments begin with (sdk/parallel_run.py), by the
# ParallelRunConfig parameter each comes from; its inputs' names come last (--input_fds_0 NAME).
DRIVER_OPTIONS = {
    "--scoring_module_name": "entry_script",
    "--error_threshold": "error_threshold",
    "--output_action": "output_action",
    "--logging_level": "logging_level",
    "--run_invocation_timeout": "run_invocation_timeout",
    "--run_max_try": "run_max_try",
    "--node_count": "node_count",
    "--mini_batch_size": "mini_batch_size",
    "--allowed_failed_count": "allowed_failed_count",
    "--allowed_failed_percent": "allowed_failed_percent",
    "--append_row_file_name": "append_row_file_name",
    "--process_count_per_node": "process_count_per_node",
    "--partition_keys": "partition_keys",
    "--output": None,  # the step's output
    "--partition_format": None,  # the input dataset's own
}
INPUT_OPTIONS = ("--input_fds_", "--input_ds_")
NUMBERS = {
    "error_threshold", "run_invocation_timeout", "run_max_try", "node_count", "mini_batch_size",
    "allowed_failed_count", "allowed_failed_percent", "process_count_per_node",
}  # fmt: skip


def save(workspace, graph, path, file_name: str, what: str, sources: dict[str, str] | None = None) -> str:
    """Write ``graph`` as pipeline YAML to ``path`` (a file, or a folder to write ``file_name`` in;
    the current folder when None) and return the file's path. ``sources`` (step -> folder) replace
    the steps' source folders (a published pipeline's snapshots); ``what`` names the pipeline in a
    refusal."""
    import yaml

    path = os.fspath(path or os.getcwd())
    if os.path.isdir(path):  # a pipeline's name made a file name of this folder ("../x", "a/b", a long one)
        stem, suffix = os.path.splitext(file_name)
        path = os.path.join(path, safe_name(stem) + suffix)
    # A folder by its slash ("saved/") that is not there: open() would fail after the side files were written
    folder = path if path.endswith(("/", os.sep)) else os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UserErrorException(f"cannot save {what} to {path}: folder {folder} does not exist: create it")
    writer = _Writer(workspace, graph, what, os.path.splitext(os.path.abspath(path))[0], sources or {})
    document = writer.document()  # every refusal comes before anything is written
    for file, config in writer.runconfigs.items():
        config.save(file)
    for file, config in writer.parallel_configs.items():
        config.save_to_yaml(file)
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(document, handle, sort_keys=False, allow_unicode=True)  # "é" as written
    return path


class _Writer:
    def __init__(self, workspace, graph, what: str, stem: str, sources: dict[str, str]):
        self.workspace = workspace
        self.graph = graph
        self.what = what
        self.stem = stem
        self.sources = sources
        self.references: dict[str, dict] = {}
        self.runconfigs: dict = {}
        self.parallel_configs: dict = {}
        outputs = [(spec.name, name) for spec in graph.nodes for name in spec.outputs]
        # An output is its destination (the PipelineData's name): two steps' outputs of one name, or
        # one named as a pipeline parameter, cannot be told apart in the file.
        self.outputs = outputs

    def refuse(self, message: str):
        raise UserErrorException(f"cannot save {self.what} as YAML: {message}")

    def document(self) -> dict:
        if self.graph.sweeps:
            self.refuse(
                "it is a hyperparameter sweep (HyperDriveConfig, HyperDriveStep), which the pipeline YAML has no "
                "form for: keep the Python code that submits it"
            )
        names = [name for _, name in self.outputs]
        for step, name in self.outputs:
            if names.count(name) > 1 or name in self.graph.parameters:
                other = "a pipeline parameter" if name in self.graph.parameters else "another step's output"
                self.refuse(
                    f'step "{step}" writes PipelineData "{name}", the name of {other}, which a step\'s input '
                    "could not be told from in the file: give each PipelineData its own name"
                )
        parameters = {name: self.parameter(name, value) for name, value in self.graph.parameters.items()}
        steps = {spec.name: self.step(spec) for spec in self.graph.nodes}
        pipeline = {"description": self.graph.description} if self.graph.description else {}
        if parameters:
            pipeline["parameters"] = parameters
        if self.references:
            pipeline["data_references"] = self.references
        pipeline["steps"] = steps
        return {"pipeline": pipeline}

    def parameter(self, name: str, value) -> dict:
        if isinstance(value, dict) and "datapath" in value:
            return {"type": "datapath", "default": dict(value["datapath"])}
        if isinstance(value, dict):
            self.refuse(
                f'parameter "{name}" has a dataset as its value, which the pipeline YAML has no type for '
                "(string, int, float, bool, datapath): consume the dataset through data_references instead"
            )
        kinds = {bool: "bool", int: "int", float: "float", str: "string"}
        if type(value) not in kinds and value is not None:
            self.refuse(f'parameter "{name}" holds {value!r}, which the pipeline YAML has no type for')
        kind = kinds.get(type(value), "string")
        return {"type": kind} if value is None else {"type": kind, "default": value}

    def step(self, spec) -> dict:
        label = f'step "{spec.name}"'
        if spec.kind == "command":
            self.refuse(
                f"{label} is a CommandStep, which the SDK's pipeline YAML has no type for (it has PythonScriptStep, "
                "ParallelRunStep, ModuleStep and the cloud steps): run the command from a PythonScriptStep's script, "
                "or keep the Python code that submits the pipeline"
            )
        if spec.kind not in ("python", "parallel"):
            self.refuse(f"{label} is a {spec.kind} step, which the pipeline YAML has no type for")
        if spec.after:
            self.refuse(
                f"{label} runs after {', '.join(spec.after)} with no data between them (run_after), which the "
                "pipeline YAML has no form for: pass data between them (a PipelineData) instead"
            )
        if spec.destinations:
            self.refuse(
                f"{label} writes an OutputFileDatasetConfig to a datastore, which the pipeline YAML has no form for"
            )
        if spec.secret_env:
            self.refuse(f"{label} has secret_env, which the pipeline YAML has no form for")
        if spec.kind == "parallel":
            return self.parallel_step(spec)
        body: dict = {"type": "PythonScriptStep", "name": spec.name, "script_name": spec.script}
        body["source_directory"] = self.sources.get(spec.name, spec.source_dir)
        if spec.compute_target != "local":
            body["compute"] = spec.compute_target
        if not spec.allow_reuse:
            body["allow_reuse"] = False
        if spec.version is not None:
            body["version"] = spec.version
        runconfig = self.runconfig(spec)
        if runconfig is not None:
            body["runconfig"] = runconfig
        uses = spec.parameter_uses
        params = {k: ({"source": uses[f"params.{k}"]} if f"params.{k}" in uses else v) for k, v in spec.params.items()}
        arguments = [self.argument(spec, i, value, params) for i, value in enumerate(spec.argv)]
        if arguments:
            body["arguments"] = arguments
        if params:
            body["parameters"] = params
        inputs = {name: self.input(spec, name, item) for name, item in spec.inputs.items()}
        if inputs:
            body["inputs"] = inputs
        if spec.outputs:
            body["outputs"] = {name: self.output(spec, name, is_dir) for name, is_dir in spec.outputs.items()}
        return body

    def parallel_step(self, spec) -> dict:
        """A ParallelRunStep: its configuration in a file beside the YAML, read back from the driver's
        options its arguments begin with; the inputs those options name, then its side inputs."""
        from localpipe.sdk.parallel_run import ParallelRunConfig
        from localpipe.state.layout import safe_name

        label = f'step "{spec.name}"'
        options, inputs, index = _driver_options(spec.argv)
        for position in range(1, index, 2):
            parameter = spec.parameter_uses.get(f"arguments.{position}")
            if parameter is not None:
                self.refuse(
                    f"{label}: its ParallelRunConfig's {spec.argv[position - 1].lstrip('-')} is pipeline parameter "
                    f'"{parameter}", which the configuration file has no form for: give the value itself'
                )
        if "partition_keys" in options:
            options["partition_keys"] = options["partition_keys"].split(",")
        for key in options.keys() & NUMBERS:  # the arguments are text: the numbers they were
            options[key] = _number(options[key])
        environment, variables = self.parallel_environment(spec)
        config = ParallelRunConfig(
            environment=environment,
            source_directory=self.sources.get(spec.name, spec.source_dir),
            compute_target=spec.compute_target,
            environment_variables=variables,
            **options,
        )
        file = f"{self.stem}.{safe_name(spec.name)}{PARALLEL_CONFIG_SUFFIX}"
        self.parallel_configs[file] = config
        body: dict = {"type": "ParallelRunStep", "name": spec.name, "parallel_run_config": file}
        if not spec.allow_reuse:
            body["allow_reuse"] = False
        side = [name for name in spec.inputs if name not in inputs]
        arguments = [
            f"side_input:{value['input']}" if isinstance(value, dict) and value.get("input") in side
            else self.argument(spec, position, value, {})
            for position, value in enumerate(spec.argv) if position >= index
        ]  # fmt: skip
        if arguments:
            body["arguments"] = arguments
        body["inputs"] = {name: self.input(spec, name, spec.inputs[name]) for name in inputs}
        if side:
            body["side_inputs"] = {name: self.input(spec, name, spec.inputs[name]) for name in side}
        if spec.outputs:
            body["outputs"] = {name: self.output(spec, name, is_dir) for name, is_dir in spec.outputs.items()}
        return body

    def parallel_environment(self, spec) -> tuple:
        """The registered environment a ParallelRunStep's configuration file names (the format names it,
        as Azure's does), one that plans to the step's environment, and the variables the step adds."""
        from localpipe.plan.environments import resolve
        from localpipe.sdk.curated import is_curated
        from localpipe.sdk.environment import Environment

        # Planned here without the machine's Docker: an image's id on this machine (and the digest of
        # a packages layer over it) is no part of its environment (the file names the environment;
        # the image is looked up when it is loaded).
        machine = ("image_id", "packages_digest")
        wanted = {k: v for k, v in spec.environment.items() if k not in ("variables", *machine)}
        variables = spec.environment.get("variables") or {}
        found = Environment.list(self.workspace)
        # Its own name first, then the workspace's own environments before the curated ones.
        preferred = sorted(found, key=lambda name: (name != spec.environment.get("name"), is_curated(name), name))
        for name in preferred:
            environment = found[name]
            planned = resolve(f'step "{spec.name}"', environment, None, [], {})
            own = planned.pop("variables", {})
            planned = {k: v for k, v in planned.items() if k not in machine}
            if planned == wanted and all(variables.get(k) == v for k, v in own.items()):
                return environment, variables
        self.refuse(
            f'step "{spec.name}" is a ParallelRunStep whose environment is no registered one, which its '
            "parallel_run_config file must name: register it (Environment(name).register(ws)), submit again "
            "and save that run"
        )

    def output(self, spec, name: str, is_directory: bool) -> dict:
        body = {"destination": name}
        return body if is_directory else {**body, "is_directory": False}  # localpipe's key: a file

    def argument(self, spec, index: int, value, params: dict):
        if isinstance(value, dict):
            return f"input:{value['input']}" if "input" in value else f"output:{value['output']}"
        parameter = spec.parameter_uses.get(f"arguments.{index}")
        if parameter is None:
            from localpipe.sdk.pipeline_yaml import REFERENCE_ARGUMENTS

            if isinstance(value, str) and value.startswith(REFERENCE_ARGUMENTS):  # loaded, it would be the reference
                kind, name = value.split(":", 1)
                self.refuse(
                    f'step "{spec.name}": argument {index} is the text "{value}", which the pipeline YAML reads as a '
                    f'reference to the step\'s {kind.replace("_", " ")} "{name}" (it has no form for the text '
                    "itself): give the script another spelling of it"
                )
            return value
        # A step parameter holding it, else the pipeline parameter by its own name (localpipe's form).
        key = next((k for k, v in params.items() if v == {"source": parameter}), None)
        if key is None and parameter in params:
            self.refuse(
                f'step "{spec.name}": argument {index} is pipeline parameter "{parameter}", and the step has a '
                "parameter of that name holding something else: rename the step's parameter"
            )
        return f"parameter:{key or parameter}"

    def input(self, spec, name: str, item) -> dict:
        label = f'step "{spec.name}": input "{name}"'
        if item.tabular is not None and item.step is not None:
            self.refuse(f"{label} reads an output as a table (parse_*_files), which the pipeline YAML has no form for")
        dataset_id = (item.dataset or {}).get("id")  # recorded since datasets are saved at submission
        if item.dataset is None and item.step is None and (item.tabular is not None or item.mode == "direct"):
            self.refuse(
                f"{label} is a dataset that is not registered, given to the step as itself by a run older "
                "than dataset ids: submit the pipeline again and save that run"
            )
        if item.step is not None:
            source = item.output
        elif isinstance(self.graph.parameters.get(name), dict) and "datapath" in self.graph.parameters[name]:
            source = name
        elif dataset_id is not None:
            source = self.reference(name, {"dataset_id": dataset_id})
        elif item.dataset is not None:  # a registered version, in a run older than dataset ids
            from localpipe.sdk.data import Dataset

            found = Dataset.get_by_name(self.workspace, item.dataset["name"], item.dataset["version"])
            source = self.reference(name, {"dataset_id": found.id})
        else:
            source = self.reference(name, self.datastore_path(label, item))
        body = {"source": source, "bind_mode": item.mode}
        if item.path_on_compute is not None:
            body["path_on_compute"] = item.path_on_compute
        return body

    def reference(self, name: str, body: dict) -> str:
        """The data reference named ``name`` (or, taken by other data, a parameter or an output's
        destination, ``name_2``, ...) holding ``body``."""
        key, number = name, 1
        taken = {*(output for _, output in self.outputs), *self.graph.parameters}
        while key in taken or (key in self.references and self.references[key] != body):
            number += 1
            key = f"{name}_{number}"
        self.references[key] = body
        return key

    def datastore_path(self, label: str, item) -> dict:
        """``{datastore, path_on_datastore}`` of a data reference (or an unregistered dataset's one path)."""
        paths = item.paths or []
        if len(paths) == 1 and item.root is None:
            for store in self.workspace.datastores.values():
                root = os.path.realpath(store.folder)
                if store.url is None and (paths[0] + os.sep).startswith(root + os.sep):
                    relative = os.path.relpath(paths[0], root).replace(os.sep, "/")
                    return {"datastore": store.name, "path_on_datastore": relative}
        self.refuse(
            f"{label} is data outside every datastore ({', '.join(paths) or 'an absent path'}): register it as a "
            "dataset (dataset.register(ws, name)) or put it in a datastore, then save again"
        )

    def runconfig(self, spec) -> str | None:
        """The run configuration file of a step whose environment, time limit or retries are not the
        default, written beside the YAML; None for a step on localpipe's own interpreter."""
        from localpipe.sdk.conda import CondaDependencies
        from localpipe.sdk.environment import Environment
        from localpipe.sdk.runconfig import RunConfiguration
        from localpipe.state.layout import safe_name

        environment = spec.environment
        own = environment.get("kind") == "python" and environment.get("interpreter") == sys.executable
        variables = environment.get("variables") or {}
        if own and not variables and spec.timeout_seconds is None and not spec.max_retries:
            return None
        config = RunConfiguration(timeout_seconds=spec.timeout_seconds, max_retries=spec.max_retries)
        config.environment_variables = dict(variables)
        kind = environment.get("kind")
        if kind == "venv":
            config.environment = Environment(environment["name"])
            config.environment.python.conda_dependencies = CondaDependencies.create(
                pip_packages=[*environment["options"], *environment["requirements"]],
                python_version=environment["python"],
            )
        elif kind == "python" and not own:
            config.environment.python.user_managed_dependencies = True
            config.environment.python.interpreter_path = environment["interpreter"]
        elif kind != "python":
            self.refuse(
                f'step "{spec.name}" runs in a {kind} environment, which saving as YAML does not write yet: '
                "save pipelines whose steps run in Python environments"
            )
        file = f"{self.stem}.{safe_name(spec.name)}{RUNCONFIG_SUFFIX}"  # a step "prep/a" is no file name
        self.runconfigs[file] = config
        return file


def save_frozen(workspace, record: dict, path, file_name: str, what: str) -> str:
    """``save`` of a frozen pipeline's row (a published pipeline's or a draft's): its graph, each step
    pointed at its source snapshot in the object store, so that the file runs what was frozen."""
    from localpipe.client.workspace import history_of
    from localpipe.plan.graph import Graph
    from localpipe.state.store import ObjectStore

    store = ObjectStore(history_of(workspace).layout.objects)
    sources = {step: str(store.path(digest)) for step, digest in record["sources"].items()}
    return save(workspace, Graph.from_dict(record["graph"]), path, file_name, what, sources)


def _number(text: str) -> int | float:
    """A number a step's argument holds as text ("-1", "2.5"), as the number it was written from."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def _driver_options(argv: list) -> tuple[dict, list[str], int]:
    """A ParallelRunStep's ParallelRunConfig values and input names read from the driver's options its
    arguments begin with, and where its own arguments begin: the options end with the inputs' names."""
    options, inputs, index = {}, [], 0
    while index + 1 < len(argv) and isinstance(argv[index], str):
        flag, value = argv[index], argv[index + 1]
        if flag.startswith(INPUT_OPTIONS):
            inputs.append(value)
        elif flag in DRIVER_OPTIONS:
            if DRIVER_OPTIONS[flag] is not None:
                options[DRIVER_OPTIONS[flag]] = value
        else:
            break
        index += 2
        if inputs and not (
            index < len(argv) and isinstance(argv[index], str) and argv[index].startswith(INPUT_OPTIONS)
        ):
            break
    return options, inputs, index
