"""gc keeps what is referenced, frees the rest, and a step whose output was collected runs again; du adds up."""

from __future__ import annotations

import json
import os
import sqlite3
import time

import pytest

from localpipe import Pipeline, PipelineData, PythonScriptStep
from localpipe.client.workspace import history_of
from localpipe.engine.resources import process_start
from localpipe.errors import UsageError
from localpipe.state.gc import collect, disk_usage, parse_duration, plan_gc, tree_size
from localpipe.state.store import ObjectStore
from localpipe.status import RunStatus
from tests.conftest import tables

WRITE = """
import os, sys
with open(os.path.join(sys.argv[1], "data.txt"), "w") as f:
    f.write({text!r} * 1000)
"""

COPY = """
import os, sys
with open(os.path.join(sys.argv[1], "data.txt")) as f:
    text = f.read()
with open(os.path.join(sys.argv[2], "data.txt"), "w") as f:
    f.write(text + {tag!r} * 500)
"""


def writer(ws, project, name: str, text: str) -> Pipeline:
    """One step ``name`` writing ``text`` a thousand times to its output ``out_<name>``."""
    project(f"src/{name}/{name}.py", WRITE.format(text=text))
    out = PipelineData(f"out_{name}")
    return Pipeline(
        ws, [PythonScriptStep(f"{name}.py", name=name, source_directory=ws.root / "src" / name, arguments=[out])]
    )


def chain(ws, project, tag: str) -> Pipeline:
    """a -> b: a writes, b copies a's output and appends ``tag``."""
    project("src/a/a.py", WRITE.format(text="a"))
    project("src/b/b.py", COPY.format(tag=tag))
    out_a, out_b = PipelineData("out_a"), PipelineData("out_b")
    root = ws.root / "src"
    a = PythonScriptStep("a.py", name="a", source_directory=root / "a", arguments=[out_a])
    b = PythonScriptStep("b.py", name="b", source_directory=root / "b", arguments=[out_a.as_input(), out_b])
    return Pipeline(ws, [a, b])


def stored(ws) -> set[str]:
    return {d for prefix in (ws.state_dir / "objects").iterdir() for d in os.listdir(prefix)}


def digests(steps, name: str) -> set[str]:
    return set(steps[name]["outputs"].values())


def orphan_object(ws, text: str) -> str:
    """Commit a tree that no row references, as a crashed commit would leave one."""
    folder = (ws.state_dir / "tmp") / f"orphan-{text}"
    folder.mkdir()
    (folder / "x.txt").write_text(text * 100)
    return ObjectStore(ws.state_dir / "objects").commit(folder).digest


def assert_consistent(ws) -> None:
    """No row points at a forgotten row, and every cache entry's outputs are in the store."""
    m = tables(ws)
    db = m.StepRun._meta.database
    assert db.execute_sql("PRAGMA foreign_key_check").fetchall() == []
    store = ObjectStore(ws.state_dir / "objects")
    for entry in m.CacheEntry.select():
        outputs = m.StepOutput.select().where(m.StepOutput.step_run == entry.step_run_id)
        assert all(store.has(o.digest) for o in outputs), entry.key
    for out in m.StepOutput.select():
        assert store.has(out.digest), out.digest


def run_ids(ws) -> list[int]:
    m = tables(ws)
    return [r.id for r in m.PipelineRun.select().order_by(m.PipelineRun.id)]


# -- gc with no option ---------------------------------------------------------------------------
def test_gc_without_options_removes_orphans_and_keeps_everything_referenced(ws, project, run_pipeline, invoke):
    run1, status, steps = run_pipeline(chain(ws, project, "b"))
    assert status is RunStatus.COMPLETED
    referenced = digests(steps, "a") | digests(steps, "b")
    orphan = orphan_object(ws, "orphan")
    ((ws.state_dir / "runs") / "99" / "x").mkdir(parents=True)
    ((ws.state_dir / "runs") / "99" / "x" / "stdout.log").write_text("left over\n" * 10)
    ((ws.state_dir / "runs") / "junk.txt").write_text("junk")
    expected = (
        tree_size(ObjectStore(ws.state_dir / "objects").path(orphan))
        + tree_size((ws.state_dir / "runs") / "99")
        + len("junk")
    )

    plan = plan_gc(history_of(ws))
    assert plan.forget_runs == [] and plan.kept_runs == [run1]
    assert set(plan.objects) == {orphan} and set(plan.run_folders) == {"99", "junk.txt"}
    result = invoke("gc")

    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[-1].startswith("freed ")
    assert "1 object, 2 run folders, 0 runs forgotten" in result.output
    assert stored(ws) == referenced
    assert sorted(os.listdir(ws.state_dir / "runs")) == [str(run1)]
    assert run_ids(ws) == [run1]
    assert_consistent(ws)
    assert collect(history_of(ws), plan_gc(history_of(ws))).bytes_freed == 0  # nothing left to free
    assert expected > 0

    _, _, again = run_pipeline(chain(ws, project, "b"))
    assert {s["status"] for s in again.values()} == {"Reused"}


def test_two_collections_at_once_count_what_each_removed(ws, project, run_pipeline):
    """Two `localpipe gc` planned together: what the first removed, the second finds gone and does
    not count (both said they freed the same bytes)."""
    run_pipeline(chain(ws, project, "b"))
    orphan = orphan_object(ws, "orphan")
    ((ws.state_dir / "runs") / "99").mkdir()
    ((ws.state_dir / "runs") / "99" / "stdout.log").write_text("left over\n")
    expected = tree_size(ObjectStore(ws.state_dir / "objects").path(orphan)) + tree_size(ws.state_dir / "runs" / "99")
    history = history_of(ws)
    first_plan, second_plan = plan_gc(history), plan_gc(history)
    first, second = collect(history, first_plan), collect(history, second_plan)
    assert (first.bytes_freed, first.objects_removed, first.run_folders_removed) == (expected, 1, 1)
    assert (second.bytes_freed, second.objects_removed, second.run_folders_removed) == (0, 0, 0)
    assert second.problems == []


def test_a_run_after_the_newest_runs_were_forgotten_gets_an_id_none_had(ws, project, run_pipeline, localpipe):
    """SQLite gives a new row the highest id there is plus one: once gc forgot the newest runs, the
    next run was given their ids, and every saved id, hint or model registration naming them named it."""
    project(
        "reg/r.py",
        "from localpipe import Run\nopen('m.pkl', 'w').write('m')\nRun.get_context().register_model('clf', 'm.pkl')\n",
    )
    project(
        "reg/p.py",
        "from localpipe import Pipeline, PythonScriptStep, Workspace\n"
        "step = PythonScriptStep('r.py', name='register', source_directory='.')\n"
        "pipeline = Pipeline(Workspace.from_config(), [step])\n",
    )
    localpipe("submit", "reg/p.py", check=True)
    run_pipeline(chain(ws, project, "b"))
    steps_before = max(
        step for (_, step) in tables(ws).StepRun.select(tables(ws).StepRun.run, tables(ws).StepRun.id).tuples()
    )
    collect(history_of(ws), plan_gc(history_of(ws), keep_last=0))
    assert run_ids(ws) == []

    run, _, steps = run_pipeline(chain(ws, project, "c"))
    assert run == 3 and min(s["id"] for s in steps.values()) == steps_before + 1
    models = json.loads(localpipe("models", "clf", "--json", check=True).stdout)
    assert models[0]["run_id"] != min(s["id"] for s in steps.values())
    shown = localpipe("show", "1")
    assert shown.returncode == 2 and "run 1 does not exist" in shown.stderr


def test_a_history_db_of_before_0020_keeps_its_ids_and_retires_them_from_then_on(ws, project, run_pipeline):
    from localpipe.state.history import close_all
    from localpipe.state.schema import MIGRATION_NAMES, SCHEMA_VERSION

    run_pipeline(chain(ws, project, "b"))
    close_all()
    with sqlite3.connect(ws.state_dir / "history.db") as conn:  # as localpipe wrote it before 0020
        conn.execute('DROP TRIGGER "pipeline_run_retires_its_ids"')
        conn.execute('DROP TRIGGER "step_run_retires_its_ids"')
        conn.execute('DROP TABLE "retired_id"')
        conn.execute("DELETE FROM migration WHERE name = ?", (MIGRATION_NAMES[-1],))
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION - 1}")
    assert run_ids(ws) == [1]
    collect(history_of(ws), plan_gc(history_of(ws), keep_last=0))
    run, _, _ = run_pipeline(chain(ws, project, "c"))
    assert run == 2


# -- --keep-last ---------------------------------------------------------------------------------
def test_keep_last_forgets_older_runs_and_keeps_the_run_a_kept_run_reused(ws, project, run_pipeline, invoke):
    run1, _, first = run_pipeline(chain(ws, project, "1"))
    run2, _, second = run_pipeline(chain(ws, project, "2"))
    run3, _, third = run_pipeline(chain(ws, project, "3"))
    assert second["a"]["status"] == third["a"]["status"] == "Reused" and third["b"]["status"] == "Completed"
    assert digests(third, "a") == digests(first, "a")

    result = invoke("gc", "--keep-last", "1")

    assert result.exit_code == 0, result.output
    assert f"kept run {run1}: runs {run2}, {run3} reused its steps" not in result.output  # run 2 goes
    assert f"kept run {run1}: run {run3} reused its steps" in result.output
    assert "1 object, 1 run folder, 1 run forgotten" in result.output  # run 2's b, and its folder
    assert run_ids(ws) == [run1, run3]
    assert stored(ws) == digests(first, "a") | digests(first, "b") | digests(third, "b")
    assert sorted(os.listdir(ws.state_dir / "runs")) == [str(run1), str(run3)]
    assert_consistent(ws)
    m = tables(ws)
    assert m.StepRun.select().where(m.StepRun.run == run2).count() == 0
    assert m.StepRun.get(m.StepRun.run == run3, m.StepRun.name == "a").reused_from.run_id == run1

    _, _, fourth = run_pipeline(chain(ws, project, "3"))
    assert {n: s["status"] for n, s in fourth.items()} == {"a": "Reused", "b": "Reused"}
    assert fourth["a"]["reason"] == f'reused from run {run1} (step "a")'


def test_a_step_whose_output_was_collected_runs_again_on_the_next_submit(ws, project, run_pipeline, invoke):
    _, _, first = run_pipeline(writer(ws, project, "a", "x"))
    run2, _, _ = run_pipeline(writer(ws, project, "z", "y"))

    assert invoke("gc", "--keep-last", "1").exit_code == 0
    assert run_ids(ws) == [run2]
    assert not digests(first, "a") & stored(ws)

    run3, status, third = run_pipeline(writer(ws, project, "a", "x"))
    assert run_ids(ws) == [run2, run3]
    assert status is RunStatus.COMPLETED
    assert third["a"]["status"] == "Completed"
    assert "no earlier run" in third["a"]["reason"] or "missing" in third["a"]["reason"]
    assert digests(third, "a") == digests(first, "a") <= stored(ws)
    assert_consistent(ws)


def test_keep_last_counts_runs_per_experiment(ws, project, run_pipeline):
    run1, _, _ = run_pipeline(writer(ws, project, "a", "x"), experiment="one")
    run2, _, _ = run_pipeline(writer(ws, project, "b", "y"), experiment="two")
    run3, _, _ = run_pipeline(writer(ws, project, "a", "x2"), experiment="one")

    plan = plan_gc(history_of(ws), keep_last=1)

    assert plan.forget_runs == [run1] and plan.kept_runs == [run2, run3]


# -- --dry-run -----------------------------------------------------------------------------------
def test_dry_run_removes_nothing_and_reports_the_bytes_a_real_run_frees(ws, project, run_pipeline, invoke):
    run_pipeline(writer(ws, project, "a", "1"))
    run_pipeline(writer(ws, project, "a", "2"))
    orphan_object(ws, "orphan")

    def listing():
        return sorted(
            (p, tree_size(p)) for p in (*(ws.state_dir / "objects").rglob("*"), *(ws.state_dir / "runs").rglob("*"))
        )

    before, runs_before = listing(), run_ids(ws)
    dry = invoke("gc", "--keep-last", "1", "--dry-run")

    assert dry.exit_code == 0, dry.output
    assert listing() == before and run_ids(ws) == runs_before
    assert "would forget run 1" in dry.output
    assert "would remove run folder 1" in dry.output
    summary = dry.output.splitlines()[-1]
    assert summary.startswith("would free ")

    real = invoke("gc", "--keep-last", "1")
    assert real.output.splitlines()[-1] == summary.replace("would free", "freed", 1)


def test_dry_run_and_real_collect_agree_on_bytes(ws, project, run_pipeline):
    run_pipeline(writer(ws, project, "a", "x"))
    run_pipeline(writer(ws, project, "a", "y"))
    dry = collect(history_of(ws), plan_gc(history_of(ws), keep_last=1), dry_run=True)
    real = collect(history_of(ws), plan_gc(history_of(ws), keep_last=1))
    assert dry.bytes_freed == real.bytes_freed > 1000  # the forgotten output alone is 1,000 bytes
    assert (dry.objects_removed, dry.run_folders_removed, dry.runs_forgotten) == (1, 1, 1)
    assert (real.objects_removed, real.run_folders_removed, real.runs_forgotten) == (1, 1, 1)


# -- active runs ---------------------------------------------------------------------------------
def fake_active_run(ws, reuse_from: dict) -> int:
    """A run in status Running, its scheduler alive (this process): step "a" reused ``reuse_from``'s
    output, step "b" is running and writing into its folder."""
    m = tables(ws)
    graph = m.PipelineGraph.create(digest="active-graph", graph={})
    run = m.PipelineRun.create(
        experiment=m.Experiment.get(m.Experiment.name == "test"),
        pipeline=graph,
        status=RunStatus.RUNNING.value,
        scheduler_pid=os.getpid(),
        scheduler_started=process_start(),
        started_at=time.time(),
    )
    a = m.StepRun.create(run=run, name="a", status=RunStatus.REUSED.value)
    m.StepOutput.insert_many(
        [{"step_run": a, "name": n, "digest": d, "size": 0} for n, d in reuse_from.items()]
    ).execute()
    m.StepRun.create(run=run, name="b", status=RunStatus.RUNNING.value)
    outputs = (ws.state_dir / "runs") / str(run.id) / "b" / "outputs" / "out_b"
    outputs.mkdir(parents=True)
    (outputs / "partial.txt").write_text("half written")
    return run.id


def test_an_active_run_and_what_it_uses_are_never_collected(ws, project, run_pipeline, invoke):
    run1, _, first = run_pipeline(chain(ws, project, "1"))
    active = fake_active_run(ws, first["a"]["outputs"])
    just_committed = orphan_object(ws, "committed-by-b")  # b's output, moved in before its row is written

    plan = plan_gc(history_of(ws), keep_last=0)
    assert plan.forget_runs == [run1] and plan.kept_runs == [active] and plan.active_runs == [active]
    assert just_committed in plan.protected_objects and just_committed not in plan.objects
    result = invoke("gc", "--keep-last", "0")

    assert result.exit_code == 0, result.output
    assert run_ids(ws) == [active]
    assert digests(first, "a") | {just_committed} <= stored(ws)
    assert (
        (ws.state_dir / "runs") / str(active) / "b" / "outputs" / "out_b" / "partial.txt"
    ).read_text() == "half written"
    assert not ((ws.state_dir / "runs") / str(run1)).exists()
    assert f"kept active runs {active}" in result.output
    assert_consistent(ws)


def test_collect_checks_again_under_the_lock_for_a_run_that_became_active(ws, project, run_pipeline):
    _, _, first = run_pipeline(writer(ws, project, "a", "x"))
    orphan = orphan_object(ws, "orphan")
    plan = plan_gc(history_of(ws))
    assert set(plan.objects) == {orphan}
    active = fake_active_run(ws, first["a"]["outputs"])  # submitted after the plan, before collect
    m = tables(ws)
    m.PipelineRun.update(submitted_at=time.time() - 100).where(m.PipelineRun.id == active).execute()

    result = collect(history_of(ws), plan)

    assert result.objects_removed == 0 and orphan in stored(ws)
    assert ((ws.state_dir / "runs") / str(active)).is_dir()


# -- --older-than --------------------------------------------------------------------------------
def test_older_than_forgets_only_runs_submitted_before_the_cutoff(ws, project, run_pipeline, invoke):
    old, _, _ = run_pipeline(writer(ws, project, "a", "x"))
    new, _, second = run_pipeline(writer(ws, project, "a", "y"))
    m = tables(ws)
    m.PipelineRun.update(submitted_at=time.time() - 10 * 86400).where(m.PipelineRun.id == old).execute()

    assert plan_gc(history_of(ws), older_than=11 * 86400).forget_runs == []
    assert plan_gc(history_of(ws), older_than=11 * 86400, now=lambda: time.time() + 2 * 86400).forget_runs == [old]
    result = invoke("gc", "--older-than", "7d")

    assert result.exit_code == 0, result.output
    assert run_ids(ws) == [new]
    assert stored(ws) == digests(second, "a")
    assert_consistent(ws)


def test_keep_last_and_older_than_together_keep_what_either_keeps(ws, project, run_pipeline):
    old, _, _ = run_pipeline(writer(ws, project, "a", "x"))
    mid, _, _ = run_pipeline(writer(ws, project, "a", "y"))
    new, _, _ = run_pipeline(writer(ws, project, "a", "z"))
    m = tables(ws)
    m.PipelineRun.update(submitted_at=time.time() - 10 * 86400).where(m.PipelineRun.id == old).execute()
    m.PipelineRun.update(submitted_at=time.time() - 3600).where(m.PipelineRun.id == mid).execute()

    plan = plan_gc(history_of(ws), keep_last=1, older_than=86400)  # the newest run, and the runs of the last day

    assert plan.forget_runs == [old] and plan.kept_runs == [mid, new]


@pytest.mark.parametrize("text, seconds", [("90s", 90), ("30m", 1800), ("12h", 43200), ("7d", 604800), ("1.5h", 5400)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["7", "7x", "d", "-1d", "1 week", ""])
def test_bad_durations_are_usage_errors(text):
    with pytest.raises(UsageError, match="90s, 30m, 12h, 7d"):
        parse_duration(text)


def test_a_bad_duration_exits_2_with_one_line(ws, invoke):
    result = invoke("gc", "--older-than", "7x")
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and '"7x"' in lines[0] and "7d" in lines[0]


# -- links and leftovers -------------------------------------------------------------------------
def test_links_are_removed_never_followed_and_old_tmp_leftovers_go(ws, tmp_path, invoke):
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    os.symlink(outside, (ws.state_dir / "runs") / "link")
    old, fresh = (ws.state_dir / "tmp") / "old-download", (ws.state_dir / "tmp") / "fresh-download"
    for folder in (old, fresh):
        folder.mkdir()
        (folder / "part").write_text("bytes")
    an_hour_and_more = time.time() - 3700
    os.utime(old, (an_hour_and_more, an_hour_and_more))

    result = invoke("gc")

    assert result.exit_code == 0, result.output
    assert (outside / "keep.txt").read_text() == "mine"
    assert not os.path.lexists((ws.state_dir / "runs") / "link")
    assert not old.exists() and fresh.exists()
    assert "1 tmp entry" in result.output
    assert sorted(os.listdir(ws.state_dir / "tmp")) == ["fresh-download"]  # gc's own trash is gone too


# -- du ------------------------------------------------------------------------------------------
def test_du_reports_sizes_that_add_up(ws, project, run_pipeline, invoke):
    run1, _, steps = run_pipeline(chain(ws, project, "b"))
    orphan = orphan_object(ws, "orphan")
    ((ws.state_dir / "runs") / "77").mkdir()
    ((ws.state_dir / "runs") / "77" / "big.log").write_text("z" * 50_000)

    usage = disk_usage(history_of(ws))

    parts = usage["parts"]
    assert usage["total"] == sum(parts.values())
    assert parts["objects"] == tree_size(ws.state_dir / "objects") > 0
    assert parts["runs"] == sum(r["bytes"] for r in usage["runs"]) == tree_size(ws.state_dir / "runs")
    assert parts["history"] > 0
    assert usage["objects"] == len(digests(steps, "a") | digests(steps, "b")) + 1
    assert [r["folder"] for r in usage["runs"]] == ["77", str(run1)]  # largest first
    assert usage["runs"][0]["run"] is None and usage["runs"][1]["status"] == "Completed"
    assert usage["reclaimable"] == tree_size(ObjectStore(ws.state_dir / "objects").path(orphan)) + 50_000

    result = invoke("du")
    assert result.exit_code == 0, result.output
    assert "total" in result.output and "objects/" in result.output and "no run" in result.output
    assert json.loads(invoke("du", "--json").output)["parts"]["objects"] == parts["objects"]


# -- what a kept run reused ----------------------------------------------------------------------
REUSE_PIPELINE = """
from localpipe import Pipeline, PipelineData, PythonScriptStep, Workspace

ws = Workspace.from_config()
prepared, model = PipelineData("prepared"), PipelineData("model")
prep = PythonScriptStep("prep.py", name="prep", source_directory="prep", arguments=[prepared])
train = PythonScriptStep("train.py", name="train", source_directory="train", arguments=[prepared.as_input(), model])
pipeline = Pipeline(ws, [train])
"""

PREP = """
import sys
from localpipe import Run
open(sys.argv[1] + "/rows.txt", "w").write("{rows}")
print("prepared {rows} rows")  # {comment}
Run.get_context().log("rows", {rows})
"""

TRAIN = """
import sys
from localpipe import Run
rows = int(open(sys.argv[1] + "/rows.txt").read())
open(sys.argv[2] + "/model.txt", "w").write(str(rows * {rate}))
print("trained at rate {rate}")
Run.get_context().log("rate", {rate})
"""


def submit_version(localpipe, project, rows: int, rate: int, comment: str = "") -> int:
    """Write prep (``rows``) and train (``rate``), submit, and return the run id."""
    project("proj/prep/prep.py", PREP.format(rows=rows, comment=comment))
    project("proj/train/train.py", TRAIN.format(rate=rate))
    pipeline = project("proj/pipeline.py", REUSE_PIPELINE)
    out = localpipe("submit", pipeline, check=True).stdout
    return int(out.splitlines()[0].split()[1])


def views(localpipe, run_id: int) -> dict[str, str]:
    """Everything the CLI prints about a run: show, logs (the run and each step), metrics."""
    return {
        what: localpipe(*args, check=True).stdout
        for what, args in {
            "show": ("show", run_id),
            "logs": ("logs", run_id),
            "logs prep": ("logs", run_id, "prep"),
            "logs train": ("logs", run_id, "train"),
            "metrics": ("metrics", run_id),
            "metrics json": ("metrics", run_id, "--json"),
        }.items()
    }


def test_gc_keeps_the_runs_whose_steps_kept_runs_reused_and_what_they_print(ws, localpipe, project):
    """Issue 17, item 4: after gc --keep-last, show, logs and metrics of a kept run print what they
    printed before, and a chain of reuses (4 reused train from 3, which reused prep from 1) is kept."""
    run1 = submit_version(localpipe, project, rows=10, rate=1)  # prep and train run
    run2 = submit_version(localpipe, project, rows=10, rate=2)  # train runs, prep reused from 1
    run3 = submit_version(localpipe, project, rows=10, rate=3)  # the same
    # prep edited in a comment only: it runs again with the same output, so train is reused from 3
    run4 = submit_version(localpipe, project, rows=10, rate=3, comment="tidied")
    shown = localpipe("show", run4, check=True).stdout
    assert f'reused from run {run3} (step "train")' in shown and "reused from run 1" not in shown
    assert 'reused from run 1 (step "prep")' in localpipe("show", run3, check=True).stdout
    before = {run: views(localpipe, run) for run in (run3, run4)}
    assert "rate" in before[run4]["metrics"] and "rows" in before[run3]["metrics"]
    assert "prepared 10 rows" in before[run3]["logs prep"] and "trained at rate 3" in before[run4]["logs train"]
    folder2 = tree_size(ws.state_dir / "runs" / str(run2))

    dry = localpipe("gc", "--keep-last", "1", "--dry-run", check=True).stdout
    real = localpipe("gc", "--keep-last", "1", check=True).stdout

    # 4 is kept, 3 because 4 reused its train, 1 because 3 reused its prep; 2 goes
    assert f"kept run {run1}: run {run3} reused its steps\nkept run {run3}: run {run4} reused its steps\n" in real
    assert f"would forget run {run2}\n" in dry and f"would forget run {run1}" not in dry
    assert real.splitlines()[-1] == dry.splitlines()[-1].replace("would free", "freed")
    assert real.splitlines()[-1].endswith(": 1 object, 1 run folder, 1 run forgotten")  # run 2's model
    assert folder2 > 0 and not (ws.state_dir / "runs" / str(run2)).exists()
    assert run_ids(ws) == [run1, run3, run4]
    assert_consistent(ws)
    assert {run: views(localpipe, run) for run in (run3, run4)} == before
    assert localpipe("fsck", check=True).stdout == "checked 3 objects: 0 damaged\n"

    # keep-last 2 now frees nothing more: 3 and 4 are the newest, 1 is still needed
    assert localpipe("gc", "--keep-last", "2", check=True).stdout.endswith(
        "freed 0 B: 0 objects, 0 run folders, 0 runs forgotten\n"
    )
    assert {run: views(localpipe, run) for run in (run3, run4)} == before

    # what the kept runs reused is reused again, from the runs that produced it
    run5 = submit_version(localpipe, project, rows=10, rate=3, comment="tidied")
    show5 = localpipe("show", run5, check=True).stdout
    assert f'reused from run {run4} (step "prep")' in show5 and f'reused from run {run3} (step "train")' in show5


def test_older_than_keeps_a_run_an_unexpired_run_reused(ws, project, run_pipeline):
    run1, _, _ = run_pipeline(chain(ws, project, "1"))
    run2, _, _ = run_pipeline(chain(ws, project, "2"))  # reuses a from run 1
    later = lambda: time.time() + 3600  # noqa: E731
    m = tables(ws)
    m.PipelineRun.update(submitted_at=time.time() - 86400).where(m.PipelineRun.id == run1).execute()

    plan = plan_gc(history_of(ws), older_than=7200, now=later)

    assert plan.forget_runs == [] and plan.kept_runs == [run1, run2] and plan.producers == {run1: [run2]}
