"""Resource claims: CPU slots, memory and whole GPUs shared by every scheduler of a workspace.

A claim is taken in one ``BEGIN IMMEDIATE`` transaction of history.db, which serialises all
claimers: it reads what is held, drops the claims of schedulers that are gone (pid plus process
start time), and inserts the new claim only if everything it needs is free. Release deletes it.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterable
from contextlib import nullcontext
from dataclasses import dataclass, field

import psutil

from localpipe.hw.gpus import GpuInfo

ALIVE_CHECK_SECONDS = 1.0


@dataclass(frozen=True)
class Placement:
    """Where a step runs: its CPU slots, reserved memory and GPUs."""

    claim_id: int
    cpus: int
    memory: int | None
    gpus: tuple[GpuInfo, ...] = field(default_factory=tuple)

    def describe(self) -> dict:
        return {"cpus": self.cpus, "memory": self.memory, "gpus": [g.index for g in self.gpus],
                "gpu_uuids": [g.uuid for g in self.gpus]}


@dataclass(frozen=True)
class ClaimRequest:
    """One step asking for resources: ``need`` has cpus, memory, gpus and max_concurrent."""

    key: str
    step_run_id: int
    target: str
    need: dict


def process_alive(pid: int | None, started: float | None) -> bool:
    """Whether process ``pid`` still exists and is the one that started at ``started``."""
    if not pid:
        return False
    try:
        process = psutil.Process(pid)
        return started is None or abs(process.create_time() - started) < 1.0
    except psutil.Error:
        return False


class ResourcePool:
    """The machine's resources as seen by the scheduler of run ``run_id``."""

    def __init__(self, db, run_id: int, cpus: int, memory: int, gpus: tuple[GpuInfo, ...] = ()):
        self.db = db
        self.run_id = run_id
        self.cpus = cpus
        self.memory = memory
        self.gpus = {g.index: g for g in gpus}
        me = psutil.Process()
        self.holder = (me.pid, me.create_time())
        self._dead: set[tuple[int, float]] = set()
        self._alive_until: dict[tuple[int, float], float] = {}

    def claim(self, requests: Iterable[ClaimRequest]) -> tuple[dict[str, Placement], bool]:
        """Claim, in order, every request that fits in what is free now, in one transaction.

        Returns the placements by request key, and whether claims of other runs are held (only
        then can resources free up without one of this run's steps ending). Plain
        SQL: this runs for every step launched by every scheduler on the machine. ``requests``
        is read only as far as needed: once the CPUs are taken, or a request like one that did
        not fit comes up, nothing more is looked at (a run may have thousands of steps waiting).
        """
        placements: dict[str, Placement] = {}
        # Inside the caller's write transaction (a completion handing its slot on), it is part of that one.
        with nullcontext() if self.db.in_transaction() else self.db.atomic("IMMEDIATE"):
            held = self.db.execute_sql(
                'SELECT "id", "target", "cpus", "memory", "gpus", "holder_pid", "holder_started", "run_id" '
                'FROM "resource_claim"').fetchall()
            dead = [row[0] for row in held if not self._holder_alive(row[5], row[6])]
            if dead:
                self.db.execute_sql(f'DELETE FROM "resource_claim" WHERE "id" IN ({", ".join("?" * len(dead))})', dead)
            held = [row for row in held if row[0] not in dead]
            # By run, not by process: a watcher runs several schedulers in one process.
            others = any(row[7] != self.run_id for row in held)
            cpus = sum(row[2] for row in held)
            memory = sum(row[3] or 0 for row in held)
            per_target = Counter(row[1] for row in held)
            taken = {index for row in held for index in json.loads(row[4])}
            unfit: set[tuple] = set()  # (target, need) of requests that did not fit: neither will their like
            for request in requests:
                if cpus >= self.cpus:
                    break  # every request needs a CPU: nothing more can fit
                need = request.need
                like = (request.target, need["cpus"], need["memory"], need["gpus"], need["max_concurrent"])
                if like in unfit:
                    continue
                free_gpus = [index for index in sorted(self.gpus) if index not in taken]
                if (cpus + need["cpus"] > self.cpus
                        or (need["memory"] and memory + need["memory"] > self.memory)
                        or (need["max_concurrent"] and per_target[request.target] >= need["max_concurrent"])
                        or len(free_gpus) < need["gpus"]):
                    unfit.add(like)
                    continue
                chosen = free_gpus[:need["gpus"]]
                cursor = self.db.execute_sql(
                    'INSERT INTO "resource_claim" ("run_id", "step_run_id", "target", "cpus", "memory", "gpus", '
                    '"holder_pid", "holder_started", "created_at") VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)',
                    (self.run_id, request.step_run_id, request.target, need["cpus"], need["memory"],
                     json.dumps(chosen), self.holder[0], self.holder[1], time.time()))
                cpus += need["cpus"]
                memory += need["memory"] or 0
                per_target[request.target] += 1
                taken.update(chosen)
                placements[request.key] = Placement(cursor.lastrowid, need["cpus"], need["memory"],
                                                    tuple(self.gpus[i] for i in chosen))
        return placements, others

    def release(self, placement: Placement) -> None:
        self.db.execute_sql('DELETE FROM "resource_claim" WHERE "id" = ?', (placement.claim_id,))

    def _holder_alive(self, pid: int, started: float) -> bool:
        # A holder seen alive is believed for a moment: claims are taken many times a second.
        key = (pid, started)
        if key == self.holder or self._alive_until.get(key, 0.0) > time.monotonic():
            return True
        if key in self._dead:
            return False
        if process_alive(pid, started):
            self._alive_until[key] = time.monotonic() + ALIVE_CHECK_SECONDS
            return True
        self._dead.add(key)
        return False
