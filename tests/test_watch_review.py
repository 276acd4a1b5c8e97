"""`localpipe watch` used as a hostile user and editor would (review of 2 Dec 2026): real watchdog
events on real files, real step processes; each test names the defect it caught."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading

from localpipe.watch import Watcher
from tests.conftest import wait_for
from tests.test_watch import run_count, run_done, steps_of


@contextlib.contextmanager
def watching(ws, pipeline: str | os.PathLike = "proj/pipeline.py", first_run: bool = True):
    """A watcher of ``pipeline`` (under the workspace) running in a thread, its first run done
    unless ``first_run`` is False; yields the lines it prints."""
    lines: list[str] = []
    watcher = Watcher(ws, str(ws.root / pipeline), "proj", debounce=0.2, echo=lines.append)
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    try:
        if first_run:
            wait_for(lambda: run_done(ws, 1), what=lambda: f"the first run: {lines}")
        yield lines
    finally:
        watcher.stop()
        thread.join(timeout=30)
    assert not thread.is_alive()


def test_a_source_directory_that_is_the_pipeline_files_folder_is_watched_in_its_subfolders(ws, project):
    """Defect: with source_directory="." (the pipeline file's own folder, a common layout), the
    folder was first watched alone for the pipeline file, and that watch was kept: a save in a
    subfolder (utils/helpers.py) was never seen."""
    project("proj/utils/helpers.py", "X = 1\n")
    project("proj/train.py", "import sys\nsys.path.insert(0, '.')\nfrom utils.helpers import X\nprint(X)\n")
    project(
        "proj/pipeline.py",
        """
        from localpipe import Pipeline, PythonScriptStep, Workspace
        pipeline = Pipeline(Workspace.from_config(), [PythonScriptStep("train.py", name="train", source_directory=".")])
        """,
    )
    with watching(ws) as lines:
        project("proj/utils/helpers.py", "X = 2\n")
        wait_for(lambda: run_done(ws, 2), what=lambda: f"the rerun: {lines}")
    assert steps_of(ws, 2)["train"] == ("Completed", "runs: source changed (utils/helpers.py)")
    assert run_count(ws) == 2


TWO_STEPS = """
from localpipe import Pipeline, PythonScriptStep, Workspace
a = PythonScriptStep("a.py", name="a", source_directory="a")
b = PythonScriptStep("b.py", name="b", source_directory="b")
pipeline = Pipeline(Workspace.from_config(), STEPS)
"""


def two_steps(project, steps: str = "[a, b]") -> None:
    project("proj/pipeline.py", TWO_STEPS.replace("STEPS", steps))


def test_an_editors_swap_file_removed_after_the_first_run_fails_nothing(ws, project):
    """Defect: a file open in an editor when the watcher started (its lock file hashed with the tree;
    vim's .swp, since ignored by default, was the one seen) and then closed was dropped as an editor
    file, so the watcher's tree kept listing it: every later run of the step failed ("could not
    prepare the step folder: No such file ... .a.py.swp")."""
    project("proj/a/a.py", "print('a')\n")
    project("proj/a/.#a.py", "emacs's lock file\n")
    project("proj/b/b.py", "print('b')\n")
    two_steps(project)
    with watching(ws) as lines:
        (ws.root / "proj/a/.#a.py").unlink()  # the editor quits
        project("proj/a/a.py", "print('a, edited')\n")
        wait_for(lambda: run_done(ws, 2), what=lambda: f"the rerun: {lines}")
    assert steps_of(ws, 2)["a"] == ("Completed", "runs: source changed (.#a.py, a.py)")


def test_a_source_edited_while_its_step_is_out_of_the_pipeline_is_not_reused_stale(ws, project):
    """Defect: a save in the source of a step taken out of the pipeline file was not noted (no
    step read it then), so when the step was put back its tree was the one of before the save
    and its old outputs were reused for a source they were not made from."""
    project("proj/a/a.py", "print('a')\n")
    project("proj/b/b.py", "print('b')\n")
    two_steps(project)
    with watching(ws) as lines:
        two_steps(project, "[a]")
        wait_for(lambda: run_done(ws, 2), what=lambda: f"the run without b: {lines}")
        project("proj/b/b.py", "print('b, edited')\n")
        two_steps(project)
        wait_for(lambda: run_done(ws, 3), what=lambda: f"the run with b again: {lines}")
    assert steps_of(ws, 3)["b"] == ("Completed", "runs: source changed (b.py)")


def test_a_source_directory_deleted_and_made_again_is_still_watched(ws, project):
    """Defect: a watch follows the folder it was made on, and ends with it: once a step's source
    directory was deleted and made again (a `git checkout` of a branch without it and back, a
    `rm -rf` and a copy), no save in it was ever seen again."""
    project("proj/a/a.py", "print('a')\n")
    project("proj/b/b.py", "print('b')\n")
    two_steps(project)
    with watching(ws) as lines:
        shutil.rmtree(ws.root / "proj/b")
        wait_for(lambda: any("does not exist" in line for line in lines), what=lambda: f"the error: {lines}")
        project("proj/b/b.py", "print('b, made again')\n")
        wait_for(lambda: run_done(ws, 2), what=lambda: f"the run of the new folder: {lines}")
        project("proj/b/b.py", "print('b, edited in the new folder')\n")
        wait_for(lambda: run_done(ws, 3), what=lambda: f"the run after a save in it: {lines}")
    assert steps_of(ws, 2)["b"] == ("Completed", "runs: source changed (b.py)")
    assert steps_of(ws, 3)["b"] == ("Completed", "runs: source changed (b.py)")


def test_a_source_directory_replaced_by_a_symlink_is_watched_through_it(ws, project):
    """Defect: a source directory replaced by a symlink to another folder (a checkout made a
    link) was no longer watched, nor was one that was a symlink from the start: watchdog watched
    the link itself, and saves in the folder it points to ran nothing."""
    project("proj/a/a.py", "print('a')\n")
    project("proj/b/b.py", "print('b')\n")
    project("elsewhere/b/b.py", "print('b, elsewhere')\n")
    project("linked/a/a.py", "print('a, linked')\n")
    two_steps(project)
    shutil.rmtree(ws.root / "proj/a")
    (ws.root / "proj/a").symlink_to(ws.root / "linked/a")
    with watching(ws) as lines:
        project("linked/a/a.py", "print('a, linked, edited')\n")
        wait_for(lambda: run_done(ws, 2), what=lambda: f"the run after a save behind the link: {lines}")
        os.rename(ws.root / "proj/b", ws.root / "proj/b.old")
        (ws.root / "proj/b").symlink_to(ws.root / "elsewhere/b")
        wait_for(lambda: run_done(ws, 3), what=lambda: f"the run of the link: {lines}")
        project("elsewhere/b/b.py", "print('b, elsewhere, edited')\n")
        wait_for(lambda: run_done(ws, 4), what=lambda: f"the run after a save behind the new link: {lines}")
        project("proj/b.old/b.py", "print('the old folder, edited')\n")  # no longer a step's source
        project("proj/a/a.py", "print('a, linked, edited again')\n")  # a later, separate change
        wait_for(lambda: run_done(ws, 5), what=lambda: f"the sentinel run: {lines}")
    assert steps_of(ws, 2)["a"] == ("Completed", "runs: source changed (a.py)")
    assert steps_of(ws, 3)["b"] == ("Completed", "runs: source changed (b.py)")
    assert steps_of(ws, 4)["b"] == ("Completed", "runs: source changed (b.py)")
    assert steps_of(ws, 5)["b"] == ("Reused", 'reused from run 4 (step "b")')
    assert run_count(ws) == 5


def test_an_ignored_folder_made_in_a_source_directory_runs_nothing(ws, project):
    """Defect: a folder the ignore rules leave out (`__pycache__/` by default, `build/` in an
    .amlignore, `.git/` of a `git init`) was a change when it was made, since only its path
    without the final slash was matched: a run with everything reused, listing it as changed."""
    project("proj/a/a.py", "print('a')\n")
    project("proj/a/.amlignore", "build/\n")
    project("proj/b/b.py", "print('b')\n")
    two_steps(project)
    with watching(ws) as lines:
        for name in ("__pycache__", "build", ".git"):
            (ws.root / "proj/a" / name).mkdir()
        project("proj/a/build/out.txt", "ignored\n")
        project("proj/b/b.py", "print('b, edited')\n")  # a later, real change
        wait_for(lambda: run_done(ws, 2), what=lambda: f"the rerun: {lines}")
    assert [line for line in lines if line.startswith("changed:")] == ["changed: proj/b/b.py"]
    assert run_count(ws) == 2


def test_a_file_behind_a_symlink_in_a_source_directory_is_seen_through_the_link(ws, project):
    """Defect: a save in a file that a symlink of the source directory points to (config.py ->
    configs/dev.py) changed the file's entry in the watcher's tree, not the link's: the link
    kept its old digest, so every later run of the step computed a key no run had (the step
    ran, keyed by what it copied), and the step was run again on each save anywhere."""
    project("proj/a/a.py", "import config\nprint(config.X)\n")
    project("proj/a/configs/dev.py", "X = 1\n")
    (ws.root / "proj/a/config.py").symlink_to("configs/dev.py")
    project("proj/b/b.py", "print('b')\n")
    two_steps(project)
    with watching(ws) as lines:
        project("proj/a/configs/dev.py", "X = 2\n")
        wait_for(lambda: run_done(ws, 2), what=lambda: f"the rerun: {lines}")
        project("proj/b/b.py", "print('b, edited')\n")  # a save elsewhere
        wait_for(lambda: run_done(ws, 3), what=lambda: f"the run after a save elsewhere: {lines}")
    assert steps_of(ws, 3)["a"] == ("Reused", 'reused from run 2 (step "a")')
    assert steps_of(ws, 2)["a"] == ("Completed", "runs: source changed (config.py, configs/dev.py)")


def test_files_made_and_deleted_while_a_tree_is_hashed_do_not_end_the_watcher(ws, project):
    """Defect: a file listed by the walk of a source directory and deleted before it was
    stat'ed or read (a test run's or a build's temporary files, an editor's) raised
    FileNotFoundError out of the watcher, which ended with a traceback before its first run.
    Such a file is now left out, as a walk a moment later would leave it out."""
    project("proj/a/a.py", "print('a')\n")
    for i in range(300):
        project(f"proj/a/data/f{i}.txt", "x\n")
    project("proj/b/b.py", "print('b')\n")
    two_steps(project)
    stop = threading.Event()

    def churn():
        i = 0
        while not stop.is_set():
            path = ws.root / f"proj/a/data/t{i % 20}.tmp"
            path.write_text("y")
            path.unlink()
            i += 1

    churning = threading.Thread(target=churn, daemon=True)
    churning.start()
    try:
        with watching(ws) as lines:  # its first run hashes the tree while the files come and go
            stop.set()
            churning.join()
            project("proj/a/a.py", "print('a, edited')\n")
            wait_for(lambda: run_done(ws, 2), what=lambda: f"the rerun: {lines}")
    finally:
        stop.set()
        churning.join()
    assert steps_of(ws, 2)["a"] == ("Completed", "runs: source changed (a.py)")


def test_a_file_written_all_the_time_in_an_ignored_path_holds_no_save_back(ws, project):
    """Defect: any event, ignored ones included, started the debounce time again, so a log
    written every 50 ms in an ignored file of a source directory (a notebook's, a server's)
    held every save back for as long as it was written: the rerun never came."""
    project("proj/a/a.py", "print('a')\n")
    project("proj/a/.amlignore", "*.log\n")
    project("proj/b/b.py", "print('b')\n")
    two_steps(project)
    stop = threading.Event()

    def log():
        with open(ws.root / "proj/a/server.log", "a") as handle:
            while not stop.wait(0.05):
                handle.write("a line\n")
                handle.flush()

    logging = threading.Thread(target=log, daemon=True)
    try:
        with watching(ws) as lines:
            logging.start()
            project("proj/a/a.py", "print('a, edited')\n")
            wait_for(lambda: run_done(ws, 2), timeout=10, what=lambda: f"the rerun, the log still written: {lines}")
    finally:
        stop.set()
        if logging.is_alive():
            logging.join()
    assert steps_of(ws, 2)["a"] == ("Completed", "runs: source changed (a.py)")
    assert [line for line in lines if line.startswith("changed:")] == ["changed: proj/a/a.py"]


def test_a_save_while_the_watcher_hashes_its_first_trees_is_seen(ws, project):
    """Defect: source directories were watched only once the first run had been planned, after
    their trees were hashed: a save in that time (seconds, for large trees not hashed before)
    was never noted, and the step's digest in the watcher's tree stayed that of before the save
    for good (a save after the step started was never run at all). A folder is now watched before it is first
    hashed. Here a's save comes while b's tree, with a 1 GiB sparse file, is hashed (b never
    runs: the step it waits for fails, so the file is never copied)."""
    project("proj/a/a.py", "print('a')\n")
    project("proj/c/c.py", "import sys\nsys.argv[1]\nraise SystemExit(1)\n")
    project("proj/b/b.py", "print('b')\n")
    big = ws.root / "proj/b/big.bin"
    with open(big, "wb") as handle:
        handle.truncate(1 << 30)
    project(
        "proj/pipeline.py",
        """
        from localpipe import Pipeline, PipelineData, PythonScriptStep, Workspace
        data = PipelineData("data")
        a = PythonScriptStep("a.py", name="a", source_directory="a")
        c = PythonScriptStep("c.py", name="c", source_directory="c", arguments=[data])
        b = PythonScriptStep("b.py", name="b", source_directory="b", arguments=[data.as_input()])
        pipeline = Pipeline(Workspace.from_config(), [a, b])
        """,
    )

    def hashing_big() -> bool:
        for fd in os.listdir("/proc/self/fd"):
            try:
                if os.readlink(f"/proc/self/fd/{fd}") == str(big):
                    return True
            except OSError:
                continue  # closed since the listing
        return False

    with watching(ws, first_run=False) as lines:
        wait_for(hashing_big, interval=0.005, what="b's tree to be hashed")
        project("proj/a/a.py", "print('a, saved while b was hashed')\n")
        wait_for(lambda: run_done(ws, 1), timeout=60, what=lambda: f"the first run: {lines}")
        project("proj/c/c.py", "import sys\nsys.argv[1]\nraise SystemExit(2)\n")  # a later save elsewhere

        def run_of_c_save():  # its summary line: "run N Failed in 0.1s (changed: ...proj/c/c.py): ..."
            ended = [line.split()[1] for line in lines if re.match(r"run \d+ \w+ in .*proj/c/c\.py\)", line)]
            return int(ended[0]) if ended else None

        last = wait_for(run_of_c_save, what=lambda: f"the run of the later save: {lines}")
    # Run 1 ran a as it was saved (its snapshot is copied when it starts), so its key is that of
    # the saved a.py: the watcher, knowing of the save, reuses it. Not knowing, it kept a's
    # digest of before the save and ran a again on every later save anywhere. (Run 1's a is
    # canceled, and run 2 runs it, when the save's run comes while run 1's a still runs.)
    status, reason = steps_of(ws, last)["a"]
    assert status == "Reused", reason
    source = int(re.fullmatch(r'reused from run (\d+) \(step "a"\)', reason)[1])
    assert source < last and steps_of(ws, source)["a"][0] == "Completed"


def test_changes_noted_before_a_tree_failed_to_hash_are_not_lost(ws, project):
    """Defect: the changes noted in a tree were taken before it was walked, and a walk that
    failed (a symlink pointing to nothing, reported as it should be) dropped them: once the link
    was fixed, only the link was looked at again, and a file saved with it was never seen (the
    step was reused from before that save)."""
    project("proj/a/a.py", "print('a')\n")
    project("proj/b/b.py", "print('b')\n")
    two_steps(project)
    with watching(ws) as lines:
        project("proj/a/helper.py", "H = 1\n")
        (ws.root / "proj/a/link.py").symlink_to("missing.py")
        wait_for(lambda: any("points to nothing" in line for line in lines), what=lambda: f"the error: {lines}")
        (ws.root / "proj/a/link.py").unlink()
        wait_for(lambda: run_done(ws, 2), what=lambda: f"the run once the link is gone: {lines}")
    assert steps_of(ws, 2)["a"] == ("Completed", "runs: source changed (helper.py)")
