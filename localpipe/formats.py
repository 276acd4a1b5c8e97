"""How times, durations and sizes are written for people: the commands' tables and the studio's pages."""

from __future__ import annotations

import time
from datetime import datetime


def clock(timestamp: float | None) -> str:
    return datetime.fromtimestamp(timestamp).strftime("%Y-%m-%d %H:%M:%S") if timestamp else "-"


def duration(start: float | None, end: float | None = None) -> str:
    """From ``start`` to ``end`` (to now while it goes on): ``4.2s``, ``3m07s``, ``2h05m``."""
    if not start:
        return "-"
    seconds = (end or time.time()) - start
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, seconds = divmod(int(seconds), 60)
    return f"{minutes}m{seconds:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def size(nbytes: int | None) -> str:
    if nbytes is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if nbytes < 1024 or unit == "GiB":
            return f"{nbytes:.0f} {unit}" if unit == "B" else f"{nbytes:.1f} {unit}"
        nbytes /= 1024
    return f"{nbytes:.1f} TiB"


def number(value) -> str:
    """A metric's value for people (``:g``); an int beyond a float's range in the same notation."""
    try:
        return f"{value:g}"
    except OverflowError:
        from decimal import Decimal  # here, not above: only such a value needs it

        return format(Decimal(value), ".6g")
