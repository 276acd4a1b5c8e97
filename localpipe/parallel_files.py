"""Where ParallelRunStep keeps its files, and the reads and rewrites ``localpipe gc`` makes of them.

In a step's folder, ``parallel_run/``: the driver's progress and per-batch timings, and the record
of what of the per-batch cache its run used. In the workspace's ``parallel-cache/``: one folder
per family, whose journal holds a line per batch result, and the digests files. Standard library
only: the driver (``parallel/``) writes them and ``state/gc.py`` trims them, and neither layer may
import the other.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

FOLDER = "parallel_run"  # in a step's folder
PROGRESS = "progress.json"  # rewritten as batches end: done, failed, left, items per second, time left
TIMINGS = "batches.jsonl"  # one line per try of a batch
RECORD = "cache.json"  # what of the cache the step's run used (for gc)
JOURNAL = "results.jsonl"  # in a family's folder of parallel-cache/
DIGESTS = "digests"  # parallel-cache/'s folder of digests files


def read_text(path: str | os.PathLike) -> str:
    """The text of the regular file at ``path``; OSError for anything else. These files lie in a
    step's folder, where the step (a container's too) may leave a FIFO, whose read would wait for
    ever for a writer: ``show`` and ``gc`` read them for every step."""
    handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with os.fdopen(handle, "rb") as opened:
        if not stat.S_ISREG(os.fstat(handle).st_mode):
            raise OSError(f"{path} is not a file")
        return opened.read().decode()


def read_record(path: Path) -> dict | None:
    try:
        record = json.loads(read_text(path))
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) and isinstance(record.get("family"), str) else None


def needed_lines(folder: Path, keys: set[str]) -> tuple[list[str], int]:
    """The lines of a family's journal that hold the result of one of ``keys`` (one line each),
    and the bytes of the others (results no kept run has, lines cut short, repeats)."""
    try:
        text = read_text(folder / JOURNAL)
    except OSError:
        return [], 0
    kept, seen, dropped = [], set(), 0
    for line in text.splitlines(keepends=True):
        try:
            key = json.loads(line)["key"]
        except (ValueError, KeyError, TypeError):
            key = None
        if key in keys and key not in seen and line.endswith("\n"):
            seen.add(key)
            kept.append(line)
        else:
            dropped += len(line.encode())
    return kept, dropped


def rewrite_journal(folder: Path, lines: list[str]) -> None:
    write_aside(folder / JOURNAL, "".join(lines))


def write_aside(path: Path, text: str, encoding: str | None = None) -> None:
    """Replace ``path`` with ``text`` at once: written beside it, then renamed over it (a reader
    finds the old text or the new, never part of one)."""
    import tempfile  # here: every localpipe command imports this module through `show`'s progress

    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".")
    with os.fdopen(handle, "w", encoding=encoding) as out:
        out.write(text)
    os.replace(temporary, path)
