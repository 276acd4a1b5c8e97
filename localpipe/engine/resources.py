"""Resource claims: CPU slots, memory and whole GPUs shared by every scheduler of a workspace.

A claim is taken in one ``BEGIN IMMEDIATE`` transaction of history.db, which serialises all
claimers: it reads what is held, drops the claims of schedulers that are gone (pid plus process
start time), and inserts the new claim only if everything it needs is free. Release deletes it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import psutil

from localpipe.hw.gpus import GpuInfo
from localpipe.state import models as m


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
    run_id: int
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
    """The machine's resources as seen by one scheduler process."""

    def __init__(self, db, cpus: int, memory: int, gpus: tuple[GpuInfo, ...] = ()):
        self.db = db
        self.cpus = cpus
        self.memory = memory
        self.gpus = {g.index: g for g in gpus}
        me = psutil.Process()
        self.holder = (me.pid, me.create_time())
        self._dead: set[tuple[int, float]] = set()

    def claim(self, requests: list[ClaimRequest]) -> tuple[dict[str, Placement], bool]:
        """Claim, in order, every request that fits in what is free now, in one transaction.

        Returns the placements by request key, and whether claims of other schedulers are held
        (only then can resources free up without one of this scheduler's steps ending).
        """
        placements: dict[str, Placement] = {}
        with self.db.atomic("IMMEDIATE"):
            held = list(m.ResourceClaim.select())
            dead = [c.id for c in held if not self._holder_alive(c.holder_pid, c.holder_started)]
            if dead:
                m.ResourceClaim.delete().where(m.ResourceClaim.id.in_(dead)).execute()
                held = [c for c in held if c.id not in dead]
            others = any((c.holder_pid, c.holder_started) != self.holder for c in held)
            cpus = sum(c.cpus for c in held)
            memory = sum(c.memory or 0 for c in held)
            per_target = Counter(c.target for c in held)
            taken = {index for c in held for index in c.gpus}
            for request in requests:
                need = request.need
                free_gpus = [index for index in sorted(self.gpus) if index not in taken]
                if (cpus + need["cpus"] > self.cpus
                        or (need["memory"] and memory + need["memory"] > self.memory)
                        or (need["max_concurrent"] and per_target[request.target] >= need["max_concurrent"])
                        or len(free_gpus) < need["gpus"]):
                    continue
                chosen = free_gpus[:need["gpus"]]
                claim = m.ResourceClaim.create(
                    run=request.run_id, step_run=request.step_run_id, target=request.target, cpus=need["cpus"],
                    memory=need["memory"], gpus=chosen, holder_pid=self.holder[0], holder_started=self.holder[1])
                cpus += need["cpus"]
                memory += need["memory"] or 0
                per_target[request.target] += 1
                taken.update(chosen)
                placements[request.key] = Placement(claim.id, need["cpus"], need["memory"],
                                                    tuple(self.gpus[i] for i in chosen))
        return placements, others

    def release(self, placement: Placement) -> None:
        m.ResourceClaim.delete().where(m.ResourceClaim.id == placement.claim_id).execute()

    def _holder_alive(self, pid: int, started: float) -> bool:
        key = (pid, started)
        if key == self.holder:
            return True
        if key in self._dead:
            return False
        if process_alive(pid, started):
            return True
        self._dead.add(key)
        return False
