"""``ScriptRunConfig``: one script (or command) to run as an experiment's run, as in the Azure ML SDK.

``Experiment.submit(ScriptRunConfig(...))`` runs it as a pipeline of one step, through the same
planning, scheduler, cache and records as a pipeline (docs/runs.md): ``localpipe runs``,
``show``, ``logs`` and ``metrics`` know it like any run.
"""

from __future__ import annotations

import os
import warnings

from localpipe.errors import UsageError
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

    def step(self):
        """The one step this configuration runs as: a PythonScriptStep, or a CommandStep for ``command``."""
        source = os.path.abspath(self.source_directory) if self.source_directory is not None else None
        if self.command:
            return CommandStep(command=self.command, source_directory=source, runconfig=self.run_config)
        return PythonScriptStep(
            self.script,
            arguments=self.arguments,
            compute_target=self.run_config.target,
            runconfig=self.run_config,
            source_directory=source,
            allow_reuse=False,  # a script run always runs, as in Azure ML
        )

    def __repr__(self) -> str:
        return f"ScriptRunConfig(source_directory={self.source_directory!r}, script={self.script!r})"
