"""Pipeline steps: PythonScriptStep and CommandStep, as declarations.

Data references found in ``arguments`` join the step's inputs or outputs by themselves: a bare
PipelineData is an output, ``as_input()`` / ``as_download()`` / ``as_mount()`` and dataset
consumptions are inputs. A step registers itself as the producer of its outputs so that a
Pipeline can pull in the producers of the steps it is given.
"""

from __future__ import annotations

import os
import shlex
import warnings
from typing import Any

from localpipe.errors import UsageError
from localpipe.sdk.data import (
    DataPathComputeBinding,
    DataReference,
    DatasetConsumptionConfig,
    FileDataset,
    PipelineData,
    PipelineDataInput,
    TabularOutput,
)
from localpipe.sdk.runconfig import RunConfiguration

INPUT_TYPES = (PipelineDataInput, DatasetConsumptionConfig, FileDataset, DataReference)


class PipelineStep:
    """What every step has: a name, a source directory, inputs, outputs, arguments and ordering."""

    kind = "step"
    # The name a ModuleStep given none takes (its module's): a Pipeline numbers those that meet.
    # A class attribute, so that steps pickled before it existed (published pipelines) have it.
    default_name: str | None = None

    def __init__(
        self,
        name,
        source_directory,
        arguments,
        inputs,
        outputs,
        compute_target,
        runconfig,
        params,
        allow_reuse,
        version,
        secret_env=None,
    ):
        self.name = name
        # Names of environment variables passed to the step from the submitter's environment;
        # their values are never recorded, and are masked in the step's logs.
        self.secret_env = list(secret_env or [])
        self.source_directory = os.path.abspath(source_directory) if source_directory else None
        if isinstance(arguments, str):  # list() would make each character an argument
            raise UsageError(f'step "{name}": arguments must be a list: {arguments.split()!r}, not {arguments!r}')
        self.arguments = list(arguments or [])
        self.params = dict(params or {})
        self.compute_target = compute_target
        self.runconfig = runconfig or RunConfiguration()
        self.allow_reuse = allow_reuse
        self.version = version
        self.inputs: list = list(inputs or [])
        # A table view of an OutputFileDatasetConfig is, given to a step, that output: the step writes its files.
        self.outputs: list[PipelineData] = [o.data if isinstance(o, TabularOutput) else o for o in outputs or []]
        for index, item in enumerate(self.arguments):
            if isinstance(item, TabularOutput):
                item = self.arguments[index] = item.data
            if isinstance(item, PipelineData) and item not in self.outputs and item not in self.inputs:
                self.outputs.append(item)
            elif isinstance(item, INPUT_TYPES) or _is_bound_datapath(item):
                self._add_argument_input(item)
        for output in self.outputs:
            if self not in output.producers:
                output.producers.append(self)
        self.predecessors: list[PipelineStep] = []
        self.step_type = type(self).__name__  # the SDK's name of the step's kind

    @property
    def run_after_steps(self) -> list[PipelineStep]:
        """The steps ``run_after`` named (the SDK's attribute), in the order given."""
        return self.predecessors

    def _add_argument_input(self, item) -> None:
        """An input named in ``arguments`` replaces the same input listed in ``inputs``.

        The seed lists ``ds_input`` in ``inputs`` and ``ds_input.as_download()`` in ``arguments``:
        one input, consumed the way the arguments say.
        """
        for index, known in enumerate(self.inputs):
            if known == item or _same_input(known, item):
                self.inputs[index] = item
                return
        self.inputs.append(item)

    def output_name_of(self, data: PipelineData) -> str:
        """The name this step gives ``data``, one of its outputs (a ModuleStep names it after its port)."""
        return data.name

    def run_after(self, step: PipelineStep) -> None:
        """Run this step only after ``step`` has finished, with no data passed between them."""
        self.predecessors.append(step)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r})"


def _is_bound_datapath(item) -> bool:
    """``(PipelineParameter(default_value=DataPath(...)), DataPathComputeBinding())``."""
    return isinstance(item, tuple) and len(item) == 2 and isinstance(item[1], DataPathComputeBinding)


def _same_input(a, b) -> bool:
    if isinstance(a, DatasetConsumptionConfig) and isinstance(b, DatasetConsumptionConfig):
        return a.name == b.name and a.dataset == b.dataset
    if isinstance(a, PipelineDataInput) and isinstance(b, PipelineDataInput):
        return a.name == b.name and a.data is b.data
    if isinstance(a, DataReference) and isinstance(b, DataReference):
        return a.data_reference_name == b.data_reference_name
    if _is_bound_datapath(a) and _is_bound_datapath(b):
        return a[0] is b[0]
    return False


class PythonScriptStep(PipelineStep):
    """Run ``script_name`` from ``source_directory`` with the step's interpreter."""

    kind = "python"

    def __init__(
        self,
        script_name: str,
        name: str | None = None,
        arguments: list | None = None,
        compute_target: Any = None,
        runconfig: RunConfiguration | None = None,
        runconfig_pipeline_params: dict | None = None,
        inputs: list | None = None,
        outputs: list | None = None,
        params: dict | None = None,
        source_directory: str | None = None,
        allow_reuse: bool = True,
        version: str | None = None,
        hash_paths: list | None = None,
        *,
        secret_env: list | None = None,
    ):
        if hash_paths is not None:
            warnings.warn(
                "hash_paths is deprecated: the whole source_directory is always hashed",
                DeprecationWarning,
                stacklevel=2,
            )
        self.script_name = script_name
        _one_node(runconfig_pipeline_params)
        super().__init__(
            name or script_name,
            source_directory,
            arguments,
            inputs,
            outputs,
            compute_target,
            runconfig,
            params,
            allow_reuse,
            version,
            secret_env,
        )


class CommandStep(PipelineStep):
    """Run any program; ``command`` is an argv list, or a string split like a shell would (no shell runs);
    a list's first item is split so too, as in the SDK (``['python train.py --epochs 30']``), unless it names a file.
    ``runconfig`` is a RunConfiguration, or a ScriptRunConfig whose command, source directory and run
    configuration (target, environment) the step takes where not given here, as in the SDK."""

    kind = "command"

    def __init__(
        self,
        command: str | list | None = None,
        name: str | None = None,
        compute_target: Any = None,
        runconfig: Any = None,
        runconfig_pipeline_params: dict | None = None,
        inputs: list | None = None,
        outputs: list | None = None,
        params: dict | None = None,
        source_directory: str | None = None,
        allow_reuse: bool = True,
        version: str | None = None,
        *,
        secret_env: list | None = None,
    ):
        if isinstance(getattr(runconfig, "run_config", None), RunConfiguration):  # a ScriptRunConfig
            source_directory = source_directory or runconfig.source_directory
            command = command or runconfig.command
            runconfig = runconfig.run_config
        if command is None:
            command = getattr(runconfig, "command", None) or ""  # the SDK's RunConfiguration.command
        _one_node(runconfig_pipeline_params)
        self.command = shlex.split(command) if isinstance(command, str) else _split_head(command, source_directory)
        first = next((str(part) for part in self.command if isinstance(part, str)), "command")
        super().__init__(
            name or os.path.basename(first),
            source_directory,
            self.command,
            inputs,
            outputs,
            compute_target,
            runconfig,
            params,
            allow_reuse,
            version,
            secret_env,
        )


def _split_head(command, source_directory: str | None) -> list:
    """``command`` as an argv list whose first item is split as a command line, as the SDK splits it
    (``['python train.py --epochs 30']``), unless it names a file (a program whose path holds spaces)."""
    command = list(command)
    head = command[0] if command else None
    if not isinstance(head, str) or os.path.isfile(os.path.join(source_directory or "", head)):
        return command
    try:
        return [*shlex.split(head), *command[1:]]
    except ValueError:  # unbalanced quotes: not a command line
        return command


def _one_node(runconfig_pipeline_params: dict | None) -> None:
    """``runconfig_pipeline_params`` sets node and process counts per run (NodeCount,
    MpiProcessCountPerNode, ...): one machine has one node, so they change nothing here (said once)."""
    if runconfig_pipeline_params:
        warnings.warn(
            f"runconfig_pipeline_params {sorted(runconfig_pipeline_params)} change nothing on one machine",
            UserWarning,
            stacklevel=3,
        )
