"""Cache keys and entries, and what a reuse decision compares with.

A ``cache_key`` row says what a key was computed from; a ``cache_entry`` names the step run
whose committed outputs serve that key. Look-ups are batched and written in plain SQL: a wave
of a thousand reused steps costs a few queries, not thousands.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from localpipe.state.db import Database
from localpipe.state.models import now
from localpipe.status import RunStatus

_CHUNK = 500  # SQLite caps the number of bound variables of one statement
_COMPUTING = (RunStatus.QUEUED.value, RunStatus.RUNNING.value, RunStatus.FINALIZING.value)


@dataclass(frozen=True)
class CacheHit:
    """A step run whose outputs serve a key: its run, its name, its outputs (name -> digest), and
    each output's bytes and file count as committed (``ObjectStore.intact`` checks them)."""

    step_run_id: int
    run_id: int
    step: str
    outputs: dict[str, str]
    stats: dict[str, tuple[int, int | None]]


@dataclass(frozen=True)
class EarlierRun:
    """The latest earlier run of a step, and what its key was computed from."""

    step_run_id: int
    run_id: int
    status: str
    key: str
    components: dict


@dataclass(frozen=True)
class Twin:
    """A step of another active run computing the same key."""

    step_run_id: int
    run_id: int
    step: str


class CacheRecords:
    """The ``cache_key``, ``cache_entry`` and ``snapshot`` tables, and the look-ups behind decisions."""

    def __init__(self, database: Database):
        self.database = database
        self.t = database.tables
        self.db = database.db

    def entries(self, keys: list[str]) -> dict[str, CacheHit]:
        """The entries of those ``keys`` that have one."""
        return self._hits('JOIN "cache_entry" c ON c."step_run_id" = s."id"', 'c."key"', keys)

    def entry(self, key: str) -> CacheHit | None:
        return self.entries([key]).get(key)

    def outputs_of(self, step_run_id: int) -> CacheHit:
        """A step run's outputs, as an entry would give them."""
        return self._hits("", 's."id"', [step_run_id])[step_run_id]

    def _hits(self, join: str, column: str, values: list) -> dict:
        """``column`` value -> the CacheHit of the step run it selects (through ``join``)."""
        found: dict = {}
        by_step_run: dict[int, CacheHit] = {}
        for start in range(0, len(values), _CHUNK):
            chunk = values[start : start + _CHUNK]
            rows = self.db.execute_sql(
                f'SELECT {column}, s."id", s."run_id", s."name", o."name", o."digest", o."size", o."files" '
                f'FROM "step_run" s {join} LEFT JOIN "step_output" o ON o."step_run_id" = s."id" '
                f"WHERE {column} IN ({', '.join('?' * len(chunk))})",
                chunk,
            )
            for value, step_run, run, name, output, digest, size, files in rows:
                hit = by_step_run.setdefault(step_run, CacheHit(step_run, run, name, {}, {}))
                found[value] = hit
                if output is not None:
                    hit.outputs[output] = digest
                    hit.stats[output] = (size, files)
        return found

    def earlier_run(self, step: str, experiment_id: int | None) -> EarlierRun | None:
        """The latest earlier run of a step named ``step`` (in ``experiment_id`` first, else in any)."""
        row = None
        if experiment_id is not None:
            row = self.db.execute_sql(_EARLIER_RUN_IN_EXPERIMENT, (step, experiment_id)).fetchone()
        row = row or self.db.execute_sql(_EARLIER_RUN, (step,)).fetchone()
        return EarlierRun(*row[:4], json.loads(row[4])) if row else None

    def snapshot_files(self, digest: str) -> dict[str, str] | None:
        """The files of a recorded source snapshot (relative path -> entry digest)."""
        row = self.db.execute_sql('SELECT "files" FROM "snapshot" WHERE "digest" = ?', (digest,)).fetchone()
        return json.loads(row[0]) if row else None

    def computing_twin(self, key: str, run_id: int) -> Twin | None:
        """The earliest step of another running run that is computing ``key`` now, if any."""
        row = self.db.execute_sql(_COMPUTING_TWIN, (key, *_COMPUTING, run_id, RunStatus.RUNNING.value)).fetchone()
        return Twin(*row) if row else None

    def add_keys(self, keys: dict[str, str]) -> None:
        """Record what each new key was computed from (``key -> canonical JSON``); known keys are left."""
        self.db.cursor().executemany(
            'INSERT OR IGNORE INTO "cache_key" ("key", "components") VALUES (?, ?)', list(keys.items())
        )

    def add_entry(self, key: str, step_run_id: int, at: float) -> None:
        """``step_run_id``'s outputs now serve ``key`` (replacing an entry whose outputs were lost)."""
        self.db.execute_sql(
            'INSERT OR REPLACE INTO "cache_entry" ("key", "step_run_id", "created_at") VALUES (?, ?, ?)',
            (key, step_run_id, at),
        )

    def add_snapshot(self, digest: str, files: dict[str, str], size: int) -> None:
        """Record a source snapshot, so that a later run can name the files changed since."""
        self.db.execute_sql(
            'INSERT OR IGNORE INTO "snapshot" ("digest", "files", "size", "created_at") VALUES (?, ?, ?, ?)',
            (digest, json.dumps(files, sort_keys=True), size, now()),
        )


# Written out rather than built by the ORM: each runs once per step, and building them cost more
# than running them (issue 16's profile: peewee's SQL building was half the scheduler's CPU).
_EARLIER_RUN = (
    'SELECT s."id", s."run_id", s."status", s."cache_key", k."components" FROM "step_run" s '
    'JOIN "cache_key" k ON k."key" = s."cache_key" WHERE s."name" = ? ORDER BY s."id" DESC LIMIT 1'
)
_EARLIER_RUN_IN_EXPERIMENT = (
    'SELECT s."id", s."run_id", s."status", s."cache_key", k."components" FROM "step_run" s '
    'JOIN "pipeline_run" r ON r."id" = s."run_id" JOIN "cache_key" k ON k."key" = s."cache_key" '
    'WHERE s."name" = ? AND r."experiment_id" = ? ORDER BY s."id" DESC LIMIT 1'
)
_COMPUTING_TWIN = (
    'SELECT s."id", s."run_id", s."name" FROM "step_run" s JOIN "pipeline_run" r ON r."id" = s."run_id" '
    f'WHERE s."cache_key" = ? AND s."status" IN ({", ".join("?" * len(_COMPUTING))}) AND s."run_id" != ? '
    'AND r."status" = ? ORDER BY s."id" LIMIT 1'
)
