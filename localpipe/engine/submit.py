"""Submitting: plan a pipeline, record the run in history.db, then run it here or in the background.

Nothing is written before the pipeline has validated and its source trees have been hashed,
so a bad pipeline leaves no trace.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass

import psutil

from localpipe.engine.gitinfo import git_info
from localpipe.plan.graph import Capacity, Graph, plan_pipeline
from localpipe.content.hashing import TreeDigest, hash_bytes
from localpipe.content.trees import TreeCache, source_trees
from localpipe.state import models as m
from localpipe.state.db import insert_rows, open_history
from localpipe.state.layout import runs_dir
from localpipe.content.statcache import StatCache
from localpipe.status import RunStatus


@dataclass
class PreparedRun:
    """A recorded run, ready for a scheduler."""

    run_id: int
    graph: Graph
    sources: dict[str, TreeDigest | None]


def plan(ws, pipeline, parameters: dict | None = None,
         trees: TreeCache | None = None) -> tuple[Graph, dict[str, TreeDigest | None]]:
    """Validate ``pipeline`` and hash its sources; raises with every problem, writes nothing.

    ``trees`` (kept by a watcher) knows which files changed since the last call.
    """
    from localpipe.hw.gpus import detect_gpus
    from localpipe.hw.host import detect_host
    from localpipe.sdk.compute import compute_targets

    host = detect_host()
    capacity = Capacity(host.cpus, host.memory_total, detect_gpus)
    graph = plan_pipeline(pipeline, parameters, compute_targets=compute_targets(ws), capacity=capacity)
    trees = trees or TreeCache(StatCache(ws.state_dir / "statcache.bin"))
    sources = source_trees(graph, trees)
    trees.stat_cache.save()
    return graph, sources


def prepare_run(ws, pipeline, experiment_name: str, parameters: dict | None = None,
                regenerate_outputs: bool = False, continue_on_step_failure: bool = False,
                tags: dict | None = None, pipeline_file: str | None = None,
                trees: TreeCache | None = None) -> PreparedRun:
    """Plan ``pipeline`` and record a NotStarted run of it with all its steps and edges."""
    graph, sources = plan(ws, pipeline, parameters, trees)
    db = open_history(ws)
    graph_json = m.EncodedJSON(json.dumps(graph.to_dict(), sort_keys=True))
    digest = hash_bytes(graph_json.encode())
    with db.atomic("IMMEDIATE"):
        experiment, _ = m.Experiment.get_or_create(name=experiment_name)
        stored = m.PipelineGraph.get_or_none(m.PipelineGraph.digest == digest)
        if stored is None:
            stored = m.PipelineGraph.create(digest=digest, description=graph.description, graph=graph_json)
        run = m.PipelineRun.create(
            experiment=experiment, pipeline=stored, status=RunStatus.NOT_STARTED.value,
            parameters=graph.parameters, tags=tags or {}, regenerate_outputs=regenerate_outputs,
            continue_on_step_failure=continue_on_step_failure, pipeline_file=pipeline_file,
            git=git_info(sorted({s.source_dir for s in graph.steps.values() if s.source_dir})) or None)
        insert_rows(m.StepRun, [{"run": run.id, "name": name, "status": RunStatus.NOT_STARTED.value}
                                   for name in graph.steps])
        edges = [{"run": run.id, "source": up.step, "target": spec.name, "data": up.output}
                 for spec in graph.steps.values() for up in spec.inputs.values() if up.step]
        edges += [{"run": run.id, "source": before, "target": spec.name, "data": None}
                  for spec in graph.steps.values() for before in spec.after]
        insert_rows(m.Edge, edges)
    return PreparedRun(run.id, graph, sources)


def run_in_background(ws, run_id: int) -> int:
    """Start a detached scheduler process for ``run_id`` that outlives the caller; returns its pid."""
    folder = runs_dir(ws) / str(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "scheduler.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "localpipe.engine.runner", str(ws.root), str(run_id)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True,
                                close_fds=True, env=dict(os.environ))
    # Recorded at once, so that a scheduler dying before it starts is noticed (see recovery).
    try:
        started = psutil.Process(proc.pid).create_time()
    except psutil.Error:
        started = None
    m.PipelineRun.update(scheduler_pid=proc.pid, scheduler_started=started).where(
        m.PipelineRun.id == run_id, m.PipelineRun.scheduler_pid.is_null()).execute()
    return proc.pid
