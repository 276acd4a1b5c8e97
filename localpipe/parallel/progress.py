"""Where a ParallelRunStep's driver writes its progress and per-batch timings in the step's
folder, and the one line that describes the progress (``localpipe submit``'s view, ``show``)."""

from __future__ import annotations

import json
from pathlib import Path

from localpipe.parallel_files import FOLDER, PROGRESS, read_text


def read(step_dir: Path) -> dict | None:
    """The last progress the driver wrote in ``step_dir``, or None (not a ParallelRunStep, not started)."""
    try:
        return json.loads(read_text(Path(step_dir) / FOLDER / PROGRESS))
    except (OSError, ValueError):
        return None


def describe(progress: dict | None, running: bool = True) -> str | None:
    """``37/100 mini-batches done (10 reused), 1 failed, 62 left, 2000 items/s, about 12s left``; the
    time left only while the step is ``running`` (a driver killed never wrote that it ended)."""
    if not progress:
        return None
    text = f"{progress['done']}/{progress['total']} mini-batches done"
    if progress.get("reused"):
        text += f" ({progress['reused']} reused)"
    text += f", {progress['failed']} failed, {progress['left']} left, {progress['items_per_second']:g} items/s"
    if running and progress.get("left") and progress.get("eta_seconds") is not None:
        text += f", about {progress['eta_seconds']:.0f}s left"
    return text
