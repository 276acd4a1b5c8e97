"""ParallelRunConfig and ParallelRunStep (azureml-pipeline-steps), as declarations.

A ParallelRunStep is, as in Azure ML, a Python script step whose script is a driver shipped with
the product (here ``python -m localpipe.parallel.driver``) and whose arguments are the driver's:
the entry script, the mini-batch size, the thresholds, the output and the inputs' names, then the
user's own ``arguments``. Its inputs, output and environment are those of any step; the driver
splits the input into mini-batches and runs the entry script's ``run()`` on them in worker
processes (docs/parallel-run.md).

Values that are wrong whatever the data raise ``ParallelRunConfigError`` (a ValueError, as Azure
raises, and a UsageError: one line, exit 2); what depends on the dataset or the machine is checked
when the pipeline is planned (``plan/parallel.py``).
"""

from __future__ import annotations

import re

from localpipe.errors import ParallelRunConfigError
from localpipe.sdk.data import DatasetConsumptionConfig, FileDataset, OutputFileDatasetConfig, PipelineData
from localpipe.sdk.data.datasets import default_input_name
from localpipe.sdk.environment import Environment
from localpipe.sdk.parameters import PipelineParameter
from localpipe.sdk.runconfig import RunConfiguration
from localpipe.sdk.steps import PythonScriptStep

OUTPUT_ACTIONS = ("append_row", "summary_only")
DEFAULT_APPEND_ROW_FILE = "parallel_run_step.txt"
DEFAULT_FILES_PER_BATCH = 10  # Azure's DEFAULT_MINI_BATCH_SIZE_FILEDATASET
DEFAULT_BYTES_PER_BATCH = 1024 * 1024  # Azure's DEFAULT_MINI_BATCH_SIZE_TABULARDATASET
MINI_BATCH_SIZE = re.compile(r"^\d+([kKmMgG][bB])?$")
UNITS = {"kb": 1024, "mb": 1024**2, "gb": 1024**3}
# The driver's own options: a user's argument may not use these names (Azure's reserved list).
RESERVED_ARGUMENTS = (
    "mini_batch_size",
    "error_threshold",
    "allowed_failed_count",
    "allowed_failed_percent",
    "output",
    "output_action",
    "logging_level",
    "process_count_per_node",
    "run_invocation_timeout",
    "run_max_try",
    "append_row_file_name",
    "partition_keys",
)
_BAD_FILE_NAME = re.compile(r'[~"#%&*:<>?\/\\{|}]')


class ParallelRunConfig:
    """How a ParallelRunStep runs its entry script: workers, mini-batches, thresholds and output."""

    def __init__(
        self,
        environment,
        entry_script,
        error_threshold,
        output_action,
        compute_target,
        node_count,
        process_count_per_node=None,
        mini_batch_size=None,
        source_directory=None,
        description=None,
        logging_level="INFO",
        run_invocation_timeout=60,
        run_max_try=3,
        append_row_file_name=None,
        allowed_failed_count=None,
        allowed_failed_percent=None,
        partition_keys=None,
        environment_variables=None,
    ):
        self.environment = environment
        self.entry_script = entry_script.strip() if isinstance(entry_script, str) else entry_script
        self.error_threshold = error_threshold
        self.output_action = output_action
        self.compute_target = compute_target
        self.node_count = node_count
        self.process_count_per_node = process_count_per_node
        self.mini_batch_size = mini_batch_size
        self.source_directory = source_directory.strip() if isinstance(source_directory, str) else source_directory
        self.description = description
        self.logging_level = "INFO" if logging_level is None else logging_level
        self.run_invocation_timeout = 60 if run_invocation_timeout is None else run_invocation_timeout
        self.run_max_try = 3 if run_max_try is None else run_max_try
        self.append_row_file_name = append_row_file_name
        self.allowed_failed_count = allowed_failed_count
        self.allowed_failed_percent = allowed_failed_percent
        self.partition_keys = partition_keys
        self.environment_variables = dict(environment_variables or {})
        self._validate()

    def _validate(self) -> None:
        if not isinstance(self.environment, Environment):
            _refuse(f"environment {self.environment!r} is not an Environment: pass Environment(...) or Environment.get")
        if not isinstance(self.entry_script, str) or not self.entry_script:
            _refuse("entry_script is missing: pass the file name of the script with init() and run(mini_batch)")
        if not isinstance(self.output_action, str) or self.output_action.lower() not in OUTPUT_ACTIONS:
            _refuse(f'output_action {self.output_action!r} is not "append_row" or "summary_only"')
        self.output_action = self.output_action.lower()
        _count("error_threshold", self.error_threshold, "-1 ignores every failed item")
        if self.allowed_failed_count is not None:
            _count("allowed_failed_count", self.allowed_failed_count, "-1 ignores every failed mini-batch")
        percent = self.allowed_failed_percent
        if percent is not None and (
            isinstance(percent, bool) or not isinstance(percent, (int, float)) or not 0 <= percent <= 100
        ):
            _refuse(f"allowed_failed_percent {percent!r} is not a number from 0 to 100 (100 ignores every failure)")
        if self.mini_batch_size is not None and self.partition_keys is not None:
            _refuse("mini_batch_size and partition_keys both given: pass one (partition_keys makes one batch per key)")
        self.mini_batch_size_given = self.mini_batch_size  # "1MB" for a table; checked against the input when planned
        if self.mini_batch_size is not None and not isinstance(self.mini_batch_size, PipelineParameter):
            self.mini_batch_size = mini_batch_bytes(self.mini_batch_size)  # a number, as Azure makes it
        if self.partition_keys is not None and not (
            isinstance(self.partition_keys, list)
            and self.partition_keys
            and all(isinstance(k, str) for k in self.partition_keys)
        ):
            _refuse(f"partition_keys {self.partition_keys!r} is not a list of column or partition names")
        _positive("process_count_per_node", self.process_count_per_node, optional=True)
        _positive("node_count", self.node_count)
        _positive("run_invocation_timeout", self.run_invocation_timeout, number=True)
        _positive("run_max_try", self.run_max_try)
        name = self.append_row_file_name
        if name is not None and (not isinstance(name, str) or not name or _BAD_FILE_NAME.search(name)):
            _refuse(f'append_row_file_name {name!r} is not a plain file name: pass one without / or ~"#%&*:<>?\\{{|}}')
        if not isinstance(self.logging_level, str) or self.logging_level.upper() not in (
            "DEBUG",
            "INFO",
            "WARNING",
            "ERROR",
            "CRITICAL",
        ):
            _refuse(f"logging_level {self.logging_level!r} is not DEBUG, INFO, WARNING, ERROR or CRITICAL")

    def save_to_yaml(self, path):
        """Write the configuration to a YAML file, as Azure does (``load_yaml`` reads it back): JSON,
        which YAML reads, with the environment and compute target by name."""
        import inspect
        import json

        names = [name for name in inspect.signature(ParallelRunConfig).parameters if name != "compute_target"]
        config = {name: getattr(self, name) for name in names}
        config["mini_batch_size"] = self.mini_batch_size_given
        config["environment"] = self.environment.name
        config["compute_target_name"] = getattr(self.compute_target, "name", self.compute_target)
        with open(path, "w") as handle:
            json.dump({"parallel_run_config": config}, handle, indent=2)

    @staticmethod
    def load_yaml(workspace, path):
        """A ParallelRunConfig from a file ``save_to_yaml`` wrote; the environment is the workspace's of that name."""
        import json

        with open(path) as handle:
            config = dict(json.load(handle)["parallel_run_config"])
        environment = Environment.get(workspace, config.pop("environment"))
        config["compute_target"] = config.pop("compute_target_name")
        return ParallelRunConfig(environment=environment, **config)


def mini_batch_bytes(value) -> int:
    """``mini_batch_size`` as a number: files (an int or digits) or bytes ("10KB", "1MB", "1GB")."""
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        _refuse(f'mini_batch_size {value!r} is not a number of files (10) or a size ("1MB")')
    if isinstance(value, int):
        if value < 1:
            _refuse(f"mini_batch_size {value} is not at least 1")
        return value
    if not MINI_BATCH_SIZE.match(value):
        _refuse(f'mini_batch_size "{value}" is not a number of files ("10") or a size ("1MB", "512KB", "1GB")')
    unit = value[-2:].lower()
    number = int(value[:-2]) * UNITS[unit] if unit in UNITS else int(value)
    if number < 1:
        _refuse(f'mini_batch_size "{value}" is not at least 1')
    return number


def _refuse(message: str):
    raise ParallelRunConfigError(f"ParallelRunConfig: {message}")


def _count(name: str, value, meaning: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < -1:
        _refuse(f"{name} {value!r} is not an integer of -1 or more ({meaning})")


def _positive(name: str, value, optional: bool = False, number: bool = False) -> None:
    if isinstance(value, PipelineParameter):  # its default is what planning counts workers with
        name, value = f"the default of {name}", value.default_value
    if value is None and optional:
        return
    kinds = (int, float) if number else (int,)
    if isinstance(value, bool) or not isinstance(value, kinds) or value <= 0:
        _refuse(f"{name} {value!r} is not {'a number' if number else 'an integer'} greater than 0")


class ParallelRunStep(PythonScriptStep):
    """Run ``parallel_run_config.entry_script``'s ``run(mini_batch)`` over every mini-batch of
    ``inputs`` in worker processes (docs/parallel-run.md)."""

    kind = "parallel"

    def __init__(
        self,
        name,
        parallel_run_config,
        inputs,
        output=None,
        side_inputs=None,
        arguments=None,
        allow_reuse=True,
    ):
        if not isinstance(parallel_run_config, ParallelRunConfig):
            raise ParallelRunConfigError(
                f'ParallelRunStep "{name}": parallel_run_config is not a ParallelRunConfig: pass ParallelRunConfig(...)'
            )
        config = parallel_run_config
        self.parallel_run_config = config
        inputs = [_consumed(item) for item in (inputs if isinstance(inputs, list) else [inputs] if inputs else [])]
        if not inputs:
            raise ParallelRunConfigError(
                f'ParallelRunStep "{name}": inputs is empty: pass [dataset.as_named_input("name")]'
            )
        kinds = {_input_kind(item) for item in inputs}
        if len(kinds) > 1:
            raise ParallelRunConfigError(
                f'ParallelRunStep "{name}": inputs mix FileDatasets and TabularDatasets: pass inputs of one kind'
            )
        self.input_kind = kinds.pop()
        if config.output_action == "append_row" and output is None:
            raise ParallelRunConfigError(
                f'ParallelRunStep "{name}": output_action "append_row" needs an output: pass output=PipelineData(...)'
            )
        side_inputs = [_consumed(item) for item in side_inputs or []]
        user_arguments = list(arguments or [])
        _check_arguments(name, user_arguments)
        self.side_inputs = side_inputs
        runconfig = RunConfiguration()
        runconfig.environment = config.environment
        runconfig.environment_variables.update(config.environment_variables)
        runconfig.node_count = 1  # node_count is the driver's: more workers on this machine (plan/parallel.py)
        super().__init__(
            script_name=config.entry_script,
            name=name,
            arguments=[*self._driver_arguments(inputs, output), *user_arguments],
            compute_target=config.compute_target,
            runconfig=runconfig,
            inputs=[*inputs, *side_inputs],
            outputs=[output] if output is not None else [],
            source_directory=config.source_directory,
            allow_reuse=allow_reuse,
        )

    @property
    def running_on_windows(self) -> bool:
        """Whether the step's environment is a Windows container's: never, on this machine's Linux."""
        return False

    def _driver_arguments(self, inputs: list, output) -> list:
        """Azure's arguments of its driver, with this step's values; the input names are looked up in
        the step's inputs by the driver, as Azure's does."""
        config = self.parallel_run_config
        size = config.mini_batch_size
        if size is None and config.partition_keys is None:
            size = DEFAULT_FILES_PER_BATCH if self.input_kind == "file" else DEFAULT_BYTES_PER_BATCH
        found = ["--scoring_module_name", config.entry_script]
        found += ["--error_threshold", config.error_threshold, "--output_action", config.output_action]
        found += ["--logging_level", config.logging_level, "--run_invocation_timeout", config.run_invocation_timeout]
        found += ["--run_max_try", config.run_max_try, "--node_count", config.node_count]
        if size is not None:
            found += ["--mini_batch_size", size]
        if config.allowed_failed_count is not None:
            found += ["--allowed_failed_count", config.allowed_failed_count]
        if config.allowed_failed_percent is not None:
            found += ["--allowed_failed_percent", config.allowed_failed_percent]
        if config.output_action == "append_row":
            found += ["--append_row_file_name", config.append_row_file_name or DEFAULT_APPEND_ROW_FILE]
        if output is not None:
            found += ["--output", output]
        if config.process_count_per_node is not None:
            found += ["--process_count_per_node", config.process_count_per_node]
        if config.partition_keys is not None:
            found += ["--partition_keys", ",".join(config.partition_keys)]
            dataset = getattr(inputs[0], "dataset", None)
            partition_format = getattr(getattr(dataset, "default_value", dataset), "partition_format", None)
            if self.input_kind == "file" and partition_format:
                found += ["--partition_format", partition_format]
        flag = "--input_fds_" if self.input_kind == "file" else "--input_ds_"
        for index, item in enumerate(inputs):
            found += [f"{flag}{index}", item.name]
        return found


def _consumed(item):
    """An input as a step consumes it: a dataset by its default name, an output as the next step's input."""
    if isinstance(item, (OutputFileDatasetConfig, PipelineData)):
        return item.as_input()
    if isinstance(item, FileDataset):
        return item.as_named_input(default_input_name(item))
    return item


def _input_kind(item) -> str:
    if isinstance(item, DatasetConsumptionConfig):
        dataset = getattr(item.dataset, "default_value", item.dataset)
        return "tabular" if getattr(dataset, "table_options", None) else "file"
    if isinstance(item, PipelineData) or hasattr(item, "data"):
        return "tabular" if getattr(item, "tabular", None) else "file"
    raise ParallelRunConfigError(
        f"ParallelRunStep input {item!r} is not a dataset or pipeline data: pass dataset.as_named_input(name)"
    )


def _check_arguments(name: str, arguments: list) -> None:
    if arguments and not (isinstance(arguments[0], str) and arguments[0].startswith("-")):
        raise ParallelRunConfigError(
            f'ParallelRunStep "{name}": argument {arguments[0]!r} is not an option: arguments are passed as '
            '"--name", value pairs'
        )
    for item in arguments:
        if isinstance(item, str) and item.startswith("--") and item[2:].split("=")[0] in RESERVED_ARGUMENTS:
            raise ParallelRunConfigError(
                f'ParallelRunStep "{name}": argument "{item}" is one of the driver\'s own: rename it'
            )
