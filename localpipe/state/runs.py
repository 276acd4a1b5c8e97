"""Pipeline runs: recorded at submission, started and ended by their scheduler, read by users.

Readers return plain dicts, ready to print or to dump as JSON (`localpipe runs`, `show`,
`outputs`, and the PipelineRun / StepRun handles read the same ones).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from peewee import JOIN, fn

from localpipe.content.hashing import hash_bytes
from localpipe.errors import NotFoundError, UsageError
from localpipe.state import reader
from localpipe.state.db import Database
from localpipe.state.models import EncodedJSON, insert_rows, next_id, now
from localpipe.status import ACTIVE, RunStatus

_ACTIVE = [s.value for s in ACTIVE]


@dataclass(frozen=True)
class NewRun:
    """What a submission records: the planned graph, its steps and edges, and how to run it."""

    experiment: str
    graph: dict  # a planned graph as plain data (plan.graph.Graph.to_dict())
    description: str | None
    parameters: dict
    steps: list[str]
    edges: list[tuple[str, str, str | None]]  # (source step, target step, output carried or None)
    tags: dict | None = None
    regenerate_outputs: bool = False
    continue_on_step_failure: bool = False
    pipeline_file: str | None = None
    git: dict | None = None
    properties: dict | None = None  # what the run is (``azureml.runsource``), and what Run.add_properties adds


@dataclass(frozen=True)
class InteractiveRun:
    """What ``Experiment.start_logging`` records: a run no scheduler runs, logged from ``pid``."""

    experiment: str
    holder: str  # the name of the step run that holds what it logs
    pid: int
    process_started: float
    tags: dict | None = None
    properties: dict | None = None
    display_name: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class ScheduledRun:
    """What a scheduler needs of its run."""

    id: int
    experiment: str
    experiment_id: int
    graph: dict | None  # None when not asked for
    regenerate_outputs: bool
    continue_on_step_failure: bool
    step_ids: dict[str, int]


class RunRecords:
    """The ``pipeline_run`` table and the readers over runs and their steps."""

    def __init__(self, database: Database):
        self.database = database
        self.t = database.tables

    # -- a run's life ------------------------------------------------------------------------
    def record(self, run: NewRun) -> int:
        """Record a NotStarted run with all its steps and edges; returns its id."""
        t = self.t
        graph_json = EncodedJSON(json.dumps(run.graph, sort_keys=True))
        digest = hash_bytes(graph_json.encode())
        with self.database.write():
            experiment, _ = t.Experiment.get_or_create(name=run.experiment)
            # Only the id: reading the stored graph back would decode its JSON, as large as the pipeline.
            stored = t.PipelineGraph.select(t.PipelineGraph.id).where(t.PipelineGraph.digest == digest).first()
            if stored is None:
                stored = t.PipelineGraph.create(digest=digest, description=run.description, graph=graph_json)
            row = t.PipelineRun.create(
                id=next_id(t.PipelineRun),
                experiment=experiment,
                pipeline=stored,
                status=RunStatus.NOT_STARTED.value,
                parameters=run.parameters,
                tags=run.tags or {},
                regenerate_outputs=run.regenerate_outputs,
                continue_on_step_failure=run.continue_on_step_failure,
                pipeline_file=run.pipeline_file,
                git=run.git or None,
                properties=run.properties or {},
            )
            first = next_id(t.StepRun)
            insert_rows(
                t.StepRun,
                [
                    {"id": first + i, "run": row.id, "name": name, "status": RunStatus.NOT_STARTED.value}
                    for i, name in enumerate(run.steps)
                ],
            )
            insert_rows(
                t.Edge,
                [
                    {"run": row.id, "source": source, "target": target, "data": data}
                    for source, target, data in run.edges
                ],
            )
        return row.id

    def set_scheduler(self, run_id: int, pid: int, started: float | None) -> None:
        """Note the process that will run ``run_id``, unless one is noted already."""
        t = self.t
        t.PipelineRun.update(scheduler_pid=pid, scheduler_started=started).where(
            t.PipelineRun.id == run_id, t.PipelineRun.scheduler_pid.is_null()
        ).execute()

    def for_scheduler(self, run_id: int, with_graph: bool = True) -> ScheduledRun:
        """What a scheduler needs of run ``run_id``; its graph only ``with_graph`` (a scheduler given
        the planned graph need not decode the stored one, as large as the pipeline)."""
        t = self.t
        graph = [t.PipelineGraph.graph.alias("graph_json")] if with_graph else []
        row = (
            t.PipelineRun.select(t.PipelineRun, t.Experiment.name.alias("experiment_name"), *graph)
            .join(t.Experiment)
            .switch(t.PipelineRun)
            .join(t.PipelineGraph)
            .where(t.PipelineRun.id == run_id)
            .dicts()
            .first()
        )
        if row is None:  # forgotten by gc since the handle was made
            raise reader.missing_run(self.database.layout.root, run_id)
        step_ids = dict(t.StepRun.select(t.StepRun.name, t.StepRun.id).where(t.StepRun.run == run_id).tuples())
        return ScheduledRun(
            run_id,
            row["experiment_name"],
            row["experiment"],
            row.get("graph_json"),
            row["regenerate_outputs"],
            row["continue_on_step_failure"],
            step_ids,
        )

    def mark_running(self, run_id: int, pid: int, started: float, at: float) -> None:
        """The scheduler process ``pid`` (created at ``started``) has taken the run up."""
        t = self.t
        t.PipelineRun.update(
            status=RunStatus.RUNNING.value, started_at=at, scheduler_pid=pid, scheduler_started=started
        ).where(t.PipelineRun.id == run_id).execute()

    def finish(self, run_id: int, status: RunStatus, error: str | None, at: float) -> None:
        t = self.t
        t.PipelineRun.update(status=status.value, ended_at=at, error=error).where(t.PipelineRun.id == run_id).execute()

    # -- recovery of runs whose scheduler died ---------------------------------------------------
    def active(self) -> list[dict]:
        """Runs in an active status, with the scheduler process recorded for each."""
        t = self.t
        return list(
            t.PipelineRun.select(
                t.PipelineRun.id,
                t.PipelineRun.scheduler_pid,
                t.PipelineRun.scheduler_started,
                t.PipelineRun.submitted_at,
            )
            .where(t.PipelineRun.status.in_(_ACTIVE))
            .dicts()
        )

    def active_steps(self, run_id: int) -> list[dict]:
        t = self.t
        return list(
            t.StepRun.select(t.StepRun.id, t.StepRun.status, t.StepRun.pid, t.StepRun.started_at)
            .where(t.StepRun.run == run_id, t.StepRun.status.in_(_ACTIVE))
            .dicts()
        )

    def mark_abandoned(self, run_id: int, reason: str, ended: RunStatus = RunStatus.FAILED) -> bool:
        """End a run whose scheduler is gone: Failed (or ``ended``, as a cancel asked), its running
        steps too, the others Canceled, its claims released. False when it had ended meanwhile
        (someone else recovered it)."""
        t = self.t
        with self.database.write():
            status = t.PipelineRun.select(t.PipelineRun.status).where(t.PipelineRun.id == run_id).scalar()
            if status not in _ACTIVE:
                return False
            at = now()
            running = [RunStatus.RUNNING.value, RunStatus.FINALIZING.value]
            active_steps = (t.StepRun.run == run_id) & t.StepRun.status.in_(_ACTIVE)
            t.StepRun.update(status=ended.value, reason=reason, ended_at=at).where(
                active_steps & t.StepRun.status.in_(running)
            ).execute()
            t.StepRun.update(status=RunStatus.CANCELED.value, reason=f"not run: {reason}", ended_at=at).where(
                active_steps
            ).execute()
            t.ResourceClaim.delete().where(t.ResourceClaim.run == run_id).execute()
            t.PipelineRun.update(status=ended.value, error=reason, ended_at=at).where(
                t.PipelineRun.id == run_id
            ).execute()
        return True

    # -- readers ---------------------------------------------------------------------------------
    def get(self, run_id) -> dict:
        """The run ``run_id`` (an int or its text); NotFoundError names it otherwise."""
        t = self.t
        number = reader.run_number(run_id)
        row = (
            t.PipelineRun.select(t.PipelineRun, t.Experiment.name.alias("experiment_name"))
            .join(t.Experiment)
            .where(t.PipelineRun.id == number)
            .dicts()
            .first()
        )
        if row is None:
            raise reader.missing_run(self.database.layout.root, number)
        return {
            "id": row["id"],
            "experiment": row["experiment_name"],
            "status": row["status"],
            "error": row["error"],
            "parameters": row["parameters"],
            "tags": row["tags"],
            "pipeline_file": row["pipeline_file"],
            "git": row["git"] or {},
            "properties": row["properties"] or {},
            "display_name": row["display_name"],
            "description": row["description"],
            "submitted_at": row["submitted_at"],
            "started_at": row["started_at"],
            "ended_at": row["ended_at"],
            "scheduler_pid": row["scheduler_pid"],
            "scheduler_started": row["scheduler_started"],
        }

    def status(self, run_id) -> RunStatus:
        return RunStatus(self.get(run_id)["status"])

    def list(self, limit: int = 20, experiment: str | None = None) -> list[dict]:
        """The latest runs, newest first, with counts of their steps by status, tags and properties."""
        t = self.t
        query = (
            t.PipelineRun.select(t.PipelineRun, t.Experiment.name.alias("experiment_name"))
            .join(t.Experiment)
            .order_by(t.PipelineRun.id.desc())
            .limit(limit)
        )
        if experiment:
            query = query.where(t.Experiment.name == experiment)
        runs = list(query.dicts())
        ids = [r["id"] for r in runs]
        counts: dict[int, dict[str, int]] = {i: {} for i in ids}
        if ids:
            rows = (
                t.StepRun.select(t.StepRun.run, t.StepRun.status, fn.COUNT(t.StepRun.id))
                .where(t.StepRun.run.in_(ids))
                .group_by(t.StepRun.run, t.StepRun.status)
                .tuples()
            )
            for run, status, count in rows:
                counts[run][status] = count
        return [
            {
                "id": r["id"],
                "experiment": r["experiment_name"],
                "status": r["status"],
                "submitted_at": r["submitted_at"],
                "started_at": r["started_at"],
                "ended_at": r["ended_at"],
                "steps": counts[r["id"]],
                "error": r["error"],
                "tags": r["tags"] or {},
                "properties": r["properties"] or {},
            }
            for r in runs
        ]

    # -- what users add to a run after submitting it (Run.tag, add_properties, display_name) ---------
    def set_tags(self, run_id: int, tags: dict, removed: list[str] = ()) -> dict:
        """Merge ``tags`` into the run's, drop ``removed``; returns the tags now."""
        t = self.t
        with self.database.write():
            current = dict(self.get(run_id)["tags"] or {})
            current = {k: v for k, v in {**current, **tags}.items() if k not in set(removed)}
            t.PipelineRun.update(tags=current).where(t.PipelineRun.id == run_id).execute()
        return current

    def add_properties(self, run_id: int, properties: dict) -> dict:
        """Add properties to the run; one that is set already keeps its value (UsageError otherwise)."""
        t = self.t
        with self.database.write():
            current = dict(self.get(run_id)["properties"] or {})
            merged = _added_properties(f"run {run_id}", current, properties)
            t.PipelineRun.update(properties=merged).where(t.PipelineRun.id == run_id).execute()
        return merged

    def set_names(self, run_id: int, **names: str | None) -> None:
        """Set the run's ``display_name`` or ``description``."""
        t = self.t
        t.PipelineRun.update(**names).where(t.PipelineRun.id == run_id).execute()

    def set_step_tags(self, step_run_id: int, tags: dict, removed: list[str] = ()) -> dict:
        t = self.t
        with self.database.write():
            current = dict(self.step_run(step_run_id)["tags"] or {})  # NotFoundError once gc forgot it
            current = {k: v for k, v in {**current, **tags}.items() if k not in set(removed)}
            t.StepRun.update(tags=current).where(t.StepRun.id == step_run_id).execute()
        return current

    def add_step_properties(self, step_run_id: int, properties: dict) -> dict:
        t = self.t
        with self.database.write():
            current = dict(self.step_run(step_run_id)["properties"] or {})  # NotFoundError once gc forgot it
            merged = _added_properties(f"step run {step_run_id}", current, properties)
            t.StepRun.update(properties=merged).where(t.StepRun.id == step_run_id).execute()
        return merged

    def step_run(self, step_run_id) -> dict:
        """One step run by its id, as ``steps`` gives it, with the id of its run (``run``)."""
        t = self.t
        try:
            number = int(step_run_id)
        except (TypeError, ValueError):
            raise NotFoundError(f'"{step_run_id}" is not a step run id: step run ids are numbers') from None
        found = self._step_rows(t.StepRun.id == number)
        if not found:
            raise NotFoundError(f"step run {number} does not exist in {self.database.layout.root}")
        return {**_step_dict(found[0]), "run": found[0]["run"]}

    def steps(self, run_id) -> list[dict]:
        """The steps of a run, in the order recorded, each as ``details`` shows it (outputs left
        empty); not their child runs (``children``)."""
        number = self.get(run_id)["id"]
        t = self.t
        return [_step_dict(row) for row in self._step_rows((t.StepRun.run == number) & t.StepRun.parent.is_null())]

    def find_step(self, run_id, name: str) -> dict:
        """One step of a run; NotFoundError lists the run's steps otherwise."""
        t = self.t
        number = self.get(run_id)["id"]
        found = self._step_rows((t.StepRun.run == number) & (t.StepRun.name == name))
        if not found:
            raise reader.missing_step(number, name, [s["name"] for s in self.steps(number)])
        return _step_dict(found[0])

    def details(self, run_id) -> dict:
        """Everything `localpipe show` prints about one run."""
        t = self.t
        run = self.get(run_id)
        steps = self.steps(run["id"])
        outputs: dict[int, dict[str, str]] = {}
        for step_run, name, digest in (
            t.StepOutput.select(t.StepOutput.step_run, t.StepOutput.name, t.StepOutput.digest)
            .where(t.StepOutput.step_run.in_([s["id"] for s in steps]))
            .tuples()
        ):
            outputs.setdefault(step_run, {})[name] = digest
        used = {step["environment"] for step in steps if step["environment"]}
        builds = {row["id"]: row for row in t.EnvironmentBuild.select().where(t.EnvironmentBuild.id.in_(used)).dicts()}
        for step in steps:
            step["outputs"] = outputs.get(step["id"], {})
            step["environment_build"] = builds.get(step["environment"])
            step["children"] = self.children(step["id"], recursive=True)
        return {**{key: value for key, value in run.items() if not key.startswith("scheduler_")}, "steps": steps}

    def step_outputs(self, step_run_id: int) -> dict[str, str]:
        """Output name -> digest of a step run."""
        t = self.t
        return dict(
            t.StepOutput.select(t.StepOutput.name, t.StepOutput.digest)
            .where(t.StepOutput.step_run == step_run_id)
            .tuples()
        )

    def outputs(self, run_id, step: str | None = None) -> list[dict]:
        """The committed (or reused) outputs of a run's steps: step, name, digest and size."""
        t = self.t
        steps = [self.find_step(run_id, step)] if step else self.steps(run_id)
        names = {s["id"]: s["name"] for s in steps}
        rows = list(
            t.StepOutput.select().where(t.StepOutput.step_run.in_(list(names))).order_by(t.StepOutput.id).dicts()
        )
        # A reused step's rows written before migration 0005 carry no size: the run that committed
        # the object recorded it.
        sizes = dict(
            t.StepOutput.select(t.StepOutput.digest, t.StepOutput.size)
            .where(t.StepOutput.digest.in_([r["digest"] for r in rows]), t.StepOutput.size > 0)
            .tuples()
        )
        return [
            {
                "step": names[o["step_run"]],
                "name": o["name"],
                "digest": o["digest"],
                "size": o["size"] or sizes.get(o["digest"], 0),
            }
            for o in rows
        ]

    # -- runs that are not scheduled: interactive runs and child runs ------------------------------
    def record_interactive(self, new: InteractiveRun) -> tuple[int, int]:
        """Record a Running interactive run (``Experiment.start_logging``) and the step run that
        holds what it logs; returns both ids. Its process is noted as its scheduler: a run whose
        process is gone is ended by recovery, as a scheduled one is."""
        t = self.t
        graph = EncodedJSON(json.dumps({"steps": [], "parameters": {}, "description": None}, sort_keys=True))
        at = now()
        with self.database.write():
            experiment, _ = t.Experiment.get_or_create(name=new.experiment)
            digest = hash_bytes(graph.encode())
            stored = t.PipelineGraph.get_or_none(t.PipelineGraph.digest == digest) or t.PipelineGraph.create(
                digest=digest, graph=graph
            )
            row = t.PipelineRun.create(
                id=next_id(t.PipelineRun),
                experiment=experiment,
                pipeline=stored,
                status=RunStatus.RUNNING.value,
                tags=new.tags or {},
                properties=new.properties or {},
                display_name=new.display_name,
                description=new.description,
                started_at=at,
                scheduler_pid=new.pid,
                scheduler_started=new.process_started,
            )
            holder = t.StepRun.create(
                id=next_id(t.StepRun), run=row, name=new.holder, status=RunStatus.RUNNING.value, started_at=at
            )
        return row.id, holder.id

    def finish_unscheduled(self, run_id: int, status: RunStatus, error: str | None) -> bool:
        """End an interactive run and every step run of it still active; False when it had ended."""
        t = self.t
        at = now()
        with self.database.write():
            changed = (
                t.PipelineRun.update(status=status.value, ended_at=at, error=error)
                .where(t.PipelineRun.id == run_id, t.PipelineRun.status.in_(_ACTIVE))
                .execute()
            )
            t.StepRun.update(status=status.value, ended_at=at, reason=error).where(
                t.StepRun.run == run_id, t.StepRun.status.in_(_ACTIVE)
            ).execute()
        return bool(changed)

    def add_child(
        self, parent_id: int, number: int | None = None, display_name: str | None = None, tags: dict | None = None
    ) -> dict:
        """Record a Running child run of the step run ``parent_id``, named "<parent's name>#<number>"
        (``number``: the next among the parent's children when None); returns it as ``step_run``
        does. A child recorded already under that number is returned as it is."""
        t = self.t
        with self.database.write():
            parent = t.StepRun.select(t.StepRun.run, t.StepRun.name).where(t.StepRun.id == parent_id).get()
            if number is None:
                number = t.StepRun.select().where(t.StepRun.parent == parent_id).count()
            name = f"{parent.name}#{number}"
            existing = t.StepRun.get_or_none((t.StepRun.run == parent.run_id) & (t.StepRun.name == name))
            if existing is None:
                existing = t.StepRun.create(
                    id=next_id(t.StepRun),
                    run=parent.run_id,
                    name=name,
                    parent=parent_id,
                    display_name=display_name,
                    tags=tags or {},
                    status=RunStatus.RUNNING.value,
                    started_at=now(),
                )
        return self.step_run(existing.id)

    def set_child_status(self, step_run_id: int, status: RunStatus, reason: str | None = None) -> None:
        """A child run's ``complete()``, ``fail()`` or ``cancel()``: its status, once it is active."""
        t = self.t
        ended = now() if status.is_final else None
        t.StepRun.update(status=status.value, reason=reason, ended_at=ended).where(
            t.StepRun.id == step_run_id, t.StepRun.status.in_(_ACTIVE), t.StepRun.parent.is_null(False)
        ).execute()

    def set_snapshot(self, step_run_id: int, digest: str, files: dict[str, str], size: int) -> None:
        """Record the snapshot ``Run.take_snapshot`` kept for a step run (an interactive run's, a child's)."""
        t = self.t
        with self.database.write():
            t.Snapshot.insert(digest=digest, files=files, size=size).on_conflict_ignore().execute()
            t.StepRun.update(snapshot=digest).where(t.StepRun.id == step_run_id).execute()

    def children(self, step_run_id: int, recursive: bool = False) -> list[dict]:
        """The child runs of a step run, in the order made; with ``recursive``, each with its own
        ``children``."""
        found = [_step_dict(row) for row in self._step_rows(self.t.StepRun.parent == step_run_id)]
        if recursive:
            for child in found:
                child["children"] = self.children(child["id"], recursive=True)
        return found

    def end_children(self, step_run_id: int) -> None:
        """Its parent has ended: its children still active end as it did (Completed, Failed or
        Canceled), and theirs. Nothing when the parent is still active (a step about to retry)."""
        t = self.t
        row = self.database.db.execute_sql(_STATUS_IF_PARENT, (step_run_id, step_run_id)).fetchone()
        if row is None or row[0] in _ACTIVE:  # no child runs (the common case, once per step), or not ended
            return
        status = row[0]
        final = RunStatus.COMPLETED.value if status == RunStatus.REUSED.value else status
        at, parents = now(), [step_run_id]
        with self.database.write():
            while parents:
                t.StepRun.update(status=final, ended_at=at, reason="ended with its parent run").where(
                    t.StepRun.parent.in_(parents), t.StepRun.status.in_(_ACTIVE)
                ).execute()
                parents = [i for (i,) in t.StepRun.select(t.StepRun.id).where(t.StepRun.parent.in_(parents)).tuples()]

    def _step_rows(self, where) -> list[dict]:
        t = self.t
        reused = t.StepRun.alias("reused")
        return list(
            t.StepRun.select(t.StepRun, reused.run.alias("reused_from_run"))
            .join(reused, on=(t.StepRun.reused_from == reused.id), join_type=JOIN.LEFT_OUTER)
            .where(where)
            .order_by(t.StepRun.id)
            .dicts()
        )


def _step_dict(row: dict) -> dict:
    return {
        "id": row["id"],
        "name": row["name"],
        "status": row["status"],
        "reason": row["reason"],  # of its latest change
        "ran_because": row["ran_because"],  # the decision to run it, where reason says how it ended
        "cache_key": row["cache_key"],
        "reused_from_run": row["reused_from_run"],
        "reused_from_step_run": row["reused_from"],
        "started_at": row["started_at"],
        "ended_at": row["ended_at"],
        "exit_code": row["exit_code"],
        "signal": row["signal"],
        "peak_memory": row["peak_memory"],
        "placement": row["placement"],
        "attempt": row["attempt"],
        "arguments": row["arguments"],
        "outputs": {},
        "log_tail": row["log_tail"],
        "tags": row["tags"],
        "environment": row["environment"],  # the id of the environment build it ran in
        "properties": row["properties"] or {},
        "snapshot": row["snapshot"],  # the digest of the source snapshot it ran from
        "parent": row["parent"],  # the step run a child run belongs to; None for a step
        "display_name": row["display_name"],
    }


def _added_properties(what: str, current: dict, added: dict) -> dict:
    """``current`` with ``added``: properties are written once (as in Azure ML), so one that is set
    already may only be given its own value again."""
    for key, value in added.items():
        if key in current and current[key] != value:
            raise UsageError(
                f'{what}: property "{key}" is already {current[key]!r}: properties cannot change; use a tag'
            )
    return {**current, **added}


# Plain SQL: it runs once per step as the step ends (building it with the ORM cost more than running it).
_STATUS_IF_PARENT = (
    'SELECT "status" FROM "step_run" WHERE "id" = ? AND EXISTS (SELECT 1 FROM "step_run" WHERE "parent_id" = ?)'
)
