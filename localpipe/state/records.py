"""Reading history.db for users, and the registrations a user makes (datastores, environments).

Every function takes the workspace and opens its history itself; results are plain values
(dicts and lists) so that the CLI can print them or dump them as JSON.
"""

from __future__ import annotations

import json
from pathlib import Path

from peewee import fn

from localpipe.errors import NotFoundError
from localpipe.state import models as m
from localpipe.state import reader
from localpipe.state.db import open_history
from localpipe.status import RunStatus


# -- registrations ---------------------------------------------------------------------------
def datastore_names(ws) -> list[str]:
    open_history(ws)
    return [r.name for r in m.DatastoreRecord.select().order_by(m.DatastoreRecord.name)]


def datastore_path(ws, name: str) -> str | None:
    open_history(ws)
    record = m.DatastoreRecord.get_or_none(m.DatastoreRecord.name == name)
    return record.path if record else None


def register_datastore(ws, name: str, path: Path) -> None:
    open_history(ws)
    m.DatastoreRecord.replace(name=name, path=str(path)).execute()


def experiment_names(ws) -> list[str]:
    open_history(ws)
    return [e.name for e in m.Experiment.select().order_by(m.Experiment.name)]


def compute_target_configs(ws) -> dict[str, dict]:
    open_history(ws)
    return {r.name: r.config for r in m.ComputeTargetRecord.select()}


def save_compute_target(ws, name: str, kind: str, config: dict) -> None:
    open_history(ws)
    m.ComputeTargetRecord.replace(name=name, kind=kind, config=config).execute()


def delete_compute_target(ws, name: str) -> None:
    open_history(ws)
    m.ComputeTargetRecord.delete().where(m.ComputeTargetRecord.name == name).execute()


def environments(ws) -> dict:
    from localpipe.sdk.environment import Environment

    open_history(ws)
    latest: dict = {}
    for record in m.EnvironmentRecord.select().order_by(m.EnvironmentRecord.version):
        latest[record.name] = _environment(record)
    return latest or {"default": Environment()}


def get_environment(ws, name: str, version: str | None = None):
    open_history(ws)
    query = m.EnvironmentRecord.select().where(m.EnvironmentRecord.name == name)
    if version is not None:
        query = query.where(m.EnvironmentRecord.version == int(version))
    record = query.order_by(m.EnvironmentRecord.version.desc()).first()
    if record is None:
        raise NotFoundError(f'environment "{name}" is not registered: build one with Environment(name) '
                            "and call env.register(ws)")
    return _environment(record)


def register_environment(ws, environment):
    import dataclasses

    db = open_history(ws)
    spec = dataclasses.asdict(environment)
    spec.pop("version", None)
    with db.atomic("IMMEDIATE"):
        latest = (m.EnvironmentRecord.select().where(m.EnvironmentRecord.name == environment.name)
                  .order_by(m.EnvironmentRecord.version.desc()).first())
        if latest is not None and latest.spec == spec:
            environment.version = str(latest.version)
            return environment
        version = (latest.version + 1) if latest else 1
        m.EnvironmentRecord.create(name=environment.name, version=version, spec=spec)
    environment.version = str(version)
    return environment


def _environment(record):
    from localpipe.sdk.environment import (
        CondaDependencies, DockerSection, Environment, PythonSection,
    )

    spec = dict(record.spec)
    python = dict(spec.pop("python"))
    deps = python.pop("conda_dependencies")
    return Environment(name=record.name, version=str(record.version),
                       python=PythonSection(**python, conda_dependencies=CondaDependencies(**deps) if deps else None),
                       docker=DockerSection(**spec.pop("docker")),
                       environment_variables=spec.get("environment_variables", {}))


# -- runs ------------------------------------------------------------------------------------
def get_run(ws, run_id) -> m.PipelineRun:
    """The pipeline run ``run_id`` (an int or its text); NotFoundError names it otherwise."""
    open_history(ws)
    number = reader.run_number(run_id)
    run = m.PipelineRun.get_or_none(m.PipelineRun.id == number)
    if run is None:
        raise reader.missing_run(ws, number)
    return run


def list_runs(ws, limit: int = 20, experiment: str | None = None) -> list[dict]:
    """The latest runs, newest first, with counts of their steps by status."""
    open_history(ws)
    query = (m.PipelineRun.select(m.PipelineRun, m.Experiment.name.alias("experiment_name"))
             .join(m.Experiment).order_by(m.PipelineRun.id.desc()).limit(limit))
    if experiment:
        query = query.where(m.Experiment.name == experiment)
    runs = list(query.dicts())
    ids = [r["id"] for r in runs]
    counts: dict[int, dict[str, int]] = {i: {} for i in ids}
    if ids:
        rows = (m.StepRun.select(m.StepRun.run, m.StepRun.status, fn.COUNT(m.StepRun.id))
                .where(m.StepRun.run.in_(ids)).group_by(m.StepRun.run, m.StepRun.status).tuples())
        for run, status, count in rows:
            counts[run][status] = count
    return [{
        "id": r["id"], "experiment": r["experiment_name"], "status": r["status"],
        "submitted_at": r["submitted_at"], "started_at": r["started_at"], "ended_at": r["ended_at"],
        "steps": counts[r["id"]], "error": r["error"],
    } for r in runs]


def step_rows(ws, run_id) -> list[m.StepRun]:
    run = get_run(ws, run_id)
    return list(m.StepRun.select().where(m.StepRun.run == run.id).order_by(m.StepRun.id))


def run_details(ws, run_id) -> dict:
    """Everything `localpipe show` prints about one run."""
    run = get_run(ws, run_id)
    outputs: dict[int, dict[str, str]] = {}
    steps = step_rows(ws, run.id)
    for out in m.StepOutput.select().where(m.StepOutput.step_run.in_([s.id for s in steps])):
        outputs.setdefault(out.step_run_id, {})[out.name] = out.digest
    reused_runs = {s.reused_from_id: None for s in steps if s.reused_from_id}
    for row in m.StepRun.select(m.StepRun.id, m.StepRun.run).where(m.StepRun.id.in_(list(reused_runs))):
        reused_runs[row.id] = row.run_id
    return {
        "id": run.id, "experiment": run.experiment.name, "status": run.status, "error": run.error,
        "parameters": run.parameters, "tags": run.tags, "pipeline_file": run.pipeline_file, "git": run.git or {},
        "submitted_at": run.submitted_at, "started_at": run.started_at, "ended_at": run.ended_at,
        "steps": [step_dict(s, outputs.get(s.id, {}), reused_runs.get(s.reused_from_id)) for s in steps],
    }


def step_dict(s: m.StepRun, outputs: dict[str, str], reused_run: int | None) -> dict:
    return {
        "id": s.id, "name": s.name, "status": s.status, "reason": s.reason, "cache_key": s.cache_key,
        "reused_from_run": reused_run, "reused_from_step_run": s.reused_from_id,
        "started_at": s.started_at, "ended_at": s.ended_at, "exit_code": s.exit_code, "signal": s.signal,
        "peak_memory": s.peak_memory, "placement": s.placement, "attempt": s.attempt,
        "arguments": s.arguments, "outputs": outputs, "log_tail": s.log_tail, "tags": s.tags,
    }


def find_step(ws, run_id, name: str) -> m.StepRun:
    run = get_run(ws, run_id)
    row = m.StepRun.get_or_none(m.StepRun.run == run.id, m.StepRun.name == name)
    if row is None:
        raise reader.missing_step(run.id, name, [s.name for s in step_rows(ws, run.id)])
    return row


def status_of(ws, run_id) -> RunStatus:
    return RunStatus(get_run(ws, run_id).status)


def outputs(ws, run_id, step: str | None = None) -> list[dict]:
    """The committed (or reused) outputs of a run's steps, with their paths in the object store."""
    from localpipe.state.layout import objects_dir
    from localpipe.state.store import ObjectStore

    run = get_run(ws, run_id)
    steps = [find_step(ws, run.id, step)] if step else step_rows(ws, run.id)
    names = {s.id: s.name for s in steps}
    store = ObjectStore(objects_dir(ws))
    rows = list(m.StepOutput.select().where(m.StepOutput.step_run.in_(list(names))).order_by(m.StepOutput.id))
    # A reused step's rows carry no size: the run that committed the object recorded it.
    sizes = {o.digest: o.size for o in m.StepOutput.select(m.StepOutput.digest, m.StepOutput.size)
             .where(m.StepOutput.digest.in_([r.digest for r in rows]), m.StepOutput.size > 0)}
    return [{"step": names[o.step_run_id], "name": o.name, "digest": o.digest,
             "size": o.size or sizes.get(o.digest, 0), "path": str(store.path(o.digest))} for o in rows]
