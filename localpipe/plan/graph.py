"""From a Pipeline declaration to a validated, serialisable graph of steps.

``plan_pipeline`` is the one entry point: it resolves parameters, turns data references into
named inputs and outputs, orders the steps, and collects *every* problem at once so that a
user fixes them in one pass. The graph it returns is plain data (see ``StepSpec``) that is
stored in history.db and is all the scheduler needs: it never sees the user's objects.
"""

from __future__ import annotations

import graphlib
import json
import math
import numbers
import os
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

import localpipe.plan.parallel as parallel_run
from localpipe.errors import PipelineValidationError, UsageError
from localpipe.plan import checks, environments
from localpipe.plan.ray_steps import check_ray_steps, ray_resources
from localpipe.plan.sweep import expand as expand_sweeps
from localpipe.sdk.data import (
    DataPath,
    DataPathComputeBinding,
    DataReference,
    DatasetConsumptionConfig,
    FileDataset,
    OutputFileDatasetConfig,
    PipelineData,
    PipelineDataInput,
    TabularDataset,
)
from localpipe.sdk.data.datasets import default_input_name
from localpipe.sdk.modules import ModuleStep
from localpipe.sdk.parameters import PipelineParameter
from localpipe.sdk.steps import PipelineStep, PythonScriptStep

VALID_OUTPUT_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # fullmatch: `$` would let a last newline by
MAX_OUTPUT_NAME = 255  # an output is a folder (and a file) of its name: the longest a file name can be
# What one step claims on the default target: one CPU slot, no GPU, no memory reservation.
DEFAULT_RESOURCES = {"cpus": 1, "gpus": 0, "memory": None, "max_concurrent": None}


class Capacity:
    """What this machine can give one step; GPUs and Python interpreters are only looked for when
    a step asks for them."""

    def __init__(
        self,
        cpus: int,
        memory: int,
        gpus=None,
        pythons=None,
        python_fallback: bool = False,
        docker=None,
        azureml_image_fallback: bool = True,
        ray=None,
        stat_cache=None,
    ):
        self.cpus = cpus
        self.memory = memory
        self._gpus = gpus  # a GpuReport, or a callable that returns one
        self._report = None
        self._pythons = pythons  # a callable that returns the interpreters found: [(version, path)]
        self._found_pythons = None
        self.python_fallback = python_fallback  # a Python version not found takes the closest one
        self._docker = docker  # a callable: the daemon's answers (executors/docker.py's machine_docker)
        self._found_docker = None
        self.azureml_image_fallback = azureml_image_fallback  # Azure ML's base images missing: run outside Docker
        self._ray = ray  # a callable: (address, cache, pythons) -> what a Ray cluster has (submit.py's machine_ray)
        self.stat_cache = stat_cache  # the workspace's (content/statcache.py), for Docker build contexts
        self._found_ray: dict = {}

    def ray_cluster(self, address: str | None, cache: bool, pythons: tuple[str, ...]) -> dict:
        """``{"problem", "nodes", "unseen"}`` of the Ray cluster at ``address`` (None: a local Ray for
        the run), asked once; ``cache``: whether its nodes must also see the machine's cache;
        ``pythons``: the interpreters its nodes must have."""
        if self._ray is None:
            return {"problem": None, "nodes": [], "unseen": []}
        if (address, cache, pythons) not in self._found_ray:
            self._found_ray[address, cache, pythons] = self._ray(address, cache, pythons)
        return self._found_ray[address, cache, pythons]

    def docker(self) -> dict | None:
        """``{"problem", "gpus", "image"}`` of this machine's Docker daemon, asked once; None when unknown."""
        if self._found_docker is None and self._docker is not None:
            self._found_docker = self._docker()
        return self._found_docker

    def pythons(self) -> list[tuple[str, str]]:
        if self._found_pythons is None:
            self._found_pythons = list(self._pythons()) if self._pythons else []
        return self._found_pythons

    def gpu_report(self):
        if self._report is None:
            self._report = self._gpus() if callable(self._gpus) else self._gpus
        return self._report


@dataclass
class InputSpec:
    """A step input: another step's output (``step``/``output``) or dataset files (``paths``)."""

    mode: str
    step: str | None = None
    output: str | None = None
    paths: list[str] | None = None
    path_on_compute: str | None = None
    tabular: dict | None = None  # read as a table: TabularDataset.table_options()
    dataset: dict | None = None  # {"name", "version" (None for one not registered), "id"}
    root: str | None = None  # ``paths`` are a pick of files, placed at their paths below ``root``


@dataclass
class StepSpec:
    """One step of a planned graph, in plain data.

    ``argv`` is the argument list with data references as ``{"input": name}`` or
    ``{"output": name}``; the scheduler replaces them by paths at run time.
    """

    name: str
    kind: str
    script: str | None
    source_dir: str | None
    argv: list
    inputs: dict[str, InputSpec]
    outputs: dict[str, bool]  # output name -> is_directory
    params: dict[str, str]
    pipeline_params: dict[str, Any]
    environment: dict[str, Any]
    compute_target: str
    allow_reuse: bool
    version: str | None
    after: list[str] = field(default_factory=list)
    timeout_seconds: float | None = None
    max_retries: int = 0
    resources: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_RESOURCES))
    # output name -> {"path": destination template, "register": dataset name or None}
    destinations: dict[str, dict] = field(default_factory=dict)
    secret_env: list[str] = field(default_factory=list)  # names only: values are never recorded
    # PipelineData(pipeline_output_name=...): the pipeline-level name -> the step's output name
    pipeline_outputs: dict[str, str] = field(default_factory=dict)
    # "arguments.3" or "params.lr" -> the PipelineParameter whose value is there (not in the cache key:
    # the values are), so that a saved pipeline YAML names the parameter again (client/pipeline_yaml.py)
    parameter_uses: dict[str, str] = field(default_factory=dict)

    @property
    def upstream(self) -> set[str]:
        """Names of the steps that must finish before this one starts."""
        return {i.step for i in self.inputs.values() if i.step} | set(self.after)


@dataclass
class Graph:
    """A planned pipeline: steps in a topological order, and the parameter values used."""

    steps: dict[str, StepSpec]
    parameters: dict[str, Any]
    description: str | None = None
    # Hyperparameter sweeps among the steps (plan/sweep.py): each names its trial steps with their
    # values, its primary metric, policy and how many trials run at once.
    sweeps: list[dict] = field(default_factory=list)

    @property
    def nodes(self) -> list[StepSpec]:
        """The steps, in a topological order (the SDK's ``Graph.nodes``)."""
        return list(self.steps.values())

    @property
    def edges(self) -> list[tuple[str, str, str | None]]:
        """``(source step, target step, output carried)``: one per input from another step, then one
        per ``run_after`` (output None)."""
        steps = self.steps.values()
        carried = [(i.step, s.name, i.output) for s in steps for i in s.inputs.values() if i.step]
        return carried + [(before, s.name, None) for s in steps for before in s.after]

    def to_dict(self) -> dict:
        """Plain data for JSON (a shallow copy: the values are already JSON-ready)."""
        steps = [{**vars(s), "inputs": {k: vars(v) for k, v in s.inputs.items()}} for s in self.steps.values()]
        return {"steps": steps, "parameters": self.parameters, "description": self.description, "sweeps": self.sweeps}

    @classmethod
    def from_dict(cls, data: dict) -> Graph:
        steps = {}
        for raw in data["steps"]:
            raw = dict(raw, inputs={k: InputSpec(**v) for k, v in raw["inputs"].items()})
            steps[raw["name"]] = StepSpec(**raw)
        return cls(steps, data["parameters"], data.get("description"), data.get("sweeps") or [])


def plan_pipeline(
    pipeline, overrides: dict | None = None, compute_targets: dict | None = None, capacity: Capacity | None = None
) -> Graph:
    """The graph of ``pipeline`` with ``overrides`` applied; raises with every problem found."""
    graph, found = _plan(pipeline, overrides or {}, compute_targets, capacity)
    if found:
        raise PipelineValidationError(found)
    return graph


def problems(
    pipeline, overrides: dict | None = None, compute_targets: dict | None = None, capacity: Capacity | None = None
) -> list[str]:
    """Every problem of ``pipeline``, as readable lines (empty when it can run)."""
    return _plan(pipeline, overrides or {}, compute_targets, capacity)[1]


def datasets_used(pipeline, overrides: dict | None = None) -> list[FileDataset]:
    """The datasets a valid ``pipeline`` run with ``overrides`` consumes, each once: its steps' dataset
    inputs and arguments, a dataset parameter's value given or else its default."""
    overrides = overrides or {}
    found: dict[int, FileDataset] = {}
    for step in expand_sweeps(pipeline.steps)[0]:
        for value in [*step.arguments, *step.inputs]:
            if isinstance(value, DatasetConsumptionConfig):
                value = value.dataset
            if isinstance(value, PipelineParameter):
                value = overrides.get(value.name, value.default_value)
            if isinstance(value, FileDataset):
                found[id(value)] = value
    return list(found.values())


# -- implementation ------------------------------------------------------------------------


def _plan(
    pipeline, overrides: dict, compute_targets: dict | None, capacity: Capacity | None = None
) -> tuple[Graph, list[str]]:
    found: list[str] = []
    if not pipeline.steps:
        found.append("the pipeline has no steps: pass steps=[...] to Pipeline")
    all_steps, step_sweeps = expand_sweeps(pipeline.steps)  # a HyperDriveStep's trials are steps too
    names = _step_names(all_steps, found)
    if not all(isinstance(name, str) for name in names.values()):  # every other problem is named after its step
        return Graph({}, {}, pipeline.description), found
    parameters, data_values = _resolve_parameters(all_steps, overrides, found)
    specs = [
        _step_spec(step, names, parameters, data_values, pipeline, compute_targets, capacity, found)
        for step in all_steps
    ]
    _check_pipeline_outputs(specs, found)
    if capacity is not None:  # Ray reserves what a step on it asks for: checked apart
        _check_capacity([spec for spec in specs if not spec.resources.get("ray")], capacity, found)
    check_ray_steps(specs, capacity, found)
    order = _order(specs, found)
    by_name = {spec.name: spec for spec in specs}
    steps = {name: by_name[name] for name in order}
    graph = Graph(steps, parameters, pipeline.description, [*getattr(pipeline, "sweeps", []), *step_sweeps])
    return graph, list(dict.fromkeys(found))  # an input both in arguments and in inputs= is found twice


def _step_names(steps: list[PipelineStep], found: list[str]) -> dict[int, str]:
    names: dict[int, str] = {}
    seen: set[str] = set()
    for step in steps:
        checks.step_name(step.name, found)
        if not isinstance(step.name, str):
            names[id(step)] = step.name
            continue
        if step.name in seen:
            found.append(f'two steps are named "{step.name}": pass a distinct name= to each')
        seen.add(step.name)
        names[id(step)] = step.name
    return names


def _resolve_parameters(steps, overrides: dict, found: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The value of every parameter (JSON-ready) and, for those whose value is data (a DataPath or a
    dataset), that data."""
    declared: dict[str, PipelineParameter] = {}
    declared_by: dict[str, str] = {}
    refused: set[str] = set()  # reported once here, so passed on as "" rather than reported again per use
    for step in steps:
        for value in _parameters_of(step):
            if value.name not in declared and not _data_default(value.default_value):
                if not checks.parameter_default(value.name, value.default_value, found):
                    refused.add(value.name)
            other = declared.setdefault(value.name, value)
            first = declared_by.setdefault(value.name, step.name)
            if not _same_default(other.default_value, value.default_value):
                found.append(
                    f'parameter "{value.name}" is declared twice with different defaults '
                    f'({other.default_value!r} in step "{first}", {value.default_value!r} '
                    f'in step "{step.name}"): declare it once and share it'
                )
    data = {name: p.default_value for name, p in declared.items() if _data_default(p.default_value)}
    values = {name: "" if name in refused else p.default_value for name, p in declared.items() if name not in data}
    for name, raw in overrides.items():
        if name not in declared:
            known = ", ".join(sorted(declared)) or "none"
            found.append(f'parameter "{name}" is not used by this pipeline (known parameters: {known})')
            continue
        try:
            if name in data:
                data[name] = coerce_data_parameter(raw, declared[name].default_value)
            else:
                values[name] = coerce_parameter(raw, declared[name].default_value)
        except ValueError as exc:
            found.append(f'parameter "{name}": {exc}')
    values.update({name: _describe_data(value) for name, value in data.items()})
    return values, data


def _parameters_of(step) -> list[PipelineParameter]:
    """The PipelineParameters a step uses: in its arguments and params, and (as data) in its inputs:
    ``(PipelineParameter(DataPath), DataPathComputeBinding())`` and datasets consumed through one."""
    found = []
    for value in [*step.arguments, *step.params.values(), *step.inputs]:
        if isinstance(value, tuple) and value and isinstance(value[0], PipelineParameter):
            value = value[0]
        elif isinstance(value, DatasetConsumptionConfig):
            value = value.dataset
        if isinstance(value, PipelineParameter):
            found.append(value)
    return found


def _data_default(value) -> bool:
    return isinstance(value, (DataPath, FileDataset))


def coerce_data_parameter(raw: Any, default: Any) -> Any:
    """A data parameter's new value: data of the default's kind; a string is a path in the default's
    datastore (for a DataPath)."""
    if isinstance(default, DataPath):
        if isinstance(raw, DataPath):
            return raw
        if isinstance(raw, str):
            return DataPath(default._datastore, raw)
        raise ValueError(f"{raw!r} is not a DataPath: pass DataPath(datastore, path_on_datastore) or a path")
    kind = TabularDataset if isinstance(default, TabularDataset) else FileDataset
    if isinstance(raw, kind) and (kind is TabularDataset) == isinstance(raw, TabularDataset):
        return raw
    raise ValueError(
        f"{raw!r} is not a {kind.__name__} like the default: pass one (Dataset.get_by_name, Dataset.File...)"
    )


def _describe_data(value) -> dict:
    """A data parameter's value as plain data, for the run's record."""
    if isinstance(value, DataPath):
        return {"datapath": value.describe()}
    return {"dataset": {"name": value.name, "version": value.version, "paths": list(value.paths)}}


def _same_default(a: Any, b: Any) -> bool:
    return a is b or a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def coerce_parameter(raw: Any, default: Any) -> Any:
    """``raw`` converted to the type of ``default``; ValueError with the reason when it cannot be."""
    kind = type(default)
    if isinstance(raw, kind) and not (kind is int and isinstance(raw, bool)):
        return raw
    if not isinstance(raw, str):
        if kind is float and isinstance(raw, int) and not isinstance(raw, bool):
            return float(raw)
        raise ValueError(f"{raw!r} is a {type(raw).__name__}, expected a {kind.__name__} like the default {default!r}")
    if kind is bool:
        lowered = raw.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
        raise ValueError(f'"{raw}" is not a boolean: pass true or false')
    if kind in (int, float):
        try:
            value = kind(raw)
        except ValueError:
            value = None
        if value is None or (kind is float and not math.isfinite(value)):
            raise ValueError(
                f'"{raw}" is not {"an integer" if kind is int else "a number"}: pass one like the default {default!r}'
            )
        return value
    return raw if kind is str else raw


def _step_spec(
    step: PipelineStep,
    names: dict[int, str],
    parameters: dict,
    data_values: dict,
    pipeline,
    compute_targets: dict | None,
    capacity: Capacity | None,
    found: list[str],
) -> StepSpec:
    label = f'step "{step.name}"'
    source_dir = step.source_directory
    if source_dir is None and isinstance(step, PythonScriptStep):
        source_dir = pipeline.default_source_directory or os.getcwd()
    script = step.script_name if isinstance(step, PythonScriptStep) else None
    _check_source(label, source_dir, script, found)

    inputs: dict[str, InputSpec] = {}
    outputs: dict[str, bool] = {}
    destinations: dict[str, dict] = {}
    pipeline_outputs: dict[str, str] = {}
    for output in step.outputs:
        _add_output(label, step, output, outputs, found)
        if isinstance(output, OutputFileDatasetConfig) and (output.destination or output.register_as):
            destinations[output.name] = _destination(label, output, found)
        if isinstance(output, PipelineData) and output.pipeline_output_name:
            pipeline_outputs[output.pipeline_output_name] = output.name
    for item in step.inputs:
        _add_input(label, step, _bound(item, data_values), names, inputs, found)

    # A data parameter in arguments is the step's input of its name (bound in inputs=), else text
    # such as "{'datapath': ...}" the step could not use: refused, as in params.
    unbound = [v for v in step.arguments if _is_data_parameter(v) and v.name not in inputs]
    for value in [*unbound, *filter(_is_data_parameter, step.params.values())]:
        found.append(
            f'{label}: PipelineParameter "{value.name}" holds a {type(value.default_value).__name__}, which '
            f"the step would get as text: give it as data, ({value.name}, DataPathComputeBinding()) for a "
            "DataPath, DatasetConsumptionConfig(name, parameter) for a dataset"
        )
    used_params: dict[str, Any] = {}
    argv = [
        {"input": value.name}
        if _is_data_parameter(value)
        else _argument(label, _bound(value, data_values), parameters, used_params, outputs, found)
        for value in step.arguments
    ]
    params = {
        key: checks.text(label, "parameter value", _param_value(value, parameters, used_params), found)
        for key, value in step.params.items()
        if checks.variable_name(label, "params name", key, found)
    }
    uses = {
        f"arguments.{i}": v.name
        for i, v in enumerate(step.arguments)
        if isinstance(v, PipelineParameter) and not _is_data_parameter(v)
    }
    uses |= {f"params.{k}": v.name for k, v in step.params.items() if isinstance(v, PipelineParameter)}
    if isinstance(step, ModuleStep):
        _check_wiring(label, step, found)
    if step.kind == "command" and not step.arguments:
        found.append(f"{label}: the command is empty: pass the program to run and its arguments")

    node_count = getattr(step.runconfig, "node_count", 1)
    if node_count not in (1, None):  # Azure would start the step on that many nodes
        warnings.warn(
            f"{label}: node_count {node_count} changes nothing on one machine: the step runs once", stacklevel=3
        )
    target = step.compute_target or step.runconfig.target or "local"
    target_name = target if isinstance(target, str) else getattr(target, "name", str(target))
    if compute_targets is not None and target_name not in compute_targets:
        found.append(
            f'{label}: compute target "{target_name}" does not exist: create it with '
            'ComputeTarget.create(...) or use "local"'
        )
    known = (compute_targets or {}).get(target_name, target if not isinstance(target, str) else None)
    resources = dict(DEFAULT_RESOURCES)
    if getattr(getattr(known, "config", None), "kind", None) == "ray":
        resources = ray_resources(known.config)
    elif getattr(known, "config", None) is not None:
        config = known.config
        resources = {
            "cpus": config.cpus_per_step,
            "gpus": config.gpus_per_step,
            "memory": config.memory_per_step,
            "max_concurrent": config.max_concurrent_steps,
        }

    if step.kind == "parallel" and not resources.get("ray"):  # refused on Ray (ray_steps.py)
        resources = parallel_run.check(label, step, source_dir, resources, capacity, found, parameters)
    after = [names.get(id(p), p.name) for p in step.predecessors]
    for predecessor in step.predecessors:
        if id(predecessor) not in names:
            found.append(
                f'{label} runs after step "{predecessor.name}", which is not in the pipeline: add it '
                "(resolve_closure=False keeps only the steps given)"
            )
    if step.name in after:
        found.append(f"{label} runs after itself: remove the run_after({step.name}) call")
    return StepSpec(
        name=step.name,
        kind=step.kind,
        script=script,
        source_dir=source_dir,
        argv=argv,
        inputs=inputs,
        outputs=outputs,
        params=params,
        pipeline_params=used_params,
        environment=environments.resolve(
            label,
            step.runconfig.environment,
            capacity,
            found,
            step.runconfig.environment_variables,
            docker=getattr(step.runconfig, "docker", None),
            local=not resources.get("ray"),
        ),
        compute_target=target_name,
        allow_reuse=checks.flag(label, "allow_reuse", step.allow_reuse, found),
        version=checks.version(label, step.version, found),
        after=after,
        timeout_seconds=checks.timeout_seconds(label, step.runconfig.timeout_seconds, found),
        max_retries=checks.max_retries(label, step.runconfig.max_retries, found),
        resources=resources,
        destinations=destinations,
        secret_env=_secret_env(label, step.secret_env, found),
        pipeline_outputs=pipeline_outputs,
        parameter_uses=uses,
    )


def _is_data_parameter(value) -> bool:
    return isinstance(value, PipelineParameter) and isinstance(value.default_value, (DataPath, FileDataset))


def _check_wiring(label: str, step: ModuleStep, found: list[str]) -> None:
    """Every key of a ModuleStep's ``inputs_map`` and ``outputs_map`` is a port of its module version,
    and every input port that is not optional is mapped."""
    ports, wiring = step.ports, step.mapped
    for what, known in (("input", list(ports["inputs"])), ("output", ports["outputs"])):
        for key in wiring[f"{what}s"]:
            if key not in known:
                found.append(
                    f'{label}: {what}s_map key "{key}" is not an {what} port of {step.module_label} (its {what} '
                    f"ports: {', '.join(known) or 'none'}): map the data to one of those names"
                )
    for port, optional in ports["inputs"].items():
        if not optional and port not in wiring["inputs"]:
            found.append(
                f'{label}: input port "{port}" of {step.module_label} is not mapped: add "{port}" to inputs_map'
            )


def _bound(item, data_values: dict):
    """A data reference with its data parameters replaced by this submission's values: a DataPath
    parameter bound by a DataPathComputeBinding is a DataReference named after the parameter; a
    dataset parameter, the dataset chosen."""
    if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], PipelineParameter):
        parameter, binding = item
        if not isinstance(binding, DataPathComputeBinding):
            return item  # reported as not a data reference
        path = data_values.get(parameter.name, parameter.default_value)
        return DataReference.create(parameter.name, path, binding) if isinstance(path, DataPath) else item
    if isinstance(item, DatasetConsumptionConfig) and isinstance(item.dataset, PipelineParameter):
        chosen = data_values.get(item.dataset.name, item.dataset.default_value)
        return DatasetConsumptionConfig(item.name, chosen, item.mode, item.path_on_compute)
    return item


def _check_pipeline_outputs(specs: list[StepSpec], found: list[str]) -> None:
    seen: dict[str, str] = {}
    for spec in specs:
        for name in spec.pipeline_outputs:
            if name in seen and seen[name] != spec.name:
                found.append(
                    f'pipeline_output_name "{name}" is given to outputs of steps "{seen[name]}" and '
                    f'"{spec.name}": give each its own'
                )
            seen.setdefault(name, spec.name)


def _check_capacity(specs: list[StepSpec], capacity: Capacity, found: list[str]) -> None:
    """What the steps ask of this machine beyond what it has; the steps that ask the same of one
    target (a sweep's trials, say) are one problem that names them."""
    asking: dict[tuple[str, str], list[str]] = {}
    for spec in specs:
        for problem in _beyond_capacity(spec, capacity):
            asking.setdefault(problem, []).append(f'"{spec.name}"')
    for (one, several), names in asking.items():
        if len(names) == 1:
            found.append(f"step {names[0]} {one}")
        else:
            shown = names if len(names) <= 4 else [*names[:3], f"{len(names) - 3} more"]
            found.append(f"steps {', '.join(shown[:-1])} and {shown[-1]} each {several}")


def _beyond_capacity(spec: StepSpec, capacity: Capacity) -> list[tuple[str, str]]:
    """What ``spec`` asks beyond this machine, each said of one step and of several."""
    need, problems = spec.resources, []
    fix = f'lower it on compute target "{spec.compute_target}" or use another target'
    if spec.kind == "parallel":  # its workers are counted by plan/parallel.py, with the fix that fits
        need = {**need, "cpus": 0, "gpus": 0}
    if need["cpus"] > capacity.cpus:
        problems.append(f"{need['cpus']} CPUs per step but this machine has {capacity.cpus}: {fix}")
    if need["memory"] and need["memory"] > capacity.memory:
        problems.append(
            f"{need['memory'] / 2**30:.1f} GiB of memory but this machine has {capacity.memory / 2**30:.1f} GiB: {fix}"
        )
    if need["gpus"]:
        report = capacity.gpu_report()
        if len(report.gpus) < need["gpus"]:
            why = report.problem or f"it has {len(report.gpus)}"
            problems.append(
                f"{need['gpus']} GPU{'s' if need['gpus'] > 1 else ''} but this machine cannot give them ({why}): {fix}"
            )
    said = [(f"needs {problem}", f"need {problem}") for problem in problems]
    machine = capacity.docker() if need["gpus"] and spec.environment.get("kind") == "docker" else None
    if machine and not machine["problem"] and not machine["gpus"]:
        daemon = (
            "GPUs, but this Docker daemon cannot give containers GPUs (no nvidia runtime): install the NVIDIA "
            "Container Toolkit, or run the step without Docker"
        )
        said.append((f"runs in Docker and needs {daemon}", f"run in Docker and need {daemon}"))
    return said


def _check_source(label: str, source_dir: str | None, script: str | None, found: list[str]) -> None:
    if source_dir is None:
        return
    if not os.path.isdir(source_dir):
        what = "is not a directory" if os.path.exists(source_dir) else "does not exist"
        found.append(f'{label}: source_directory "{source_dir}" {what}: create it or fix the path')
        return
    if script is None:
        return
    full = os.path.normpath(os.path.join(source_dir, script))
    if not full.startswith(os.path.normpath(source_dir) + os.sep):
        found.append(f'{label}: script "{script}" leaves source_directory "{source_dir}": keep the script inside it')
    elif not os.path.isfile(full):
        found.append(
            f'{label}: script "{script}" not found in source_directory "{source_dir}": '
            "fix script_name or source_directory"
        )


def _add_output(label: str, step, output, outputs: dict[str, bool], found: list[str]) -> None:
    if not isinstance(output, PipelineData):
        found.append(f"{label}: output {output!r} is not a PipelineData")
        return
    name = output.name
    shown = json.dumps(name if len(name) <= 60 else name[:59] + "…", ensure_ascii=False)  # control characters escaped
    if not VALID_OUTPUT_NAME.fullmatch(name) or ".." in name:
        found.append(
            f'{label}: output name {shown} is not allowed: use letters, digits, "_", "-" and "." with no "/" or ".."'
        )
    elif len(name) > MAX_OUTPUT_NAME:
        found.append(f"{label}: output name {shown} is {len(name)} characters long: use at most {MAX_OUTPUT_NAME}")
    elif name in outputs:
        found.append(f'{label}: two outputs are named "{name}": rename one')
    if len(output.producers) > 1 and output.producers[0] is step:
        producers = ", ".join(f'"{p.name}"' for p in output.producers)
        found.append(
            f'output "{name}" is produced by more than one step ({producers}): give each step its own PipelineData'
        )
    outputs[name] = output.is_directory


def _secret_env(label: str, names: list, found: list[str]) -> list[str]:
    names = [name for name in names if checks.variable_name(label, "secret_env", name, found)]
    missing = [name for name in names if name not in os.environ]
    if missing:
        found.append(f'{label}: secret_env "{missing[0]}" is not set in this environment: export it before submitting')
    return sorted(names)


def _destination(label: str, output: OutputFileDatasetConfig, found: list[str]) -> dict:
    """Where an output is written back, as an absolute path template inside its datastore."""
    if output.destination is None:
        return {"path": None, **_registration(output)}
    store, template = output.destination
    if store.url:
        found.append(
            f'{label}: output "{output.name}" goes to datastore "{store.name}", a public blob container, '
            "read-only here: write it to a local datastore (ws.get_default_datastore())"
        )
        return {"path": None, **_registration(output)}
    root = os.path.realpath(store.folder)
    path = os.path.normpath(os.path.join(root, str(template)))
    sample = path.replace("{run-id}", "1").replace("{output-name}", output.name)
    # Resolved too: a symbolic link inside the datastore may lead out of it.
    if not all(inside(p, root) for p in (sample, os.path.realpath(sample))):
        found.append(
            f'{label}: destination "{template}" of output "{output.name}" leaves datastore '
            f'"{store.name}": use a relative path inside it'
        )
    elif replaces_state(os.path.realpath(sample), os.path.realpath(store.workspace.state_dir)):
        where = f'{label}: destination "{template}" of output "{output.name}"'
        found.append(f"{where} {REPLACES_STATE}: choose a path outside .localpipe")
    return {"path": path, "root": root, **_registration(output)}


REPLACES_STATE = "would replace the workspace's own state (its .localpipe folder, or a part of it)"


def replaces_state(path: str, state_dir: str) -> bool:
    """Whether writing a folder at ``path`` (real, absolute) would replace the workspace's state,
    ``state_dir`` (real): it, what is in it, or a folder holding it; its datastores' own folders
    (``datastores/NAME/...``) excepted."""
    if inside(path, os.path.join(state_dir, "datastores")) and os.path.dirname(path) != os.path.join(
        state_dir, "datastores"
    ):
        return False
    return path == state_dir or inside(path, state_dir) or inside(state_dir, path)


def _registration(output: OutputFileDatasetConfig) -> dict:
    return {
        "register": output.register_as,
        "description": output.register_description,
        "tags": output.register_tags,
        "table": output.register_table,
    }


def inside(path: str, root: str) -> bool:
    """Whether ``path`` lies below ``root`` (both absolute and normalised), ``root`` itself excluded."""
    return path.startswith(root + os.sep)


def _add_input(label: str, step, item, names: dict[int, str], inputs: dict[str, InputSpec], found: list[str]) -> None:
    if isinstance(item, PipelineData):
        item = item.as_input()
    if isinstance(item, FileDataset):
        item = item.as_named_input(default_input_name(item))
    if isinstance(item, PipelineDataInput):
        name, spec = item.name, _pipeline_data_input(label, step, item, names, found)
    elif isinstance(item, DatasetConsumptionConfig):
        name, spec = item.name, _dataset_input(label, item, found)
    elif isinstance(item, DataReference):
        name = item.data_reference_name
        if item.mode == "upload":
            found.append(f'{label}: DataReference "{name}" as_upload(): write outputs through OutputFileDatasetConfig')
        path = _local_path(label, item, found)
        mode = "download" if item.mode == "download" else "mount"
        missing = path is not None and not os.path.exists(path)
        where = f'"{item.path_on_datastore}" does not exist in datastore "{item.datastore.name}" ({path})'
        if missing and mode == "download":
            found.append(f'{label}: input "{name}": {where}: upload it (datastore.upload_files) or fix the path')
        elif missing:  # Azure mounts an absent path as an empty folder, and the samples rely on it
            warnings.warn(
                f'{label}: input "{name}": {where}: the step gets an empty folder, as Azure mounts an absent '
                "path (upload the data with datastore.upload_files)",
                stacklevel=3,
            )
        spec = InputSpec(
            mode=mode,
            paths=[] if missing else [path or ""],
            path_on_compute=item.path_on_compute,
        )
    else:
        found.append(f"{label}: input {item!r} is not a dataset or pipeline data")
        return
    placed_there = spec.mode == "download" and spec.path_on_compute is not None  # a mount is read where it is
    if placed_there:
        checks.path_on_compute(label, name, spec.path_on_compute, found)
    elif spec.mode == "download" or spec.step is None:
        checks.input_folder(label, name, found)
    if name in inputs and inputs[name] != spec:
        found.append(f'{label}: two different inputs are named "{name}": pass input_name= to tell them apart')
    inputs[name] = spec


def _local_path(label: str, reference, found: list[str]) -> str | None:
    try:
        return reference.local_path()
    except UsageError as exc:
        found.append(f"{label}: {exc}")
        return None


def _pipeline_data_input(label: str, step, item: PipelineDataInput, names: dict, found: list[str]) -> InputSpec:
    producers = item.data.producers
    if not producers:
        found.append(
            f'{label}: input "{item.name}" is produced by no step: add the step that writes '
            f'PipelineData "{item.data.name}" as an output'
        )
        return InputSpec(mode=item.mode)
    producer = producers[0]
    if id(producer) not in names:
        found.append(
            f'{label}: input "{item.name}" is produced by step "{producer.name}", which is not in the pipeline: '
            "add it (resolve_closure=False keeps only the steps given)"
        )
    if producer is step:
        found.append(
            f'{label} consumes its own output "{item.data.name}": remove "{item.data.name}" '
            "from its inputs, or read it from another step's PipelineData"
        )
    return InputSpec(
        mode=item.mode,
        step=names.get(id(producer), producer.name),
        output=producer.output_name_of(item.data),
        tabular=item.tabular,
        path_on_compute=item.path_on_compute,
    )


def _dataset_input(label: str, item: DatasetConsumptionConfig, found: list[str]) -> InputSpec:
    dataset = item.dataset
    if isinstance(dataset, PipelineParameter):  # not bound: its default could not be used
        dataset = dataset.default_value
    for path in dataset.paths:
        if not any(c in path for c in "*?[") and not os.path.exists(path):
            found.append(
                f'{label}: dataset input "{item.name}": path "{path}" does not exist: create it or fix the path'
            )
    paths, root = dataset.local_paths()
    if root is not None and not paths:
        found.append(f'{label}: dataset input "{item.name}": no file matches {list(dataset.paths)}: fix the path')
    return InputSpec(
        mode=item.mode,
        paths=paths,
        root=root,
        path_on_compute=item.path_on_compute,
        tabular=dataset.table_options() if isinstance(dataset, TabularDataset) else None,
        dataset={"name": dataset.name, "version": dataset.version, "id": dataset.id or dataset.definition_id()},
    )


def _argument(label: str, value, parameters: dict, used: dict, outputs: dict[str, bool], found: list[str]):
    if isinstance(value, PipelineData):  # the step's output, or else an input it lists in inputs=
        return {"output": value.name} if value.name in outputs else {"input": value.as_input().name}
    if isinstance(value, (PipelineDataInput, DatasetConsumptionConfig)):
        return {"input": value.name}
    if isinstance(value, DataReference):
        return {"input": value.data_reference_name}
    if isinstance(value, FileDataset):
        return {"input": default_input_name(value)}
    if isinstance(value, (str, numbers.Real, os.PathLike, PipelineParameter)):
        return checks.text(label, "argument", _param_value(value, parameters, used), found)
    found.append(
        f"{label}: argument {value!r} of type {type(value).__name__} cannot be passed: "
        "use a string, a number, a PipelineParameter or a data reference"
    )
    return ""


def _param_value(value, parameters: dict, used: dict):
    if isinstance(value, PipelineParameter):
        used[value.name] = parameters.get(value.name, value.default_value)
        return used[value.name]
    return os.fspath(value) if isinstance(value, os.PathLike) else value


def _order(specs: list[StepSpec], found: list[str]) -> list[str]:
    known = {s.name for s in specs}
    sorter = graphlib.TopologicalSorter()
    for spec in specs:
        deps = {d for d in spec.upstream if d in known and d != spec.name}
        sorter.add(spec.name, *deps)
    try:
        return list(sorter.static_order())
    except graphlib.CycleError as exc:
        cycle = " -> ".join(f'"{n}"' for n in reversed(exc.args[1]))
        found.append(f"the steps form a cycle: {cycle}: remove one of these dependencies")
        return [s.name for s in specs]
