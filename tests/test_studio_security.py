"""The studio attacked as a hostile web page and a hostile local user would: files a step wrote
served as pages of the studio's own origin, framing, cross-site requests, paths leading out,
and requests meant to tire the server. In-process (Starlette's test client) where the answer's
headers tell; in Debian's chromium (``browser`` marks) where only the browser can say what runs.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
from starlette.testclient import TestClient

from localpipe.studio.app import create_app
from tests.studio_helpers import add_runs, make_workspace

TOKEN = "test-token"
HOSTILE_HTML = "<script>alert('studio origin: ' + document.domain)</script>"
HOSTILE_SVG = '<svg xmlns="http://www.w3.org/2000/svg"><script>alert("svg")</script></svg>'


@pytest.fixture(scope="module")
def root(tmp_path_factory, machine_cache):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LOCALPIPE_CACHE_DIR", str(machine_cache))
        return make_workspace(tmp_path_factory.mktemp("studio-security") / "ws")


@pytest.fixture
def client(root):
    """The user's browser: the link's token kept in its cookie."""
    with TestClient(create_app(root / ".localpipe", TOKEN), base_url="http://127.0.0.1:8765") as test_client:
        test_client.cookies.set("localpipe_token_8765", TOKEN)
        yield test_client


def test_another_user_of_this_machine_reads_nothing_without_the_token(root):
    """127.0.0.1 is reached by every account of the machine: without the token, no page, twin,
    log, output or image of the workspace (the studio's token is the user's alone: it was printed
    to their terminal)."""
    with TestClient(create_app(root / ".localpipe", TOKEN), base_url="http://127.0.0.1:8765") as stranger:
        for url in (
            "/",
            "/runs.json",
            "/runs/1",
            "/runs/1/steps/prep.json",
            "/runs/1/log?step=prep&download=1",
            "/runs/1/output?step=prep&output=prepared&file=rows.csv",
            "/runs/1/events",
            "/experiments/scores.json",
            "/datasets.json",
            "/static/studio.js",
        ):
            answer = stranger.get(url)
            assert answer.status_code == 401, url
            assert "rows" not in answer.text and "open the link" in answer.text, url
        assert stranger.get(f"/runs.json?token={TOKEN}").status_code == 200
        assert stranger.get("/runs.json").status_code == 200  # the cookie the link set


def _log_hostile_images(root) -> None:
    """Step prep of run 1 "logs" as images an HTML page and an SVG with a script, files of its
    own run folder (``log_image(path=...)`` records whatever path a step gives)."""
    from localpipe.client.workspace import history_of
    from localpipe.sdk.workspace import Workspace
    from localpipe.state.layout import Layout
    from localpipe.state.views import Views

    files = Layout.of(root / ".localpipe").step_dir(1, "prep") / "files"
    files.mkdir(exist_ok=True)
    (files / "page.html").write_text(HOSTILE_HTML)
    (files / "drawing.svg").write_text(HOSTILE_SVG)
    views = Views(Layout.of(root / ".localpipe"))
    try:
        step_run = views.step(1, "prep")["id"]
        if any(m["name"] == "hostile" for m in views.metrics(1, "prep")):
            return
    finally:
        views.close()
    history_of(Workspace.from_config(root)).steps.add_metrics(
        step_run,
        [
            {"name": "hostile", "kind": "image", "value": value, "logged_at": 0.0}
            for value in ("page.html", "drawing.svg")
        ],
        {},
    )


def test_a_file_a_step_wrote_is_never_a_page_of_the_studio(client, root):
    """An "image" a step logged that is HTML or SVG would run its script as the studio (reading the
    token from a page's form, then cancelling and rerunning): file routes answer sandboxed, unsniffed."""
    _log_hostile_images(root)
    for index in (0, 1):
        answer = client.get(f"/runs/1/image?step=prep&name=hostile&index={index}")
        assert answer.status_code == 200
        assert "sandbox" in answer.headers.get("content-security-policy", ""), answer.headers
        assert answer.headers.get("x-content-type-options") == "nosniff"
    for url in ("/runs/1/output?step=prep&output=prepared&file=rows.csv", "/runs/1/log?step=prep&download=1"):
        assert "sandbox" in client.get(url).headers.get("content-security-policy", ""), url


@pytest.mark.browser
def test_a_hostile_image_opened_in_the_browser_runs_no_script(studio, no_alerts):
    root, link = studio
    _log_hostile_images(root)
    page = no_alerts
    page.goto(link)  # the token's cookie: what a script of the studio's origin could use
    base = link.split("/?", 1)[0]
    for index in (0, 1):
        page.goto(f"{base}/runs/1/image?step=prep&name=hostile&index={index}")
        page.wait_for_load_state("load")


def test_no_page_of_the_studio_can_be_framed_and_none_sends_its_address_on(client):
    """A page of another site, or of another port of this host (the same site: the token's
    SameSite cookie goes with it), would show the studio's actions in a frame and have the user
    click them (clickjacking); a link leading out would carry the page's address (``?token=``)."""
    for url in ("/runs", f"/runs/1?token={TOKEN}", "/runs/1.json", "/runs/99", "/static/studio.css"):
        headers = client.get(url).headers
        assert headers.get("x-frame-options") == "DENY", url
        assert "frame-ancestors 'none'" in headers.get("content-security-policy", ""), url
        assert headers.get("referrer-policy") == "same-origin", url
        assert headers.get("x-content-type-options") == "nosniff", url


@pytest.fixture
def hostile_site(tmp_path):
    """A web server on another port of 127.0.0.1, serving the files of a folder: (folder, its address)."""
    proc = subprocess.Popen(
        [sys.executable, "-u", "-m", "http.server", "0", "--bind", "127.0.0.1", "--directory", str(tmp_path)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        port = int(re.search(r"port (\d+)", proc.stdout.readline()).group(1))
        yield tmp_path, f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.mark.browser
def test_a_page_on_another_port_of_this_host_cannot_frame_the_studio_s_actions(studio, page, hostile_site):
    """A page of this host on another port is the same site as the studio: the browser sends the
    studio's SameSite=Strict cookie to a frame of it, whose page then shows cancel and rerun."""
    root, link = studio
    base = link.split("/?", 1)[0]
    folder, address = hostile_site
    (folder / "hostile.html").write_text(f'<iframe id="studio" src="{base}/runs/1" width="800" height="600"></iframe>')
    page.goto(link)
    page.goto(f"{address}/hostile.html")
    page.wait_for_load_state("load")
    studio_frame = page.frames[1]
    studio_frame.wait_for_load_state("load")
    assert studio_frame.locator('form[action="/runs/1/rerun"]').count() == 0
    assert not studio_frame.url.startswith(base), studio_frame.url  # chromium's error page instead


def test_no_page_lists_more_than_a_page_of_runs_whatever_it_is_asked(client, root):
    """``?limit=100000`` on an experiment of many runs would draw every one of them."""
    from localpipe.client.workspace import history_of
    from localpipe.sdk.workspace import Workspace

    history = history_of(Workspace.from_config(root))
    add_runs(history.tables, history.database, 600)
    for url in ("/runs.json?limit=100000", "/experiments/many.json?limit=100000"):
        answer = client.get(url).json()
        assert answer["total"] >= 600 and len(answer["runs"]) == answer["limit"] == 500, url
