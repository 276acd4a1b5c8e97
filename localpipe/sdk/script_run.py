"""``ScriptRunConfig``: one script (or command) to run as an experiment's run, as in the Azure ML SDK.

``Experiment.submit(ScriptRunConfig(...))`` runs it as a pipeline of one step, through the same
planning, scheduler, cache and records as a pipeline (docs/runs.md): ``localpipe runs``,
``show``, ``logs`` and ``metrics`` know it like any run.
"""

from __future__ import annotations

import os
import warnings

from localpipe.errors import UsageError
from localpipe.sdk.data import DataReference, DatasetConsumptionConfig
from localpipe.sdk.data.datastore import DataReferenceConfiguration
from localpipe.sdk.runconfig import RunConfiguration
from localpipe.sdk.steps import CommandStep, PythonScriptStep


class ScriptRunConfig:
    """What to run (``script`` with ``arguments``, or a ``command``), from ``source_directory``,
    where (``compute_target``) and in what (``environment``, or a whole ``run_config``)."""

    MAX_DURATION_SECONDS_DEFAULT = 2592000  # 30 days: Azure's limit; no limit is set below it here

    def __init__(self, source_directory, script=None, arguments=None, run_config=None, _telemetry_values=None,
                 compute_target=None, environment=None, distributed_job_config=None, resume_from=None,
                 max_run_duration_seconds=MAX_DURATION_SECONDS_DEFAULT, command=None,
                 docker_runtime_config=None):  # fmt: skip
        """As in the SDK, ``run_config`` wins over ``compute_target``, ``environment``,
        ``max_run_duration_seconds`` and ``docker_runtime_config`` (a warning says so), and its
        ``script``, ``arguments`` and ``command`` fill in what is not given here.
        ``distributed_job_config`` asks for several nodes, which one machine is not (warned about);
        ``resume_from`` (a DataPath of an earlier run's outputs) is refused until DataPath exists."""
        if resume_from is not None:
            raise UsageError(
                "ScriptRunConfig(resume_from=...): resuming from a DataPath is not built yet (issue 14 item 6): "
                "pass the earlier run's outputs as an argument instead"
            )
        self.source_directory = source_directory
        self.script = script
        self.command = command
        self.arguments = list(arguments) if arguments is not None else None
        if run_config is not None:
            given = [n for n, v in (("compute_target", compute_target), ("environment", environment),
                     ("distributed_job_config", distributed_job_config),
                     ("docker_runtime_config", docker_runtime_config)) if v]  # fmt: skip
            if given or max_run_duration_seconds != self.MAX_DURATION_SECONDS_DEFAULT:
                warnings.warn(
                    f"run_config is given: {', '.join(given) or 'max_run_duration_seconds'} is ignored, as in Azure ML",
                    UserWarning,
                    stacklevel=2,
                )
            self.script = self.script or run_config.script
            self.arguments = self.arguments if self.arguments else (list(run_config.arguments) or None)
            self.command = self.command or run_config.command or None
            self.run_config = run_config
        else:
            self.run_config = RunConfiguration()
            self.run_config.target = compute_target if compute_target else "local"
            if environment is not None:
                self.run_config.environment = environment
            if max_run_duration_seconds != self.MAX_DURATION_SECONDS_DEFAULT:
                self.run_config.max_run_duration_seconds = max_run_duration_seconds
            if distributed_job_config is not None:
                warnings.warn(
                    "distributed_job_config: one machine runs one process per run; the script runs once",
                    UserWarning,
                    stacklevel=2,
                )
            if docker_runtime_config is not None:
                self.run_config.docker = docker_runtime_config
        if not self.script and not self.command:
            raise UsageError(
                "ScriptRunConfig needs a script (script='train.py') or a command (command=['python', ...])"
            )
        if self.script and self.command:
            raise UsageError("ScriptRunConfig takes a script or a command, not both: drop one of them")

    def step(self, name=None, extra_arguments=(), allow_reuse=False):
        """The one step this configuration runs as: a PythonScriptStep, or a CommandStep for ``command``;
        the run configuration's ``data``, ``data_references`` and ``output_data`` are its inputs and outputs.
        A sweep's trial is one named ``name`` with ``extra_arguments`` (its values) and reuse allowed."""
        source = os.path.abspath(self.source_directory) if self.source_directory is not None else None
        references = _data_references(self.run_config.data_references)
        consumed = _consumptions(self.run_config.data)
        outputs = list(self.run_config.output_data.values())
        inputs = [*consumed, *references.values()]
        placeholders = {
            **{str(r): r for r in references.values()},
            **{c.arg_val: c for c in consumed},
            **{o.arg_val: o for o in outputs if hasattr(o, "arg_val")},
        }
        if self.command:
            return CommandStep(
                command=self.command, source_directory=source, runconfig=self.run_config, inputs=inputs, outputs=outputs
            )
        return PythonScriptStep(
            self.script,
            name=name,
            arguments=[*(_placed(argument, placeholders) for argument in self.arguments or []), *extra_arguments],
            compute_target=self.run_config.target,
            runconfig=self.run_config,
            inputs=inputs,
            outputs=outputs,
            source_directory=source,
            allow_reuse=allow_reuse,  # a script run always runs, as in Azure ML
        )

    def __repr__(self) -> str:
        return f"ScriptRunConfig(source_directory={self.source_directory!r}, script={self.script!r})"


def _data_references(given: dict) -> dict[str, DataReference]:
    """``RunConfiguration.data_references`` as DataReferences, each under its key."""
    references = {}
    for name, value in given.items():
        reference = value.reference if isinstance(value, DataReferenceConfiguration) else value
        if not isinstance(reference, DataReference):
            raise UsageError(
                f"RunConfiguration.data_references[{name!r}] is {value!r}: give a DataReference or its to_config()"
            )
        references[name] = reference._with(data_reference_name=name)
    return references


def _consumptions(given: dict) -> list[DatasetConsumptionConfig]:
    """``RunConfiguration.data``: each dataset consumed under its key."""
    for name, value in given.items():
        if not isinstance(value, DatasetConsumptionConfig):
            raise UsageError(
                f"RunConfiguration.data[{name!r}] is {value!r}: give dataset.as_named_input({name!r}) "
                "(or .as_mount() / .as_download() of it)"
            )
    return [DatasetConsumptionConfig(name, v.dataset, v.mode, v.path_on_compute) for name, v in given.items()]


def _placed(argument, placeholders: dict):
    """An argument that is the SDK's placeholder of a run configuration's data (``str(data_reference)``,
    ``arg_val`` of a dataset input or output) is that data: the step gets its path there, as Azure ML
    substitutes it."""
    return placeholders.get(argument, argument) if isinstance(argument, str) else argument
