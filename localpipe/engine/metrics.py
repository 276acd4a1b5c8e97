"""Moving what steps log into history.db, while they run and when they end.

A step appends one JSON object a line to its own metrics file (``Run.get_context()``), so any
number of steps log without sharing a lock. The scheduler reads each file from where it last
stopped, about once a second while the step runs and once when it ends. A line a killed step
left half-written is skipped, and so is a line the step wrote into the file itself that does not
say what ``Run.get_context()`` says: readers of history.db rely on the kind and the time.

A line with ``"run"`` belongs to a child run of the step (``run.child_run()``, ``create_children``):
``"#0"`` is its first child, ``"#0#1"`` that child's second. A ``child`` line records the child
(its number, name and tags), a ``status`` line its ``complete()`` or ``fail()``; the others are
logged on it as on the step.
"""

from __future__ import annotations

import json
import math

from localpipe.engine.outcomes import read_own
from localpipe.errors import NotFoundError
from localpipe.state.history import History
from localpipe.state.reader import KINDS
from localpipe.status import RunStatus


class MetricsIngester:
    """Reads every step's metrics file incrementally; one per scheduler."""

    def __init__(self, history: History, now, observe=None):
        """``observe(step_run_id, rows)`` is told the metric rows each step logs on itself (a sweep's
        early-termination policy reads its trials' primary metric there)."""
        self.history = history
        self.now = now
        self.observe = observe
        self._offsets: dict[str, int] = {}

    def ingest(self, path: str, step_run_id: int, secrets: list[str] = ()) -> int:
        """Record the complete lines added to ``path`` since the last call; returns how many.

        A ``secrets`` value logged (as a name, a value or part of one) is recorded as ``***``.
        """
        offset = self._offsets.get(path, 0)
        try:
            data = read_own(path, offset)
        except OSError:  # not written yet, or a link or a FIFO, which are not read (read_own)
            return 0
        complete = data.rfind(b"\n") + 1
        if not complete:
            return 0
        self._offsets[path] = offset + complete
        batches: dict[str, _Batch] = {}
        statuses: list[tuple[str, str, str | None]] = []
        for line in data[:complete].splitlines():
            try:
                record = json.loads(line)
                kind, name, value = record["kind"], str(record["name"]), record["value"]
                child = str(record.get("run") or "")
            except (ValueError, TypeError, KeyError, AttributeError):
                continue  # a line cut short by a killed step, or not one of ours
            if secrets:
                name, value = mask(name, secrets), mask(value, secrets)
            if kind == "child" and isinstance(value, dict):
                batches.setdefault(child + name, _Batch()).child = value
            elif kind == "status" and value in _CHILD_STATUSES and child:
                statuses.append((child, value, record.get("error")))
            else:
                batches.setdefault(child, _Batch()).add(kind, name, value, record.get("time"), self.now)
        if self.observe is not None and "" in batches:
            self.observe(step_run_id, batches[""].rows)
        ids = {"": step_run_id}
        for child, batch in batches.items():  # a child's line comes before anything logged on it
            if child and batch.child is not None:
                ids[child] = self._record_child(step_run_id, child, batch.child)
        count = 0
        for child, batch in batches.items():
            target = ids.get(child) or self._child_id(step_run_id, child)
            if target is not None:
                self.history.steps.add_metrics(target, batch.rows, batch.tags, batch.removed, batch.properties)
                count += len(batch.rows) + len(batch.tags) + len(batch.removed) + len(batch.properties)
        for child, status, error in statuses:
            target = ids.get(child) or self._child_id(step_run_id, child)
            if target is not None:
                self.history.runs.set_child_status(target, RunStatus(status), str(error) if error else None)
        return count

    def _record_child(self, step_run_id: int, suffix: str, value: dict) -> int:
        parent = step_run_id if suffix.count("#") == 1 else self._child_id(step_run_id, suffix.rsplit("#", 1)[0])
        number = suffix.rsplit("#", 1)[1]
        if parent is None or not number.isdigit():
            return 0
        tags = value.get("tags") if isinstance(value.get("tags"), dict) else None
        name = value.get("display_name")
        child = self.history.runs.add_child(parent, int(number), str(name) if name is not None else None, tags)
        return child["id"]

    def _child_id(self, step_run_id: int, suffix: str) -> int | None:
        """The id of the step's child run ``suffix`` ("#0#1"), once recorded."""
        step = self.history.runs.step_run(step_run_id)
        try:
            return self.history.runs.find_step(step["run"], step["name"] + suffix)["id"]
        except NotFoundError:
            return None


_CHILD_STATUSES = {s.value for s in (RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED)}


class _Batch:
    """What lines added for one run (the step, or one of its children): metric rows, tags, properties."""

    def __init__(self):
        self.rows: list[dict] = []
        self.tags: dict = {}
        self.removed: list[str] = []
        self.properties: dict = {}
        self.child: dict | None = None  # the child's own line: {"display_name", "tags"}

    def add(self, kind: str, name: str, value, logged_at, now) -> None:
        if kind == "untag":
            self.tags.pop(name, None)
            self.removed.append(name)
            return
        if value is None and kind != "tag":
            return  # log("n", None), log_image without an image: nothing to keep
        if kind == "tag":
            if name in self.removed:
                self.removed.remove(name)
            self.tags[name] = value  # a tag without a value is kept, as None (Run.tag("candidate"))
        elif kind == "property":
            self.properties.setdefault(name, value)
        elif kind in KINDS:
            if not isinstance(logged_at, (int, float)) or not math.isfinite(logged_at):
                logged_at = now()
            self.rows.append({"name": name, "kind": kind, "value": value, "logged_at": logged_at})


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
