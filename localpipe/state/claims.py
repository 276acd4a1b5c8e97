"""The ``resource_claim`` table: what running steps hold, shared by every scheduler of a workspace.

Plain SQL: a claim pass runs for every step launched by every scheduler of the workspace. The
decision of what fits is the engine's (``engine/resources.py``); this module only reads and
writes the rows, inside the caller's write transaction.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from localpipe.state.db import Database


@dataclass(frozen=True)
class HeldClaim:
    """One claim row: the resources a running step holds, and the scheduler holding them."""

    id: int
    target: str
    cpus: int
    memory: int | None
    gpus: tuple[int, ...]  # NVML indices
    holder_pid: int
    holder_started: float
    run_id: int


class ClaimRecords:
    """Read, add and delete claims; call inside ``History.write()`` to see and change them atomically."""

    def __init__(self, database: Database):
        self.db = database.db

    def held(self) -> list[HeldClaim]:
        rows = self.db.execute_sql(
            'SELECT "id", "target", "cpus", "memory", "gpus", "holder_pid", "holder_started", "run_id" '
            'FROM "resource_claim"'
        ).fetchall()
        return [HeldClaim(r[0], r[1], r[2], r[3], tuple(json.loads(r[4])), r[5], r[6], r[7]) for r in rows]

    def add(
        self,
        run_id: int,
        step_run_id: int,
        target: str,
        cpus: int,
        memory: int | None,
        gpus: list[int],
        holder: tuple[int, float],
    ) -> int:
        """Record a claim held by the scheduler ``holder`` (pid, process start time); returns its id."""
        cursor = self.db.execute_sql(
            'INSERT INTO "resource_claim" ("run_id", "step_run_id", "target", "cpus", "memory", "gpus", '
            '"holder_pid", "holder_started", "created_at") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
            (run_id, step_run_id, target, cpus, memory, json.dumps(gpus), holder[0], holder[1], time.time()),
        )
        return cursor.lastrowid

    def delete(self, claim_ids: list[int]) -> None:
        if claim_ids:
            self.db.execute_sql(
                f'DELETE FROM "resource_claim" WHERE "id" IN ({", ".join("?" * len(claim_ids))})', claim_ids
            )
