"""What a ParallelRunStep is checked for when planned, and what it claims: one CPU per worker and,
on a target with GPUs, one GPU per worker (docs/parallel-run.md)."""

from __future__ import annotations

import ast
import os

from localpipe.sdk.parallel_run import MINI_BATCH_SIZE, UNITS
from localpipe.sdk.parameters import PipelineParameter

# The settings that may be PipelineParameters whose value must be greater than 0, and whether it may
# be a fraction (mini_batch_size, a number or a size, is checked on its own).
POSITIVE_SETTINGS = (
    ("process_count_per_node", False),
    ("node_count", False),
    ("run_max_try", False),
    ("run_invocation_timeout", True),
)


def check(
    label: str, step, source_dir: str | None, resources: dict, capacity, found: list[str], parameters: dict
) -> dict:
    """The step's resources, with every problem its configuration has on this machine added to ``found``;
    ``parameters``: the values of this submission's parameters."""
    config = step.parallel_run_config
    _entry_script(label, source_dir, config.entry_script, found)
    _parameter_values(label, config, parameters, found)
    size = _given(config.mini_batch_size_given, parameters)
    if (
        step.input_kind == "file"
        and isinstance(size, str)
        and size[-2:].lower() in UNITS
        and MINI_BATCH_SIZE.match(size)
    ):
        found.append(
            f'{label}: mini_batch_size "{size}" is a size, which cuts a TabularDataset: for a FileDataset pass '
            "a number of files (10)"
        )
    if config.partition_keys and step.input_kind == "file" and "--partition_format" not in step.arguments:
        found.append(
            f"{label}: partition_keys {config.partition_keys} need a dataset with partition_format: create it with "
            "Dataset.File.from_files(path, partition_format=...)"
        )
    gpu_target = bool(resources.get("gpus"))
    per_node = _count(config.process_count_per_node, parameters)
    nodes = _count(config.node_count, parameters) or 1
    if per_node is None:  # Azure's default, one per GPU or CPU of the node: this machine's, shared by the nodes
        machine_gpus = len(capacity.gpu_report().gpus) if capacity is not None and gpu_target else resources["gpus"]
        machine = machine_gpus if gpu_target else (capacity.cpus if capacity is not None else os.cpu_count() or 1)
        per_node = max(1, machine // nodes)
    workers = per_node * nodes
    if capacity is not None:
        have = len(capacity.gpu_report().gpus) if gpu_target else capacity.cpus
        what = "GPUs" if gpu_target else "CPUs"
        if workers > have:
            found.append(
                f"{label} needs {workers} workers (node_count {nodes} x process_count_per_node "
                f"{per_node}), one per {what[:-1]}, but this machine has {have} {what}: lower node_count or "
                "process_count_per_node"
            )
    return {**resources, "cpus": workers, "gpus": workers if gpu_target else 0}


def _given(setting, parameters: dict):
    """A setting as this submission gives it: a PipelineParameter's value, else its default."""
    return parameters.get(setting.name, setting.default_value) if isinstance(setting, PipelineParameter) else setting


def _count(setting, parameters: dict) -> int | None:
    """A worker count as this submission gives it; one that is no count at all counts as 1, as it is
    reported by ``_parameter_values``."""
    given = _given(setting, parameters)
    if given is None:
        return None
    return given if isinstance(given, int) and not isinstance(given, bool) and given > 0 else 1


def _parameter_values(label: str, config, parameters: dict, found: list[str]) -> None:
    """The settings given as PipelineParameters, checked with this submission's values as
    ParallelRunConfig checks the others: a mini_batch_size of 0 failed the step with "range() arg 3
    must not be zero", one below 0 ran no batch at all, and process_count_per_node 0 waited for ever."""
    for name, fraction in POSITIVE_SETTINGS:
        value = getattr(config, name)
        if not isinstance(value, PipelineParameter):
            continue
        given = _given(value, parameters)
        if isinstance(given, bool) or not isinstance(given, (int, float) if fraction else int) or given <= 0:
            found.append(
                f'{label}: {name} {given!r} (PipelineParameter "{value.name}") is not '
                f'{"a number" if fraction else "an integer"} greater than 0: give "{value.name}" a value of '
                f"{'more than 0' if fraction else '1 or more'}"
            )
    value = config.mini_batch_size
    if isinstance(value, PipelineParameter):
        given = _given(value, parameters)
        good = given >= 1 if isinstance(given, int) and not isinstance(given, bool) else False
        if isinstance(given, str) and MINI_BATCH_SIZE.match(given):
            good = int(given[:-2] if given[-2:].lower() in UNITS else given) >= 1
        if not good:
            found.append(
                f'{label}: mini_batch_size {given!r} (PipelineParameter "{value.name}") is not a number of '
                'files (10) or a size ("1MB") of at least 1: give "{value.name}" one'
            )


def _entry_script(label: str, source_dir: str | None, script: str, found: list[str]) -> None:
    path = os.path.join(source_dir or os.getcwd(), script)
    try:
        with open(path, "rb") as handle:
            tree = ast.parse(handle.read(), path)
    except (OSError, SyntaxError, ValueError):
        return  # a missing file is reported with the source directory's checks; a syntax error when run
    defined = {node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))}
    missing = [name for name in ("init", "run") if name not in defined]
    if missing:
        found.append(
            f"{label}: entry script {script} has no {' and no '.join(f'{m}()' for m in missing)} function: "
            "define init() and run(mini_batch)"
        )
