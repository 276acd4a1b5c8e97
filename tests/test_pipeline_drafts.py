"""Pipeline drafts (``PipelineDraft``): a draft keeps the pipeline it was given, as publishing does,
until ``update(pipeline=...)``; its runs take a published pipeline's path (cache and reuse as any
run) and are noted on it; it publishes, is found from another process, and bad input is one line."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys

import pytest

from localpipe import Experiment, Pipeline, PipelineDraft, PipelineParameter, PythonScriptStep
from localpipe.client.publishing import PublishedPipeline
from localpipe.errors import ErrorResponseException, NotFoundError, PipelineValidationError, UserErrorException
from tests.conftest import tables

SCRIPT = "import sys\nprint('{tag}', sys.argv[1:])\n"


def _pipeline(ws, project, tag="v1"):
    project("src/train.py", SCRIPT.format(tag=tag))
    n = PipelineParameter("n", default_value=3)
    step = PythonScriptStep("train.py", name="train", source_directory=str(ws.root / "src"), arguments=["--n", n])
    return Pipeline(ws, [step])


def _run(history, run) -> tuple[str, str]:
    """The run's one step: its status and what it printed (the run that computed it, for a reused step)."""
    assert run.wait_for_completion(show_output=False) == "Completed"
    step = history.runs.details(run.id)["steps"][0]
    source = step["reused_from_run"] if step["status"] == "Reused" else run.id
    return step["status"], (history.layout.step_dir(source, step["name"]) / "stdout.log").read_text()


def _draft(ws, project, **given):
    options = {"name": "trainer", "experiment_name": "drafts", "tags": {"dev": "true"}} | given
    return PipelineDraft.create(ws, _pipeline(ws, project), **options)


def test_a_draft_runs_what_it_captured_until_its_pipeline_is_updated(ws, project, history):
    draft = _draft(ws, project, pipeline_parameters={"n": 5}, continue_on_step_failure=True)
    project("src/train.py", SCRIPT.format(tag="edited"))  # an edit after create changes nothing it runs

    run = draft.submit_run()
    assert run.experiment.name == "drafts"
    assert _run(history, run) == ("Completed", "v1 ['--n', '5']\n")
    assert draft.last_submitted_pipeline_run_id == run.id
    assert PipelineDraft.get(ws, draft.id).last_submitted_pipeline_run_id == run.id
    assert tables(ws).PipelineRun.get_by_id(run.id).continue_on_step_failure is True
    again = draft.submit_run()  # cache and reuse as in any run
    assert _run(history, again) == ("Reused", "v1 ['--n', '5']\n")

    draft.update(pipeline=_pipeline(ws, project, tag="v2"), pipeline_parameters={"n": 8})
    project("src/train.py", SCRIPT.format(tag="later"))
    updated = draft.submit_run()
    assert _run(history, updated) == ("Completed", "v2 ['--n', '8']\n")
    assert PipelineDraft.get(ws, draft.id).last_submitted_pipeline_run_id == updated.id


def test_create_list_get_update_publish_and_delete(ws, project, history):
    draft = _draft(ws, project, description="first", properties={"train": "value"})
    other = _draft(ws, project, name="other", tags={"dev": "false"})
    assert [d.id for d in PipelineDraft.list(ws, tags={"dev": "true"})] == [draft.id]
    assert [d.id for d in PipelineDraft.list(ws)] == [draft.id, other.id]
    assert PipelineDraft.list(ws, tags={"team": "x"}) == []
    got = PipelineDraft.get(ws, id=draft.id)
    assert (got.name, got.description, got.tags, got.properties) == (
        "trainer",
        "first",
        {"dev": "true"},
        {"train": "value"},
    )
    assert got.last_submitted_pipeline_run_id is None and got.get_graph().steps.keys() == {"train"}
    assert str(got) == (
        f"Pipeline(Name: trainer,\nId: {draft.id},\nTags: {{'dev': 'true'}},\nProperties: {{'train': 'value'}},\n"
        "Last Submitted Pipeline Run Id: None)"
    )

    got.update(name="renamed", description="second", experiment_name="elsewhere", tags={"dev": "no"})
    assert (got.name, got.description, got.tags) == ("renamed", "second", {"dev": "no"})
    assert PipelineDraft.list(ws, tags={"dev": "true"}) == []
    assert PipelineDraft.get(ws, draft.id).name == "renamed"
    assert got.submit_run().experiment.name == "elsewhere"

    published = got.publish()
    assert isinstance(published, PublishedPipeline)
    assert (published.name, published.description, published.status) == ("renamed", "second", "Active")
    project("src/train.py", SCRIPT.format(tag="edited"))
    assert _run(history, published.submit(ws, "from-draft", pipeline_parameters={"n": 1}))[1] == "v1 ['--n', '1']\n"

    got.delete()
    with pytest.raises(ErrorResponseException, match=f'^no pipeline draft has id "{draft.id}"') as caught:
        PipelineDraft.get(ws, draft.id)
    assert isinstance(caught.value, NotFoundError)
    with pytest.raises(ErrorResponseException):
        got.submit_run()
    assert [d.id for d in PipelineDraft.list(ws)] == [other.id]
    assert PublishedPipeline.get(ws, published.id).status == "Active"  # what the draft made stays


def test_drafts_made_from_a_published_pipeline_a_run_and_a_draft(ws, project, history):
    pipeline = _pipeline(ws, project)
    published = pipeline.publish("nightly", description="published")
    from_published = PipelineDraft.create(ws, published, experiment_name="copies")
    assert (from_published.name, from_published.description) == ("nightly", "published")
    assert from_published.parent_pipeline_id == published.id
    from_draft = PipelineDraft.create(ws, from_published, name="copy")
    assert (from_draft.name, from_draft.parent_pipeline_draft_id) == ("copy", from_published.id)
    run = Experiment(ws, "plain").submit(pipeline, pipeline_parameters={"n": 4})
    assert run.wait_for_completion(show_output=False) == "Completed"
    from_run = PipelineDraft.create(ws, run)
    assert (from_run.name, from_run.parent_pipeline_run_id) == ("plain", str(run.id))
    assert from_run.parent_step_run_ids == [step.id for step in run.get_steps()] != []
    numbers = [str(step.number) for step in run.get_steps()]  # what a draft made before "12_17" ids kept
    with sqlite3.connect(ws.root / ".localpipe" / "history.db") as conn:
        conn.execute(
            "UPDATE pipeline_draft SET parent_step_run_ids = ? WHERE draft_id = ?", (json.dumps(numbers), from_run.id)
        )
    conn.close()
    assert PipelineDraft.get(ws, from_run.id).parent_step_run_ids == from_run.parent_step_run_ids

    project("src/train.py", SCRIPT.format(tag="edited"))
    assert _run(history, from_draft.submit_run())[1] == "v1 ['--n', '3']\n"
    assert _run(history, from_run.submit_run())[1] == "v1 ['--n', '4']\n"  # a run's draft runs with its values
    from_run.update(pipeline_parameters={"n": 9})
    with pytest.raises(
        UserErrorException, match=r'^pipeline draft "plain" was made from a run .* "n" cannot be changed'
    ):
        from_run.submit_run()


def test_experiment_submit_runs_a_draft_in_that_experiment(ws, project, history):
    draft = _draft(ws, project)
    run = Experiment(ws, "chosen").submit(draft, tags={"why": "test"})
    assert run.experiment.name == "chosen" and run.get_tags()["why"] == "test"
    assert _run(history, run)[1] == "v1 ['--n', '3']\n"
    assert PipelineDraft.get(ws, draft.id).last_submitted_pipeline_run_id == run.id


def test_a_new_process_finds_the_draft_and_gc_keeps_its_sources(ws, project, history, localpipe):
    draft = _draft(ws, project)
    project("src/train.py", SCRIPT.format(tag="edited"))
    assert localpipe("gc", "--keep-last", "0", check=True).returncode == 0
    script = (
        "import sys\nfrom localpipe import PipelineDraft, Workspace\n"
        "ws = Workspace.from_config()\nd = PipelineDraft.get(ws, sys.argv[1])\n"
        "print(d.name, d.submit_run().wait_for_completion(show_output=False))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script, draft.id], cwd=ws.root, capture_output=True, text=True, timeout=120
    )
    assert proc.stdout.strip() == "trainer Completed", proc.stderr
    run_id = PipelineDraft.get(ws, draft.id).last_submitted_pipeline_run_id
    assert "v1 ['--n', '3']" in (history.layout.step_dir(run_id, "train") / "stdout.log").read_text()
    listing = localpipe("drafts", check=True).stdout
    assert draft.id in listing and "trainer" in listing and "drafts" in listing and str(run_id) in listing


def _objects(ws) -> list:
    return sorted((ws.root / ".localpipe" / "objects").rglob("*"))


def test_bad_input_is_one_line_and_records_nothing(ws, project):
    pipeline = _pipeline(ws, project)
    kept = _objects(ws)
    kinds = "Pipeline, PublishedPipeline, PipelineDraft, or PipelineRun"
    with pytest.raises(ValueError, match=f"^pipeline should be of type {kinds}, not str: pass the Pipeline to draft$"):
        PipelineDraft.create(ws, "train.py", name="d", experiment_name="e")
    with pytest.raises(ValueError, match="^experiment_name can not be None: pass experiment_name='...'"):
        PipelineDraft.create(ws, pipeline, name="d")
    unknown = r'^parameter "epochs" is not a parameter of pipeline draft "d" \(its parameters: n\)$'
    with pytest.raises(UserErrorException, match=unknown):
        PipelineDraft.create(ws, pipeline, name="d", experiment_name="e", pipeline_parameters={"epochs": 2})
    with pytest.raises(PipelineValidationError, match='parameter "n"'):
        PipelineDraft.create(ws, pipeline, name="d", experiment_name="e", pipeline_parameters={"n": "many"})
    assert PipelineDraft.list(ws) == [] and _objects(ws) == kept  # nothing kept for a refusal
    draft = PipelineDraft.create(ws, pipeline, name="d", experiment_name="e")
    assert _objects(ws) != kept  # what a draft keeps is in the store
    with pytest.raises(PipelineValidationError, match='parameter "n"'):
        draft.update(pipeline=pipeline, pipeline_parameters={"n": "many"})
    with pytest.raises(ValueError, match="^pipeline should be of type Pipeline, not PublishedPipeline"):
        draft.update(pipeline=pipeline.publish("p"))
    with pytest.raises(UserErrorException, match=unknown):
        draft.update(pipeline_parameters={"epochs": 2})
    assert PipelineDraft.get(ws, draft.id).name == "d"
    with pytest.raises(ErrorResponseException, match='^no pipeline draft has id "nope"'):
        PipelineDraft.get(ws, "nope")


def test_a_history_db_of_the_release_before_gains_the_drafts_table(ws, project):
    """A file written before migration 0015 (no pipeline_draft table) is brought up when opened."""
    from localpipe.state.history import History
    from localpipe.state.layout import Layout
    from localpipe.state.schema import MIGRATION_NAMES, SCHEMA_VERSION

    path = ws.root / ".localpipe" / "history.db"
    drafts = MIGRATION_NAMES.index("0015_pipeline_drafts")
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TABLE pipeline_draft")
        conn.execute("DELETE FROM migration WHERE name >= ?", (MIGRATION_NAMES[drafts],))
        conn.execute(f"PRAGMA user_version = {drafts}")
    conn.close()
    history = History(Layout.of(ws.root / ".localpipe"))  # opened anew, not the process's shared one
    assert history.drafts.drafts() == []
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert [r[0] for r in conn.execute("SELECT name FROM migration")] == list(MIGRATION_NAMES)
    conn.close()
