"""A warm interpreter that forks Python steps, so that a step does not pay Python's start.

The step supervisor (``supervisor.py``) starts one per interpreter and per step running at once,
as ``python -c RUN ZYGOTE_PY FD SUPERVISOR_PID``, on the supervisor's environment with the
variables Python reads as it starts taken from the step's (steps that differ in one get zygotes
of their own), the workspace, and a launch tag of its own: what ``/proc/PID/environ`` shows for
the steps it forks and what they fork in turn (a fork keeps the environment its process was
started with), so that is how the supervisor and recovery find them. It takes one job at a time
on the SOCK_SEQPACKET socket FD: a JSON message (argv, working directory, environment, memory
limit) with the step's stdout and stderr pipes attached. It forks; the child becomes ``python
SCRIPT ARGS`` (or ``python -m MODULE ARGS``) as a new interpreter would be, and the zygote
answers with the child's pid, then, once it ended, with its wait status and peak memory. It says
first that it started: its stdout and stderr are a file the supervisor reads then, for a zygote
whose start printed something (a warning of ``site`` or of an invalid ``PYTHONWARNINGS``) cannot
fork steps as new interpreters, which would print it to their logs.

What the child sets up before the script: its own session, death with the zygote, its descriptors
(the pipes, /dev/null for stdin, nothing else), working directory, environment, memory limit,
``sys.path`` (the script's folder, ``PYTHONPATH``, then what the zygote's start found), ``sys.argv``,
stdio made anew on the step's descriptors, and only the modules a new interpreter has. A script
that is no plain source file (a folder, a zip, byte code) is exec'd as before, from the child, and so
is one that does not compile.
What stays the zygote's: the seed of ``str`` hashes when ``PYTHONHASHSEED`` is not set (the same
for the steps it forks) and ``/proc/PID/cmdline``.

Only the standard library, and code that runs on any Python 3 an environment may have.
"""

import json
import os
import signal
import socket
import sys

PR_SET_PDEATHSIG = 1


def main(fd, supervisor):
    """Serve jobs until the supervisor closes the socket; returns only in a forked child, with its job."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != supervisor:
        os._exit(1)  # the supervisor died before the signal was set
    channel = socket.socket(fileno=fd)
    sys.stdout.flush()
    sys.stderr.flush()
    channel.send(b"{}")  # started: what its start printed, if anything, is written
    me = os.getpid()
    while True:
        message, fds, _, _ = channel.recvmsg(1 << 20, socket.CMSG_SPACE(2 * 4))
        if not message:
            os._exit(0)  # the supervisor is gone or done
        job = json.loads(message)
        pipes = _descriptors(fds)
        sys.stdout.flush()
        sys.stderr.flush()
        child = os.fork()
        if child == 0:
            channel.detach()  # closed below by number: the object must not close a reused number later
            _become_step(job, pipes, libc, me)
            return job
        for pipe in pipes:
            os.close(pipe)
        channel.send(json.dumps({"pid": child}).encode())
        _, status, usage = os.wait4(child, 0)
        channel.send(json.dumps({"status": status, "maxrss": usage.ru_maxrss}).encode())


def _descriptors(ancillary):
    import array

    fds = array.array("i")
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    return list(fds)


def _become_step(job, pipes, libc, zygote):
    """The child's set-up, before anything of the step's runs (the zygote's frames are still below)."""
    os.setsid()
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != zygote:
        os._exit(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.dup2(pipes[0], 1)
    os.dup2(pipes[1], 2)
    for fd in [int(name) for name in os.listdir("/proc/self/fd")]:
        if fd > 2:
            try:
                os.close(fd)
            except OSError:
                pass  # the listing's own descriptor, closed already
    os.chdir(job["cwd"])
    os.environ.clear()
    os.environ.update(job["env"])
    if job["memory_limit"]:
        import resource

        resource.setrlimit(resource.RLIMIT_DATA, (job["memory_limit"], job["memory_limit"]))
    if not _runs_here(job["argv"]):
        os.execv(job["argv"][0], job["argv"])  # a new interpreter after all, as Python runs such a script


def _runs_here(argv):
    """Whether ``run`` runs what ``python ARGV...`` would: a module (``-m NAME``), or a script whose
    text is ``__main__`` (not a folder, zip or byte code)."""
    if len(argv) >= 3 and argv[1] == "-m":
        return True
    if len(argv) < 2 or argv[1].startswith("-") or argv[1].endswith((".pyc", ".pyo")):
        return False
    try:
        with open(argv[1], "rb") as handle:
            return handle.read(4) != b"PK\x03\x04"
    except OSError:
        return False  # a folder, or nothing: Python's own message says which


def run(job, fresh, base_path):
    """Run the job's script or module as a new interpreter's ``__main__``; an uncaught exception is
    printed as Python prints it (no frame of this module) and exits 1, and ``SystemExit`` is left
    to Python."""
    import builtins
    import io
    from _frozen_importlib_external import SourceFileLoader

    argv, env = job["argv"], job["env"]
    module = argv[2] if argv[1] == "-m" else None
    if module is not None:  # as `python -m`: the working directory first on the path; runpy sets argv[0]
        script, first, sys.argv = None, os.getcwd(), ["-m", *argv[3:]]
    else:
        # __main__.__file__ and its frames' file name, as Python's: from 3.9 on, joined to the working
        # directory when relative but not normalized ("./x.py" stays "CWD/./x.py")
        script = os.path.join(os.getcwd(), argv[1]) if sys.version_info >= (3, 9) else argv[1]
        first, sys.argv = os.path.dirname(os.path.realpath(script)), argv[1:]
    if hasattr(sys, "orig_argv"):
        sys.orig_argv = list(argv)
    # PYTHONPATH's entries as Python's start takes them (an empty one is the working directory),
    # duplicates then removed by site; the script's folder (or the working directory) before them
    # unless PYTHONSAFEPATH is set.
    entries = [os.path.abspath(p) for p in env["PYTHONPATH"].split(os.pathsep)] if env.get("PYTHONPATH") else []
    entries = list(dict.fromkeys(entries + base_path))
    if not getattr(sys.flags, "safe_path", False):
        entries.insert(0, first)
    sys.path[:] = entries
    _standard_streams(io, unbuffered=bool(env.get("PYTHONUNBUFFERED")))  # as the zygote started: the same value
    for name in [name for name in sys.modules if name not in fresh]:
        del sys.modules[name]
    main = type(sys)("__main__")
    main.__builtins__ = builtins
    if hasattr(sys.modules["__main__"], "__annotations__"):  # Python's __main__ starts with it (to 3.13 at least)
        main.__annotations__ = {}
    sys.modules["__main__"] = main
    if module is not None:
        import runpy

        code = None
    else:
        main.__file__, main.__cached__ = script, None
        main.__loader__ = SourceFileLoader("__main__", script)
        try:
            with open(script, "rb") as handle:
                code = compile(handle.read(), script, "exec", dont_inherit=True)
        except (SyntaxError, ValueError):
            # Python's reader tells it its own way (no encoding declared, a null byte: where, in its
            # words; before 3.11 it stops at a null byte): a new interpreter after all.
            os.execv(argv[0], argv)
    try:
        if code is None:
            runpy._run_module_as_main(module)  # what `python -m` calls: its frames are in tracebacks there too
        else:
            exec(code, main.__dict__)
    except SystemExit:
        raise
    except BaseException as exc:
        tb = exc.__traceback__.tb_next  # from the script's (or runpy's) frame down, as Python prints it
        exc.__traceback__ = tb
        sys.last_type, sys.last_value, sys.last_traceback = type(exc), exc, tb
        sys.excepthook(type(exc), exc, tb)
        if isinstance(exc, KeyboardInterrupt):  # Python ends with SIGINT then
            sys.stdout.flush()
            sys.stderr.flush()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        raise SystemExit(1) from None


def _standard_streams(io, unbuffered):
    """New stdin, stdout and stderr on descriptors 0-2, made as Python makes them at its start."""
    encoding, errors = sys.stdout.encoding, sys.stdout.errors
    streams = []
    for fd, mode, name in ((0, "r", "<stdin>"), (1, "w", "<stdout>"), (2, "w", "<stderr>")):
        raw = io.FileIO(fd, mode, closefd=False)
        raw.name = name
        if mode == "r":
            binary = io.BufferedReader(raw)
        else:
            binary = raw if unbuffered else io.BufferedWriter(raw)
        stream = io.TextIOWrapper(
            binary,
            encoding=encoding,
            errors="backslashreplace" if fd == 2 else errors,
            newline="\n",
            line_buffering=not unbuffered and (fd == 2 or raw.isatty()),
            write_through=unbuffered,
        )
        stream.mode = mode
        streams.append(stream)
    sys.stdin, sys.stdout, sys.stderr = streams
    sys.__stdin__, sys.__stdout__, sys.__stderr__ = streams
