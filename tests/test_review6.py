"""Hostile review of PipelineRun.fail, `gc --envs` with its image locks, and build contexts hashed
through the stat cache: each test here failed before its fix. The Docker ones are skipped where no
daemon answers (tests/test_docker.py makes the test image)."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time

import pytest

from localpipe.content.statcache import StatCache
from localpipe.plan.environments import build_context_digest, resolve
from localpipe.plan.graph import Capacity
from localpipe.sdk.environment import DockerBuildContext, Environment
from tests.conftest import wait_for
from tests.test_concurrency_defects import run_status, step_rows, step_status, watching_two_gated_steps
from tests.test_docker import _read, docker_image  # noqa: F401  (a fixture)
from tests.test_docker_gc import DAY, _built_ahead, _exists, _stamp, cache  # noqa: F401  (a fixture)
from tests.test_docker_images import CONTEXT_PIPELINE, _context
from tests.test_lifecycle import gone, popen_submit, run_row, setup, tree_pids


def test_a_build_context_file_edited_keeping_its_size_and_time_is_planned_by_what_it_holds(ws, project):
    # The build reads the context whole and refuses a digest other than the one planned ("it changed
    # since the run was planned: submit again"): a stat cache that answered the old digest for a file
    # edited in place with its size and mtime kept (`touch -r`, a tool restoring times) made every
    # submission plan the old digest again, and the step fail the same way for ever.
    project("ctx/Dockerfile", "FROM localpipe-test/python:3.11\nCOPY . /ctx\n")
    data = project("ctx/data.txt", "alpha\n")
    hour_ago = time.time() - 3600
    os.utime(data, (hour_ago, hour_ago))
    env = Environment.from_docker_build_context("ctx", DockerBuildContext.from_local_directory(ws, ws.root / "ctx"))

    def planned() -> str:
        stat_cache, found = StatCache(ws.root / ".localpipe" / "statcache.bin"), []
        digest = resolve('step "s"', env, Capacity(1, 1 << 30, stat_cache=stat_cache), found, {})["context_digest"]
        assert found == []
        stat_cache.save()
        return digest

    before = planned()
    inode = os.stat(data).st_ino
    with open(data, "r+") as handle:  # in place: the same inode
        handle.write("omega\n")
    os.utime(data, (hour_ago, hour_ago))
    assert os.stat(data).st_ino == inode and os.stat(data).st_size == 6
    now = build_context_digest(str(ws.root / "ctx"), "Dockerfile")  # what the build checks
    assert now != before
    assert planned() == now
    assert planned() == now  # and again


@pytest.mark.usefixtures("docker_image", "cache")  # gc --envs removes only this test's images
@pytest.mark.docker
def test_a_context_edited_keeping_size_and_time_builds_and_runs_what_it_holds(ws, project, localpipe):
    # The same, end to end: with the image of the old content gone (`gc --envs`, docker rmi), every
    # submission failed ("it changed since the run was planned ...: submit again"); with it there,
    # the step ran in the old content's image.
    project("src/marker.py", "print('marker', open('/marker').read().strip())\n")
    project("pipeline.py", CONTEXT_PIPELINE.replace('name="marker"', 'name="marker", allow_reuse=False'))
    _context(project, "old")
    hour_ago = time.time() - 3600
    for path in (ws.root / "ctx").iterdir():  # out of the racy window: what planning hashes is remembered
        os.utime(path, (hour_ago, hour_ago))
    localpipe("submit", "pipeline.py", check=True)
    assert "marker old" in _read(ws.root / ".localpipe/runs/1/marker/stdout.log")
    marker = ws.root / "ctx" / "marker.txt"
    with open(marker, "r+") as handle:  # in place, the same size, its time put back
        handle.write("new")
    os.utime(marker, (hour_ago, hour_ago))
    localpipe("submit", "pipeline.py", check=True)
    assert "marker new" in _read(ws.root / ".localpipe/runs/2/marker/stdout.log")
    localpipe("gc", "--envs", "--older-than", "0s", check=True)
    localpipe("submit", "pipeline.py", check=True)
    assert "marker new" in _read(ws.root / ".localpipe/runs/3/marker/stdout.log")


@pytest.mark.usefixtures("docker_image")
@pytest.mark.docker
def test_gc_envs_keeps_an_image_a_step_used_after_it_was_listed(ws, cache, monkeypatch):  # noqa: F811
    # gc read each image's last use when it listed them, then took each one's lock in turn: a step
    # that began and ended in an image meanwhile (its hold gone by then) did not save it.
    from localpipe.engine.executors.docker import images

    tag = _built_ahead(ws, "late")
    month_ago = time.time() - 40 * DAY
    os.utime(_stamp(cache, tag), (month_ago, month_ago))
    unused = images._unused

    @contextlib.contextmanager
    def used_meanwhile(name):
        with images.in_use([name]):  # a step ran in it since the listing
            pass
        with unused(name) as free:
            yield free

    monkeypatch.setattr(images, "_unused", used_meanwhile)
    sweep = images.remove_unused_images(30 * DAY, time.time())
    assert sweep.removed == [] and _exists(tag)


def test_fail_with_details_any_text_holds_ends_the_run_failed_with_them(ws, project):
    # The details reached the scheduler through a file written in the locale's encoding, strictly: a
    # name read from a folder that is not UTF-8 ("caf\udce9", as os.listdir gives it) raised
    # UnicodeEncodeError out of fail(), and the run went on.
    from localpipe import Experiment
    from localpipe.engine.loader import load_pipeline

    pipeline, pids = setup(project, ws)
    run = Experiment(ws, "py").submit(load_pipeline(pipeline, ws))
    tree = wait_for(lambda: tree_pids(pids), what="the slow step to start")
    run.fail(error_details="bad file caf\udce9 \u2603", error_code="DataError")
    assert run.get_status() == "Failed"
    assert run_row(ws, run.id).error == "DataError: bad file caf\\udce9 \u2603"
    wait_for(lambda: gone(tree), timeout=10, what="the step tree to end")


def test_fail_keeps_the_first_64k_characters_of_its_details_and_says_how_many_more(ws, project):
    # 20 MB of details went whole into history.db, and `localpipe show` printed them whole.
    from localpipe import Experiment
    from localpipe.client.run_base import FAILURE_LIMIT
    from localpipe.engine.loader import load_pipeline

    pipeline, pids = setup(project, ws)
    run = Experiment(ws, "py").submit(load_pipeline(pipeline, ws))
    tree = wait_for(lambda: tree_pids(pids), what="the slow step to start")
    run.fail(error_details="x" * 5_000_000, error_code="Big")
    assert run.get_status() == "Failed"
    kept = "Big: " + "x" * (FAILURE_LIMIT - len("Big: "))
    assert run_row(ws, run.id).error == f"{kept} ... ({5_000_005 - FAILURE_LIMIT} characters more, not kept)"
    wait_for(lambda: gone(tree), timeout=10, what="the step tree to end")


def test_fail_asked_by_several_at_once_is_never_read_half_written(ws, project, history):
    # The request was written in place: a scheduler (or recovery) reading it while a second fail()
    # rewrote it read it empty, and ended the run Canceled (8 processes calling fail() at once:
    # Canceled in 1 try of 4), or read details cut short.
    from localpipe.engine.recovery import cancel_run, requested_end
    from localpipe.status import RunStatus

    pipeline, pids = setup(project, ws)
    proc = popen_submit(pipeline, ws)
    tree = wait_for(lambda: tree_pids(pids), what="the slow step to start")
    proc.send_signal(signal.SIGSTOP)  # its SIGTERMs stay pending: the requests are read here meanwhile
    asked = {f"E: {letter * 2_000_000}" for letter in "ab"}
    odd, stop = [], threading.Event()

    def read() -> None:
        while not stop.is_set():
            found = requested_end(history.layout, 1)
            if found is not None and (found[0] != RunStatus.FAILED or found[1] not in asked):
                odd.append((found[0], len(found[1])))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for details in sorted(asked) * 10:
            assert cancel_run(history, 1, details) == "run 1: cancel requested"
    finally:
        stop.set()
        reader.join()
        proc.send_signal(signal.SIGCONT)
    proc.communicate(timeout=60)
    assert odd == []
    assert run_row(ws, 1).status == "Failed" and run_row(ws, 1).error in asked
    wait_for(lambda: gone(tree), timeout=10, what="the step tree to end")


@pytest.mark.timeout(90)
def test_fail_of_a_run_localpipe_watch_started_ends_it_failed_with_its_details(ws, project, tmp_path):
    # The watcher, whose process a run's fail() signals, took the request (removed it) to learn
    # which of its runs was asked to end, and stopped that run as canceled: it ended Canceled,
    # the details lost.
    from localpipe import PipelineRun

    with watching_two_gated_steps(ws, project, tmp_path) as (watch, _, _):
        wait_for(lambda: step_status(ws.root, 1, "a") == "Running", timeout=30, what="run 1 to run")
        PipelineRun.get(ws, "1").fail(error_details="bad input", error_code="UserError")
        wait_for(lambda: run_status(ws.root, 1) != "Running", timeout=30, what=lambda: step_rows(ws.root, 1))
        assert (run_status(ws.root, 1), run_row(ws, 1).error) == ("Failed", "UserError: bad input")
        assert watch.poll() is None  # the watcher goes on


def test_gc_forgets_a_run_whose_steps_read_a_dataset_and_another_steps_output(ws, project, run_pipeline, invoke):
    # The pass that forgets the last run naming a saved dataset sorted the ids the forgotten runs'
    # inputs name, None for each input that is not a dataset: TypeError, gc ended in a traceback
    # (8 submissions with gc racing them: every gc that forgot such a run).
    from localpipe import Dataset, Pipeline, PipelineData, PythonScriptStep

    project("src/copy.py", "import os, shutil, sys\nshutil.copytree(sys.argv[2], sys.argv[1], dirs_exist_ok=True)\n")
    project("data/d.txt", "data")
    dataset = Dataset.File.from_files(str(ws.root / "data"))
    made, copied = PipelineData("made"), PipelineData("copied")
    first = PythonScriptStep(
        "copy.py", name="first", source_directory=str(ws.root / "src"),
        arguments=[made, dataset.as_named_input("d").as_mount()], outputs=[made], allow_reuse=False,
    )  # fmt: skip
    second = PythonScriptStep(
        "copy.py", name="second", source_directory=str(ws.root / "src"),
        arguments=[copied, made], inputs=[made], outputs=[copied], allow_reuse=False,
    )  # fmt: skip
    for _ in range(2):
        assert run_pipeline(Pipeline(ws, [first, second]))[1] == "Completed"
    result = invoke("gc", "--keep-last", "1")
    assert result.exit_code == 0, result.output
    assert "1 run forgotten" in result.output


def test_a_build_context_folder_replaced_by_a_file_between_two_plannings_is_said_so(ws, project):
    # The second planning said "(the folder does not exist)" of a path that exists, as a file.
    import shutil

    project("ctx/Dockerfile", "FROM localpipe-test/python:3.11\n")
    env = Environment.from_docker_build_context("ctx", DockerBuildContext.from_local_directory(ws, ws.root / "ctx"))
    stat_cache = StatCache(ws.root / ".localpipe" / "statcache.bin")
    found: list[str] = []
    assert resolve('step "s"', env, Capacity(1, 1 << 30, stat_cache=stat_cache), found, {})["context_digest"]
    shutil.rmtree(ws.root / "ctx")
    (ws.root / "ctx").write_text("a file now")
    assert resolve('step "s"', env, Capacity(1, 1 << 30, stat_cache=stat_cache), found, {})["image"] is None
    assert found == [
        f'step "s": environment "ctx": Docker build context {ws.root / "ctx"} has no Dockerfile (it is a file, '
        "not a folder): add it, or pass dockerfile_path= to DockerBuildContext.from_local_directory"
    ]
