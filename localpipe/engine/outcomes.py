"""Readable reasons for how a step ended, and the tail of its log for `localpipe show`."""

from __future__ import annotations

import os
import shutil
import signal as signals
import stat

from localpipe.engine.executors import Exit

LOG_TAIL_LINES = 20
DISK_FULL_BYTES = 1 << 20  # free space under which a failed step's disk is called full


def describe_exit(event: Exit, memory_limit: int | None = None, tail: str | None = None) -> str:
    """A readable reason for a non-zero exit: the code, or the signal by name, and a memory limit hit."""
    if event.signal:
        try:
            sig = signals.Signals(event.signal).name
        except ValueError:
            sig = str(event.signal)
        reason = f"killed by signal {event.signal} ({sig})"
    else:
        reason = f"exit code {event.exit_code}"
    if memory_limit and (
        event.oom_killed
        or "MemoryError" in (tail or "")
        or "Cannot allocate memory" in (tail or "")
        or (event.peak_memory or 0) >= 0.9 * memory_limit
    ):
        reason += f": it ran out of its memory limit ({memory_limit / 2**20:.0f} MiB, memory_per_step)"
    return reason


REASON_FILE = "reason.txt"  # a step's own reason for failing, in its folder (a ParallelRunStep's driver)


def own_reason(folder) -> str:
    """``: REASON`` when the step wrote why it failed to its folder's reason.txt, else nothing."""
    try:
        text = (folder.root / REASON_FILE).read_text().strip()
    except OSError:
        return ""
    return f": {text}" if text else ""


def disk_full_note(folder, event: Exit) -> str:
    """``: the disk holding FOLDER is full ...`` when it is (almost no space left, the step's own
    error says so, or its log could not be written for want of space), so that a step that failed
    for it says so; else what kept its log from being written, if anything; else nothing."""
    try:
        free = shutil.disk_usage(folder.root).free
    except OSError:
        free = None
    said = f"{event.log_error or ''}\n{log_tail(folder) or ''}"
    if (free is not None and free < DISK_FULL_BYTES) or "No space left on device" in said:
        return f": the disk holding {folder.root} is full: free space (localpipe gc, localpipe du) and submit again"
    return f": its log could not be written ({event.log_error})" if event.log_error else ""


def log_tail(folder, lines: int = LOG_TAIL_LINES) -> str | None:
    """The last ``lines`` lines of the step's stderr, else of its stdout."""
    for path in (folder.stderr, folder.stdout):
        try:
            with open(path, "rb") as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - 64 * 1024))
                text = handle.read().decode("utf-8", errors="replace")
        except OSError:
            continue
        if text.strip():
            return "\n".join(text.rstrip().splitlines()[-lines:])
    return None


def read_own(path: str | os.PathLike, offset: int = 0) -> bytes:
    """What the file at ``path``, a resolved path in a step's folder, holds from ``offset``; OSError
    for a link, a path under one, or anything but a regular file. The step (a container's too) can
    put a link in place of its metrics file, its logs or its folder, and what the file it points to
    holds would be recorded as its metrics or shown as its output; or a FIFO, whose open would wait
    for ever for a writer."""
    path = os.fspath(path)
    handle = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO: no wait
    try:
        opened = os.fstat(handle)
        if not stat.S_ISREG(opened.st_mode):
            raise OSError(f"{path} is not a file")
        # Its folder a link now, or when it was opened (then put back: the file there is another).
        if os.path.realpath(path) != path or not os.path.samestat(opened, os.stat(path)):
            raise OSError(f"{path} lies under a link")
        return os.pread(handle, max(0, opened.st_size - offset), offset)
    finally:
        os.close(handle)
