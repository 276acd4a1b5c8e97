"""Executors start, watch and stop step processes; they decide nothing and record nothing.

Every executor starts a ``Launch`` and hands back its ``Exit`` from ``wait`` once it ends, so the
scheduler does not care where a process runs (here, in a container, or on another engine). A
launch names its executor (``Launch.executor``): the module of this package of that name, whose
``EXECUTOR`` class has the methods of ``Executor``. ``router.Router`` hands each launch to its
own, so adding one (Docker, Ray) is one module here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

TERMINATE_GRACE_SECONDS = 5.0  # from the polite signal to the forced end of a step's process tree
# The labels of a step's container (docker.py), by which recovery finds those a killed scheduler left.
WORKSPACE_LABEL = "localpipe.workspace"
RUN_LABEL = "localpipe.run"
STEP_RUN_LABEL = "localpipe.step_run"
STEP_LABEL = "localpipe.step"


@dataclass
class Launch:
    """What to run for one step attempt."""

    key: str  # the scheduler's handle for the step
    argv: list[str]
    cwd: str
    env: dict[str, str]
    stdout: str
    stderr: str
    memory_limit: int | None = None  # bytes of address space, enforced with RLIMIT_AS
    masked: list[str] = field(default_factory=list)  # secret values replaced by *** in the logs
    executor: str = "local"  # the module of this package that runs it
    container: dict | None = None  # for the "docker" executor: image, mounts, user, limits (workdir.containerize)
    ray: dict | None = None  # for the "ray" executor: the cluster's address, what the task asks Ray for


@dataclass
class Exit:
    """How a process ended."""

    key: str
    exit_code: int | None
    signal: int | None
    peak_memory: int | None
    error: str | None = None  # the process could not be started at all
    pid: int | None = None  # the process's id, when it was started
    log_error: str | None = None  # what kept its output from its log (a full disk), when something did
    oom_killed: bool = False  # the kernel ended it at its memory limit (a container's, as Docker says)


class Executor(Protocol):
    """What the scheduler asks of an executor.

    ``start``, ``wait`` and ``close`` are called from the scheduler's thread; ``wake`` and
    ``terminate`` may be called from any thread (a signal handler, a watcher).
    """

    def start(self, launch: Launch) -> None:
        """Start ``launch`` (without waiting for it to be started); its ``Exit`` comes from ``wait``
        once it ends, or with an ``error`` when it could not start."""

    def wait(self, timeout: float | None) -> list[Exit]:
        """The exits of launches that ended, waiting up to ``timeout`` seconds for the first; empty
        when the time ran out or ``wake`` was called."""

    def wake(self) -> None:
        """Make the current or next ``wait`` return at once."""

    def terminate(self, key: str, grace: float = TERMINATE_GRACE_SECONDS) -> None:
        """End the whole process tree of launch ``key``: politely, then by force after ``grace`` seconds."""

    def terminate_all(self, grace: float = TERMINATE_GRACE_SECONDS) -> None:
        """``terminate`` every launch still running, all at once."""

    def close(self) -> None:
        """Release what the executor holds; launches still running are not waited for."""

    def fileno(self) -> int:
        """A descriptor that is readable while ``wait`` has something to return (an exit, a wake),
        so that a router can wait on several executors at once."""
