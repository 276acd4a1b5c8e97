"""Moving what steps log into history.db, while they run and when they end.

A step appends one JSON object a line to its own metrics file (``Run.get_context()``), so any
number of steps log without sharing a lock. The scheduler reads each file from where it last
stopped, about once a second while the step runs and once when it ends; a line a killed step
left half-written is skipped.
"""

from __future__ import annotations

import json

from localpipe.state import models as m
from localpipe.state.db import insert_rows


class MetricsIngester:
    """Reads every step's metrics file incrementally; one per scheduler."""

    def __init__(self, db, now):
        self.db = db
        self.now = now
        self._offsets: dict[str, int] = {}

    def ingest(self, path: str, step_run_id: int) -> int:
        """Record the complete lines added to ``path`` since the last call; returns how many."""
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
        rows, tags = [], {}
        for line in data[:complete].splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue  # a line cut short by a killed step
            if record.get("kind") == "tag":
                tags[record["name"]] = record["value"]
            else:
                rows.append({"step_run": step_run_id, "name": record["name"], "kind": record["kind"],
                             "value": record["value"], "logged_at": record.get("time", self.now())})
        with self.db.atomic():
            insert_rows(m.Metric, rows)
            if tags:
                current = m.StepRun.get_by_id(step_run_id).tags or {}
                m.StepRun.update(tags={**current, **tags}).where(m.StepRun.id == step_run_id).execute()
        return len(rows) + len(tags)
