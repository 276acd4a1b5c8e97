"""Moving what steps log into history.db, while they run and when they end.

A step appends one JSON object a line to its own metrics file (``Run.get_context()``), so any
number of steps log without sharing a lock. The scheduler reads each file from where it last
stopped, about once a second while the step runs and once when it ends. A line a killed step
left half-written is skipped, and so is a line the step wrote into the file itself that does not
say what ``Run.get_context()`` says: readers of history.db rely on the kind and the time.
"""

from __future__ import annotations

import json
import math

from localpipe.state.history import History
from localpipe.state.reader import KINDS


class MetricsIngester:
    """Reads every step's metrics file incrementally; one per scheduler."""

    def __init__(self, history: History, now):
        self.history = history
        self.now = now
        self._offsets: dict[str, int] = {}

    def ingest(self, path: str, step_run_id: int, secrets: list[str] = ()) -> int:
        """Record the complete lines added to ``path`` since the last call; returns how many.

        A ``secrets`` value logged (as a name, a value or part of one) is recorded as ``***``.
        """
        offset = self._offsets.get(path, 0)
        try:
            with open(path, "rb") as handle:
                handle.seek(offset)
                data = handle.read()
        except FileNotFoundError:
            return 0
        complete = data.rfind(b"\n") + 1
        if not complete:
            return 0
        self._offsets[path] = offset + complete
        rows, tags, removed, properties = [], {}, [], {}
        for line in data[:complete].splitlines():
            try:
                record = json.loads(line)
                kind, name, value = record["kind"], str(record["name"]), record["value"]
            except (ValueError, TypeError, KeyError):
                continue  # a line cut short by a killed step, or not one of ours
            if kind == "untag":
                tags.pop(name, None)
                removed.append(name)
                continue
            if value is None and kind != "tag":
                continue  # log("n", None), log_image without an image: nothing to keep
            if secrets:
                name, value = mask(name, secrets), mask(value, secrets)
            if kind == "tag":
                if name in removed:
                    removed.remove(name)
                tags[name] = value  # a tag without a value is kept, as None (Run.tag("candidate"))
            elif kind == "property":
                properties.setdefault(name, value)
            elif kind in KINDS:
                logged_at = record.get("time")
                if not isinstance(logged_at, (int, float)) or not math.isfinite(logged_at):
                    logged_at = self.now()
                rows.append({"name": name, "kind": kind, "value": value, "logged_at": logged_at})
        self.history.steps.add_metrics(step_run_id, rows, tags, removed, properties)
        return len(rows) + len(tags) + len(removed) + len(properties)


def mask(value, secrets: list[str]):
    """``value`` (JSON data) with every occurrence of a secret replaced by ``***``, the longest first
    (so a secret holding another is masked whole); a number equal to a secret's is ``"***"``."""
    ordered = sorted(set(secrets), key=len, reverse=True)
    numbers = set()
    for secret in ordered:
        try:
            numbers.add(float(secret))
        except ValueError:
            pass
    return _masked(value, ordered, numbers)


def _masked(value, secrets: list[str], numbers: set[float]):
    if isinstance(value, str):
        for secret in secrets:
            value = value.replace(secret, "***")
        return value
    if isinstance(value, list):
        return [_masked(item, secrets, numbers) for item in value]
    if isinstance(value, dict):
        return {_masked(key, secrets, numbers): _masked(item, secrets, numbers) for key, item in value.items()}
    if isinstance(value, int | float) and not isinstance(value, bool) and value in numbers:
        return "***"
    return value
