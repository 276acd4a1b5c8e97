"""Shared fixtures: a fresh workspace under tmp_path, the CLI in-process and as a real process."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner

from localpipe.cli import cli
from localpipe.state.history import close_all

REPO = Path(__file__).resolve().parent.parent


def pytest_collection_modifyitems(items):
    # Under pytest-xdist (--dist loadgroup) the tests of one shared service run on one worker: the
    # Docker tests share the daemon's images (the gc tests remove images other tests could hold) and
    # the Ray tests share the one local Ray a session starts.
    for item in items:
        for service in ("docker", "ray"):
            if item.get_closest_marker(service):
                item.add_marker(pytest.mark.xdist_group(service))


@pytest.fixture(scope="session")
def machine_cache(tmp_path_factory) -> Path:
    """The machine-wide cache (built environments) the tests share, never the developer's own."""
    return tmp_path_factory.mktemp("machine-cache")


@pytest.fixture(autouse=True)
def _isolate(monkeypatch, machine_cache, tmp_path_factory):
    # A test must never see the developer's own workspace or cache, or leave connections open.
    # CUDA_VISIBLE_DEVICES (a GPU machine's own) would hide fake GPUs from the tests that ask for some.
    for var in (
        "LOCALPIPE_WORKSPACE",
        "LOCALPIPE_STEP_RUN_ID",
        "LOCALPIPE_FAKE_GPUS",
        "LOCALPIPE_UV",
        "CUDA_VISIBLE_DEVICES",
    ):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LOCALPIPE_CACHE_DIR", str(machine_cache))
    # The fake GPUs' UUIDs are the same in every test: each test locks them in a folder of its own.
    monkeypatch.setenv("LOCALPIPE_GPU_LOCKS", str(tmp_path_factory.mktemp("gpu-locks")))
    yield
    close_all()


@pytest.fixture
def ws(tmp_path):
    from localpipe import Workspace

    return Workspace.create(tmp_path / "ws")


@pytest.fixture
def history(ws):
    """The workspace's history (``localpipe.state.history.History``)."""
    from localpipe.client.workspace import history_of

    return history_of(ws)


@pytest.fixture
def invoke(ws, monkeypatch):
    """Run the CLI in-process in the workspace folder; returns click's Result."""
    monkeypatch.chdir(ws.root)
    runner = CliRunner()

    def run(*args: str):
        return runner.invoke(cli, [str(a) for a in args], catch_exceptions=False)

    return run


@pytest.fixture
def localpipe(ws):
    """Run the real `localpipe` command as a process in the workspace folder."""

    def run(*args: str, check: bool = False, timeout: float = 120, cwd=None, env=None):
        proc = subprocess.run(
            [sys.executable, "-m", "localpipe", *map(str, args)],
            cwd=cwd or ws.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, **(env or {})},
        )
        if check and proc.returncode != 0:
            raise AssertionError(
                f"localpipe {' '.join(map(str, args))} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
            )
        return proc

    return run


def tables(ws):
    """The peewee models of ``ws``'s history.db, for tests that look at rows directly."""
    from localpipe.client.workspace import history_of

    return history_of(ws).tables


def write(path: Path, text: str) -> Path:
    """Write ``text`` (dedented) to ``path``, creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip())
    return path


@pytest.fixture
def project(ws):
    """A helper that writes files under the workspace: ``project("a/b.py", "...")``."""

    def put(rel: str, text: str) -> Path:
        return write(ws.root / rel, text)

    return put


@pytest.fixture
def run_pipeline(history):
    """Submit a Pipeline in-process and run it to its end: returns (run id, status, {step: row dict})."""
    from localpipe.engine.submit import prepare_run, run_prepared

    def run(pipeline, experiment: str = "test", **options):
        slots = options.pop("slots", None)
        prepared = prepare_run(history, pipeline, experiment, **options)
        status = run_prepared(history, prepared, slots=slots)
        steps = {s["name"]: s for s in history.runs.details(prepared.run_id)["steps"]}
        return prepared.run_id, status, steps

    return run


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.05, what="condition"):
    """Poll ``predicate`` until it returns something true; fail the test after ``timeout`` seconds.

    ``what`` names the condition; a callable is asked at the time of failure, for the details.
    """
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what() if callable(what) else what}")


@contextlib.contextmanager
def schedule_loop(runner, said: list[str]):
    """A ``ScheduleLoop`` of ``runner`` in a thread, its lines added to ``said``; stopped on leaving,
    and its thread must have ended."""
    import threading

    from localpipe.watch import ScheduleLoop

    loop = ScheduleLoop(runner, echo=said.append, wait=0.05)
    thread = threading.Thread(target=loop.run, daemon=True)
    thread.start()
    try:
        yield loop
    finally:
        loop.stop()
        thread.join(10)
    assert not thread.is_alive()


# -- the studio in a real browser (tests/test_studio_browser.py, tests/test_studio_security.py) --
def _unavailable(reason: str):
    """Skip, with the reason; in CI (LOCALPIPE_REQUIRE_BROWSER) fail instead."""
    if os.environ.get("LOCALPIPE_REQUIRE_BROWSER"):
        pytest.fail(f"{reason}, and LOCALPIPE_REQUIRE_BROWSER is set (.ci/run installs chromium)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    """This machine's chromium (Playwright's own download is not used), one for these tests.

    Playwright is started and stopped here rather than by pytest-playwright's session-wide
    fixtures: its synchronous API leaves an asyncio loop marked running in the main thread while
    it is started, and later tests calling ``asyncio.run`` would fail."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("playwright is not installed (pip install -e '.[test]')")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        _unavailable("no chromium on this machine (apt-get install chromium)")
    with sync_playwright() as playwright:
        # rebound.test resolves to 127.0.0.1, as another site's name does after DNS rebinding
        args = ["--no-sandbox", "--host-resolver-rules=MAP rebound.test 127.0.0.1"]
        launched = playwright.chromium.launch(executable_path=executable, args=args)
        yield launched
        launched.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 720})
    yield context.new_page()
    context.close()


@pytest.fixture(scope="module")
def studio(tmp_path_factory, machine_cache):
    """A workspace with two runs, and `localpipe serve` on it: (workspace root, link with token)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOCALPIPE_CACHE_DIR", str(machine_cache))
        from tests.studio_helpers import make_workspace

        root = make_workspace(tmp_path_factory.mktemp("studio-browser") / "ws")
        server = subprocess.Popen(
            [sys.executable, "-m", "localpipe", "serve", "--port", "0", "-w", str(root)],
            stdout=subprocess.PIPE,
            text=True,
        )
    try:
        link = server.stdout.readline().split(": ", 1)[1].strip()
        yield root, link
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def no_alerts(page):
    """Fail on any dialog: an escaped step name must never run as script."""
    seen = []
    page.on("dialog", lambda dialog: (seen.append(dialog.message), dialog.dismiss()))
    yield page
    assert seen == []
