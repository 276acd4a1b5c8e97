"""`localpipe watch` used as a hostile user and editor would (review of 2 Dec 2026): real watchdog
events on real files, real step processes; each test names the defect it caught."""

from __future__ import annotations

import contextlib
import threading

from localpipe.watch import Watcher
from tests.conftest import wait_for
from tests.test_watch import run_count, run_done, steps_of


@contextlib.contextmanager
def watching(ws, pipeline: str = "proj/pipeline.py"):
    """A watcher of ``pipeline`` running in a thread, its first run done; yields its printed lines."""
    lines: list[str] = []
    watcher = Watcher(ws, str(ws.root / pipeline), "proj", debounce=0.2, echo=lines.append)
    thread = threading.Thread(target=watcher.run, daemon=True)
    thread.start()
    try:
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
