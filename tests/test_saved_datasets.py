"""Saved datasets' lifecycle: `localpipe gc` forgets the definitions no kept run, published pipeline
or draft names, a moved workspace still finds the files a definition names inside it, and an
unregistered version's copy stays while a definition that reads it is kept (docs/history-db.md)."""

from __future__ import annotations

import shutil
import time

import pytest

from localpipe import Dataset, Pipeline, PipelineDraft, PythonScriptStep, Workspace
from localpipe.errors import UserErrorException
from localpipe.state.gc import collect, plan_gc
from localpipe.state.history import close_all
from tests.conftest import tables

SEE = "import os, sys\nfor path in sys.argv[1:]:\n    print(sorted(os.listdir(path)))\n"


def _pipeline(ws, *datasets) -> Pipeline:
    arguments = [dataset.as_named_input(f"in{i}").as_mount() for i, dataset in enumerate(datasets)]
    step = PythonScriptStep("see.py", name="see", source_directory=str(ws.root / "src"), arguments=arguments)
    return Pipeline(ws, [step])


def _files(ws, project, name: str):
    project(f"{name}/{name}.txt", name)
    return Dataset.File.from_files(str(ws.root / name))


def _saved(ws) -> dict[str, dict]:
    t = tables(ws).SavedDataset
    return dict(t.select(t.saved_id, t.definition).tuples())


def _age_saved(ws) -> None:
    """Saved over an hour ago: gc leaves younger ones to the submission that may be saving them."""
    tables(ws).SavedDataset.update(created_at=time.time() - 7200).execute()


def test_gc_forgets_the_saved_datasets_nothing_kept_names(ws, project, run_pipeline, invoke):
    project("src/see.py", SEE)
    forgotten, ran, published, drafted, young = (_files(ws, project, n) for n in ("a", "b", "c", "d", "e"))
    assert run_pipeline(_pipeline(ws, forgotten))[1] == "Completed"
    assert run_pipeline(_pipeline(ws, ran))[1] == "Completed"
    _pipeline(ws, published).publish("published")
    PipelineDraft.create(ws, _pipeline(ws, drafted), name="draft", experiment_name="drafts")
    ids = [dataset.definition_id() for dataset in (forgotten, ran, published, drafted)]
    assert set(_saved(ws)) == set(ids)
    _age_saved(ws)
    _pipeline(ws, young).publish("young")  # saved now: kept although what names it goes below
    tables(ws).PublishedPipeline.delete().where(tables(ws).PublishedPipeline.name == "young").execute()

    result = invoke("gc", "--keep-last", "1")  # forgets the run naming ids[0], whose hour starts now
    assert result.exit_code == 0 and "1 run forgotten" in result.output and "saved dataset" not in result.output
    assert set(_saved(ws)) == {*ids, young.definition_id()}
    t = tables(ws).SavedDataset
    t.update(created_at=time.time() - 7200).where(t.saved_id != young.definition_id()).execute()  # an hour on

    dry = invoke("gc", "--keep-last", "1", "--dry-run")
    assert f"would forget saved dataset {ids[0]}\n" in dry.output and dry.output.count("saved dataset") == 2
    assert set(_saved(ws)) == {*ids, young.definition_id()}
    result = invoke("gc", "--keep-last", "1")
    assert result.exit_code == 0 and "1 saved dataset forgotten" in result.output
    assert set(_saved(ws)) == {*ids[1:], young.definition_id()}
    with pytest.raises(UserErrorException, match=f'Cannot find dataset with id "{ids[0]}"'):
        Dataset.get_by_id(ws, ids[0])
    assert [Dataset.get_by_id(ws, i).to_path() for i in ids[1:]] == [["/b.txt"], ["/c.txt"], ["/d.txt"]]


def test_a_submission_naming_a_saved_dataset_by_id_saves_it_again(ws, project, run_pipeline, history):
    """A dataset found by its id and submitted again is saved again (its time is now): gc, which leaves
    a row saved within the hour, cannot forget it before the run naming it is recorded. The lookup
    itself writes nothing: it never waits for the write lock a scheduler or gc holds."""
    import sqlite3

    project("src/see.py", SEE)
    dataset = _files(ws, project, "a")
    assert run_pipeline(_pipeline(ws, dataset))[1] == "Completed"
    _age_saved(ws)
    writer = sqlite3.connect(history.layout.history, isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # held as a scheduler's wave holds it
    try:
        asked = time.monotonic()
        found = Dataset.get_by_id(ws, dataset.id)
        assert time.monotonic() - asked < 5  # a write would wait busy_timeout (10 s), then fail
    finally:
        writer.execute("ROLLBACK")
        writer.close()
    t = tables(ws).SavedDataset
    assert [c < time.time() - 3600 for (c,) in t.select(t.created_at).tuples()] == [True]  # not saved again
    started = time.time()
    assert run_pipeline(_pipeline(ws, found))[1] == "Completed"
    t = tables(ws).SavedDataset
    assert [(i, c >= started) for i, c in t.select(t.saved_id, t.created_at).tuples()] == [(dataset.id, True)]


def test_a_moved_workspace_finds_the_files_its_saved_datasets_name_inside_it(ws, project, run_pipeline, tmp_path):
    project("src/see.py", SEE)
    inside = _files(ws, project, "data")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "o.txt").write_text("o")
    outside = Dataset.File.from_files(str(tmp_path / "outside"))
    run_id, status, _ = run_pipeline(_pipeline(ws, inside, outside), experiment="moving")
    assert status == "Completed"
    ids = inside.definition_id(), outside.definition_id()
    assert _saved(ws)[ids[0]]["paths"] == ["data"]  # relative to the workspace, as stored
    assert _saved(ws)[ids[1]]["paths"] == [str(tmp_path / "outside")]

    close_all()
    moved = tmp_path / "moved"
    shutil.move(ws.root, moved)
    there = Workspace.from_config(str(moved))
    found = Dataset.get_by_id(there, ids[0])
    assert found.paths == (str(moved / "data"),) and found.id == ids[0]
    assert open(found.files()[0]).read() == "data"
    assert Dataset.get_by_id(there, ids[1]).paths == (str(tmp_path / "outside"),)
    from localpipe import Experiment, PipelineRun

    step = PipelineRun(Experiment(there, "moving"), run_id).find_step_run("see")[0]
    consumed = [d["dataset"] for d in step.get_details()["inputDatasets"]]
    assert [(d.id, d.paths) for d in consumed] == [(ids[0], (str(moved / "data"),)), (ids[1], outside.paths)]


def _unregistered_version(ws, project, run_pipeline) -> str:
    """The id of a dataset version a run used, unregistered since, saved over an hour ago."""
    project("src/see.py", SEE)
    registered = _files(ws, project, "data").register(ws, "data")
    assert run_pipeline(_pipeline(ws, registered))[1] == "Completed"
    version_id = registered.id
    registered.unregister_all_versions()
    _age_saved(ws)
    return version_id


def test_an_unregistered_versions_copy_stays_while_a_kept_run_names_it(ws, project, run_pipeline, history):
    version_id = _unregistered_version(ws, project, run_pipeline)

    collect(history, plan_gc(history))  # every run kept: the run names the version's id
    found = Dataset.get_by_id(ws, version_id)
    assert found.to_path() == ["/data.txt"] and open(found.files()[0]).read() == "data"

    result = collect(history, plan_gc(history, older_than=0))  # forgets the run: the dataset's hour starts
    assert (result.runs_forgotten, result.saved_datasets_removed, result.objects_removed) == (1, 0, 0)
    assert open(Dataset.get_by_id(ws, version_id).files()[0]).read() == "data"
    _age_saved(ws)  # an hour on
    result = collect(history, plan_gc(history, older_than=0))
    assert (result.runs_forgotten, result.saved_datasets_removed, result.objects_removed) == (0, 1, 1)
    with pytest.raises(UserErrorException, match="Cannot find dataset with id"):
        Dataset.get_by_id(ws, version_id)


def test_gc_between_get_by_id_and_the_submission_keeps_the_unregistered_versions_copy(
    ws, project, run_pipeline, history
):
    """gc keeps a saved dataset for an hour after it forgot the last run naming it: 8 submitters racing
    `localpipe gc`, one that found it just before gc forgot its only run was refused ("path ... does
    not exist")."""
    version_id = _unregistered_version(ws, project, run_pipeline)
    found = Dataset.get_by_id(ws, version_id)  # held by the submitter...
    result = collect(history, plan_gc(history, older_than=0))  # ...while gc forgets the run naming it
    assert (result.runs_forgotten, result.saved_datasets_removed) == (1, 0)
    assert run_pipeline(_pipeline(ws, found))[1] == "Completed"


def test_a_saved_definition_whose_copy_is_gone_fails_in_one_line_naming_its_id(ws, history):
    """A workspace collected before gc kept these copies: one line, not a later FileNotFoundError."""
    gone = history.layout.objects / "ab" / ("ab" + "0" * 62) / "data"
    history.datasets.save("5a7ed-1d", {"kind": "file", "paths": [str(gone)], "root": None, "partition_format": None})
    with pytest.raises(UserErrorException) as raised:
        Dataset.get_by_id(ws, "5a7ed-1d")
    message = str(raised.value)
    assert message.startswith('dataset "5a7ed-1d" is an unregistered version whose copy in the object store is gone')
    assert "register its files again" in message and "\n" not in message


def test_a_submission_gives_a_dataset_its_id_once_however_many_steps_consume_it(ws, project, run_pipeline, monkeypatch):
    """Planning names an unregistered dataset's id in each input that consumes it, and the submission
    saves it under that id: its definition is hashed once for all of them."""
    from localpipe.sdk.data.datasets import FileDataset

    project("src/see.py", SEE)
    dataset = _files(ws, project, "a")
    made = []
    definition = FileDataset.definition
    monkeypatch.setattr(FileDataset, "definition", lambda self: made.append(1) or definition(self))
    steps = [
        PythonScriptStep("see.py", name=name, source_directory=str(ws.root / "src"),
                         arguments=[dataset.as_named_input(name).as_mount()])
        for name in ("one", "two", "three")
    ]  # fmt: skip
    assert run_pipeline(Pipeline(ws, steps))[1] == "Completed"
    assert dataset.id == dataset.definition_id() and set(_saved(ws)) == {dataset.id}
    assert len(made) == 2  # hashed for its id once, and saved once


@pytest.mark.parametrize("what", ["dataset", "model"])
def test_a_registration_whose_files_a_gc_removed_after_their_commit_commits_them_again(
    ws, project, history, monkeypatch, what
):
    """The copy is committed before the transaction that records the version; a gc in between
    (the object unreferenced yet) removes it. A dataset was then recorded over a missing tree (its
    files() empty); now each registration finds the object gone in its transaction and commits
    again, as a model's did. The gc is stood in for by the store's own removal at that moment."""
    from localpipe import Model

    project("data/rows.csv", "x\n1\n")
    records = history.datasets if what == "dataset" else history.models
    commit, removed = records._commit_copy, []

    def commit_then_collected(*args):
        committed = commit(*args)
        if not removed:
            removed.append(records.store.remove(committed[0]))
        return committed

    monkeypatch.setattr(records, "_commit_copy", commit_then_collected)
    if what == "dataset":
        Dataset.File.from_files(str(ws.root / "data" / "rows.csv")).register(ws, "rows")
        assert removed and [open(f).read() for f in Dataset.get_by_name(ws, "rows").files()] == ["x\n1\n"]
    else:
        model = Model.register(ws, str(ws.root / "data" / "rows.csv"), "rows")
        assert removed and open(Model.get_model_path("rows", model.version, ws)).read() == "x\n1\n"
