"""The studio attacked as a hostile web page and a hostile local user would: files a step wrote
served as pages of the studio's own origin, framing, cross-site requests, paths leading out,
and requests meant to tire the server. In-process (Starlette's test client) where the answer's
headers tell; in Debian's chromium (``browser`` marks) where only the browser can say what runs.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from starlette.testclient import TestClient

from localpipe.studio.app import create_app
from tests import studio_helpers
from tests.studio_helpers import TOKEN, add_runs, start_waiting_run

root, client = studio_helpers.root, studio_helpers.client  # the fixtures the studio's tests share

HOSTILE_HTML = "<script>alert('studio origin: ' + document.domain)</script>"
HOSTILE_SVG = '<svg xmlns="http://www.w3.org/2000/svg"><script>alert("svg")</script></svg>'


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


def test_a_browser_that_opened_the_link_goes_on_without_the_token_in_its_address(root):
    # The link's ?token= stayed in the address bar and the browser's history (and whatever syncs
    # it) once the cookie held it: a navigation is sent on to the same address without it.
    with TestClient(create_app(root / ".localpipe", TOKEN), base_url="http://127.0.0.1:8765") as browser:
        opened = browser.get(f"/runs/1?step=prep&token={TOKEN}", headers={"Sec-Fetch-Mode": "navigate"},
                             follow_redirects=False)  # fmt: skip
        assert opened.status_code == 303
        assert opened.headers["location"] == "http://127.0.0.1:8765/runs/1?step=prep"
        assert f"localpipe_token_8765={TOKEN}" in opened.headers["set-cookie"]
        assert browser.get(opened.headers["location"]).status_code == 200  # with the cookie it set
        again = browser.get(f"/?token={TOKEN}", headers={"Sec-Fetch-Mode": "navigate"}, follow_redirects=False)
        assert again.status_code == 303 and "set-cookie" not in again.headers  # the cookie had it already
        script = browser.get(f"/runs.json?token={TOKEN}", follow_redirects=False)  # curl, requests: no Sec-Fetch
        assert script.status_code == 200
        wrong = browser.get("/?token=not-it", headers={"Sec-Fetch-Mode": "navigate"}, follow_redirects=False)
        assert wrong.status_code == 200  # the cookie answers; a wrong ?token= is not taken, nor stripped


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


MARKUP = "\"'><img src=x onerror=alert(1)></script><script>alert(2)</script>]]><svg onload=alert(3)>"


def _add_hostile_run(root) -> int:
    """A run whose every user string is markup meant to run: experiment, display name, tags,
    parameters, error, step names and reasons, an edge's data, metrics of each kind (names,
    values, a table's columns) and a log line; its id."""
    from localpipe.client.workspace import history_of
    from localpipe.sdk.workspace import Workspace
    from localpipe.state.layout import Layout
    from localpipe.state.models import insert_rows

    history = history_of(Workspace.from_config(root))
    t = history.tables
    with history.database.write():
        experiment, _ = t.Experiment.get_or_create(name=f"exp {MARKUP}", defaults={"tags": {MARKUP: MARKUP}})
        graph = t.PipelineGraph.create(digest=f"hostile-{time.time()}", graph={"steps": []}, description=MARKUP)
        run = t.PipelineRun.create(
            experiment=experiment, pipeline=graph, status="Failed", parameters={MARKUP: MARKUP}, tags={MARKUP: MARKUP},
            display_name=MARKUP, error=MARKUP, submitted_at=time.time() - 10, started_at=time.time() - 9,
            ended_at=time.time(),
        )  # fmt: skip
        names = [f"a {MARKUP}", f"b {MARKUP}"]
        insert_rows(
            t.StepRun,
            [
                {"run": run.id, "name": name, "status": "Failed", "reason": MARKUP, "tags": {MARKUP: MARKUP},
                 "arguments": [MARKUP], "queued_at": time.time() - 9, "started_at": time.time() - 8,
                 "ended_at": time.time() - 1}
                for name in names
            ],
        )  # fmt: skip
        insert_rows(t.Edge, [{"run": run.id, "source": names[0], "target": names[1], "data": MARKUP}])
    step = t.StepRun.get(t.StepRun.run == run.id, t.StepRun.name == names[0])
    rows = [{"name": MARKUP, "kind": "scalar", "value": v, "logged_at": float(v)} for v in (1, 2, 3)]
    rows += [
        {"name": f"list {MARKUP}", "kind": "list", "value": [1, 2], "logged_at": 4.0},
        {"name": f"row {MARKUP}", "kind": "row", "value": {MARKUP: MARKUP}, "logged_at": 5.0},
        {"name": f"table {MARKUP}", "kind": "table", "value": {MARKUP: [MARKUP, MARKUP]}, "logged_at": 6.0},
        {"name": f"text {MARKUP}", "kind": "scalar", "value": MARKUP, "logged_at": 7.0},
    ]
    history.steps.add_metrics(step.id, rows, {MARKUP: MARKUP})
    folder = Layout.of(root / ".localpipe").step_dir(run.id, names[0])
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "stdout.log").write_text(f"line {MARKUP}\n")
    return run.id


def _hostile_urls(run: int) -> list[str]:
    from urllib.parse import quote

    step = quote(f"a {MARKUP}", safe="")
    return [
        "/runs",
        f"/runs?experiment={quote(f'exp {MARKUP}', safe='')}",
        "/experiments",
        f"/experiments/{quote(f'exp {MARKUP}', safe='')}",
        f"/runs/{run}",
        f"/runs/{run}?failed=1",
        f"/runs/{run}/timeline",
        f"/runs/{run}/metrics",
        f"/runs/{run}/steps/{step}",
        f"/compare?a=1&b={run}",
        f"/experiments/{quote(MARKUP, safe='')}",  # an error page naming it
    ]


def test_markup_in_every_user_string_is_escaped_in_html_and_svg(client, root):
    run = _add_hostile_run(root)
    for url in _hostile_urls(run):
        html = client.get(url).text
        assert "<img src=x" not in html and "<svg onload" not in html and "<script>alert" not in html, url
        assert len(re.findall(r"<script\b", html)) <= 1, url  # the studio's own script tag alone


@pytest.mark.browser
def test_markup_in_every_user_string_runs_nothing_in_the_browser(studio, no_alerts):
    root, link = studio
    run = _add_hostile_run(root)
    page = no_alerts
    page.goto(link)
    base = link.split("/?", 1)[0]
    for url in _hostile_urls(run):
        page.goto(base + url)
        page.wait_for_load_state("load")
        assert page.locator("img[src=x], svg[onload]").count() == 0, url


def test_what_held_cors_paths_encoded_names_and_the_token_in_twins(client, root):
    """Checks that found no defect, kept so that none comes: no CORS grant to another origin, no
    way out of the workspace through encoded paths, an output file's name that cannot break its
    Content-Disposition, and no twin that carries the token."""
    preflight = client.options(
        "/runs/1/cancel", headers={"Origin": "http://evil.example", "Access-Control-Request-Method": "POST"}
    )
    assert not any(name.lower().startswith("access-control-") for name in preflight.headers), preflight.headers
    assert (
        "access-control-allow-origin" not in client.get("/runs.json", headers={"Origin": "http://evil.example"}).headers
    )
    for url in (
        "/runs/1/output?step=prep&output=prepared&file=%2e%2e%2f%2e%2e%2f%2e%2e%2fhistory.db",
        "/runs/1/output?step=prep&output=prepared&file=..%2F..%2F..%2F..%2Fapi-token",
        "/runs/1/log?step=%2e%2e%2f%2e%2e&stream=stdout&download=1",
        "/static/%2e%2e/app.py",
        "/static/..%2fapp.py",
    ):
        answer = client.get(url)
        assert answer.status_code in (400, 404), (url, answer.status_code)
        assert b"SQLite format" not in answer.content and "create_app" not in answer.text, url
    digest = client.get("/runs/1/steps/prep.json").json()["outputs"][0]["digest"]
    folder = root / ".localpipe/objects" / digest[:2] / digest
    name = 'a"; filename=evil.html\r\nSet-Cookie: x=1;.csv'
    os.chmod(folder, 0o755)
    (folder / name).write_text("a")
    try:
        answer = client.get("/runs/1/output", params={"step": "prep", "output": "prepared", "file": name})
        assert answer.status_code == 200 and "x" not in answer.cookies
        disposition = answer.headers["content-disposition"]
        assert disposition.startswith("attachment; filename*=utf-8''") and '"' not in disposition, disposition
        assert "\r" not in disposition and "\n" not in disposition
    finally:
        (folder / name).unlink()
        os.chmod(folder, 0o555)
    for url in ("/runs.json", "/runs/1.json", "/runs/1/steps/prep.json", "/runs/1/status.json", "/published.json"):
        assert TOKEN not in client.get(url).text, url


def test_the_token_is_printed_once_and_never_logged(root):
    proc = subprocess.Popen(
        [sys.executable, "-m", "localpipe", "serve", "--port", "0", "-w", str(root)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        link = proc.stdout.readline().split(": ", 1)[1].strip()
        token = link.split("?token=", 1)[1]
        for path in ("/runs/1", "/runs/1.json", "/nope", "/runs/1/cancel"):
            try:
                urllib.request.urlopen(link.replace("/?", f"{path}?"), timeout=10).read()
            except urllib.error.HTTPError:
                pass
    finally:
        proc.terminate()
        rest = proc.communicate(timeout=10)[0]
    assert token not in rest, rest


def test_stalled_clients_and_a_huge_log_do_not_stall_the_server(studio):
    """Twenty clients that never finish their request, and one that never reads a 64 MiB
    download: another request is still answered at once, and a step page shows the log's end."""
    root, link = studio
    from localpipe.state.layout import Layout

    log = Layout.of(root / ".localpipe").step_dir(1, "prep") / "stderr.log"
    with open(log, "wb") as handle:
        handle.truncate(64 << 20)
        handle.seek(0, os.SEEK_END)
        handle.write(b"the last line\n")
    host, port = re.match(r"http://([\d.]+):(\d+)/", link).groups()
    stalled = []
    try:
        for _ in range(20):
            sock = socket.create_connection((host, int(port)))
            sock.sendall(b"GET /runs HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and never the blank line
            stalled.append(sock)
        reader = socket.create_connection((host, int(port)))
        query = link.split("?", 1)[1]
        reader.sendall(
            f"GET /runs/1/log?step=prep&stream=stderr&download=1&{query} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()
        )
        stalled.append(reader)  # reads nothing: the server's send buffer fills
        started = time.monotonic()
        with urllib.request.urlopen(link.replace("/?", "/runs/1/steps/prep.json?"), timeout=10) as answer:
            assert json.load(answer)["logs"]["stderr"]["size"] == (64 << 20) + 14
        with urllib.request.urlopen(link.replace("/?", "/runs/1/steps/prep?"), timeout=10) as answer:
            page = answer.read()
        assert time.monotonic() - started < 5
        assert b"the last line" in page and len(page) < 2 << 20
    finally:
        for sock in stalled:
            sock.close()
        log.unlink()


def test_rest_submission_from_another_site_or_a_rebound_name_is_refused(root):
    """The REST routes take the workspace's bearer token alone: a cross-site form (no
    ``Authorization`` header, which only a CORS preflight this server never grants could add)
    and a rebound host name are both refused, whatever cookie goes with them."""
    from localpipe.sdk.workspace import Workspace
    from localpipe.studio.rest import BASE, rest_routes

    ws = Workspace.from_config(root)
    app = create_app(root / ".localpipe", TOKEN, extra_routes=rest_routes(ws), self_authenticating=(BASE + "/",))
    with TestClient(app, base_url="http://127.0.0.1:8765") as client:
        client.cookies.set("localpipe_token_8765", TOKEN)
        url = f"{BASE}/PipelineSubmit/any"
        form = client.post(url, content='{"ExperimentName": "x"}', headers={"Origin": "http://evil.example",
                           "Content-Type": "text/plain", "Sec-Fetch-Site": "cross-site"})  # fmt: skip
        assert form.status_code == 401, form.text
        assert client.post(url, json={}, headers={"Host": "evil.example"}).status_code == 403


@pytest.mark.browser
def test_pages_run_only_the_studio_s_own_script(studio, no_alerts):
    """Were a value ever drawn unescaped, the page's policy would stop an inline script or
    handler; the studio's own pages break none of it (no violation reported on any)."""
    root, link = studio
    page = no_alerts
    violations = []
    page.on("console", lambda message: "Content Security Policy" in message.text and violations.append(message.text))
    page.goto(link)
    base = link.split("/?", 1)[0]
    for url in ("/runs", "/runs/1", "/runs/1/steps/prep", "/runs/1/metrics", "/compare?a=1&b=2", "/datasets"):
        page.goto(base + url)
        page.wait_for_load_state("load")
    page.evaluate("document.body.insertAdjacentHTML('beforeend', '<img src=x onerror=alert(1)>')")
    page.wait_for_timeout(200)  # the handler would have run by now
    assert len(violations) == 1 and "inline event handler" in violations[0], violations


def test_a_rest_submission_without_the_bearer_token_is_refused_before_its_body_is_read(studio):
    """Anyone who reaches the port (another user, a page's ``fetch`` with a text/plain body) could
    otherwise make the server hold a body as large as it liked in memory before the 401."""
    root, link = studio
    host, port = re.match(r"http://([\d.]+):(\d+)/", link).groups()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            f"POST /pipelines/v1.0/PipelineRuns/PipelineSubmit/any HTTP/1.1\r\nHost: {host}:{port}\r\n"
            "Content-Type: application/json\r\nContent-Length: 10000000000\r\n\r\n{".encode()
        )
        try:
            head = sock.recv(4096).decode()
        except TimeoutError:
            head = "no answer in 10 s: the server waits for the 10 GB body"
    assert head.startswith("HTTP/1.1 401"), head


@pytest.mark.browser
def test_another_site_s_form_cannot_cancel_even_with_the_token_and_a_rebound_name_reads_nothing(
    studio, page, hostile_site, tmp_path
):
    """In chromium: a page on another port of this host (the same site: the token's cookie goes
    with its requests) posts cancel forms, one with the token itself; the run goes on. A page of
    a name that resolves to 127.0.0.1 (DNS rebinding) gets no page of the studio's."""
    root, link = studio
    base, query = link.split("/?", 1)
    run = start_waiting_run(root, tmp_path / "flags")
    page.goto(link)
    folder, address = hostile_site
    for name, field in (("with.html", f'<input name="token" value="{query.split("=", 1)[1]}">'), ("without.html", "")):
        (folder / name).write_text(
            f'<form method="post" action="{base}/runs/{run}/cancel">{field}</form>'
            "<script>document.forms[0].submit()</script>"
        )
        page.goto(f"{address}/{name}")
        page.wait_for_url(f"{base}/runs/{run}/cancel")
        assert "cannot change anything here" in page.locator("body").inner_text(), name
    with urllib.request.urlopen(f"{base}/runs/{run}/status.json?{query}", timeout=10) as answer:
        assert json.load(answer)["status"] == "Running"
    cancel = urllib.request.Request(
        f"{base}/runs/{run}/cancel", method="POST", headers={"X-Localpipe-Token": query[6:]}
    )
    urllib.request.urlopen(cancel, timeout=30).read()
    rebound = page.goto(base.replace("127.0.0.1", "rebound.test") + "/runs")
    assert rebound.status == 403 and "is not this server" in page.locator("body").inner_text()
