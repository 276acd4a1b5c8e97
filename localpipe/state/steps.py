"""The scheduler's writes to step runs: status changes, committed outputs, metrics and tags.

These are the hot path of a run: status changes are applied as one prepared UPDATE per set of
fields, rows inserted with one prepared statement per table.
"""

from __future__ import annotations

from dataclasses import dataclass

from localpipe.state.db import Database
from localpipe.state.models import insert_rows, update_rows


@dataclass(frozen=True)
class StepState:
    """A step run's status and why, its run and name, and the step run it reused (when Reused)."""

    id: int
    status: str
    run_id: int
    name: str
    reason: str | None
    reused_from: int | None


class StepRecords:
    """The ``step_run``, ``step_output`` and ``metric`` tables, as a scheduler writes them."""

    def __init__(self, database: Database):
        self.t = database.tables

    def change(self, changes: list[tuple[int, dict]]) -> None:
        """Apply ``(step run id, {column: value})`` changes (status, reason, times, exit code, ...)."""
        update_rows(self.t.StepRun, changes)

    def add_outputs(self, rows: list[tuple[int, str, str, int, int | None]]) -> None:
        """Record step runs' outputs: (step run id, output name, digest, bytes, files) each; a
        reused output has those of the object it reuses."""
        insert_rows(
            self.t.StepOutput,
            [
                {"step_run": step_run, "name": name, "digest": digest, "size": size, "files": files}
                for step_run, name, digest, size, files in rows
            ],
        )

    def state(self, step_run_id: int) -> StepState:
        """Where a step run stands (another run's, that a scheduler waits for)."""
        t = self.t
        row = (
            t.StepRun.select(t.StepRun.status, t.StepRun.run, t.StepRun.name, t.StepRun.reason, t.StepRun.reused_from)
            .where(t.StepRun.id == step_run_id)
            .tuples()
            .get()
        )
        return StepState(step_run_id, *row)

    def add_metrics(
        self, step_run_id: int, rows: list[dict], tags: dict, removed_tags: list[str] = (), properties: dict = None
    ) -> None:
        """Record logged values (``{"name", "kind", "value", "logged_at"}`` each), merge ``tags`` and
        drop ``removed_tags``, and add ``properties`` (one set already keeps its first value)."""
        t = self.t
        with t.StepRun._meta.database.atomic():
            insert_rows(t.Metric, [{"step_run": step_run_id, **row} for row in rows])
            if tags or removed_tags or properties:
                row = t.StepRun.select(t.StepRun.tags, t.StepRun.properties).where(t.StepRun.id == step_run_id).get()
                merged = {k: v for k, v in {**(row.tags or {}), **tags}.items() if k not in set(removed_tags)}
                added = {**(properties or {}), **(row.properties or {})}  # a property is written once
                t.StepRun.update(tags=merged, properties=added).where(t.StepRun.id == step_run_id).execute()
