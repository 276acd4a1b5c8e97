"""The local executor: step processes on this machine, each the leader of its own process group.

One reaper thread waits on a pidfd per process (epoll: no polling, no thread per step); when
one becomes readable the process has exited, and ``os.wait4`` returns its exit status together
with the peak resident memory of the process and its reaped children. A pidfd added while the
reaper waits is watched at once (epoll's set is the kernel's), so starting a step wakes nobody.
"""

from __future__ import annotations

import os
import resource
import selectors
import signal
import subprocess
import threading
from collections.abc import Callable

import psutil

from localpipe.engine.executors import Exit, Launch

TERMINATE_GRACE_SECONDS = 5.0
_LOG_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC


class LocalExecutor:
    """Runs argv lists as subprocesses (never through a shell)."""

    def __init__(self):
        self._procs: dict[str, subprocess.Popen] = {}
        self._lock = threading.Lock()
        self._selector = selectors.EpollSelector()
        self._wake_read, self._wake_write = os.pipe()
        self._selector.register(self._wake_read, selectors.EVENT_READ, None)
        self._reaper: threading.Thread | None = None
        self._closed = False

    def start(self, launch: Launch, on_exit: Callable[[Exit], None]) -> int | None:
        """Start ``launch``; ``on_exit`` is called from another thread when it ends. Returns the pid."""
        out = err = None
        try:
            out = os.open(launch.stdout, _LOG_FLAGS, 0o644)
            err = os.open(launch.stderr, _LOG_FLAGS, 0o644)
            # A step with secrets writes through a pipe that masks them; others straight to their files.
            piped = subprocess.PIPE if launch.masked else None
            proc = subprocess.Popen(launch.argv, cwd=launch.cwd, env=launch.env, stdout=piped or out,
                                    stderr=piped or err, stdin=subprocess.DEVNULL, start_new_session=True,
                                    close_fds=True)
            if launch.masked:
                for stream, path in ((proc.stdout, launch.stdout), (proc.stderr, launch.stderr)):
                    threading.Thread(target=_copy_masked, args=(stream, path, launch.masked), daemon=True).start()
        except OSError as exc:
            on_exit(Exit(launch.key, None, None, None, error=f"could not start {launch.argv[0]!r}: "
                                                               f"{exc.strerror or exc}"))
            return None
        finally:
            for fd in (out, err):
                if fd is not None:
                    os.close(fd)
        if launch.memory_limit:
            # Set from here, just after the fork: a preexec_fn is unsafe with the reaper thread running.
            try:
                resource.prlimit(proc.pid, resource.RLIMIT_AS, (launch.memory_limit, launch.memory_limit))
            except (OSError, ValueError):
                pass  # the process may already be gone; its exit is reported as usual
        with self._lock:
            if self._closed:
                raise RuntimeError("the executor is closed")
            self._procs[launch.key] = proc
            pidfd = os.pidfd_open(proc.pid)
            self._selector.register(pidfd, selectors.EVENT_READ, (launch.key, proc, on_exit))
            if self._reaper is None:
                self._reaper = threading.Thread(target=self._reap, daemon=True, name="localpipe-reaper")
                self._reaper.start()
        return proc.pid

    def close(self) -> None:
        """Let the reaper thread end once no process is left; release its file descriptors."""
        with self._lock:
            self._closed = True
            if self._reaper is None:  # nothing ever ran: no thread to hand the descriptors to
                self._release_descriptors()
                return
        os.write(self._wake_write, b"x")

    def _reap(self) -> None:
        while not (self._closed and not self._procs):
            for key, _ in self._selector.select():
                if key.data is None:
                    os.read(self._wake_read, 4096)
                    continue
                with self._lock:
                    self._selector.unregister(key.fd)
                os.close(key.fd)
                self._finish(*key.data)
        self._release_descriptors()

    def _release_descriptors(self) -> None:
        self._selector.close()
        os.close(self._wake_read)
        os.close(self._wake_write)

    def _finish(self, key: str, proc: subprocess.Popen, on_exit: Callable[[Exit], None]) -> None:
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except ChildProcessError:
            status, usage = None, None
        code = os.waitstatus_to_exitcode(status) if status is not None else None
        proc.returncode = code  # Popen must not try to reap it again
        with self._lock:
            self._procs.pop(key, None)
        # The group may outlive its leader (a step that forked into the background).
        _kill_group(proc.pid, signal.SIGKILL)
        on_exit(Exit(key, code if code is None or code >= 0 else None,
                     -code if code is not None and code < 0 else None,
                     usage.ru_maxrss * 1024 if usage else None))

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

    @property
    def running(self) -> int:
        with self._lock:
            return len(self._procs)


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
