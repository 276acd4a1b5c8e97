"""Reading metrics back: order across interleaved and reused step runs, the three outputs agreeing,
lines of a metrics file that are not metrics, and the read path's own connection to history.db."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time

import pytest

from localpipe import Pipeline, PythonScriptStep
from localpipe.client.workspace import history_of
from localpipe.engine.metrics import MetricsIngester
from localpipe.engine.submit import prepare_run
from localpipe.errors import NotFoundError, StateError
from localpipe.state import reader, schema
from localpipe.state.history import close_all
from localpipe.state.layout import Layout
from tests.conftest import tables

ODD_NAME = 'say "hi"\\ ✓'


def at(ws) -> Layout:
    """Where the read path finds ``ws``'s history.db."""
    return Layout.of(ws.state_dir)


@pytest.fixture
def two_runs(ws, project):
    """Two recorded runs of a two-step pipeline: {(run, step): step run id}; no step is run."""
    project("src/s.py", "pass\n")
    ids = {}
    for run in ("A", "B"):
        steps = [
            PythonScriptStep("s.py", name=name, source_directory=ws.root / "src", arguments=[run])
            for name in ("a", "b")
        ]
        prepared = prepare_run(history_of(ws), Pipeline(ws, steps), "reading")
        m = tables(ws)
        for row in m.StepRun.select().where(m.StepRun.run == prepared.run_id):
            ids[(prepared.run_id, row.name)] = row.id
    return ids


def ingest(ws, step_run_id: int, lines: list[str]) -> int:
    """What the scheduler does with ``lines`` appended to a step's metrics file (here a new file each time)."""
    path = ws.root / f"metrics-{step_run_id}-{len(list(ws.root.glob('metrics-*')))}.jsonl"
    path.write_text("".join(line + "\n" for line in lines))
    return MetricsIngester(history_of(ws), time.time).ingest(str(path), step_run_id)


def record(kind: str, name: str, value, at: float) -> str:
    return json.dumps({"kind": kind, "name": name, "value": value, "time": at})


def test_metrics_of_interleaved_and_reused_step_runs_come_in_logging_order(ws, two_runs):
    run_a, run_b = sorted({run for run, _ in two_runs})
    a_a, a_b, b_b = two_runs[(run_a, "a")], two_runs[(run_a, "b")], two_runs[(run_b, "b")]
    expected = []
    for i in range(30):  # the four step runs log in turns, so every run's ids are interleaved
        for (run_id, step), step_run_id in two_runs.items():
            name = ODD_NAME if i % 7 == 0 else "loss ✓"
            ingest(ws, step_run_id, [record("scalar", name, i + run_id / 10, 1.7e9 + i)])
            if run_id == run_a:
                expected.append(
                    {"step": step, "name": name, "kind": "scalar", "value": i + run_id / 10, "logged_at": 1.7e9 + i}
                )
    ingest(ws, a_a, [record("row", "table", {"epoch": 1, "acc": 0.5}, 1.8e9), record("list", "sizes", [1, 2], 1.8e9)])
    expected += [
        {"step": "a", "name": "table", "kind": "row", "value": {"epoch": 1, "acc": 0.5}, "logged_at": 1.8e9},
        {"step": "a", "name": "sizes", "kind": "list", "value": [1, 2], "logged_at": 1.8e9},
    ]

    assert reader.metrics(at(ws), run_a) == expected
    assert json.loads(reader.metrics_text(at(ws), run_a, as_json=True)) == expected
    table = reader.metrics_text(at(ws), run_a).splitlines()
    assert table[0].split() == ["STEP", "NAME", "KIND", "VALUE"] and len(table) == len(expected) + 1
    name_at, kind_at = table[0].index("NAME"), table[0].index("KIND")
    assert [line[name_at:kind_at].rstrip() for line in table[1:]] == [r["name"] for r in expected]  # aligned
    assert table[1][kind_at:] == f"scalar  {expected[0]['value']}"
    assert table[-1][kind_at:] == "list    [1, 2]"

    # Run B's step "b" reused run A's: it shows A's metrics for "b", in order among B's own "a".
    m = tables(ws)
    m.StepRun.update(reused_from=a_b).where(m.StepRun.id == b_b).execute()
    found = reader.metrics(at(ws), run_b)
    assert [(r["step"], r["value"]) for r in found if r["step"] == "b"] == [
        ("b", r["value"]) for r in expected if r["step"] == "b"
    ]
    assert [r["value"] for r in found if r["step"] == "a"] == [i + run_b / 10 for i in range(30)]
    assert json.loads(reader.metrics_text(at(ws), run_b, as_json=True)) == found
    assert json.loads(reader.metrics_text(at(ws), run_b, "a", as_json=True)) == [r for r in found if r["step"] == "a"]


def test_lines_that_are_not_metrics_are_skipped_and_times_kept_finite(ws, two_runs):
    (run_id, _), step_run_id = next(iter(two_runs.items()))
    count = ingest(
        ws,
        step_run_id,
        [
            record("scalar", "kept", 1, 1.7e9),
            record("bogus", "unknown kind", 2, 1.7e9),
            json.dumps({"kind": "scalar", "value": 3}),  # no name
            json.dumps([1, 2, 3]),  # not an object
            record("scalar", "time as text", 4, "yesterday"),
            '{"kind": "scalar", "name": "time NaN", "value": 5, "time": NaN}',
            '{"kind": "scalar", "name": "cut sho',  # a killed step's last line
            record("scalar", "none", None, 1.7e9),  # log("none", None): crashed the scheduler once
            record("image", "no image", None, 1.7e9),
        ],
    )
    assert count == 3
    found = reader.metrics(at(ws), run_id)
    assert [r["name"] for r in found] == ["kept", "time as text", "time NaN"]
    assert found[0]["logged_at"] == 1.7e9 and all(abs(r["logged_at"] - time.time()) < 60 for r in found[1:])
    assert json.loads(reader.metrics_text(at(ws), run_id, as_json=True)) == found


def test_nan_and_infinities_are_null_in_json_and_kept_elsewhere(ws, two_runs):
    """JSON has no NaN or infinity: `metrics --json` gives null for them (strict parsers refused the
    whole document), the table and the SDK's reading keep them; other values are untouched."""
    import math

    (run_id, _), step_run_id = next(iter(two_runs.items()))
    values = [float("nan"), float("inf"), [1.0, float("-inf")], {"NaN": float("nan"), "x": "Infinity"}, "Name", 2.5]
    ingest(ws, step_run_id, [record("scalar", f"v{i}", value, 1.7e9) for i, value in enumerate(values)])

    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")

    strict = json.loads(reader.metrics_text(at(ws), run_id, as_json=True), parse_constant=refuse)
    assert [row["value"] for row in strict] == [None, None, [1.0, None], {"NaN": None, "x": "Infinity"}, "Name", 2.5]
    kept = [row["value"] for row in reader.metrics(at(ws), run_id)]
    assert math.isnan(kept[0]) and kept[1] == math.inf and kept[2][1] == -math.inf and kept[4:] == ["Name", 2.5]
    assert "nan" in reader.metrics_text(at(ws), run_id).lower()


def test_no_metrics_and_unknown_runs_or_steps(ws, two_runs):
    run_id = next(iter(two_runs))[0]
    assert reader.metrics(at(ws), run_id) == [] and reader.metrics_text(at(ws), run_id) == ""
    assert reader.metrics_text(at(ws), run_id, as_json=True) == "[]"
    with pytest.raises(NotFoundError, match=r"run 99 does not exist in .*: see `localpipe runs`"):
        reader.metrics(at(ws), 99)
    with pytest.raises(NotFoundError, match=r'"x" is not a run id'):
        reader.metrics_text(at(ws), "x")
    with pytest.raises(NotFoundError, match=rf'run {run_id} has no step "c" \(its steps: a, b\)'):
        reader.metrics_text(at(ws), run_id, "c")


def test_the_metrics_command_reads_without_the_orm(ws, two_runs):
    (run_id, _), step_run_id = next(iter(two_runs.items()))
    ingest(ws, step_run_id, [record("scalar", "loss", 0.5, 1.7e9)])
    script = (
        "import sys; from localpipe.cli import cli; code = cli.main(sys.argv[1:], standalone_mode=False); "
        "print('peewee' in sys.modules, code, file=sys.stderr)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, "metrics", str(run_id), "--json"],
        cwd=ws.root,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert json.loads(proc.stdout)[0]["value"] == 0.5
    assert proc.stderr.split() == ["False", "0"]


def test_the_read_path_migrates_an_older_file_and_refuses_a_newer_one(ws, two_runs):
    run_id = next(iter(two_runs))[0]
    close_all()
    history = ws.state_dir / "history.db"
    with sqlite3.connect(history) as conn:
        conn.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION - 1}")  # as the release before wrote it
        conn.execute("DELETE FROM migration WHERE name = ?", [schema.MIGRATION_NAMES[-1]])
    assert reader.metrics(at(ws), run_id) == []
    with sqlite3.connect(history) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == schema.SCHEMA_VERSION
        conn.execute(f"PRAGMA user_version = {schema.SCHEMA_VERSION + 1}")
    close_all()
    with pytest.raises(StateError, match="newer localpipe"):
        reader.metrics(at(ws), run_id)
