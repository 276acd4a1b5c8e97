"""Published pipelines, pipeline endpoints, schedules and the claims on their fires (docs/publishing.md).

A published pipeline's row names its objects (the frozen declaration, each step's source
snapshot) so that gc keeps them; its graph is a ``pipeline_graph`` row as a run's is. A fire of a
schedule is one ``schedule_fire`` row, unique per schedule and key: the process that inserts it
owns the fire; its run is recorded in the same transaction that notes the run's id on the fire,
so a fire has one run or none, whoever dies when.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from peewee import JOIN

from localpipe.content.hashing import hash_bytes
from localpipe.errors import NotFoundError, UsageError
from localpipe.state.db import Database
from localpipe.state.models import EncodedJSON
from localpipe.status import ACTIVE as ACTIVE_RUN
from localpipe.status import RunStatus

ACTIVE, DISABLED = "Active", "Disabled"


def stored_graph(t, graph: dict):
    """The ``pipeline_graph`` row of ``graph``, made when no row has it yet (call it in a write)."""
    graph_json = EncodedJSON(json.dumps(graph, sort_keys=True))
    digest = hash_bytes(graph_json.encode())
    return t.PipelineGraph.get_or_none(t.PipelineGraph.digest == digest) or t.PipelineGraph.create(
        digest=digest, description=graph.get("description"), graph=graph_json
    )


class PublishingRecords:
    """The ``published_pipeline``, ``pipeline_endpoint``, ``endpoint_version``, ``schedule`` and
    ``schedule_fire`` tables."""

    def __init__(self, database: Database):
        self.database = database
        self.t = database.tables

    # -- published pipelines -----------------------------------------------------------------
    def publish(self, row: dict, graph: dict) -> None:
        """Record a published pipeline: ``row`` holds its columns, ``graph`` its planned graph."""
        with self.database.write():
            self.t.PublishedPipeline.create(pipeline=stored_graph(self.t, graph), **row)

    def published(self, published_id: str) -> dict:
        """The published pipeline ``published_id``; NotFoundError when there is none."""
        found = self._published_query().where(self.t.PublishedPipeline.published_id == str(published_id)).dicts()
        row = found.first()
        if row is None:
            raise NotFoundError(f'no published pipeline has id "{published_id}": see `localpipe published` for the ids')
        return row

    def published_list(self, active_only: bool = True) -> list[dict]:
        t = self.t
        query = self._published_query()
        if active_only:
            query = query.where(t.PublishedPipeline.status == ACTIVE)
        return list(query.order_by(t.PublishedPipeline.id).dicts())

    def _published_query(self):
        t = self.t
        return t.PublishedPipeline.select(
            t.PublishedPipeline.published_id,
            t.PublishedPipeline.name,
            t.PublishedPipeline.description,
            t.PublishedPipeline.version,
            t.PublishedPipeline.status,
            t.PublishedPipeline.continue_on_step_failure,
            t.PublishedPipeline.declaration,
            t.PublishedPipeline.sources,
            t.PublishedPipeline.created_at,
            t.PipelineGraph.graph,
            t.PipelineGraph.digest.alias("graph_id"),
        ).join(t.PipelineGraph)

    def set_published_status(self, published_id: str, status: str) -> None:
        t = self.t
        self.published(published_id)
        t.PublishedPipeline.update(status=status).where(t.PublishedPipeline.published_id == published_id).execute()

    # -- pipeline endpoints ------------------------------------------------------------------
    def create_endpoint(self, endpoint_id: str, name: str, description: str | None, published_id: str) -> None:
        """A new endpoint whose version "0" (its default) is ``published_id``; a taken name is refused."""
        t = self.t
        with self.database.write():
            published = self._published_row(published_id)
            self._refuse_taken_name(
                name, None, f'add the pipeline to it with PipelineEndpoint.get(ws, name="{name}").add_default(pipeline)'
            )
            endpoint = t.PipelineEndpoint.create(endpoint_id=endpoint_id, name=name, description=description)
            t.EndpointVersion.create(endpoint=endpoint, version="0", published=published)

    def endpoint(self, endpoint_id: str | None = None, name: str | None = None) -> dict:
        """The endpoint with ``endpoint_id`` or ``name``, with its ``versions`` ({version: published id})."""
        t = self.t
        by_id = endpoint_id is not None or name is None  # the id when given, as Azure's
        # an empty id or name matches no endpoint (it matched any: the workspace's first)
        found = t.PipelineEndpoint.endpoint_id == endpoint_id if by_id else t.PipelineEndpoint.name == name
        row = t.PipelineEndpoint.select().where(found).dicts().first()
        if row is None:
            which = f'id "{endpoint_id}"' if by_id else f'name "{name}"'
            raise NotFoundError(f"no pipeline endpoint has {which}: see `localpipe endpoints`")
        return self._with_versions(row)

    def endpoints(self, active_only: bool = True) -> list[dict]:
        t = self.t
        query = t.PipelineEndpoint.select().order_by(t.PipelineEndpoint.id)
        if active_only:
            query = query.where(t.PipelineEndpoint.status == ACTIVE)
        return [self._with_versions(row) for row in query.dicts()]

    def _with_versions(self, row: dict) -> dict:
        t = self.t
        versions = (
            t.EndpointVersion.select(t.EndpointVersion.version, t.PublishedPipeline.published_id)
            .join(t.PublishedPipeline)
            .where(t.EndpointVersion.endpoint == row["id"])
            .order_by(t.EndpointVersion.id)
            .tuples()
        )
        return {**row, "versions": dict(versions)}

    def add_version(self, endpoint_id: str, published_id: str, make_default: bool) -> str:
        """Add ``published_id`` to the endpoint as its next version (the one it has when already
        there); make it the default when asked. Returns the version."""
        t = self.t
        with self.database.write():
            endpoint = self.endpoint(endpoint_id)
            version = next((v for v, p in endpoint["versions"].items() if p == published_id), None)
            if version is None:
                published = self._published_row(published_id)
                version = str(len(endpoint["versions"]))
                t.EndpointVersion.create(endpoint=endpoint["id"], version=version, published=published)
            if make_default:
                self._set_default(endpoint["id"], version)
        return version

    def set_default_version(self, endpoint_id: str, version: str) -> None:
        with self.database.write():
            endpoint = self.endpoint(endpoint_id)
            if str(version) not in endpoint["versions"]:
                raise ValueError(  # the SDK's error for it
                    f'pipeline endpoint "{endpoint["name"]}" has no version "{version}" (it has '
                    f"{', '.join(endpoint['versions'])}): pick one of them, or add a pipeline"
                )
            self._set_default(endpoint["id"], str(version))

    def _set_default(self, row_id: int, version: str) -> None:
        t = self.t
        t.PipelineEndpoint.update(default_version=version).where(t.PipelineEndpoint.id == row_id).execute()

    def update_endpoint(self, endpoint_id: str, **changes) -> None:
        """Change the endpoint's ``name`` or ``status``; a name another endpoint has is refused."""
        t = self.t
        with self.database.write():
            self.endpoint(endpoint_id)
            if "name" in changes:
                self._refuse_taken_name(changes["name"], endpoint_id, "rename that one first")
            t.PipelineEndpoint.update(**changes).where(t.PipelineEndpoint.endpoint_id == endpoint_id).execute()

    def _refuse_taken_name(self, name: str, endpoint_id: str | None, hint: str) -> None:
        """UsageError when an endpoint other than ``endpoint_id`` is named ``name`` (names are unique)."""
        t = self.t
        holder = t.PipelineEndpoint.get_or_none(t.PipelineEndpoint.name == name)
        if holder is not None and holder.endpoint_id != endpoint_id:
            raise UsageError(f'a pipeline endpoint is already named "{name}": {hint}, or choose another name')

    def _published_row(self, published_id: str):
        t = self.t
        row = t.PublishedPipeline.get_or_none(t.PublishedPipeline.published_id == str(published_id))
        if row is None:
            self.published(published_id)  # raises the one message
        return row

    # -- schedules ---------------------------------------------------------------------------
    def create_schedule(self, row: dict, published_id: str | None, endpoint_id: str | None) -> None:
        t = self.t
        with self.database.write():
            published = self._published_row(published_id) if published_id else None
            endpoint = t.PipelineEndpoint.get(t.PipelineEndpoint.endpoint_id == endpoint_id) if endpoint_id else None
            t.Schedule.create(published=published, endpoint=endpoint, **row)

    def schedule(self, schedule_id: str) -> dict:
        row = self._schedule_query().where(self.t.Schedule.schedule_id == str(schedule_id)).dicts().first()
        if row is None:
            raise NotFoundError(f'no schedule has id "{schedule_id}": see `localpipe schedule list`')
        return row

    def schedules(
        self, active_only: bool = True, published_id: str | None = None, endpoint_id: str | None = None
    ) -> list[dict]:
        t = self.t
        query = self._schedule_query()
        if active_only:
            query = query.where(t.Schedule.status == ACTIVE)
        if published_id:
            query = query.where(t.PublishedPipeline.published_id == published_id)
        if endpoint_id:
            query = query.where(t.PipelineEndpoint.endpoint_id == endpoint_id)
        return list(query.order_by(t.Schedule.id).dicts())

    def _schedule_query(self):
        t = self.t
        return (
            t.Schedule.select(
                t.Schedule,
                t.PublishedPipeline.published_id.alias("pipeline_id"),
                t.PipelineEndpoint.endpoint_id.alias("pipeline_endpoint_id"),
            )
            .join(t.PublishedPipeline, join_type=JOIN.LEFT_OUTER, on=(t.Schedule.published == t.PublishedPipeline.id))
            .switch(t.Schedule)
            .join(t.PipelineEndpoint, join_type=JOIN.LEFT_OUTER, on=(t.Schedule.endpoint == t.PipelineEndpoint.id))
        )

    def update_schedule(self, schedule_id: str, changes: dict, at: float | None = None) -> None:
        """Apply ``changes``; a new ``recurrence`` fires after ``at`` (now), as a schedule made then
        would: a time it gives before its change is no missed fire to catch up. That is a decided
        fire ``changed:<at>``, with no run, which ``last_due`` counts."""
        t = self.t
        self.schedule(schedule_id)
        with self.database.write():
            if changes:
                t.Schedule.update(**changes).where(t.Schedule.schedule_id == schedule_id).execute()
            if "recurrence" in changes and at is not None:
                key = f"changed:{at:.6f}"
                row_id = self._schedule_row_id(schedule_id)
                if (
                    t.ScheduleFire.get_or_none((t.ScheduleFire.schedule == row_id) & (t.ScheduleFire.key == key))
                    is None
                ):
                    t.ScheduleFire.create(schedule=row_id, key=key, due=at, holder_pid=0, holder_started=0, run_id=0)

    def runs_with_property(self, name: str, value: str) -> list[int]:
        """The ids of the pipeline runs whose property ``name`` is ``value`` (``azureml.pipelineid``
        for a published pipeline's, say), newest first."""
        from peewee import fn

        t = self.t
        query = t.PipelineRun.select(t.PipelineRun.id).where(
            fn.json_extract(t.PipelineRun.properties, f'$."{name}"') == value
        )
        return [run_id for (run_id,) in query.order_by(t.PipelineRun.id.desc()).tuples()]

    # -- fires -------------------------------------------------------------------------------
    def claim_fire(
        self, schedule_id: str, key: str, due: float, pid: int, started: float, alive: Callable[[int, float], bool]
    ) -> int | None:
        """Claim the fire ``key`` of a schedule for process ``pid``; its row id, or None when another
        live process holds it or it has its run already. A claim whose holder died before its run
        was recorded passes to ``pid`` (``alive`` says whether a holder still runs)."""
        t = self.t
        with self.database.write():
            row = t.ScheduleFire.get_or_none(
                (t.ScheduleFire.schedule == self._schedule_row_id(schedule_id)) & (t.ScheduleFire.key == key)
            )
            if row is None:
                return t.ScheduleFire.create(
                    schedule=self._schedule_row_id(schedule_id),
                    key=key,
                    due=due,
                    holder_pid=pid,
                    holder_started=started,
                ).id
            if row.run_id is not None or alive(row.holder_pid, row.holder_started):
                return None
            t.ScheduleFire.update(holder_pid=pid, holder_started=started).where(t.ScheduleFire.id == row.id).execute()
            return row.id

    def adopt_unstarted_runs(
        self, schedule_id: str, pid: int, started: float, alive: Callable[[int, float], bool]
    ) -> list[int]:
        """The runs of the schedule's fires that were recorded but never started (no scheduler noted:
        their holder died between the two), each taken over by ``pid`` to start; a live holder is
        about to start its own."""
        t = self.t
        with self.database.write():
            rows = (
                t.ScheduleFire.select(
                    t.ScheduleFire.id, t.ScheduleFire.run_id, t.ScheduleFire.holder_pid, t.ScheduleFire.holder_started
                )  # fmt: skip
                .join(t.PipelineRun, on=(t.ScheduleFire.run_id == t.PipelineRun.id))
                .where(
                    (t.ScheduleFire.schedule == self._schedule_row_id(schedule_id))
                    & (t.PipelineRun.status == RunStatus.NOT_STARTED.value)
                    & t.PipelineRun.scheduler_pid.is_null()
                )
            )
            taken = [row for row in rows if not alive(row.holder_pid, row.holder_started)]
            for row in taken:
                t.ScheduleFire.update(holder_pid=pid, holder_started=started).where(
                    t.ScheduleFire.id == row.id
                ).execute()
        return [row.run_id for row in taken]

    def unstarted_fires(self, schedule_id: str) -> list[dict]:
        """The fires of a schedule claimed but with no run recorded (their holder may have died)."""
        t = self.t
        query = t.ScheduleFire.select(t.ScheduleFire.key, t.ScheduleFire.due).where(
            (t.ScheduleFire.schedule == self._schedule_row_id(schedule_id)) & t.ScheduleFire.run_id.is_null()
        )
        return list(query.dicts())

    def fire_started(self, fire_id: int, run_id: int) -> None:
        """Note the run a fire started (0: none); call it in the transaction that records the run. A
        schedule disabled since its fire was claimed refuses a run (UsageError): the transaction then
        records nothing, as a disable() that returned meanwhile asks."""
        t = self.t
        if run_id:
            schedule = (
                t.Schedule.select(t.Schedule.name, t.Schedule.schedule_id, t.Schedule.status)
                .join(t.ScheduleFire, on=(t.ScheduleFire.schedule == t.Schedule.id))
                .where(t.ScheduleFire.id == fire_id)
                .get()
            )
            if schedule.status != ACTIVE:
                raise UsageError(
                    f'schedule "{schedule.name}" ({schedule.schedule_id}) was disabled as it fired: enable it to fire '
                    "again"
                )
        t.ScheduleFire.update(run_id=run_id).where(t.ScheduleFire.id == fire_id).execute()

    def last_due(self, schedule_id: str) -> float | None:
        """The due time of the latest timed fire claimed for the schedule, or of the latest change of its
        recurrence (``update_schedule``): its fires are counted after it."""
        t = self.t
        from peewee import fn

        timed = t.ScheduleFire.key.startswith("at:") | t.ScheduleFire.key.startswith("changed:")
        return (
            t.ScheduleFire.select(fn.MAX(t.ScheduleFire.due))
            .where((t.ScheduleFire.schedule == self._schedule_row_id(schedule_id)) & timed)
            .scalar()
        )

    def fires(self, schedule_id: str) -> list[dict]:
        """Every fire of the schedule, oldest first: ``key``, ``due``, ``run_id``."""
        t = self.t
        query = t.ScheduleFire.select(t.ScheduleFire.key, t.ScheduleFire.due, t.ScheduleFire.run_id)
        rows = query.where(t.ScheduleFire.schedule == self._schedule_row_id(schedule_id)).order_by(t.ScheduleFire.id)
        return list(rows.dicts())

    def unfinished_runs(self, schedule_id: str) -> int:
        """How many of the runs the schedule's fires started have not ended."""
        t = self.t
        query = (
            t.ScheduleFire.select()
            .join(t.PipelineRun, on=(t.ScheduleFire.run_id == t.PipelineRun.id))
            .where(
                (t.ScheduleFire.schedule == self._schedule_row_id(schedule_id))
                & t.PipelineRun.status.in_([status.value for status in ACTIVE_RUN])
            )
        )
        return query.count()

    def _schedule_row_id(self, schedule_id: str) -> int:
        t = self.t
        row_id = t.Schedule.select(t.Schedule.id).where(t.Schedule.schedule_id == schedule_id).scalar()
        if row_id is None:
            raise NotFoundError(f'no schedule has id "{schedule_id}": see `localpipe schedule list`')
        return row_id
