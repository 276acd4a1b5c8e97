"""The step supervisor: the parent of one scheduler's step processes, in a small process of its own.

Run as ``python -S supervisor.py FD`` by the local executor (``local.py``), it takes requests
on the socket FD (JSON lines: the base environment once, then ``start``, ``terminate`` and
``terminate_all``) and answers with an ``exit`` line for each step (and ``all_ended`` after a
``terminate_all``). It is single-threaded and
uses only the standard library, so it starts in milliseconds and may fork safely. It exists so
that nothing a step starts outlives its place in the run:

- it is a child subreaper: what a step starts, even in a session of its own (``setsid``), stays
  below it when its parent exits; when a step ends, what is left of its process group and every
  process still carrying its launch tag (``LOCALPIPE_LAUNCH`` in its environment) is killed;
- each step gets ``PR_SET_PDEATHSIG`` (through util-linux's ``setpriv``, which sets it and execs
  the step, where it is installed): it dies with the supervisor;
- when the scheduler is gone (end of file on the socket, whatever killed it), everything below
  the supervisor is killed at once and the supervisor exits.

A Python step (a launch marked ``warm``) is forked by a zygote (``zygote.py``), a warm interpreter
the supervisor starts for it and keeps for the next: one per interpreter, per set of variables
Python reads at its start, and per step running at once. The zygote reaps it and says how it
ended; what it forks without an exec carries the zygote's launch tag, one step's at a time.

Steps write into pipes that the supervisor copies to their log files, masking secret values
(line by line) and capping each stream at ``limit`` bytes: the first half is kept, then the last
half (held in a ring file beside the log), with one line saying how many bytes were cut.
"""

from __future__ import annotations

import array
import ctypes
import json
import os
import resource
import select
import selectors
import shutil
import signal
import socket
import sys
import time

PR_SET_CHILD_SUBREAPER = 36
CHUNK = 1 << 16
REAP_SECONDS = 1.0  # how often processes a step left behind, ended since, are reaped
STOP_ROUNDS = 100  # passes over what a step left, stopping each process found, until none is new
# A listing of /proc can miss a process that forks and exits in a loop, and two passes in quick
# succession can both miss it: once anything was found (or at shutdown, the last chance), a sweep
# ends only after this many passes finding nothing new, this far apart.
CAREFUL_QUIET_PASSES, CAREFUL_PAUSE_SECONDS = 5, 0.001
SHUTDOWN_SECONDS = 2.0  # how long the supervisor reaps what it killed before it exits
DRAIN_SECONDS = 1.0  # how long an ended step's pipes are read for what a survivor may still hold open
MAX_PENDING_LINE = 1 << 20  # a longer line without its end is masked and written as it is
# Never through a link, nor waiting on a FIFO (no effect on a file): the step (in a container too)
# can put one where its log is made.
_LOG_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
_RING_FLAGS = os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
_libc = ctypes.CDLL(None, use_errno=True)


# Not a preexec_fn: running Python in the forked child (no vfork then) cost 7 ms a step here;
# exec'ing setpriv, which sets the signal and execs the step, costs 1.2 ms (measured on the 2-core
# VM against a plain spawn of /bin/true: 1.8 ms against 0.6), the larger part of the supervisor's
# cost per step (docs/performance.md).
SETPRIV = shutil.which("setpriv")
# Python ignores these; an ignored signal stays ignored across exec: the step gets them back at
# their defaults, as subprocess.Popen's restore_signals gives them.
RESTORED_SIGNALS = (signal.SIGPIPE, signal.SIGXFSZ)


ZYGOTE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "zygote.py")
# Its modules and path noted first: a step it forks gets only what a new interpreter has (less the
# linecache -c imports from 3.13 on, where a script does not). The path without -c's '' (the working
# directory), which is not there when PYTHONSAFEPATH is set.
_RUN_ZYGOTE = (
    "import sys; fresh = set(sys.modules) - {'linecache'}; base = [p for p in sys.path if p]; "
    "sys.path[:] = [sys.argv[1].rpartition('/')[0], *base]; "
    "import zygote; job = zygote.main(int(sys.argv[2]), int(sys.argv[3])); zygote.run(job, fresh, base)"
)
# Idle zygotes kept for the steps to come: those of kinds no step asks for again (each step with a
# PYTHONHASHSEED of its own) piled up, some 13 MB each, until the run's end; the longest idle go first.
IDLE_ZYGOTES = 4
ZYGOTE_ANSWER_SECONDS = 30.0  # its start included: a slow disk, a loaded machine
# What a zygote starts without: each step's own PYTHONPATH is applied by its child, and the launch
# tag is the zygote's.
_ZYGOTE_UNSET = ("PYTHONPATH", "LOCALPIPE_LAUNCH")


# Python reports its own start (the modules it imports) with these: such a step is started anew.
_REPORTS_START = ("PYTHONVERBOSE", "PYTHONPROFILEIMPORTTIME")
_LOCALE_ETC = ("LANG", "LANGUAGE", "TZ", "HOME", "GLIBC_TUNABLES")


def _starts_python(name: str) -> bool:
    """Whether Python, or the dynamic loader and libc under it (LD_LIBRARY_PATH, LD_PRELOAD, the
    tunables), reads the environment variable as it starts (PYTHONPATH aside): steps that differ in
    one are forked from zygotes of their own, started with their values."""
    return (
        (name.startswith("PYTHON") and name != "PYTHONPATH") or name.startswith(("LC_", "LD_")) or name in _LOCALE_ETC
    )


def _customizes_site(pythonpath: str | None, cwd: str) -> bool:
    """Whether the step's PYTHONPATH holds a module that ``site`` imports as Python starts (which
    OpenTelemetry's and Datadog's launchers put there): a zygote, started without it, did not."""
    return bool(pythonpath) and any(
        os.path.exists(os.path.join(cwd, folder, name))
        for folder in pythonpath.split(os.pathsep)
        for name in ("sitecustomize.py", "sitecustomize", "usercustomize.py", "usercustomize")
    )


def _spawn_argv(argv: list[str]) -> list[str]:
    return [SETPRIV, "--pdeathsig", "KILL", "--", *argv] if SETPRIV else argv


def _cannot_start(argv0: str, executable: str | None, cwd: str) -> str | None:
    """Why the step's program cannot be run, checked before spawning: exec'd through setpriv, it
    would only exit 127, and a file that is neither a program nor a script would go to /bin/sh.
    A program found runnable is not read again while its inode, mode and mtime stay the same
    (every step of a run is usually the same interpreter)."""
    path = executable if os.sep not in argv0 else os.path.join(cwd, argv0)
    try:
        st = os.stat(path) if path else None
    except OSError:
        st = None
    if st is None:
        return "No such file or directory"
    identity = (path, st.st_ino, st.st_mode, st.st_mtime_ns)
    if identity in _RUNNABLE:
        return None
    problem = _unrunnable(path)
    if problem is None:
        _RUNNABLE.add(identity)
    return problem


_RUNNABLE: set[tuple] = set()


def _unrunnable(path: str) -> str | None:
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        return "Permission denied"
    try:
        with open(path, "rb") as handle:
            start = handle.read(256)
    except OSError as exc:
        return exc.strerror
    if start.startswith(b"#!"):
        interpreter = start[2:].split(b"\n")[0].split()
        if not interpreter or not os.access(interpreter[0], os.X_OK):
            return f"its interpreter {os.fsdecode(interpreter[0]) if interpreter else '(none)'!r} cannot be run"
        return None
    return None if start.startswith(b"\x7fELF") else "Exec format error"


class Masker:
    """Replaces secret values in a byte stream with ``***``, the longest first (a secret that contains
    another is masked whole), holding back only what could be the start of one not yet complete:
    complete lines go out at once, a line without its end once it is long, and a secret that holds
    a line break is looked for across lines."""

    def __init__(self, secrets: list[bytes]):
        self.secrets = sorted(set(secrets), key=len, reverse=True)
        self.hold = len(self.secrets[0]) - 1
        self.across_lines = max((len(s) for s in self.secrets if b"\n" in s), default=1) - 1
        self.pending = b""

    def feed(self, data: bytes) -> bytes:
        buffer = self._replace(self.pending + data)
        cut = buffer.rfind(b"\n") + 1
        if len(buffer) - cut > MAX_PENDING_LINE:
            cut = len(buffer) - self.hold
        cut = max(0, min(cut, len(buffer) - self.across_lines))
        self.pending = buffer[cut:]
        return buffer[:cut]

    def flush(self) -> bytes:
        rest, self.pending = self._replace(self.pending), b""
        return rest

    def _replace(self, data: bytes) -> bytes:
        for secret in self.secrets:
            data = data.replace(secret, b"***")
        return data


class Log:
    """One stream of one step: from its pipe into its log file, masked and capped."""

    def __init__(self, fd: int, path: str, limit: int, secrets: list[str]):
        self.fd, self.path, self.limit = fd, path, limit
        self.file: int | None = None  # created when the step first writes: most steps print little or nothing
        self.head = limit - limit // 2  # bytes written straight to the file
        self.ring_size = limit // 2  # bytes kept from the end
        self.written = 0
        self.ring: int | None = None
        self.ring_at = self.overflow = 0
        encoded = [os.fsencode(s) for s in secrets if s]  # as the step's bytes hold them, whatever their encoding
        self.masker = Masker(encoded) if encoded else None
        self.error: str | None = None

    def feed(self, data: bytes) -> None:
        self._write(self.masker.feed(data) if self.masker else data)

    def close(self) -> None:
        if self.masker:
            self._write(self.masker.flush())
        if self.ring is not None:
            kept = min(self.overflow, self.ring_size)
            tail = os.pread(self.ring, kept, 0)
            if self.overflow > self.ring_size:  # the ring went round: its oldest byte is at ring_at
                tail = tail[self.ring_at :] + tail[: self.ring_at]
            cut = self.overflow - kept
            note = (
                f"\n[localpipe: {cut} bytes cut here: the log keeps the first {self.head} and the last {kept} bytes "
                "of this stream (LOCALPIPE_MAX_LOG_BYTES)]\n".encode()
                if cut
                else b""
            )
            self._safely(self._append, note + tail)
            os.close(self.ring)
            self._safely(os.unlink, self.path + ".tail")
        if self.file is not None:
            os.close(self.file)

    def _write(self, data: bytes) -> None:
        if self.written < self.head:
            part = data[: self.head - self.written]
            self.written += len(part)
            self._safely(self._append, part)
            data = data[len(part) :]
        if data and self.ring_size and self.error is None:
            if self.ring is None:
                self._safely(self._open_ring)
                if self.ring is None:
                    return
            self.overflow += len(data)
            if len(data) >= self.ring_size:
                data, self.ring_at = data[-self.ring_size :], 0
            first = data[: self.ring_size - self.ring_at]
            self._safely(os.pwrite, self.ring, first, self.ring_at)
            if len(data) > len(first):
                self._safely(os.pwrite, self.ring, data[len(first) :], 0)
            self.ring_at = (self.ring_at + len(data)) % self.ring_size

    def _open_ring(self) -> None:
        self.ring = os.open(self.path + ".tail", _RING_FLAGS, 0o600)

    def _append(self, data: bytes) -> None:
        if self.file is None:
            self.file = os.open(self.path, _LOG_FLAGS, 0o644)
        os.write(self.file, data)

    def _safely(self, write, *args) -> None:
        if self.error is None:
            try:
                write(*args)
            except OSError as exc:  # a full disk: the step goes on, its log stops, the reason says why
                self.error = f"{exc.strerror} writing {self.path}"


class Zygote:
    """A warm interpreter (``zygote.py``) that forks Python steps, one at a time, and says how each ended."""

    def __init__(self, interpreter: str, starts_with: frozenset, env: dict[str, str], tag: str, devnull: int):
        """Start it; OSError when it did not start, or printed as it did (its steps would not print
        that to their logs): those steps are spawned. What it prints goes to a file read only then."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        output = os.memfd_create("zygote", os.MFD_CLOEXEC)
        try:
            self.pid = os.posix_spawn(
                interpreter,
                [interpreter, "-c", _RUN_ZYGOTE, ZYGOTE, "3", str(os.getpid())],
                env,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, devnull, 0),
                    (os.POSIX_SPAWN_DUP2, output, 1),
                    (os.POSIX_SPAWN_DUP2, output, 2),
                    (os.POSIX_SPAWN_DUP2, theirs.fileno(), 3),
                ],
                setsigdef=RESTORED_SIGNALS,
            )
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        # The steps it can fork: their interpreter, and the variables that interpreter read at its start.
        self.kind = (interpreter, starts_with)
        self.tag, self.channel = tag, ours
        self.step: Step | None = None  # the step it forked that still runs
        self.idle_since = time.monotonic()
        try:
            started = select.select([ours], [], [], ZYGOTE_ANSWER_SECONDS)[0] and ours.recv(CHUNK)
            if not started or os.fstat(output).st_size:
                self.end()
                raise OSError(f"the warm interpreter {self.pid} did not start quietly")
        finally:
            os.close(output)

    def end(self) -> None:
        self.channel.close()
        _signal(self.pid, signal.SIGKILL)
        _reaped_within(self.pid, SHUTDOWN_SECONDS)

    def fork(self, job: dict, stdout: int, stderr: int) -> int:
        """The pid of the step forked for ``job``; OSError when the zygote did not answer."""
        fds = array.array("i", [stdout, stderr])
        self.channel.sendmsg([json.dumps(job).encode()], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        if not select.select([self.channel], [], [], ZYGOTE_ANSWER_SECONDS)[0]:
            raise OSError(f"the warm interpreter {self.pid} did not answer")
        answer = self.channel.recv(CHUNK)
        if not answer:
            raise OSError(f"the warm interpreter {self.pid} exited")
        return json.loads(answer)["pid"]


class Step:
    def __init__(self, key: str, pid: int, tag: str, logs: list[Log], zygote: Zygote | None = None):
        self.key, self.pid, self.tag, self.logs, self.zygote = key, pid, tag, logs, zygote
        # A forked step is the zygote's child: the zygote says when it ended.
        self.pidfd = os.pidfd_open(pid) if zygote is None else None
        self.kill_at: float | None = None  # when a terminate's grace period ends


class Supervisor:
    def __init__(self, control: socket.socket):
        self.control = control
        self.selector = selectors.EpollSelector()
        self.selector.register(control, selectors.EVENT_READ, None)
        self.steps: dict[str, Step] = {}
        self.by_pid: dict[int, Step] = {}
        self.base_env: dict[str, str] = {}
        self.incoming = b""
        self.launches = 0
        self.zygotes: list[Zygote] = []
        self.cold_only: set[str] = set()  # interpreters whose zygote did not answer: their steps are spawned
        self.all_ended_wanted = False
        self.devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)  # every step's stdin
        self.home = os.open(".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # back here after each spawn
        # Its children, read again from the start of a file kept open: twice at every step's end,
        # and opening a /proc file costs ten times reading it. The supervisor runs no threads, so
        # its one task's list is all of them. A kernel without the file (CONFIG_PROC_CHILDREN)
        # gives no list: what steps leave is then ended only through their process groups.
        pid = os.getpid()
        try:
            self.children: int | None = os.open(f"/proc/{pid}/task/{pid}/children", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self.children = None

    def run(self) -> None:
        next_reap = 0.0
        while True:
            deadlines = [s.kill_at for s in self.steps.values() if s.kill_at is not None] + [next_reap]
            timeout = max(0.0, min(deadlines) - time.monotonic())
            for key, _ in self.selector.select(timeout):
                if key.data is None:
                    if not self._read_control():
                        return
                elif isinstance(key.data, Log):
                    self._read_log(key.data)
                elif isinstance(key.data, Zygote):
                    self._zygote_answered(key.data)
                else:
                    self._guarded(key.data.key, self._reap, (key.data, None))
            now = time.monotonic()
            if now >= next_reap:
                self._reap_strays()
                next_reap = now + REAP_SECONDS
            for step in list(self.steps.values()):
                if step.kill_at is not None and now >= step.kill_at:
                    step.kill_at = None
                    _kill_tree(step.pid, signal.SIGKILL)
            if self.all_ended_wanted and not self.steps:
                self.all_ended_wanted = False
                self._send({"op": "all_ended"})

    # -- requests -----------------------------------------------------------------------------
    def _read_control(self) -> bool:
        data = self.control.recv(CHUNK)
        if not data:  # the scheduler is gone
            self.shutdown()
            return False
        self.incoming += data
        *lines, self.incoming = self.incoming.split(b"\n")
        for line in lines:
            request = json.loads(line)
            op = request["op"]
            if op == "env":
                self.base_env = request["env"]
            elif op == "warm":  # a Python step is to come: its zygote starts now, the step's wait shorter
                self._zygote_of(request["interpreter"], self._environment(request), ".", idle_only=False)
            elif op == "start":
                self._guarded(request["key"], self._start, request)
            elif op == "terminate":
                self._terminate(request["key"], request["grace"])
            elif op == "terminate_all":
                for key in list(self.steps):
                    self._terminate(key, request["grace"])
                self.all_ended_wanted = True
        return True

    def _environment(self, request: dict) -> dict[str, str]:
        env = dict(self.base_env)
        env.update(request["env"])
        for name in request["unset"]:
            env.pop(name, None)
        return env

    def _start(self, request: dict) -> None:
        key = request["key"]
        env = self._environment(request)
        self.launches += 1
        tag = f"{os.getpid()}.{self.launches}"
        env["LOCALPIPE_LAUNCH"] = tag
        argv0 = request["argv"][0]
        problem = _cannot_start(argv0, request["executable"], request["cwd"])
        if problem is not None:
            self._send({"op": "exit", "key": key, "error": f"could not start {argv0!r}: {problem}"})
            return
        pipes = [os.pipe2(os.O_CLOEXEC), os.pipe2(os.O_CLOEXEC)]
        zygote = self._zygote_of(request["argv"][0], env, request["cwd"]) if request.get("warm") else None
        try:
            pid = self._fork(zygote, request, env, pipes[0][1], pipes[1][1]) if zygote is not None else None
            if pid is None:  # spawned as any other step: its memory limit set and its end seen from here
                zygote = None
                pid = self._spawn(request, env, pipes[0][1], pipes[1][1])
        except OSError as exc:
            for read, write in pipes:
                os.close(read)
                os.close(write)
            self._send({"op": "exit", "key": key, "error": f"could not start {argv0!r}: {exc.strerror or exc}"})
            return
        for _, write in pipes:
            os.close(write)
        if request["memory_limit"] and zygote is None:  # set from here: the child runs no Python before its exec
            try:
                limit = request["memory_limit"]
                resource.prlimit(pid, resource.RLIMIT_DATA, (limit, limit))
            except (OSError, ValueError):
                pass  # the process may already be gone; its exit is reported as usual
        logs = [
            Log(read, path, request["log_limit"], request["masked"])
            for (read, _), path in zip(pipes, (request["stdout"], request["stderr"]), strict=True)
        ]
        step = self.steps[key] = self.by_pid[pid] = Step(key, pid, tag, logs, zygote)
        for log in logs:
            os.set_blocking(log.fd, False)
            self.selector.register(log.fd, selectors.EVENT_READ, log)
        if zygote is None:
            self.selector.register(step.pidfd, selectors.EVENT_READ, step)
        else:
            zygote.step = step

    def _zygote_of(self, interpreter: str, env: dict[str, str], cwd: str, idle_only: bool = True) -> Zygote | None:
        """A zygote for a step on ``interpreter`` with ``env`` in ``cwd``, with no step running (with
        ``idle_only`` false, any), started now if there is none; None when one cannot be (the step
        is spawned as any other then)."""
        if (
            not os.path.isabs(interpreter)
            or interpreter in self.cold_only
            or any(map(env.get, _REPORTS_START))
            or _customizes_site(env.get("PYTHONPATH"), cwd)
        ):
            return None
        starts_with = frozenset((k, v) for k, v in env.items() if _starts_python(k))
        for zygote in self.zygotes:
            if zygote.kind == (interpreter, starts_with) and (zygote.step is None or not idle_only):
                return zygote
        idle = sorted((z for z in self.zygotes if z.step is None), key=lambda z: z.idle_since)
        for zygote in idle[: max(0, len(idle) + 1 - IDLE_ZYGOTES)]:
            self._drop_zygote(zygote)
        self.launches += 1
        tag = f"{os.getpid()}.{self.launches}"
        zygote_env = {k: v for k, v in self.base_env.items() if k not in _ZYGOTE_UNSET and not _starts_python(k)}
        zygote_env.update(starts_with)
        zygote_env["LOCALPIPE_LAUNCH"] = tag
        if "LOCALPIPE_WORKSPACE" in env:  # recovery finds what its steps fork by it
            zygote_env["LOCALPIPE_WORKSPACE"] = env["LOCALPIPE_WORKSPACE"]
        try:
            zygote = Zygote(interpreter, starts_with, zygote_env, tag, self.devnull)
        except OSError:
            self.cold_only.add(interpreter)
            return None
        self.zygotes.append(zygote)
        self.selector.register(zygote.channel, selectors.EVENT_READ, zygote)
        return zygote

    def _fork(self, zygote: Zygote, request: dict, env: dict[str, str], stdout: int, stderr: int) -> int | None:
        """The step forked by ``zygote``; None when it does not answer: it is ended, and its
        interpreter's steps are spawned from then on."""
        job = {"argv": request["argv"], "cwd": request["cwd"], "env": env, "memory_limit": request["memory_limit"]}
        try:
            return zygote.fork(job, stdout, stderr)
        except OSError:
            self.cold_only.add(zygote.kind[0])
            self._drop_zygote(zygote)
            return None

    def _zygote_answered(self, zygote: Zygote) -> None:
        """The step ``zygote`` forked ended (its status comes with it), or the zygote itself did."""
        answer = zygote.channel.recv(CHUNK)
        step, zygote.step, zygote.idle_since = zygote.step, None, time.monotonic()
        if answer:
            ended = json.loads(answer)
            if step is not None:
                self._guarded(step.key, self._reap, (step, (ended["status"], ended["maxrss"])))
            return
        self._drop_zygote(zygote)
        if step is not None:  # dying with the zygote, and the supervisor's child now (the subreaper)
            self._guarded(step.key, self._reap, (step, None))

    def _drop_zygote(self, zygote: Zygote) -> None:
        self.zygotes.remove(zygote)
        self.selector.unregister(zygote.channel)
        zygote.end()

    def _spawn(self, request: dict, env: dict[str, str], stdout: int, stderr: int) -> int:
        """Start the step's program in a session of its own, in its working directory; its pid.

        ``posix_spawn`` (a vfork, the environment converted in C) costs half of ``subprocess.Popen``
        here. It has no working-directory action before Python 3.13, so the supervisor, which has
        no threads, changes its own around the spawn. Every descriptor it holds is close-on-exec,
        so the step inherits only the three given here.
        """
        argv = _spawn_argv(request["argv"])
        program = argv[0] if SETPRIV or os.sep in argv[0] else request["executable"]
        os.chdir(request["cwd"])
        try:
            return os.posix_spawn(
                program,
                argv,
                env,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, self.devnull, 0),
                    (os.POSIX_SPAWN_DUP2, stdout, 1),
                    (os.POSIX_SPAWN_DUP2, stderr, 2),
                ],
                setsid=True,
                setsigdef=RESTORED_SIGNALS,
            )
        finally:
            os.fchdir(self.home)

    def _guarded(self, key: str, handle, argument) -> None:
        """Run ``handle(argument)``; what it raises fails the one step ``key``, never the supervisor
        (and so never the other steps)."""
        try:
            handle(argument)
        except Exception as exc:  # noqa: BLE001  (a bug or an odd value: that step's reason says which)
            import traceback  # here: its import is a tenth of the supervisor's start

            traceback.print_exc()
            step = self.steps.pop(key, None)
            if step is not None:
                self.by_pid.pop(step.pid, None)
            self._send({"op": "exit", "key": key, "error": f"the step supervisor could not handle it: {exc!r}"})

    def _terminate(self, key: str, grace: float) -> None:
        step = self.steps.get(key)
        if step is not None and step.kill_at is None:
            _kill_tree(step.pid, signal.SIGTERM)
            step.kill_at = time.monotonic() + grace

    # -- steps ending -------------------------------------------------------------------------
    def _reap(self, ended: tuple[Step, tuple[int, int] | None]) -> None:
        """End what the step left and report its exit: ``ended`` is the step with the wait status
        and peak memory its zygote reported, or None for the supervisor's own child."""
        step, reported = ended
        if step.pidfd is not None:
            self.selector.unregister(step.pidfd)
            os.close(step.pidfd)
        # Killed before the leader is reaped: until then its pid, the group's id, cannot be reused
        # (a forked step is reaped by its zygote: the group's id stays taken while one of it lives).
        _signal_group(step.pid, signal.SIGSTOP)
        _stop_and_kill(lambda: self._left_by(step))
        _signal_group(step.pid, signal.SIGKILL)
        if reported is not None:
            status, peak = reported
        else:
            try:
                _, status, usage = os.wait4(step.pid, 0)
                peak = usage.ru_maxrss
            except ChildProcessError:  # reaped by its zygote, which died before saying how it ended
                status, peak = signal.SIGKILL, 0
        code = os.waitstatus_to_exitcode(status)
        self._drain(step.logs)
        del self.steps[step.key], self.by_pid[step.pid]
        self._send(
            {
                "op": "exit",
                "key": step.key,
                "pid": step.pid,
                "code": None if code < 0 else code,
                "signal": -code if code < 0 else None,
                "peak_memory": peak * 1024,
                "log_error": next((log.error for log in step.logs if log.error), None),
            }
        )

    def _left_by(self, step: Step) -> set[int]:
        """The processes an ended step left: the supervisor's children carrying its launch tag, with
        what is below them (for a forked step, its zygote's tag too: what it forked without an exec
        has the zygote's environment). Its leader has none: its end is seen only after the kernel
        gave its children to the supervisor, the subreaper."""
        tags = {step.tag, step.zygote.tag} if step.zygote is not None else {step.tag}
        return self._strays_tagged(lambda tag: tag in tags)

    def _strays_tagged(self, wanted) -> set[int]:
        """The supervisor's children that are neither steps nor zygotes whose launch tag ``wanted``
        accepts, with what is below them."""
        found = set()
        zygotes = {zygote.pid for zygote in self.zygotes}
        for pid in self._live_children():
            if pid not in self.by_pid and pid not in zygotes and wanted(_launch_tag(pid)):
                found.add(pid)
                found.update(_descendants(pid))
        return found

    def _live_children(self) -> list[int]:
        """The supervisor's children, less those that ended, which are reaped here (a step's leader
        aside: ``_reap`` waits for it). A process that forks and exits in a loop leaves hundreds of
        them a second; kept, they made each listing long enough that the live one had moved on
        before it was reached, and a sweep never caught it."""
        return [pid for pid in self._own_children() if pid in self.by_pid or not _reaped(pid)]

    def _reap_strays(self) -> None:
        """End what ended steps left that still runs, and reap it. ``_reap`` ends it when its step
        ends, but a process that forks and exits in a loop can slip past that one sweep (/proc's list
        of children is not exact while they change), never past all of these."""
        running = {step.tag for step in self.steps.values()} | {z.tag for z in self.zygotes if z.step is not None}

        def ended(tag: str | None) -> bool:
            return tag is not None and tag not in running

        if self._strays_tagged(ended):  # which also reaps what ended
            _stop_and_kill(lambda: self._strays_tagged(ended), careful=True)

    def _everything_below(self) -> set[int]:
        """Every process below the supervisor that still runs (its children that ended reaped first)."""
        return {pid for child in self._own_children() if not _reaped(child) for pid in (child, *_descendants(child))}

    def _own_children(self) -> list[int]:
        if self.children is None:
            return []
        listing, offset = b"", 0
        while chunk := os.pread(self.children, CHUNK, offset):
            listing, offset = listing + chunk, offset + len(chunk)
        return [int(p) for p in listing.split()]

    def _read_log(self, log: Log) -> None:
        if log.fd < 0:
            return  # drained and closed by its step's end, handled first in the same batch of events
        try:
            data = os.read(log.fd, CHUNK)
        except BlockingIOError:
            return
        if data:
            log.feed(data)
        else:
            self.selector.unregister(log.fd)
            os.close(log.fd)
            log.fd = -1

    def _drain(self, logs: list[Log]) -> None:
        """Read what the ended step's pipes still hold (briefly: a survivor may hold one open), then close its logs."""
        deadline = time.monotonic() + DRAIN_SECONDS
        while any(log.fd >= 0 for log in logs) and time.monotonic() < deadline:
            ready = [log for log in logs if log.fd >= 0]
            for log in ready:
                self._read_log(log)
            if any(log.fd >= 0 for log in logs):
                select.select([log.fd for log in logs if log.fd >= 0], [], [], 0.05)
        for log in logs:
            if log.fd >= 0:
                self.selector.unregister(log.fd)
                os.close(log.fd)
                log.fd = -1
            log.close()

    def shutdown(self) -> None:
        """The scheduler is gone: end every process below the supervisor, and reap them."""
        for zygote in [z for z in self.zygotes if z.step is None]:  # nothing below them
            self._drop_zygote(zygote)
        if self.children is not None and not self._own_children():
            # Nothing at all below: a process anywhere below would have a child of the supervisor
            # above it, alive or ended, listed until the supervisor reaps it.
            return
        _stop_and_kill(self._everything_below, careful=True)
        deadline = time.monotonic() + SHUTDOWN_SECONDS
        while time.monotonic() < deadline:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                time.sleep(0.005)

    def _send(self, message: dict) -> None:
        try:
            self.control.sendall(json.dumps(message).encode() + b"\n")
        except OSError:
            pass  # the scheduler is gone: end of file on the socket says so next


# -- processes, through /proc ---------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    found = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(p) for p in handle.read().split()]
    except OSError:
        pass
    return found


def _reaped(pid: int) -> bool:
    """Whether the child ``pid`` had ended: it is reaped now, and gone from every listing."""
    try:
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return True  # not a child any more


def _reaped_within(pid: int, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while not _reaped(pid) and time.monotonic() < deadline:
        time.sleep(0.001)


def _descendants(pid: int) -> list[int]:
    found, pending = [], [pid]
    while pending:
        for child in _children(pending.pop()):
            found.append(child)
            pending.append(child)
    return found


def _environ(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/environ", "rb") as handle:
            return handle.read()
    except OSError:
        return b""


def _launch_tag(pid: int) -> str | None:
    for entry in _environ(pid).split(b"\0"):
        if entry.startswith(b"LOCALPIPE_LAUNCH="):
            return entry[len(b"LOCALPIPE_LAUNCH=") :].decode()
    return None


def _signal(pid: int, sig: int) -> None:
    try:
        os.kill(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _stop_and_kill(find, careful: bool = False) -> None:
    """SIGSTOP the processes ``find()`` returns, again until it returns no new one twice in a row (a
    stopped process cannot fork, so a process that keeps forking is caught; the second pass sees a
    child whose parent exited between the listing and its SIGSTOP), then SIGKILL them all. Once
    something was found, or when ``careful``, the passes are spaced and more quiet ones are needed
    (``CAREFUL_QUIET_PASSES``): a step that left nothing costs two quick listings."""
    stopped: set[int] = set()
    quiet = 0
    for _ in range(STOP_ROUNDS):
        found = find() - stopped
        quiet = 0 if found else quiet + 1
        wary = careful or stopped or found
        if quiet == (CAREFUL_QUIET_PASSES if wary else 2):
            break
        for pid in found:
            _signal(pid, signal.SIGSTOP)
        stopped |= found
        if wary:
            time.sleep(CAREFUL_PAUSE_SECONDS)
    for pid in stopped:
        _signal(pid, signal.SIGKILL)


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def _kill_tree(pid: int, sig: int) -> None:
    """Signal a step's process group and every process below its leader."""
    _signal_group(pid, sig)
    for child in _descendants(pid):
        _signal(child, sig)


def main(fd: int) -> None:
    _libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    # An ignored signal stays ignored across exec: what the scheduler's process ignored (SIGCHLD in
    # some servers) must not reach the steps, nor keep the supervisor from reaping them. (A Ctrl-C on
    # the terminal reaches only the scheduler: the supervisor has a session of its own.)
    for number in (signal.SIGCHLD, signal.SIGINT, signal.SIGPIPE, signal.SIGHUP):
        signal.signal(number, signal.SIG_DFL)
    os.set_inheritable(fd, False)  # the steps are spawned without closing descriptors: none may leak to them
    supervisor = Supervisor(socket.socket(fileno=fd))

    def on_sigterm(signum, frame):
        supervisor.shutdown()
        sys.exit(0)

    signal.signal(signal.SIGTERM, on_sigterm)
    supervisor.run()
    os._exit(0)  # nothing is buffered (logs go straight to their files): the scheduler waits for this exit


if __name__ == "__main__":
    main(int(sys.argv[1]))
