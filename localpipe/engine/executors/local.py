"""The local executor: step processes on this machine, started by a step supervisor.

The supervisor (``supervisor.py``) is a small process of its own, started with the first step
of a run: the steps are its children, each the leader of its own process group, so that a
killed scheduler cannot leave them running (the supervisor ends them all when its socket
closes), and nothing a step started outlives the step. This side sends it the launches, as JSON
lines on a socket (the environment once, then what differs for each step), and waits in epoll
for its answers, so the scheduler's own thread handles exits as they come: no polling, no thread
per step. ``wake`` makes a wait return early, from any thread.
"""

from __future__ import annotations

import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

from localpipe.engine.executors import TERMINATE_GRACE_SECONDS, Exit, Launch, drain, poke
from localpipe.errors import UsageError

SUPERVISOR = Path(__file__).with_name("supervisor.py")
# Imported, not run as a script, so that its compiled bytecode is used (a script is compiled at
# every start); its own folder on sys.path (with -S, nothing else is there); its path stays on the
# command line, where `ps` shows it.
_RUN_SUPERVISOR = (
    "import sys; sys.path[0] = sys.argv[1].rpartition('/')[0]; import supervisor; supervisor.main(int(sys.argv[2]))"
)
STEP_START_ENV = "LOCALPIPE_STEP_START"
LOG_LIMIT_ENV = "LOCALPIPE_MAX_LOG_BYTES"
DEFAULT_LOG_LIMIT = 64 * 2**20  # bytes of each stream of a step kept: its first and last 32 MiB
SUPERVISOR_EXIT_SECONDS = 5.0
STOP_ROUNDS = 20  # passes over the processes of the machine when a supervisor died under its steps


def log_limit() -> int:
    """Bytes of each of a step's streams kept in its log (``LOCALPIPE_MAX_LOG_BYTES``)."""
    text = os.environ.get(LOG_LIMIT_ENV, "").strip()
    if not text:
        return DEFAULT_LOG_LIMIT
    if not text.isdigit() or int(text) < 1024:
        raise UsageError(
            f'{LOG_LIMIT_ENV}="{text}" is not a number of bytes of at least 1024: set one like '
            f"{DEFAULT_LOG_LIMIT}, or unset it"
        )
    return int(text)


def warm_start() -> bool:
    """Whether Python steps are forked from a warm interpreter (``LOCALPIPE_STEP_START=fork``, the
    default; see zygote.py) or each started anew (``exec``)."""
    value = os.environ.get(STEP_START_ENV, "").strip()
    if value not in ("", "fork", "exec"):
        raise UsageError(f'{STEP_START_ENV}="{value}" is neither "fork" nor "exec": set one of them, or unset it')
    return value != "exec"


class LocalExecutor:
    """Runs argv lists (never through a shell) as the children of a step supervisor; an ``Executor``.

    ``start``, ``wait``, ``terminate_all`` and ``close`` belong to the scheduler's thread; ``wake``
    and ``terminate`` may be called from any thread.
    """

    def __init__(self, limit: int | None = None):
        self._selector = selectors.EpollSelector()
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        self._lock = threading.RLock()  # re-entrant: wake() is also called from a signal handler
        self._socket: socket.socket | None = None
        self._supervisor: subprocess.Popen | None = None
        self._incoming = b""
        self._exits: list[Exit] = []  # answered, not yet handed to the scheduler
        self._all_ended = False  # the supervisor's answer to terminate_all came
        self._running: set[str] = set()
        self._base_env: dict[str, str] | None = None
        self._log_limit = limit or log_limit()  # given: a Ray task's, as its scheduler read it
        self._warm = warm_start()
        self._found: dict[tuple[str, str], str | None] = {}  # (command, PATH) -> its file
        self._closed = False

    def prepare(self, python: tuple[str, dict[str, str]] | None = None) -> None:
        """Start the supervisor now, so that its start (Python's, some 40 ms) overlaps the
        scheduler's work until the first launch, and, given ``python`` (the interpreter and
        environment of a Python step to come), have it start a zygote for that step as well; what
        each launch changes in the environment is sent against this process's. Called while
        decisions are being recorded, it never raises."""
        if self._socket is None:
            try:
                self._connect(dict(os.environ))
            except OSError:
                return  # out of processes or memory: the first launch tries again
        if python is not None and self._warm:
            interpreter, env = python
            self._send({"op": "warm", "interpreter": interpreter, **self._changes(env)})

    def start(self, launch: Launch) -> None:
        """Start ``launch``: sent to the supervisor, not waited for; its ``Exit`` (with its pid, or
        with why it could not start) comes from ``wait``."""
        self._connect(launch.env)
        self._send({
            "op": "start", "key": launch.key, "argv": launch.argv, "cwd": launch.cwd, **self._changes(launch.env),
            "executable": self._executable(launch.argv[0], launch.env), "stdout": launch.stdout,
            "stderr": launch.stderr, "memory_limit": launch.memory_limit, "masked": launch.masked,
            "log_limit": self._log_limit, "warm": self._warm and launch.runs_python,
        })  # fmt: skip
        self._running.add(launch.key)

    def wait(self, timeout: float | None) -> list[Exit]:
        """The exits of processes that ended, waiting up to ``timeout`` seconds for the first;
        empty when the time ran out or ``wake`` was called."""
        if not self._exits:
            for key, _ in self._selector.select(timeout):
                if key.data is None:
                    drain(self._wake_read)
                else:
                    self._receive()
        exits, self._exits = self._exits, []
        return exits

    def wake(self) -> None:
        """Make the current or next ``wait`` return at once."""
        with self._lock:
            if not self._closed:
                poke(self._wake_write)

    def terminate(self, key: str, grace: float = TERMINATE_GRACE_SECONDS) -> None:
        """End the whole process tree of ``key``: SIGTERM, then SIGKILL after ``grace`` seconds.
        Returns at once; the exit comes from ``wait``."""
        if key in self._running:
            self._send({"op": "terminate", "key": key, "grace": grace})

    def terminate_all(self, grace: float = TERMINATE_GRACE_SECONDS) -> None:
        """Terminate every running step and return once all have ended (their exits are kept)."""
        if not self._running or self._socket is None:
            return
        self._all_ended = False
        self._send({"op": "terminate_all", "grace": grace})
        while not self._all_ended and self._receive():
            pass

    def close(self) -> None:
        """Release the supervisor (which ends whatever still runs) and the descriptors."""
        with self._lock:
            self._closed = True
        if self._socket is not None:
            self._socket.close()
            try:
                self._supervisor.wait(SUPERVISOR_EXIT_SECONDS)
            except subprocess.TimeoutExpired:
                self._supervisor.kill()
                self._supervisor.wait()
        self._selector.close()
        os.close(self._wake_read)
        os.close(self._wake_write)

    def fileno(self) -> int:
        """The epoll descriptor: readable when the supervisor answered or ``wake`` was called."""
        return self._selector.fileno()

    # -- talking to the supervisor ----------------------------------------------------------------
    def _connect(self, env: dict[str, str]) -> None:
        if self._socket is not None:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            self._supervisor = subprocess.Popen(
                [sys.executable, "-S", "-c", _RUN_SUPERVISOR, str(SUPERVISOR), str(theirs.fileno())],
                pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL, start_new_session=True, close_fds=True,
            )  # fmt: skip
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        self._socket = ours
        self._selector.register(ours, selectors.EVENT_READ, "supervisor")
        self._base_env = dict(env)
        self._send({"op": "env", "env": self._base_env})

    def _changes(self, env: dict[str, str]) -> dict:
        """``env`` as what it sets and unsets in the supervisor's base environment."""
        return {
            "env": {k: v for k, v in env.items() if self._base_env.get(k) != v},
            "unset": [k for k in self._base_env if k not in env],
        }

    def _send(self, message: dict) -> None:
        with self._lock:
            try:
                self._socket.sendall(json.dumps(message).encode() + b"\n")
            except OSError:
                pass  # the supervisor is gone: reading from it says so

    def _receive(self) -> bool:
        """Read what the supervisor sent (blocking until something comes) and take its lines: exits
        (kept for ``wait``) and the end of a ``terminate_all``. False once it is gone."""
        data = self._socket.recv(1 << 16) if self._socket is not None else b""
        if not data:
            self._supervisor_gone()
            return False
        self._incoming += data
        *lines, self._incoming = self._incoming.split(b"\n")
        for line in lines:
            answer = json.loads(line)
            if answer["op"] == "exit":
                self._exits.append(self._exit(answer))
            elif answer["op"] == "all_ended":
                self._all_ended = True
        return True

    def _supervisor_gone(self) -> None:
        """Every step still running is lost with it; what they started is found by its launch tag
        and ended (a step itself dies with the supervisor: PR_SET_PDEATHSIG); the next launch
        starts another supervisor."""
        if self._socket is not None:
            self._selector.unregister(self._socket)
            self._socket.close()
            self._socket, self._base_env, self._incoming = None, None, b""
            self._supervisor.wait()
            if self._running:
                tag = f"{self._supervisor.pid}."
                end_launched(lambda env: env.get("LOCALPIPE_LAUNCH", "").startswith(tag))
        for key in sorted(self._running):
            self._exits.append(Exit(key, None, None, None, error="the step supervisor process exited"))
        self._running.clear()

    def _exit(self, answer: dict) -> Exit:
        self._running.discard(answer["key"])
        if answer.get("error"):
            return Exit(answer["key"], None, None, None, error=answer["error"])
        return Exit(answer["key"], answer["code"], answer["signal"], answer["peak_memory"], pid=answer.get("pid"),
                    log_error=answer.get("log_error"))  # fmt: skip

    def _executable(self, command: str, env: dict[str, str]) -> str | None:
        """The file a bare command name runs, looked up on the step's PATH once per run (the fork
        would try each PATH entry in turn for every step); None leaves the lookup to the fork."""
        if os.sep in command:
            return None  # a path, relative to the step's working directory
        key = (command, env.get("PATH", os.defpath))
        if key not in self._found:
            self._found[key] = shutil.which(command, path=key[1])
        return self._found[key]


def end_launched(launched_by) -> None:
    """Stop, then kill, every process whose environment ``launched_by`` accepts (its launch tag comes
    from the step it descends from), again until none is new twice in a row: as the supervisor's
    ``_stop_and_kill``, a stopped process cannot fork, and one that exits as it is found may have
    left a child."""
    import psutil

    stopped: set[int] = set()
    quiet = 0
    for _ in range(STOP_ROUNDS):
        found = set()
        for process in psutil.process_iter():
            try:
                if process.pid not in stopped and launched_by(process.environ()):
                    found.add(process.pid)
                    process.suspend()
            except psutil.Error:
                continue
        quiet = 0 if found else quiet + 1
        if quiet == 2:
            break
        stopped |= found
    for pid in stopped:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


EXECUTOR = LocalExecutor
