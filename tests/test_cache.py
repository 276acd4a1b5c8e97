"""Reuse decisions end to end: what reruns, what is reused, and the reason given for each."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap

from localpipe import Dataset, Pipeline, PipelineData, PipelineParameter, PythonScriptStep
from localpipe.state.store import ObjectStore
from localpipe.status import RunStatus
from tests.conftest import tables

COPY = """
import sys, shutil, os
src, dst = sys.argv[1], sys.argv[2]
with open(os.path.join(src, "data.txt")) as f:
    text = f.read()
with open(os.path.join(dst, "data.txt"), "w") as f:
    f.write(text + "{tag}\\n")
"""

SOURCE = """
import sys, os
value = os.environ.get("AML_PARAMETER_p", "")
with open(os.path.join(sys.argv[1], "data.txt"), "w") as f:
    f.write("a{extra}" + value + "\\n")
"""


def chain(ws, project, param=None):
    """a -> b -> c, and an independent d; b and c copy their input and append a tag.

    The scripts are written on the first call only, so that a test can edit them in between.
    """
    if not (ws.root / "src/a/a.py").exists():
        project("src/a/a.py", SOURCE.format(extra=""))
        project("src/b/b.py", COPY.format(tag="b"))
        project("src/c/c.py", COPY.format(tag="c"))
        project("src/d/d.py", SOURCE.format(extra="d"))
    out_a, out_b, out_c, out_d = (PipelineData(n) for n in ("out_a", "out_b", "out_c", "out_d"))
    root = ws.root / "src"
    a = PythonScriptStep("a.py", name="a", source_directory=root / "a", arguments=[out_a])
    b = PythonScriptStep("b.py", name="b", source_directory=root / "b", arguments=[out_a.as_input(), out_b])
    c = PythonScriptStep("c.py", name="c", source_directory=root / "c", arguments=[out_b.as_input(), out_c])
    d = PythonScriptStep(
        "d.py",
        name="d",
        source_directory=root / "d",
        arguments=[out_d],
        params={"p": param} if param is not None else None,
    )
    return Pipeline(ws, [c, d])


def statuses(steps):
    return {name: step["status"] for name, step in steps.items()}


def test_first_run_completes_and_second_reuses_everything(ws, project, run_pipeline):
    run1, status, steps = run_pipeline(chain(ws, project))
    assert status is RunStatus.COMPLETED
    assert statuses(steps) == dict.fromkeys("abcd", "Completed")
    assert {s["reason"] for s in steps.values()} == {"runs: no earlier run"}

    run2, status, steps = run_pipeline(chain(ws, project))
    assert status is RunStatus.COMPLETED
    assert statuses(steps) == dict.fromkeys("abcd", "Reused")
    assert steps["b"]["reason"] == f'reused from run {run1} (step "b")'
    assert steps["b"]["reused_from_run"] == run1
    assert steps["c"]["outputs"]  # a reused step still lists its outputs


def test_editing_one_script_reruns_it_and_its_dependants_only(ws, project, run_pipeline):
    run_pipeline(chain(ws, project))
    project("src/b/b.py", COPY.format(tag="B"))
    _, _, steps = run_pipeline(chain(ws, project))
    assert statuses(steps) == {"a": "Reused", "b": "Completed", "c": "Completed", "d": "Reused"}
    assert steps["b"]["reason"] == "runs: source changed (b.py)"
    assert steps["c"]["reason"] == 'runs: input "out_b" changed'


def test_comment_only_edit_reruns_the_step_but_reuses_consumers(ws, project, run_pipeline):
    run_pipeline(chain(ws, project))
    project("src/a/a.py", "# a comment that changes nothing the step writes\n" + SOURCE.format(extra=""))
    _, _, steps = run_pipeline(chain(ws, project))
    assert statuses(steps) == {"a": "Completed", "b": "Reused", "c": "Reused", "d": "Reused"}
    assert steps["a"]["reason"] == "runs: source changed (a.py)"


def test_new_file_in_source_directory_is_named_in_the_reason(ws, project, run_pipeline):
    run_pipeline(chain(ws, project))
    project("src/b/helpers/io.py", "X = 1\n")
    _, _, steps = run_pipeline(chain(ws, project))
    assert steps["b"]["reason"] == "runs: source changed (helpers/io.py)"


def test_changing_a_parameter_reruns_exactly_the_steps_that_use_it(ws, project, run_pipeline):
    lr = PipelineParameter("lr", default_value=0.1)
    run_pipeline(chain(ws, project, param=lr))
    _, _, steps = run_pipeline(chain(ws, project, param=lr), parameters={"lr": 0.5})
    assert statuses(steps) == {"a": "Reused", "b": "Reused", "c": "Reused", "d": "Completed"}
    assert steps["d"]["reason"] == 'runs: parameter "lr" changed'
    # the override reached the script as AML_PARAMETER_p
    out = ObjectStore(ws.state_dir / "objects").path(steps["d"]["outputs"]["out_d"]) / "data.txt"
    assert out.read_text() == "ad0.5\n"


def test_a_table_read_otherwise_reruns_its_step(ws, project, run_pipeline):
    """How a TabularDataset is read (take, skip, a separator, ...) is part of the key: its files'
    digest alone reused take(10)'s run for take(20), which then read 10 rows."""
    project("data/rows.csv", "x\n" + "".join(f"{i}\n" for i in range(30)))
    project("src/count.py", "from azureml.core import Run\nrows = Run.get_context().input_datasets['rows']\n"
            "print('rows', len(rows.to_pandas_dataframe()))\n")  # fmt: skip
    table = Dataset.Tabular.from_delimited_files(str(ws.root / "data" / "rows.csv"))

    def count(dataset) -> tuple[str, str, str]:
        read = dataset.as_named_input("rows")
        step = PythonScriptStep("count.py", name="count", source_directory=str(ws.root / "src"), inputs=[read])
        run_id, _, steps = run_pipeline(Pipeline(ws, [step]))
        log = ws.state_dir / "runs" / str(run_id) / "count" / "stdout.log"
        return steps["count"]["status"], steps["count"]["reason"], log.read_text() if log.exists() else ""

    assert count(table.take(10)) == ("Completed", "runs: no earlier run", "rows 10\n")
    assert count(table.take(10))[0] == "Reused"
    assert count(table.take(20)) == (
        "Completed",
        'runs: input "rows" is read otherwise (take, skip, separator, columns, ...)',
        "rows 20\n",
    )
    assert count(table.take(20))[0] == "Reused"
    assert count(table.skip(5))[:2] == (
        "Completed",
        'runs: input "rows" is read otherwise (take, skip, separator, columns, ...)',
    )


def test_a_key_that_kept_no_table_options_says_the_input_is_now_read_as_a_table():
    """A key of before tables were keyed, or of a step that read those files otherwise."""
    from localpipe.plan.keys import what_changed

    before = {"key_version": 2, "inputs": {"rows": "digest"}}
    now = {**before, "input_tables": {"rows": {"separator": ",", "transforms": [["take", 10]]}}}
    assert what_changed(now, before, []) == 'input "rows" is read as a table'


def test_deleting_a_cached_output_makes_its_step_run_again(ws, project, run_pipeline):
    run1, _, steps = run_pipeline(chain(ws, project))
    ObjectStore(ws.state_dir / "objects").remove(steps["a"]["outputs"]["out_a"])
    _, _, steps = run_pipeline(chain(ws, project))
    assert steps["a"]["status"] == "Completed"
    assert steps["a"]["reason"] == f'runs: outputs of run {run1} (step "a") are missing from the store'
    assert ObjectStore(ws.state_dir / "objects").has(steps["a"]["outputs"]["out_a"])
    assert steps["b"]["status"] == "Reused"  # same bytes again


def test_allow_reuse_false_always_runs(ws, project, run_pipeline):
    project("src/x/x.py", "print('hi')\n")
    step = PythonScriptStep("x.py", name="x", source_directory=ws.root / "src/x", allow_reuse=False)
    run_pipeline(Pipeline(ws, [step]))
    _, _, steps = run_pipeline(Pipeline(ws, [step]))
    assert steps["x"]["status"] == "Completed"
    assert steps["x"]["reason"] == "runs: allow_reuse=False"


def test_regenerate_outputs_runs_everything_and_replaces_the_cache_entries(ws, project, run_pipeline):
    run_pipeline(chain(ws, project))
    run2, _, steps = run_pipeline(chain(ws, project), regenerate_outputs=True)
    assert statuses(steps) == dict.fromkeys("abcd", "Completed")
    assert steps["a"]["reason"] == "runs: regenerate_outputs=True"
    _, _, steps = run_pipeline(chain(ws, project))
    assert steps["a"]["reason"] == f'reused from run {run2} (step "a")'


def test_renaming_a_step_does_not_rerun_it(ws, project, run_pipeline):
    project("src/x/x.py", "print('hi')\n")
    run1, _, _ = run_pipeline(Pipeline(ws, [PythonScriptStep("x.py", name="old", source_directory=ws.root / "src/x")]))
    _, _, steps = run_pipeline(Pipeline(ws, [PythonScriptStep("x.py", name="new", source_directory=ws.root / "src/x")]))
    assert steps["new"]["reason"] == f'reused from run {run1} (step "old")'


def test_ignored_files_do_not_change_the_key(ws, project, run_pipeline):
    project("src/x/x.py", "print('hi')\n")
    project("src/x/.amlignore", "scratch/\n*.log\n")
    project("src/x/notes.log", "one\n")
    step = lambda: PythonScriptStep("x.py", name="x", source_directory=ws.root / "src/x")  # noqa: E731
    run_pipeline(Pipeline(ws, [step()]))
    project("src/x/notes.log", "two\n")
    project("src/x/scratch/tmp.txt", "anything\n")
    _, _, steps = run_pipeline(Pipeline(ws, [step()]))
    assert steps["x"]["status"] == "Reused"


def test_a_script_its_ignore_rules_leave_out_is_refused_before_anything_is_recorded(ws, project, localpipe):
    # It failed at run time ("can't open file"): the snapshot the step runs in leaves it out.
    project("src/x/x.py", "print('hi')\n")
    project("src/x/.amlignore", "*.py\n")
    project("pipeline.py", """
        from azureml.core import Workspace
        from azureml.pipeline.core import Pipeline
        from azureml.pipeline.steps import PythonScriptStep
        pipeline = Pipeline(Workspace.from_config(), [PythonScriptStep("x.py", name="x", source_directory="src/x")])
    """)  # fmt: skip
    refused = localpipe("submit", "pipeline.py")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert refused.stderr.startswith(
        'error: the pipeline is invalid: step "x": its script "x.py" is left out of its source directory by the '
        "ignore rules"
    )
    assert localpipe("runs", "--json", check=True).stdout.strip() == "[]"  # nothing recorded


def test_an_editors_swap_and_backup_files_do_not_change_the_key(ws, project, run_pipeline):
    # vim's .x.py.swp exists while the file is open: a submission then, and one after, reran the step.
    project("src/x/x.py", "print('hi')\n")
    step = lambda: PythonScriptStep("x.py", name="x", source_directory=ws.root / "src/x")  # noqa: E731
    run_pipeline(Pipeline(ws, [step()]))
    for name in (".x.py.swp", ".x.py.swo", "x.py~"):
        project(f"src/x/{name}", "editor state\n")
    _, _, steps = run_pipeline(Pipeline(ws, [step()]))
    assert steps["x"]["status"] == "Reused"


def test_gitignore_applies_without_amlignore_and_localpipeignore_adds(ws, project, run_pipeline):
    project("src/x/x.py", "print('hi')\n")
    project("src/x/.gitignore", "*.tmp\n")
    project("src/x/.localpipeignore", "data/\n")
    step = lambda: PythonScriptStep("x.py", name="x", source_directory=ws.root / "src/x")  # noqa: E731
    run_pipeline(Pipeline(ws, [step()]))
    project("src/x/a.tmp", "1\n")
    project("src/x/data/big.bin", "2\n")
    _, _, steps = run_pipeline(Pipeline(ws, [step()]))
    assert steps["x"]["status"] == "Reused"
    project("src/x/kept.txt", "3\n")
    _, _, steps = run_pipeline(Pipeline(ws, [step()]))
    assert steps["x"]["reason"] == "runs: source changed (kept.txt)"


def test_amlignore_replaces_gitignore(ws, project, run_pipeline):
    project("src/x/x.py", "print('hi')\n")
    project("src/x/.gitignore", "*.tmp\n")
    project("src/x/.amlignore", "*.log\n")
    step = lambda: PythonScriptStep("x.py", name="x", source_directory=ws.root / "src/x")  # noqa: E731
    run_pipeline(Pipeline(ws, [step()]))
    project("src/x/a.tmp", "1\n")
    _, _, steps = run_pipeline(Pipeline(ws, [step()]))
    assert steps["x"]["reason"] == "runs: source changed (a.tmp)"


def test_the_step_runs_from_a_snapshot_of_exactly_the_hashed_files(ws, project, run_pipeline):
    project(
        "src/x/x.py",
        """
        import os, sys
        with open(os.path.join(sys.argv[1], "listing.txt"), "w") as f:
            f.write(os.getcwd() + "\\n" + ",".join(sorted(os.listdir("."))))
    """,
    )
    project("src/x/keep.txt", "k\n")
    project("src/x/skip.log", "s\n")
    project("src/x/.amlignore", "*.log\n")
    out = PipelineData("out")
    _, _, steps = run_pipeline(
        Pipeline(ws, [PythonScriptStep("x.py", name="x", source_directory=ws.root / "src/x", arguments=[out])])
    )
    listing = (ObjectStore(ws.state_dir / "objects").path(steps["x"]["outputs"]["out"]) / "listing.txt").read_text()
    cwd, files = listing.split("\n")
    assert cwd != str(ws.root / "src/x") and cwd.startswith(str(ws.state_dir))
    assert files == ".amlignore,keep.txt,x.py"


def test_the_default_ignore_rules_answer_as_pathspec_does():
    """A folder without ignore files is matched without pathspec (DefaultIgnoreRules): on every
    path of up to three names drawn from the default patterns' names and their near misses, as a
    file and as a folder, the answer is pathspec's."""
    import itertools

    import pathspec

    from localpipe.content.hashing import DEFAULT_IGNORES, DefaultIgnoreRules, ignore_spec

    spec, rules = pathspec.GitIgnoreSpec.from_lines(DEFAULT_IGNORES), DefaultIgnoreRules()
    names = [
        "a",
        "__pycache__",
        "x.pyc",
        ".pyc",
        ".git",
        ".localpipe",
        ".ipynb_checkpoints",
        "pyc",
        "a.pyc.txt",
        "b.py",
    ]
    paths = ["/".join(parts) + end for depth in (1, 2, 3) for parts in itertools.product(names, repeat=depth)
             for end in ("", "/")]  # fmt: skip
    differing = [p for p in paths if spec.match_file(p) != rules.match_file(p)]
    assert not differing, differing[:10]
    assert sum(map(rules.match_file, paths)) > len(paths) / 3  # the default patterns match many of them
    assert isinstance(ignore_spec("/nonexistent-folder"), DefaultIgnoreRules)


def test_a_source_edited_between_hashing_and_copying_keys_the_step_by_what_it_ran(ws, history, project, run_pipeline):
    from localpipe.engine.submit import prepare_run, run_prepared

    script = "import sys, os\nopen(os.path.join(sys.argv[1], 'v.txt'), 'w').write({!r})\n"
    project("src/v/v.py", script.format("1"))

    def pipeline():
        return Pipeline(
            ws,
            [PythonScriptStep("v.py", name="v", source_directory=ws.root / "src/v", arguments=[PipelineData("out")])],
        )

    prepared = prepare_run(history, pipeline(), "test")  # hashes the source as it is now
    project("src/v/v.py", script.format("2"))  # ... and the step copies it as it is then
    assert run_prepared(history, prepared) is RunStatus.COMPLETED
    m = tables(ws)
    ran = m.StepRun.get(m.StepRun.run == prepared.run_id)
    assert ran.snapshot != prepared.sources["v"].digest
    assert m.CacheKey.get_by_id(ran.cache_key).components["source"] == ran.snapshot
    assert m.CacheEntry.get_by_id(ran.cache_key).step_run_id == ran.id

    _, _, steps = run_pipeline(pipeline())  # the source as it ran: reused
    assert steps["v"]["status"] == "Reused" and steps["v"]["reused_from_run"] == prepared.run_id


def test_a_source_file_deleted_between_hashing_and_copying_is_not_copied(ws, history, project, run_pipeline):
    """Defect (watchrev review): a file of the source deleted after the run was submitted (an
    editor's temporary file, a helper removed while an upstream step ran) failed the step:
    "could not prepare the step folder: [Errno 2] No such file or directory". An edited file
    was copied as it was then; a deleted one is now left out the same way, and the step keyed by
    what it ran."""
    from localpipe.engine.submit import prepare_run, run_prepared

    project(
        "src/v/v.py",
        "import sys, os\nopen(os.path.join(sys.argv[1], 'ls.txt'), 'w').write(str(sorted(os.listdir('.'))))\n",
    )
    project("src/v/4913", "vim's test file\n")

    def pipeline():
        return Pipeline(
            ws,
            [PythonScriptStep("v.py", name="v", source_directory=ws.root / "src/v", arguments=[PipelineData("out")])],
        )

    prepared = prepare_run(history, pipeline(), "test")  # hashes the source with 4913 in it
    (ws.root / "src/v/4913").unlink()  # ... and it is gone when the step starts
    assert run_prepared(history, prepared) is RunStatus.COMPLETED
    m = tables(ws)
    ran = m.StepRun.get(m.StepRun.run == prepared.run_id)
    assert ran.snapshot != prepared.sources["v"].digest
    assert m.CacheKey.get_by_id(ran.cache_key).components["source"] == ran.snapshot
    listing = ObjectStore(ws.state_dir / "objects").path(m.StepOutput.get(m.StepOutput.step_run == ran.id).digest)
    assert (listing / "ls.txt").read_text() == "['v.py']"

    _, _, steps = run_pipeline(pipeline())  # the source as it ran: reused
    assert steps["v"]["status"] == "Reused" and steps["v"]["reused_from_run"] == prepared.run_id


def test_outputs_in_the_store_are_read_only_and_consumers_read_them_in_place(ws, project, run_pipeline):
    project("src/w/w.py", "import sys, os\nopen(os.path.join(sys.argv[1], 'f.txt'), 'w').write('x')\n")
    project(
        "src/r/r.py",
        """
        import sys, os
        path = sys.argv[1]
        result = "not tried"
        if os.geteuid() != 0:  # root ignores permission bits
            try:
                open(os.path.join(path, "f.txt"), "w").write("overwrite")
                result = "writable"
            except OSError:
                result = "read-only"
        open(os.path.join(sys.argv[2], "r.txt"), "w").write(path + "\\n" + result)
    """,
    )
    data, result = PipelineData("data"), PipelineData("result")
    w = PythonScriptStep("w.py", name="w", source_directory=ws.root / "src/w", arguments=[data])
    r = PythonScriptStep("r.py", name="r", source_directory=ws.root / "src/r", arguments=[data.as_input(), result])
    _, _, steps = run_pipeline(Pipeline(ws, [r]))
    store = ObjectStore(ws.state_dir / "objects")
    path, verdict = (store.path(steps["r"]["outputs"]["result"]) / "r.txt").read_text().split("\n")
    assert path == str(store.path(steps["w"]["outputs"]["data"]))
    assert verdict == ("read-only" if os.geteuid() != 0 else "not tried")
    assert not os.stat(os.path.join(path, "f.txt")).st_mode & 0o222
    assert (store.path(steps["w"]["outputs"]["data"]) / "f.txt").read_text() == "x"


def test_an_output_file_with_set_id_bits_is_stored_without_them(ws, project, run_pipeline):
    """A step's set-user-ID (or set-group-ID) file kept those bits in the store: an executable a
    step run as root wrote would run as root for whoever ran it from .localpipe/objects."""
    project(
        "src/w/w.py",
        """
        import os, sys
        for name, mode in (("suid", 0o4755), ("sgid", 0o2750), ("plain", 0o644)):
            path = os.path.join(sys.argv[1], name)
            open(path, "w").write("#!/bin/sh\\n")
            os.chmod(path, mode)
        """,
    )
    data = PipelineData("data")
    w = PythonScriptStep("w.py", name="w", source_directory=ws.root / "src/w", arguments=[data])
    _, status, steps = run_pipeline(Pipeline(ws, [w]))
    assert status == "Completed", steps["w"]
    stored = ObjectStore(ws.state_dir / "objects").path(steps["w"]["outputs"]["data"])
    modes = {name: stat.S_IMODE(os.stat(stored / name).st_mode) for name in ("suid", "sgid", "plain")}
    assert modes == {"suid": 0o555, "sgid": 0o550, "plain": 0o444}


def test_a_failed_step_leaves_no_cache_entry_and_no_output(ws, project, run_pipeline):
    project(
        "src/x/x.py",
        """
        import sys, os
        open(os.path.join(sys.argv[1], "partial.txt"), "w").write("half")
        sys.exit("boom")
    """,
    )
    out = PipelineData("out")
    _, status, steps = run_pipeline(
        Pipeline(ws, [PythonScriptStep("x.py", name="x", source_directory=ws.root / "src/x", arguments=[out])])
    )
    assert status is RunStatus.FAILED
    m = tables(ws)
    assert m.CacheEntry.select().count() == 0
    assert m.StepOutput.select().count() == 0
    assert not any((ws.state_dir / "objects").iterdir())


def test_a_file_truncated_while_it_is_hashed_does_not_kill_the_process(tmp_path):
    """Defect (watchrev review): files of 1 MiB and more were hashed through mmap, and a file
    truncated meanwhile (rewritten in place: an editor's save with backupcopy=yes, a program
    rewriting a dataset's CSV, `> file`) killed the hashing process with SIGBUS: `localpipe
    watch` or a submission died at once, exit status 135, with no word. Five tries in a child
    process, each truncating a 256 MiB sparse file 10 ms into its hashing."""
    script = textwrap.dedent(f"""
        import os, threading, time
        from localpipe.content.hashing import hash_file
        path = {str(tmp_path / "big.bin")!r}
        for _ in range(5):
            with open(path, "wb") as handle:
                handle.truncate(256 << 20)
            cut = threading.Timer(0.01, lambda: open(path, "r+b").truncate(0))
            cut.start()
            hash_file(path)
            cut.join()
        print("survived")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout.strip()) == (0, "survived"), done.stderr[-2000:]
