"""The local executor: step processes on this machine, each the leader of its own process group.

The scheduler's own thread waits for them: ``wait`` blocks in epoll on one pidfd per process
(no polling, no thread per step, no hand-over between threads) and, for each that became
readable, ``os.wait4`` returns the exit status together with the peak resident memory of the
process and its reaped children. ``wake`` makes a wait return early, from any thread.
"""

from __future__ import annotations

import os
import resource
import selectors
import shutil
import signal
import subprocess
import threading

import psutil

from localpipe.engine.executors import TERMINATE_GRACE_SECONDS, Exit, Launch

_LOG_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC


class LocalExecutor:
    """Runs argv lists as subprocesses (never through a shell); an ``Executor``.

    ``start``, ``wait`` and ``close`` belong to the scheduler's thread; ``wake`` and ``terminate``
    may be called from any thread.
    """

    def __init__(self):
        self._procs: dict[str, subprocess.Popen] = {}
        self._lock = threading.RLock()  # re-entrant: wake() is also called from a signal handler
        self._selector = selectors.EpollSelector()
        self._wake_read, self._wake_write = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        self._unstarted: list[Exit] = []  # launches that failed, reported by the next wait
        self._found: dict[tuple[str, str], str | None] = {}  # (command, PATH) -> its file
        self._closed = False

    def start(self, launch: Launch) -> int | None:
        """Start ``launch``; its ``Exit`` comes from ``wait`` once it ends. Returns the pid."""
        out = err = None
        try:
            out = os.open(launch.stdout, _LOG_FLAGS, 0o644)
            err = os.open(launch.stderr, _LOG_FLAGS, 0o644)
            # A step with secrets writes through a pipe that masks them; others straight to their files.
            piped = subprocess.PIPE if launch.masked else None
            proc = subprocess.Popen(
                launch.argv,
                executable=self._executable(launch.argv[0], launch.env),
                cwd=launch.cwd,
                env=launch.env,
                stdout=piped or out,
                stderr=piped or err,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                close_fds=True,
            )
            if launch.masked:
                for stream, path in ((proc.stdout, launch.stdout), (proc.stderr, launch.stderr)):
                    threading.Thread(target=_copy_masked, args=(stream, path, launch.masked), daemon=True).start()
        except OSError as exc:
            error = f"could not start {launch.argv[0]!r}: {exc.strerror or exc}"
            self._unstarted.append(Exit(launch.key, None, None, None, error=error))
            self.wake()  # a router waiting on fileno() must look
            return None
        finally:
            for fd in (out, err):
                if fd is not None:
                    os.close(fd)
        if launch.memory_limit:
            # Set from here, just after the fork: a preexec_fn is unsafe in a process with threads.
            try:
                resource.prlimit(proc.pid, resource.RLIMIT_AS, (launch.memory_limit, launch.memory_limit))
            except (OSError, ValueError):
                pass  # the process may already be gone; its exit is reported as usual
        with self._lock:
            self._procs[launch.key] = proc
        self._selector.register(os.pidfd_open(proc.pid), selectors.EVENT_READ, (launch.key, proc))
        return proc.pid

    def _executable(self, command: str, env: dict[str, str]) -> str | None:
        """The file a bare command name runs, looked up on the step's PATH once per run (the fork
        would try each PATH entry in turn for every step); None leaves the lookup to the fork."""
        if os.sep in command:
            return None  # a path, relative to the step's working directory
        key = (command, env.get("PATH", os.defpath))
        if key not in self._found:
            self._found[key] = shutil.which(command, path=key[1])
        return self._found[key]

    def wait(self, timeout: float | None) -> list[Exit]:
        """The exits of processes that ended, waiting up to ``timeout`` seconds for the first;
        empty when the time ran out or ``wake`` was called."""
        if self._unstarted:
            exits, self._unstarted = self._unstarted, []
            return exits
        exits = []
        for key, _ in self._selector.select(timeout):
            if key.data is None:
                _drain(self._wake_read)
                continue
            self._selector.unregister(key.fd)
            os.close(key.fd)
            exits.append(self._reap(*key.data))
        return exits

    def wake(self) -> None:
        """Make the current or next ``wait`` return at once."""
        with self._lock:
            if not self._closed:
                try:
                    os.write(self._wake_write, b"x")
                except BlockingIOError:
                    pass  # the pipe is full: a wake is pending already

    def close(self) -> None:
        """Release the descriptors. Processes still running are not waited for (see terminate_all)."""
        with self._lock:
            self._closed = True
        for key in list(self._selector.get_map().values()):
            if key.data is not None:
                os.close(key.fd)
        self._selector.close()
        os.close(self._wake_read)
        os.close(self._wake_write)

    def fileno(self) -> int:
        """The epoll descriptor: readable when a process ended or ``wake`` was called."""
        return self._selector.fileno()

    def _reap(self, key: str, proc: subprocess.Popen) -> Exit:
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except ChildProcessError:  # reaped already by a terminate() on another thread
            status, usage = None, None
        code = os.waitstatus_to_exitcode(status) if status is not None else None
        proc.returncode = code  # Popen must not try to reap it again
        with self._lock:
            self._procs.pop(key, None)
        # The group may outlive its leader (a step that forked into the background).
        _kill_group(proc.pid, signal.SIGKILL)
        killed_by = -code if code is not None and code < 0 else None
        return Exit(key, None if killed_by else code, killed_by, usage.ru_maxrss * 1024 if usage else None)

    def terminate(self, key: str, grace: float = TERMINATE_GRACE_SECONDS) -> None:
        """End the whole process tree of ``key``: SIGTERM, then SIGKILL after ``grace`` seconds."""
        with self._lock:
            proc = self._procs.get(key)
        if proc is None:
            return
        tree = _tree(proc.pid)
        _kill_group(proc.pid, signal.SIGTERM)
        for p in tree:
            _signal(p, signal.SIGTERM)
        gone, alive = psutil.wait_procs(tree, timeout=grace)
        _kill_group(proc.pid, signal.SIGKILL)
        for p in alive:
            _signal(p, signal.SIGKILL)

    def terminate_all(self, grace: float = TERMINATE_GRACE_SECONDS) -> None:
        with self._lock:
            keys = list(self._procs)
        threads = [threading.Thread(target=self.terminate, args=(k, grace)) for k in keys]
        for t in threads:
            t.start()
        for t in threads:
            t.join()


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _copy_masked(stream, path: str, secrets: list[str]) -> None:
    """Copy a step's output to its log line by line, every secret value replaced by ***."""
    masks = [(secret.encode(), b"***") for secret in secrets]
    with stream, open(path, "ab") as log:
        for line in iter(stream.readline, b""):
            for secret, mask in masks:
                line = line.replace(secret, mask)
            log.write(line)
            log.flush()


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _signal(proc: psutil.Process, sig: int) -> None:
    try:
        proc.send_signal(sig)
    except psutil.Error:
        pass


def _kill_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


EXECUTOR = LocalExecutor
