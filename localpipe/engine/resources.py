"""Resource claims: CPU slots, memory and whole GPUs shared by every scheduler of a workspace.

``fit`` decides what fits (a pure function); ``ResourcePool`` takes claims in one ``BEGIN
IMMEDIATE`` transaction of history.db, which serialises all claimers: it reads what is held,
drops the claims of schedulers that are gone (pid plus process start time), and records the
claims that ``fit`` grants. Release deletes a claim. A step on a Ray target claims nothing here:
Ray reserves what it asks for on the cluster (``engine/executors/ray.py``).
"""

from __future__ import annotations

import fcntl
import math
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace

from localpipe.hw.gpus import GpuInfo
from localpipe.state.claims import HeldClaim
from localpipe.state.history import History

ALIVE_CHECK_SECONDS = 1.0
GPU_LOCKS_ENV = "LOCALPIPE_GPU_LOCKS"  # the folder of the machine-wide GPU locks (default: <tmp>/localpipe-gpus)


@dataclass(frozen=True)
class Placement:
    """Where a step runs: its CPU slots, reserved memory and GPUs; or, with ``ray``, a Ray task
    (no claim here: Ray reserves what it asks for and picks its GPUs)."""

    claim_id: int | None
    cpus: int
    memory: int | None
    gpus: tuple[GpuInfo, ...] = field(default_factory=tuple)
    ray: bool = False

    def describe(self) -> dict:
        return {
            "cpus": self.cpus,
            "memory": self.memory,
            "gpus": [g.index for g in self.gpus],
            "gpu_uuids": [g.uuid for g in self.gpus],
            **({"executor": "ray"} if self.ray else {}),
        }


@dataclass(frozen=True)
class ClaimRequest:
    """One step asking for resources: ``need`` has cpus, memory, gpus and max_concurrent."""

    key: str
    step_run_id: int
    target: str
    need: dict


@dataclass(frozen=True)
class Capacity:
    """What the machine offers every scheduler together: CPU slots, memory, GPUs by NVML index."""

    cpus: int
    memory: int
    gpus: tuple[int, ...] = ()


def fit(
    requests: Iterable[ClaimRequest],
    held: list[HeldClaim],
    capacity: Capacity,
) -> Iterator[tuple[ClaimRequest, list[int]]]:
    """The requests that fit beside ``held``, in order, each with the GPU indices it gets.

    ``requests`` is read only as far as needed: once the CPUs are taken, or a request like one
    that did not fit comes up, nothing more is looked at (a run may have thousands waiting).
    """
    cpus = sum(c.cpus for c in held)
    memory = sum(c.memory or 0 for c in held)
    per_target = Counter(c.target for c in held)
    taken = {index for c in held for index in c.gpus}
    unfit: set[tuple] = set()  # (target, need) of requests that did not fit: neither will their like
    for request in requests:
        if cpus >= capacity.cpus:
            return  # every request needs a CPU: nothing more can fit
        need = request.need
        like = (request.target, need["cpus"], need["memory"], need["gpus"], need["max_concurrent"])
        if like in unfit:
            continue
        free_gpus = [index for index in capacity.gpus if index not in taken]
        if (
            cpus + need["cpus"] > capacity.cpus
            or (need["memory"] and memory + need["memory"] > capacity.memory)
            or (need["max_concurrent"] and per_target[request.target] >= need["max_concurrent"])
            or len(free_gpus) < need["gpus"]
        ):
            unfit.add(like)
            continue
        chosen = free_gpus[: need["gpus"]]
        cpus += need["cpus"]
        memory += need["memory"] or 0
        per_target[request.target] += 1
        taken.update(chosen)
        yield request, chosen


def ray_placement(need: dict) -> Placement:
    """A step on a Ray target: queued by Ray on the cluster, nothing claimed here (its CPUs, rounded
    up, are only the thread count it is told)."""
    return Placement(None, math.ceil(need["cpus"]), None, ray=True)


_EPOCH_LIKE = 1e9  # seconds: a start above it is an epoch time (2001 on), never an uptime


def process_start(pid: int | None = None) -> float:
    """When process ``pid`` (this one by default) started, in seconds since boot: with its pid, what
    tells it from a later process given the same pid. Not psutil's create_time: that adds the boot
    time, which the kernel gives in whole seconds derived from the wall clock, so a clock step of a
    few milliseconds (NTP, a laptop's resume) can move every process's by a second. Without /proc
    (macOS, where interactive runs still work) it is that epoch time, compared as such."""
    pid = pid or os.getpid()
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            after_name = stat.read().rpartition(b")")[2].split()  # the name, in parentheses, may hold spaces
    except FileNotFoundError:
        if os.path.isdir("/proc/self"):
            raise  # the process has ended
        import psutil

        return psutil.Process(pid).create_time()
    return int(after_name[19]) / os.sysconf("SC_CLK_TCK")  # field 22, starttime: clock ticks since boot


def process_alive(pid: int | None, started: float | None) -> bool:
    """Whether process ``pid`` still runs and is the one that started at ``started`` (``process_start``).
    A zombie has ended: a detached scheduler that died is its submitter's unreaped child until that
    one exits."""
    if not pid:
        return False
    if pid == os.getpid() and (started is None or started < _EPOCH_LIKE):  # a scheduler's own run: no psutil
        return started is None or abs(process_start() - started) <= 0.001
    import psutil  # here, not at the top: a submission with no other run active never needs it

    try:
        process = psutil.Process(pid)
        if started is not None:
            if started > _EPOCH_LIKE:  # psutil's create_time, as earlier localpipes recorded it (an upgrade mid-run)
                if abs(process.create_time() - started) >= 1.0:
                    return False
            elif abs(process_start(pid) - started) > 0.001:
                return False
        return process.status() != psutil.STATUS_ZOMBIE
    except (psutil.Error, OSError):
        return False


class ResourcePool:
    """The machine's resources as the scheduler of run ``run_id`` claims them."""

    def __init__(
        self,
        history: History,
        run_id: int,
        cpus: int,
        memory: int,
        gpus: tuple[GpuInfo, ...] = (),
        gpu_problem: str | None = None,
    ):
        self.history = history
        self.gpu_problem = gpu_problem  # why NVML gave no GPUs, when it gave none
        self.run_id = run_id
        self.gpus = {g.index: g for g in gpus}
        self.capacity = Capacity(cpus, memory, tuple(sorted(self.gpus)))
        self.holder = (os.getpid(), process_start())
        self._dead: set[tuple[int, float]] = set()
        self._alive_until: dict[tuple[int, float], float] = {}
        self._gpu_locks = GpuLocks(self.gpus) if self.gpus else None

    def unmet(self, need: dict) -> str | None:
        """Why a step needing ``need`` can never be placed here, or None. Validation checked it against
        the machine; the scheduler, which looks again as it starts, may find less (a driver gone, a GPU
        fallen off the bus, a lower LOCALPIPE_CPUS): such a step would wait for ever."""
        then = "; it could when the run was submitted"
        if need["gpus"] > len(self.capacity.gpus):
            why = self.gpu_problem or f"it has {len(self.capacity.gpus)}"
            what = f"{need['gpus']} GPUs" if need["gpus"] > 1 else "1 GPU"
            return f"needs {what} but this machine cannot give {'them' if need['gpus'] > 1 else 'it'} now ({why}){then}"
        if need["cpus"] > self.capacity.cpus:
            return f"needs {need['cpus']} CPUs but {self.capacity.cpus} CPU slots are given to steps now{then}"
        if need["memory"] and need["memory"] > self.capacity.memory:
            have = self.capacity.memory / 2**30
            return f"needs {need['memory'] / 2**30:.1f} GiB of memory but this machine has {have:.1f} GiB{then}"
        return None

    def claim(self, requests: Iterable[ClaimRequest]) -> tuple[dict[str, Placement], bool]:
        """Claim, in order, every request that fits in what is free now, in one transaction
        (or in the caller's: a completion handing its slot on).

        Returns the placements by request key, and whether claims of other runs are held (only
        then can resources free up without one of this run's steps ending).
        """
        claims = self.history.claims
        placements: dict[str, Placement] = {}
        with self.history.write():
            held = claims.held()
            dead = [c.id for c in held if not self._holder_alive(c.holder_pid, c.holder_started)]
            claims.delete(dead)
            held = [c for c in held if c.id not in dead]
            # By run, not by process: a watcher runs several schedulers in one process.
            others = any(c.run_id != self.run_id for c in held)
            capacity = self.capacity
            if self._gpu_locks is not None:  # GPUs another workspace's steps hold are not free here either
                busy = self._gpu_locks.busy_elsewhere({index for c in held for index in c.gpus})
                capacity = replace(capacity, gpus=tuple(i for i in capacity.gpus if i not in busy))
                others = others or bool(busy)  # they free up without any step of this workspace ending
            for request, gpus in fit(requests, held, capacity):
                need = request.need
                claim_id = claims.add(
                    self.run_id, request.step_run_id, request.target, need["cpus"], need["memory"], gpus, self.holder
                )
                placements[request.key] = Placement(
                    claim_id, need["cpus"], need["memory"], tuple(self.gpus[i] for i in gpus)
                )
            if self._gpu_locks is not None:
                self._gpu_locks.keep_only(
                    {i for c in held if c.holder_pid == self.holder[0] for i in c.gpus}
                    | {g.index for placement in placements.values() for g in placement.gpus}
                )
        return placements, others

    def release(self, placement: Placement) -> None:
        if placement.claim_id is not None:
            if self._gpu_locks is not None:  # unlocked first: a claim gone from history.db is free everywhere
                self._gpu_locks.unlock(g.index for g in placement.gpus)
            self.history.claims.delete([placement.claim_id])

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


class GpuLocks:
    """Claims live in a workspace's history.db, but a GPU is the machine's: each GPU a step of this
    scheduler holds is also locked machine-wide, with ``flock`` on a file named by its UUID in
    ``LOCALPIPE_GPU_LOCKS`` (default ``<tmp>/localpipe-gpus``), so that a scheduler of another
    workspace sees it busy. The kernel drops a lock when its process ends, however it ends. A GPU
    whose lock file cannot be opened (a folder another user made without write access) is not locked."""

    def __init__(self, gpus: dict[int, GpuInfo]):
        self.gpus = gpus
        self._files: dict[int, int | None] = {}  # index -> the lock file's descriptor (None: cannot be opened)
        self._held: set[int] = set()

    def busy_elsewhere(self, held_here: set[int]) -> set[int]:
        """The GPUs no claim of this workspace holds that another process has locked; the others free
        here are locked by this scheduler until ``keep_only`` lets go of those it did not claim."""
        busy = set()
        for index in self.gpus:
            if index in held_here or index in self._held:
                continue
            fd = self._file(index)
            if fd is None:
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                busy.add(index)
            else:
                self._held.add(index)
        return busy

    def __del__(self):
        for fd in self._files.values():  # closing a descriptor drops its lock: a pool never released
            if fd is not None:
                os.close(fd)

    def keep_only(self, claimed: set[int]) -> None:
        self.unlock(self._held - claimed)

    def unlock(self, indices: Iterable[int]) -> None:
        for index in list(indices):
            if index in self._held:
                self._held.discard(index)
                fcntl.flock(self._files[index], fcntl.LOCK_UN)

    def _file(self, index: int) -> int | None:
        if index not in self._files:
            folder = os.environ.get(GPU_LOCKS_ENV) or os.path.join(tempfile.gettempdir(), "localpipe-gpus")
            try:
                if not os.path.isdir(folder):
                    os.makedirs(folder, exist_ok=True)
                    os.chmod(folder, 0o1777)  # every user's schedulers lock there, as in /tmp
                # Read-only: flock needs no more, and a file another user made stays usable.
                fd = os.open(os.path.join(folder, self.gpus[index].uuid), os.O_RDONLY | os.O_CREAT, 0o644)
            except OSError:
                fd = None
            self._files[index] = fd
        return self._files[index]
