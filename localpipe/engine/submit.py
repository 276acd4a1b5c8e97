"""Submitting: plan a pipeline, record the run in history.db, then run it here or in the background.

Nothing is written before the pipeline has validated and its source trees have been hashed,
so a bad pipeline leaves no trace. ``run_prepared`` is the one way a recorded run is run: by
the CLI, a detached scheduler (``Experiment.submit``, ``--detach``) and the tests; the watcher
keeps the scheduler ``scheduler_for`` makes, to cancel its steps when their sources change.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from localpipe.compat.runtime import step_pythonpath
from localpipe.content.hashing import TreeDigest
from localpipe.content.statcache import StatCache
from localpipe.content.trees import TreeCache
from localpipe.engine.environments import Environments
from localpipe.engine.executors.local import log_limit, warm_start
from localpipe.engine.executors.router import Router
from localpipe.engine.gitinfo import git_info
from localpipe.engine.resources import ResourcePool, process_start
from localpipe.engine.scheduler import Reporter, Scheduler
from localpipe.envs import cache_root
from localpipe.envs.pythons import find_pythons
from localpipe.errors import PipelineValidationError, UsageError
from localpipe.hw.gpus import detect_gpus
from localpipe.hw.host import detect_host, require_linux
from localpipe.plan.graph import Capacity, Graph, datasets_used, plan_pipeline
from localpipe.state.history import History
from localpipe.state.runs import NewRun
from localpipe.state.store import ObjectStore
from localpipe.status import RunStatus


@dataclass
class PreparedRun:
    """A recorded run, ready for a scheduler."""

    run_id: int
    graph: Graph
    sources: dict[str, TreeDigest | None]


def plan(
    history: History, pipeline, parameters: dict | None = None, trees: TreeCache | None = None
) -> tuple[Graph, dict[str, TreeDigest | None]]:
    """Validate ``pipeline`` and hash its sources; raises with every problem, writes nothing.

    ``trees`` (kept by a watcher) knows which files changed since the last call.
    """
    from localpipe.sdk.compute import targets_from_configs

    # A bad LOCALPIPE_MAX_LOG_BYTES or LOCALPIPE_STEP_START is refused before anything is recorded.
    log_limit()
    warm_start()
    targets = targets_from_configs(history.registry.compute_targets())
    trees = trees or TreeCache(StatCache(history.layout.statcache))
    capacity = machine_capacity(history.layout.state_dir, trees.stat_cache)
    graph = plan_pipeline(pipeline, parameters, compute_targets=targets, capacity=capacity)
    sources = source_trees(graph, trees)
    trees.stat_cache.save()
    ignored = [
        f'step "{name}": its script "{spec.script}" is left out of its source directory by the ignore rules '
        f'(.amlignore, else .gitignore, and .localpipeignore in "{spec.source_dir}"), so its snapshot would not '
        "hold it: stop ignoring it there"
        for name, spec in graph.steps.items()
        if spec.script and sources.get(name) is not None
        and os.path.normpath(spec.script).replace(os.sep, "/") not in sources[name].files
        and os.path.isfile(os.path.join(spec.source_dir, spec.script))
    ]  # fmt: skip
    if ignored:
        raise PipelineValidationError(ignored)
    return graph, sources


def machine_capacity(state_dir: Path | None = None, stat_cache=None) -> Capacity:
    """What this machine can give a step: CPUs, memory, GPUs and Python interpreters (looked for
    only when a step asks); with the workspace's ``state_dir``, what a Ray cluster gives one (asked
    only when a step runs on Ray); with its ``stat_cache``, Docker build contexts are hashed
    through it."""
    host = detect_host()
    return Capacity(
        host.cpus,
        host.memory_total,
        detect_gpus,
        pythons=lambda: find_pythons(cache_root() / "pythons.json"),
        python_fallback=python_fallback(),
        docker=machine_docker,
        azureml_image_fallback=azureml_image_fallback(),
        ray=partial(machine_ray, state_dir) if state_dir is not None else None,
        stat_cache=stat_cache,
    )


def machine_ray(state_dir: Path, address: str | None, cache: bool, pythons: tuple[str, ...]) -> dict:
    """What planning asks of the Ray cluster at ``address``: its nodes must see the workspace (and,
    for ``cache``, the machine's cache, where built environments are) at the same paths, and have
    the interpreters ``pythons``."""
    try:
        from localpipe.engine.executors.ray import cluster
    except ImportError:
        return {"problem": "Ray is not installed here: pip install 'localpipe[ray]'", "nodes": [], "unseen": []}
    if cache:
        cache_root().mkdir(parents=True, exist_ok=True)
    paths = [str(state_dir), *([str(cache_root())] if cache else [])]
    return cluster(address, paths, list(pythons))


def machine_docker() -> dict:
    """What planning asks of the Docker daemon (asked only when a step runs in Docker)."""
    try:
        from localpipe.engine.executors.docker import machine_docker as ask
    except ImportError:
        return {"problem": "the docker Python package is not installed: pip install docker", "gpus": False,
                "image": lambda name: None}  # fmt: skip
    return ask()


def azureml_image_fallback() -> bool:
    """``LOCALPIPE_AZUREML_IMAGES``: ``local`` (the default) runs a step asking for one of Azure ML's
    base images that this machine lacks outside Docker, with a warning; ``require`` refuses it."""
    value = os.environ.get("LOCALPIPE_AZUREML_IMAGES", "")
    if value not in ("", "local", "require"):
        raise UsageError(
            f'LOCALPIPE_AZUREML_IMAGES="{value}" is neither "local" nor "require": set one of them, or unset it'
        )
    return value != "require"


def source_trees(graph: Graph, trees: TreeCache) -> dict[str, TreeDigest | None]:
    """The source tree of every step of ``graph``, each distinct folder hashed once."""
    by_folder: dict[str, TreeDigest] = {}
    for spec in graph.steps.values():
        if spec.source_dir and spec.source_dir not in by_folder:
            by_folder[spec.source_dir] = trees.tree(spec.source_dir)
    return {name: by_folder.get(spec.source_dir) if spec.source_dir else None for name, spec in graph.steps.items()}


def prepare_run(
    history: History,
    pipeline,
    experiment_name: str,
    parameters: dict | None = None,
    regenerate_outputs: bool = False,
    continue_on_step_failure: bool = False,
    tags: dict | None = None,
    pipeline_file: str | None = None,
    trees: TreeCache | None = None,
    properties: dict | None = None,
) -> PreparedRun:
    """Plan ``pipeline`` and record a NotStarted run of it with all its steps and edges;
    ``properties`` say what it is (``azureml.runsource``: a pipeline run unless told otherwise)."""
    require_linux()
    try:
        graph, sources = plan(history, pipeline, parameters, trees)
    except PipelineValidationError as exc:
        taken = history.registry.take_back_unsubmitted_targets()
        if taken:
            raise PipelineValidationError(exc.problems, _targets_taken_back(taken)) from None
        raise
    history.registry.unsubmitted_targets.clear()  # submitted: what the code created is the run's
    save_datasets(history, datasets_used(pipeline, parameters))
    return record_planned(
        history, graph, sources, experiment_name, regenerate_outputs, continue_on_step_failure, tags, pipeline_file,
        properties,
    )  # fmt: skip


def save_datasets(history: History, datasets: list) -> None:
    """Give each of ``datasets`` that has no id (one not registered) the id its definition is saved
    under, as Azure saves the datasets a run uses (``Dataset.get_by_id`` and a REST call find it).
    One saved before (found by its id) is saved again, so that gc does not forget it before the run
    that names it is recorded."""
    unregistered = [dataset for dataset in datasets if dataset.registration is None]
    if unregistered:
        with history.write():
            for dataset in unregistered:
                saved_id = dataset.id or dataset.definition_id()
                history.datasets.save(saved_id, dataset.definition())
                dataset._saved_as(saved_id)


def record_planned(
    history: History,
    graph: Graph,
    sources: dict[str, TreeDigest | None],
    experiment_name: str,
    regenerate_outputs: bool = False,
    continue_on_step_failure: bool = False,
    tags: dict | None = None,
    pipeline_file: str | None = None,
    properties: dict | None = None,
) -> PreparedRun:
    """Record a NotStarted run of a planned ``graph`` (a published pipeline's, say)."""
    require_linux()
    run_id = history.runs.record(
        NewRun(
            experiment=experiment_name,
            graph=graph.to_dict(),
            description=graph.description,
            parameters=graph.parameters,
            steps=list(graph.steps),
            edges=graph.edges,
            tags=tags,
            regenerate_outputs=regenerate_outputs,
            continue_on_step_failure=continue_on_step_failure,
            pipeline_file=pipeline_file,
            git=git_info(sorted({s.source_dir for s in graph.steps.values() if s.source_dir})),
            properties=properties or {"azureml.runsource": "azureml.PipelineRun"},
        )
    )
    return PreparedRun(run_id, graph, sources)


def _targets_taken_back(taken: dict[str, bool]) -> list[str]:
    """What a refusal says it undid: the compute targets its code saved, which it did not keep."""
    return [
        f'compute target "{name}" is back as it was: this refused submission\'s change to it was not kept'
        if existed
        else f'compute target "{name}" was not kept (this refused submission created it): '
        "fix the pipeline and run it again to create it anew"
        for name, existed in taken.items()
    ]


def load_prepared(history: History, run_id: int) -> PreparedRun:
    """A run recorded earlier (by another process), with its sources hashed now."""
    graph = Graph.from_dict(history.runs.for_scheduler(run_id).graph)
    trees = TreeCache(StatCache(history.layout.statcache))
    sources = source_trees(graph, trees)
    trees.stat_cache.save()
    return PreparedRun(run_id, graph, sources)


def run_prepared(
    history: History, prepared: PreparedRun, reporter: Reporter | None = None, slots: int | None = None
) -> RunStatus:
    """Run a recorded run here, to its end; returns its final status."""
    return scheduler_for(history, prepared.run_id, prepared.graph, prepared.sources, reporter, slots).execute()


def scheduler_for(
    history: History,
    run_id: int,
    graph: Graph,
    sources: dict[str, TreeDigest | None],
    reporter: Reporter | None = None,
    slots: int | None = None,
) -> Scheduler:
    """A scheduler for a recorded run, with the usual parts: this machine's resources (GPUs
    looked for only when a step asks for one), the workspace's object store, and the executors
    its launches name."""
    host = detect_host()
    report = detect_gpus() if any(spec.resources["gpus"] for spec in graph.steps.values()) else None
    gpus, problem = (report.gpus, report.problem) if report is not None else ((), None)
    pool = ResourcePool(history, run_id, slots or host.cpus, host.memory_total, gpus, problem)
    return Scheduler(
        history.runs.for_scheduler(run_id, with_graph=False),
        graph,
        sources,
        history,
        ObjectStore(history.layout.objects),
        pool,
        Router(),
        reporter,
        environments=Environments(),
        runtime_path=_runtime_path(history),
    )


def _runtime_path(history: History) -> str:
    """The folder that gives every step ``localpipe`` and its ``azureml`` names: in the machine's
    cache, or in the workspace when the cache cannot be written."""
    try:
        return step_pythonpath(cache_root())
    except OSError:
        return step_pythonpath(history.layout.state_dir)


def python_fallback() -> bool:
    """``LOCALPIPE_PYTHON_FALLBACK=closest``: an environment asking for a Python version this
    machine lacks gets the closest one instead of being refused."""
    value = os.environ.get("LOCALPIPE_PYTHON_FALLBACK", "")
    if value not in ("", "closest"):
        raise UsageError(f'LOCALPIPE_PYTHON_FALLBACK="{value}" is not "closest": set it to closest, or unset it')
    return value == "closest"


def run_in_background(history: History, run_id: int) -> int:
    """Start a detached scheduler process for ``run_id`` that outlives the caller; returns its pid."""
    folder = history.layout.run_dir(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "scheduler.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "localpipe.engine.runner", str(history.layout.state_dir), str(run_id)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            start_new_session=True,
            close_fds=True,
            env=dict(os.environ),
        )
    # Recorded at once, so that a scheduler dying before it starts is noticed (see recovery).
    try:
        started = process_start(proc.pid)
    except OSError:
        started = None
    history.runs.set_scheduler(run_id, proc.pid, started)
    return proc.pid
