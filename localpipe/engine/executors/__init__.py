"""Executors start, watch and stop step processes; they decide nothing and record nothing.

Every executor starts a ``Launch`` and hands back its ``Exit`` from ``wait`` once it ends, so the
scheduler does not care where a process runs (here, in a container, or on another engine). A
launch names its executor (``Launch.executor``): the module of this package of that name, whose
``EXECUTOR`` class has the methods of ``Executor``. ``router.Router`` hands each launch to its
own, so adding one (Docker, Ray) is one module here.
"""

from __future__ import annotations

import os
import queue
import selectors
import threading
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
    memory_limit: int | None = None  # bytes a step may allocate, enforced with RLIMIT_DATA
    masked: list[str] = field(default_factory=list)  # secret values replaced by *** in the logs
    # argv is [python, script or -m module, *args]: the local executor may fork it from a warm interpreter.
    runs_python: bool = False
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
    timed_out: bool = False  # its executor ended it at its timeout (a Ray task: counted from its start on the node)


class Executor(Protocol):
    """What the scheduler asks of an executor.

    ``start``, ``wait`` and ``close`` are called from the scheduler's thread; ``wake`` and
    ``terminate`` may be called from any thread (a signal handler, a watcher).
    """

    def prepare(self, python: tuple[str, dict[str, str]] | None = None) -> None:
        """Get ready for a launch to come, without waiting for anything (the local executor starts
        its step supervisor, which takes tens of milliseconds, and, given the interpreter and
        environment of a Python step to come, a zygote for it); may do nothing."""

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


class Inbox:
    """The exits that an executor's threads hand to the scheduler's, with the descriptor that is
    readable while one waits or a wake came (``Executor.fileno``): what the Docker and Ray
    executors, whose launches end in threads of their own, share."""

    def __init__(self):
        self._selector = selectors.DefaultSelector()
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector.register(self._wake_read, selectors.EVENT_READ)
        self._exits: queue.SimpleQueue[Exit] = queue.SimpleQueue()
        self._lock = threading.RLock()  # re-entrant: wake() is also called from a signal handler
        self._closed = False

    def put(self, found: Exit) -> None:
        """Hand ``found`` to the scheduler (from any thread) and wake its wait."""
        self._exits.put(found)
        self.wake()

    def take(self, timeout: float | None) -> list[Exit]:
        """The exits handed so far, waiting up to ``timeout`` seconds for one (or a wake)."""
        if self._exits.empty():
            self._selector.select(timeout)
        drain(self._wake_read)
        exits = []
        while not self._exits.empty():
            exits.append(self._exits.get())
        return exits

    def wake(self) -> None:
        with self._lock:
            if not self._closed:
                poke(self._wake_write)

    def fileno(self) -> int:
        return self._selector.fileno()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._selector.close()
        os.close(self._wake_read)
        os.close(self._wake_write)


def poke(fd: int) -> None:
    """Make a non-blocking wake pipe readable (a full one is readable already)."""
    try:
        os.write(fd, b"x")
    except BlockingIOError:
        pass


def drain(fd: int) -> None:
    """Read a non-blocking wake pipe empty."""
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass
