"""A run's metrics, read from history.db with sqlite3 alone.

`localpipe metrics` on a run of 100,000 values must answer in well under a second, and most of
that is the process starting: importing the ORM (peewee) alone costs about 70 ms. So these
queries are plain SQL on a plain connection, and the ORM is imported only when the file must
be migrated first (or is not a history file at all), through ``History.open`` as everywhere else.
Functions take the workspace's ``Layout``.
"""

from __future__ import annotations

import json
import math
import sqlite3

from localpipe.errors import NotFoundError
from localpipe.state.schema import SCHEMA_VERSION

# What ``Run.get_context()`` logs as rows of the metric table (tags and properties go on the step
# run instead). The last four are Azure ML's JSON charts (``log_confusion_matrix`` and the like).
KINDS = ("scalar", "list", "row", "table", "image", "confusion_matrix", "accuracy_table", "residuals", "predictions")
# The KIND column of `localpipe metrics` fits the common kinds; a chart's longer kind pushes its value.
KIND_WIDTH = max(len(kind) for kind in KINDS[:5])


_connections: dict[str, sqlite3.Connection] = {}


def connect(layout) -> sqlite3.Connection:
    """A connection to the workspace's history.db (a ``Layout``'s), whose schema is this localpipe's."""
    path = str(layout.history)
    connection = _connections.get(path)
    if connection is None:
        version = None
        if layout.state_dir.is_dir():
            connection = sqlite3.connect(path, check_same_thread=False)
            connection.execute("PRAGMA busy_timeout = 10000")
            try:
                version = connection.execute("PRAGMA user_version").fetchone()[0]
            except sqlite3.DatabaseError:
                pass
        if version != SCHEMA_VERSION:
            from localpipe.state.db import open_database

            open_database(layout).db.close()  # migrates the file, or raises the error that says what is wrong
        _connections[path] = connection
    return connection


def close_all() -> None:
    for connection in _connections.values():
        connection.close()
    _connections.clear()


def run_number(run_id) -> int:
    """``run_id`` (an int or its text) as a number; NotFoundError says what run ids look like."""
    if step := step_run_numbers(run_id):  # before int(), which reads "12_17" as 1217
        raise NotFoundError(
            f'"{run_id}" is the id of a step run of run {step[0]}: give the run\'s, {step[0]} '
            f'(`localpipe show {step[0]}` lists its steps), or find the step run with Run.get(ws, "{run_id}")'
        )
    try:
        number = None if "_" in str(run_id) else int(run_id)
    except (TypeError, ValueError):
        number = None
    if number is None or number < 0:
        raise NotFoundError(f'"{run_id}" is not a run id: run ids are numbers; see `localpipe runs`') from None
    if number >= 1 << 63:  # SQLite's integers end there: a bigger one is no run's
        raise NotFoundError(f"run {run_id} does not exist: run ids are below 2**63; see `localpipe runs`")
    return number


# The run_kind of a model version a step run registered (its run_id is then the step run's number).
STEP_KIND = "step"


def step_run_id(pipeline_run: int, step_run: int) -> str:
    """A step run's id as the SDK hands it out, ``"12_17"``: its pipeline run's number, then its own.
    Step runs are numbered apart from pipeline runs, so the number alone (17) is also a pipeline
    run's id, and ``Run.get(ws, id)`` could not tell which was meant."""
    return f"{pipeline_run}_{step_run}"


def step_run_numbers(run_id) -> tuple[int, int] | None:
    """(pipeline run, step run) of a step run's id (``step_run_id``); None for any other id."""
    run, mark, step = str(run_id).partition("_")
    if mark and run.isascii() and run.isdigit() and step.isascii() and step.isdigit():
        return int(run), int(step)
    return None


def missing_run(root, number: int) -> NotFoundError:
    return NotFoundError(f"run {number} does not exist in {root}: see `localpipe runs` for the run ids")


def missing_step(number: int, name: str, names: list[str]) -> NotFoundError:
    return NotFoundError(f'run {number} has no step "{name}" (its steps: {", ".join(names)})')


def metric_sources(layout, run_id, step: str | None = None) -> dict[int, str]:
    """Step run holding the metrics -> step name: a reused step shows those of the run it reused."""
    connection = connect(layout)
    number = run_number(run_id)
    if connection.execute('SELECT 1 FROM "pipeline_run" WHERE "id" = ?', [number]).fetchone() is None:
        raise missing_run(layout.root, number)
    steps = connection.execute(
        'SELECT "id", "name", "reused_from_id" FROM "step_run" WHERE "run_id" = ? ORDER BY "id"', [number]
    ).fetchall()
    if step is not None:
        chosen = [row for row in steps if row[1] == step]
        if not chosen:
            raise missing_step(number, step, [row[1] for row in steps])
        steps = chosen
    return {reused_from or step_run_id: name for step_run_id, name, reused_from in steps}


def metrics(layout, run_id, step: str | None = None) -> list[dict]:
    """Every metric of a run (or of one of its steps), in the order logged.

    A reused step shows the metrics of the step run it reused: they describe the same outputs.
    """
    query = _MetricsQuery(layout, run_id, step)
    statement = query.rows("n.step, m.name, m.kind, m.value, m.logged_at")
    found = [row for part in query.parts for row in query.connection.execute(statement, [*query.params, *part])]
    return [{"step": r[0], "name": r[1], "kind": r[2], "value": json.loads(r[3]), "logged_at": r[4]} for r in found]


def metrics_text(
    layout,
    run_id,
    step: str | None = None,
    as_json: bool = False,
    headers: tuple[str, str, str, str] = ("STEP", "NAME", "KIND", "VALUE"),
) -> str:
    """The metrics of ``metrics()`` as printable text (a table, or a JSON list), made by SQLite
    itself: a run may hold 100,000 values, too many to format one by one in Python."""
    query = _MetricsQuery(layout, run_id, step)
    if as_json:
        # Spliced in as they are: the value is stored as JSON, the kind is one of the ingester's
        # words, the time a finite REAL (written with the 17 digits that read back the same
        # float); only the metric's name needs SQLite's quoting.
        # A value holding NaN or an infinity (stored as Python writes them) is rewritten, with null
        # for those numbers, which JSON lacks: asked of the few values that hold an N or an I at all.
        query.connection.create_function("strict_json", 1, _strict_json, deterministic=True)
        params = [value for step_run_id, name in query.sources.items() for value in (step_run_id, json.dumps(name))]
        line = (
            """printf('{"kind": "%s", "logged_at": %!.17g, "name": %s, "step": %s, "value": %s}',"""
            " m.kind, m.logged_at, json_quote(m.name), n.step,"
            " CASE WHEN m.value GLOB '*[NI]*' THEN strict_json(m.value) ELSE m.value END)"
        )
        text = query.joined(line, ",\n", params)
        return f"[\n{text}\n]" if text else "[]"
    widths = [
        max(len(h), longest)
        for h, longest in zip(  # the value column, the last, is not padded
            headers, (max(map(len, query.sources.values())), query.longest_name(), KIND_WIDTH)
        )
    ]
    value = "CASE WHEN length(m.value) > 60 THEN substr(m.value, 1, 57) || '...' ELSE m.value END"
    line = f"printf('%!-*s  %!-*s  %!-*s  %s', {widths[0]}, n.step, {widths[1]}, m.name, {widths[2]}, m.kind, {value})"
    text = query.joined(line, "\n", query.params)
    return "  ".join(h.ljust(w) for h, w in zip(headers, widths)) + "  " + headers[3] + "\n" + text if text else ""


def _strict_json(text: str) -> str:
    def finite(value):
        if isinstance(value, float):
            return value if math.isfinite(value) else None
        if isinstance(value, list):
            return [finite(item) for item in value]
        if isinstance(value, dict):
            return {key: finite(item) for key, item in value.items()}
        return value

    return json.dumps(finite(json.loads(text)))


class _MetricsQuery:
    """The metrics of a run's step runs, read in parts of the metric table.

    Each part is a range of ids, read along the table itself (by rowid, already in logging
    order) rather than through the step_run_id index: the "+" keeps SQLite from that index,
    whose row-by-row lookups and re-sort by id cost about twice the scan. A step run logs while
    it runs, so its rows sit close together; a reused step's rows may be far older, so each step
    run gives its own range.
    """

    _SOURCE = ' FROM "metric" m JOIN names n ON n.id = +m."step_run_id" WHERE m."id" BETWEEN ? AND ?'

    def __init__(self, layout, run_id, step: str | None):
        self.sources = metric_sources(layout, run_id, step)
        self.connection = connect(layout)
        self.params = [value for pair in self.sources.items() for value in pair]
        self.names = f"WITH names(id, step) AS (VALUES {', '.join('(?, ?)' for _ in self.sources)}) "
        self.parts = self._parts()

    def rows(self, columns: str) -> str:
        """The statement selecting ``columns`` of a part's rows (``?``: the names' pairs, then the part)."""
        return f'{self.names}SELECT {columns}{self._SOURCE} ORDER BY m."id"'

    def joined(self, line: str, separator: str, params: list) -> str:
        """Every row as ``line``, joined by ``separator``: strings made by SQLite."""
        statement = f"SELECT group_concat(line, ?) FROM ({self.rows(f'{line} AS line')})"
        texts = (self.connection.execute(statement, [separator, *params, *part]).fetchone()[0] for part in self.parts)
        return separator.join(text for text in texts if text)

    def longest_name(self) -> int:
        """The length of the longest metric name, found by skipping along the (step run, name)
        index from one distinct name to the next rather than reading every row."""
        longest = 0
        for step_run_id in self.sources:
            found = self.connection.execute(
                'WITH RECURSIVE names(name) AS (SELECT min("name") FROM "metric" WHERE "step_run_id" = ?1 '
                'UNION ALL SELECT (SELECT min("name") FROM "metric" WHERE "step_run_id" = ?1 AND "name" > names.name) '
                "FROM names WHERE name IS NOT NULL) SELECT max(length(name)) FROM names",
                [step_run_id],
            ).fetchone()[0]
            longest = max(longest, found or 0)
        return longest

    def _parts(self) -> list[tuple[int, int]]:
        """The disjoint id ranges, in order, that hold the step runs' metrics."""
        spans = []
        for step_run_id in self.sources:
            # Two subqueries, as SQLite answers a lone min() or max() from the index in one step.
            first, last = self.connection.execute(
                'SELECT (SELECT min("id") FROM "metric" WHERE "step_run_id" = ?1), '
                '(SELECT max("id") FROM "metric" WHERE "step_run_id" = ?1)',
                [step_run_id],
            ).fetchone()
            if first is not None:
                spans.append((first, last))
        merged: list[tuple[int, int]] = []
        for first, last in sorted(spans):
            if merged and first <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(merged[-1][1], last))
            else:
                merged.append((first, last))
        return merged
