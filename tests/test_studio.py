"""The studio (``localpipe serve``) in-process: its pages and their JSON twins, escaping, the
routes that read files, the token and cross-site checks, actions, and its speed on large
histories. The browser's part is tests/test_studio_browser.py."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from urllib.parse import quote

import pytest
from starlette.testclient import TestClient

from localpipe.studio.app import create_app
from tests import studio_helpers
from tests.conftest import write
from tests.studio_helpers import SCRIPT_STEP, TOKEN, add_runs, add_wide_run, start_waiting_run

root, client = studio_helpers.root, studio_helpers.client  # the fixtures the studio's tests share

STEP_URL = f"/runs/2/steps/{quote(SCRIPT_STEP, safe='')}"


def test_runs_list_filters_pages_and_has_a_json_twin(client):
    page = client.get("/runs")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert 'href="/runs/1"' in page.text and 'href="/runs/2"' in page.text
    twin = client.get("/runs.json").json()
    assert [r["id"] for r in twin["runs"]] == [2, 1] and twin["total"] == 2
    assert twin["runs"][0]["steps"] == {"Completed": 1, "Reused": 1} and twin["runs"][0]["reused"] == 1
    assert twin["runs"][0]["parameters"] == {"lr": 0.2}
    same = client.get("/runs", headers={"Accept": "application/json"}).json()
    assert same == twin
    assert client.get("/runs.json?experiment=nothing").json()["runs"] == []
    assert [r["id"] for r in client.get("/runs.json?status=Completed&limit=1&offset=1").json()["runs"]] == [1]
    older = client.get("/runs?limit=1")
    assert 'rel="next" href="/runs?offset=1' in older.text


def test_experiments_and_metric_across_runs(client):
    experiments = client.get("/experiments.json").json()["experiments"]
    assert [(e["name"], e["runs"], e["last_run"]) for e in experiments] == [("scores", 2, 2)]
    experiment = client.get("/experiments/scores.json").json()
    # the last "loss" of each run: 1/6 + lr
    assert [run for run, _ in experiment["metrics"]["loss"]] == [1, 2]
    assert experiment["metrics"]["loss"][1][1] == pytest.approx(1 / 6 + 0.2)
    assert "<polyline" in client.get("/experiments/scores").text
    for url in ("/experiments/", "/experiments/.json", "/experiments/nosuch"):  # "" listed every run, as experiment ""
        assert client.get(url).status_code == 404, url


def test_run_page_draws_each_step_in_its_status_colour_and_reused_from_its_run(client):
    html = client.get("/runs/2").text
    nodes = dict(re.findall(r'<g class="node st-(\w+)" data-step="([^"]+)"', html)[i][::-1] for i in range(2))
    assert nodes == {"prep": "Completed", "&lt;script&gt;alert(1)&lt;/script&gt;": "Reused"}
    assert "reused from run 1" in html
    assert 'class="timeline"' in html and "critical" in html
    run = client.get("/runs/2.json").json()
    reused = next(s for s in run["steps"] if s["name"] == SCRIPT_STEP)
    assert reused["status"] == "Reused" and reused["reused_from_run"] == 1
    assert run["edges"] == [{"source": "prep", "target": SCRIPT_STEP, "data": "prepared"}]
    assert run["critical_path"] == ["prep"]
    failed_only = client.get("/runs/2?failed=1").text
    assert "only-failed" in failed_only and 'href="/runs/2/steps/prep"' not in failed_only.split("<h2>Steps")[1]


def test_step_page_shows_the_step_its_logs_outputs_and_metrics(client, root):
    step = client.get("/runs/1/steps/prep.json").json()
    assert step["status"] == "Completed" and step["exit_code"] == 0 and step["peak_memory"] > 0
    assert step["placement"]["cpus"] >= 1 and step["reason"] == "runs: no earlier run"
    assert [(o["name"], o["size"], o["files"]) for o in step["outputs"]] == [("prepared", 8, 1)]
    kinds = {(m["name"], m["kind"]) for m in step["metrics"]}
    assert kinds == {("loss", "scalar"), ("scores", "row"), ("accuracies", "list"), ("figure", "image")}
    assert step["logs"]["stdout"]["size"] > 0
    html = client.get("/runs/1/steps/prep").text
    assert "prep says &lt;b&gt;hello&lt;/b&gt; &amp; &lt;script&gt;alert(2)&lt;/script&gt;" in html
    assert html.count("<polyline") == 2 and "<td>0.9</td>" in html
    image = client.get("/runs/1/image?step=prep&name=figure&index=0")
    assert image.status_code == 200 and image.content.startswith(b"\x89PNG")
    download = client.get("/runs/1/output?step=prep&output=prepared")
    assert download.content == b"a,b\n1,2\n"
    assert client.get("/runs/1/output.json?step=prep&output=prepared").json()["files"] == ["rows.csv"]
    tail = client.get("/runs/1/log?step=prep&stream=stdout&offset=5").json()
    assert tail["text"] == "says <b>hello</b> & <script>alert(2)</script>\n" and tail["status"] == "Completed"
    full = client.get("/runs/1/log?step=prep&stream=stdout&download=1")
    assert full.text == "prep says <b>hello</b> & <script>alert(2)</script>\n"
    assert full.headers["content-disposition"] == "attachment; filename*=UTF-8''prep.stdout.log"
    # a reused step's logs are those of the run it reused
    reused = client.get(STEP_URL + ".json").json()
    assert reused["reused_from_run"] == 1
    assert [(i["step"], i["output"], i["size"]) for i in reused["inputs"]] == [("prep", "prepared", 8)]
    assert client.get("/runs/2/steps/prep.json").json()["declared"]["pipeline_params"] == {"lr": 0.2}
    assert client.get(f"/runs/2/log?step={quote(SCRIPT_STEP)}&stream=stdout").json()["text"] == "scored 2 rows\n"


def test_metrics_page_compare_and_datasets(client):
    metrics = client.get("/runs/2/metrics.json").json()["metrics"]
    assert {m["step"] for m in metrics} == {"prep"} and len([m for m in metrics if m["name"] == "loss"]) == 6
    assert 'alt="figure"' in client.get("/runs/2/metrics").text
    compare = client.get("/compare.json?a=1&b=2").json()
    assert compare["parameters"][0]["name"] == "lr"
    steps = {s["name"]: (s["a"]["status"], s["b"]["status"]) for s in compare["steps"]}
    assert steps == {"prep": ("Completed", "Completed"), SCRIPT_STEP: ("Completed", "Reused")}
    loss = next(m for m in compare["metrics"] if m["name"] == "loss")
    assert loss["b"] - loss["a"] == pytest.approx(0.1)
    assert compare["graph"] == {"only_a": [], "only_b": [], "edges_only_a": [], "edges_only_b": []}
    assert client.get("/compare?pick=2&pick=1").status_code == 200
    assert client.get("/compare").status_code == 400
    dataset = client.get("/datasets/raw.json").json()
    consumers = dataset["versions"][0]["consumed_by"]
    assert {(c["run"], c["step"]) for c in consumers} == {(1, SCRIPT_STEP), (2, SCRIPT_STEP)}  # 2 reused it
    assert dataset["versions"][0]["digest"]
    assert [d["name"] for d in client.get("/datasets.json").json()["datasets"]] == ["prepared_rows", "raw"]
    produced = client.get("/datasets/prepared_rows.json").json()["versions"][-1]
    assert (produced["produced_by_run"], produced["produced_by_step"]) == (1, "prep")
    assert 'href="/runs/1/steps/prep">run 1 · prep</a>' in client.get("/datasets/prepared_rows").text


def test_a_script_named_step_is_escaped_on_every_page(client):
    for url in (
        "/runs",
        "/runs/2",
        "/runs/1",
        STEP_URL,
        "/runs/2/metrics",
        "/compare?a=1&b=2",
        "/datasets/raw",
        "/experiments/scores",
        "/runs/9",
    ):
        html = client.get(url).text
        assert "<script>alert" not in html, url
        assert len(re.findall(r"<script\b", html)) == 1, url  # the studio's own script tag alone


def test_file_routes_never_read_outside_the_workspace(client, root, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    assert client.get("/runs/1/log?step=../../../etc&stream=stdout").status_code == 404
    assert client.get("/runs/1/log?step=prep&stream=../../secret").status_code == 400
    assert client.get("/runs/1/output?step=prep&output=prepared&file=../../../../../etc/passwd").status_code == 404
    assert client.get("/runs/1/output?step=prep&output=prepared&file=/etc/passwd").status_code == 404
    # a log made a link to a file outside is not followed
    log = root / ".localpipe/runs/1/prep/stderr.log"
    saved = log.read_bytes() if log.exists() else None  # an empty log is not kept
    log.unlink(missing_ok=True)
    log.symlink_to(secret)
    try:
        assert "secret" not in client.get("/runs/1/log?step=prep&stream=stderr&offset=0").text
        assert client.get("/runs/1/log?step=prep&stream=stderr&download=1").status_code == 404
    finally:
        log.unlink()
        if saved is not None:
            log.write_bytes(saved)
    # an output tree holding a link that leads outside: the link is neither listed nor served
    tree = root / ".localpipe/objects"
    digest = client.get("/runs/1/steps/prep.json").json()["outputs"][0]["digest"]
    folder = tree / digest[:2] / digest
    os.chmod(folder, 0o755)
    (folder / "leak").symlink_to(secret)
    try:
        assert client.get("/runs/1/output.json?step=prep&output=prepared").json()["files"] == ["rows.csv"]
        assert client.get("/runs/1/output?step=prep&output=prepared&file=leak").status_code == 404
    finally:
        (folder / "leak").unlink()
        os.chmod(folder, 0o555)


def test_numbers_past_sqlites_integers_are_a_clear_refusal_not_a_500(client):
    big = "9" * 25
    assert client.get(f"/runs/{big}.json").status_code == 404
    answer = client.get(f"/runs.json?offset={big}")
    assert answer.status_code == 400 and "whole number" in answer.json()["error"]


def test_an_image_logged_as_a_path_beside_history_db_is_not_served(client, root):
    """``log_image(path=...)`` records any path a step gives: the studio serves one only inside a
    run's folder or an output's tree, never the REST token or history.db in .localpipe/."""
    from localpipe.client.workspace import history_of
    from localpipe.sdk.workspace import Workspace
    from localpipe.state.layout import Layout
    from localpipe.state.token import api_token

    history = history_of(Workspace.from_config(root))
    token = api_token(Layout.of(root / ".localpipe"))
    step_run = client.get("/runs/1/steps/prep.json").json()["id"]
    for name, path in (("token", root / ".localpipe" / "api-token"), ("db", root / ".localpipe" / "history.db")):
        history.steps.add_metrics(step_run, [{"name": name, "kind": "image", "value": str(path), "logged_at": 0.0}], {})
        answer = client.get(f"/runs/1/image?step=prep&name={name}&index=0")
        assert answer.status_code == 404 and token not in answer.text, name


def test_writes_need_the_token_in_the_request_and_refuse_cross_site_requests(client):
    # the fixture's cookie, alone: what a cross-site form would send too
    assert client.post("/runs/1/cancel").status_code == 403
    evil = client.post("/runs/1/cancel", data={"token": TOKEN}, headers={"Origin": "http://evil.example"})
    assert evil.status_code == 403 and "evil.example" in evil.text
    assert (
        client.post("/runs/1/cancel", data={"token": TOKEN}, headers={"Sec-Fetch-Site": "cross-site"}).status_code
        == 403
    )
    done = client.post("/runs/1/cancel", data={"token": TOKEN}, headers={"Origin": "http://127.0.0.1:8765"})
    assert done.status_code == 400 and "already Completed" in done.text  # the token was accepted
    # another site's page reaching 127.0.0.1 through DNS rebinding names its own host
    assert client.get("/runs", headers={"Host": "evil.example"}).status_code == 403
    # the link's token is kept in a cookie, and the page then shows the actions
    client.cookies.clear()
    linked = client.get(f"/runs/1?token={TOKEN}")
    assert (
        linked.headers["set-cookie"].startswith("localpipe_token_8765=") and "HttpOnly" in linked.headers["set-cookie"]
    )
    assert 'name="token"' in client.get("/runs/1").text
    client.cookies.clear()
    assert client.get("/runs/1").status_code == 401
    assert client.post("/runs/1/cancel", data={"token": TOKEN}).status_code == 401  # a form's token alone: no page


def test_a_public_address_needs_the_token_for_every_request(root):
    app = create_app(root / ".localpipe", TOKEN, public=True)
    with TestClient(app, base_url="http://192.0.2.1:8765") as client:
        refused = client.get("/runs.json")
        assert refused.status_code == 401 and "token" in refused.json()["error"]
        assert client.get("/static/studio.css").status_code == 401
        assert client.get(f"/runs.json?token={TOKEN}").status_code == 200
        assert client.get("/runs.json").status_code == 200  # the cookie the link set
        client.cookies.clear()
        assert client.get("/runs.json", headers={"X-Localpipe-Token": TOKEN}).status_code == 200


def test_live_status_has_an_etag_and_events_end_with_the_run(client):
    first = client.get("/runs/2/status.json")
    assert first.json()["steps"]["prep"]["status"] == "Completed"
    again = client.get("/runs/2/status.json", headers={"If-None-Match": first.headers["etag"]})
    assert again.status_code == 304
    with client.stream("GET", "/runs/2/events") as events:
        lines = [line for line in events.iter_lines() if line]
    assert len(lines) == 1 and lines[0].startswith("data: {") and '"Completed"' in lines[0]


def test_cancel_and_rerun_from_the_studio(client, root, tmp_path):
    run_id = start_waiting_run(root, tmp_path / "flags")
    assert client.get(f"/runs/{run_id}.json").json()["status"] == "Running"
    answer = client.post(f"/runs/{run_id}/cancel", headers={"X-Localpipe-Token": TOKEN})
    assert answer.json()["message"] == f"run {run_id}: cancel requested"
    deadline = time.monotonic() + 30
    while client.get(f"/runs/{run_id}/status.json").json()["status"] != "Canceled":
        assert time.monotonic() < deadline
        time.sleep(0.1)
    rerun = client.post("/runs/1/rerun", data={"token": TOKEN, "param.lr": "0.3"}, follow_redirects=False)
    assert rerun.status_code == 303
    new_id = int(rerun.headers["location"].rsplit("/", 1)[1])
    deadline = time.monotonic() + 60
    while (run := client.get(f"/runs/{new_id}.json").json())["status"] not in ("Completed", "Failed"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert run["status"] == "Completed" and run["parameters"] == {"lr": 0.3}


def test_serve_prints_its_link_and_says_when_every_request_needs_the_token(root):
    for host, said in (("127.0.0.1", "every page needs its token"), ("0.0.0.0", "every request needs the token")):
        proc = subprocess.Popen(
            [sys.executable, "-m", "localpipe", "serve", "--host", host, "--port", "0", "-w", str(root)],
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            link, note = proc.stdout.readline(), proc.stdout.readline()
            assert re.fullmatch(rf"localpipe studio: http://{re.escape(host)}:\d+/\?token=[\w-]{{32}}\n", link)
            assert said in note
        finally:
            proc.terminate()
            assert proc.wait(timeout=10) in (0, -15)


def _seconds_per_request(client, url: str, times: int = 5) -> float:
    client.get(url)  # templates compiled, connection warm
    started = time.perf_counter()
    for _ in range(times):
        assert client.get(url).status_code == 200
    return (time.perf_counter() - started) / times


def test_the_runs_list_of_10000_runs_and_a_1000_step_run_page_are_fast(root):
    """The figures asked for (200 ms, 1 s) on a quiet machine; on a loaded one (CI, shared
    cores) the same promise as a scaling law measured under the same load: a page of the list
    of 10,000 runs costs what a page of 60 runs costs, a 1,000-step page about ten 100-step ones."""
    from localpipe.client.workspace import history_of
    from localpipe.sdk.workspace import Workspace

    history = history_of(Workspace.from_config(root))
    add_runs(history.tables, history.database, 60)  # a full page of 50 runs
    app = create_app(root / ".localpipe", TOKEN)
    with TestClient(app, base_url="http://127.0.0.1", headers={"X-Localpipe-Token": TOKEN}) as client:
        few = _seconds_per_request(client, "/runs")
    add_runs(history.tables, history.database, 10_000)
    small = add_wide_run(history.tables, history.database, 100)
    wide = add_wide_run(history.tables, history.database, 1000)
    with TestClient(
        create_app(root / ".localpipe", TOKEN), base_url="http://127.0.0.1", headers={"X-Localpipe-Token": TOKEN}
    ) as client:
        lists = {
            url: _seconds_per_request(client, url)
            for url in ("/runs", "/runs?status=Failed&offset=500", "/runs?experiment=many&offset=9000")
        }
        pages = {steps: _seconds_per_request(client, f"/runs/{run}", 3) for steps, run in ((100, small), (1000, wide))}
    print(f"studio: runs list of 60 runs {few:.4f}s; of 10,000 {lists}; run pages by steps {pages}")
    assert max(lists.values()) < max(0.2, 5 * few), (few, lists)
    assert pages[1000] < max(1.0, 15 * pages[100]), pages


def test_serve_on_a_port_in_use_is_one_line(root):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "localpipe", "serve", "--port", str(port), "-w", str(root)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == (
        f"error: localpipe serve cannot listen on 127.0.0.1:{port} (Address already in use): choose --port\n"
    )


def test_serve_on_a_port_no_socket_has_is_one_line(root):
    """A port past 65535 (or below 0) was Python's traceback (OverflowError from bind)."""
    for port in ("70000", "-1"):
        proc = subprocess.run(
            [sys.executable, "-m", "localpipe", "serve", "--port", port, "-w", str(root)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2 and proc.stdout == ""
        assert proc.stderr == (
            f"error: Invalid value for '--port': {port} is not in the range 0<=x<=65535. "
            "(see `localpipe serve --help`)\n"
        )


def test_serve_on_an_address_this_machine_has_not_names_the_host_to_change(root):
    """An unknown host name or an address of no interface of this machine said "choose --port",
    which cannot help: it says to choose --host."""
    for host in ("nosuchhost.invalid", "10.255.255.1"):
        proc = subprocess.run(
            [sys.executable, "-m", "localpipe", "serve", "--host", host, "--port", "0", "-w", str(root)],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 2 and proc.stdout == "" and proc.stderr.count("\n") == 1, proc.stderr
        assert proc.stderr.startswith(f"error: localpipe serve cannot listen on {host}:0 (")
        assert proc.stderr.endswith(
            "): choose --host: an address of this machine (127.0.0.1, or 0.0.0.0 for all of them)\n"
        ), proc.stderr


def _step(name, queued, started, ended, gpus=()):
    placement = {"cpus": 1, "memory": None, "gpus": list(gpus), "gpu_uuids": [f"GPU-{g}" for g in gpus]}
    return {
        "name": name,
        "status": "Completed",
        "queued_at": queued,
        "started_at": started,
        "ended_at": ended,
        "placement": placement,
    }


def test_the_timeline_puts_gpu_steps_on_their_gpus_and_waits_apart_and_marks_the_critical_path():
    from localpipe.studio import graphics

    steps = [
        _step("load", 0, 0.5, 2),
        _step("train0", 2, 3, 10, gpus=[0]),
        _step("train1", 2, 2.5, 6, gpus=[1, 2]),
        _step("report", 10, 10, 11),
        _step("side", 0, 0.2, 1),
    ]
    edges = [{"source": "load", "target": t} for t in ("train0", "train1")]
    edges += [{"source": t, "target": "report"} for t in ("train0", "train1")]
    drawn = graphics.timeline(steps, edges, now=11)
    lanes = [lane["label"] for lane in drawn["lanes"]]
    assert sorted(lanes) == ["CPU 1", "CPU 2", "GPU 0", "GPU 1", "GPU 2"]
    on = {}
    for bar in drawn["bars"]:
        on.setdefault(bar["step"]["name"], []).append(lanes[bar["y"] // graphics.LANE_HEIGHT])
    assert on["train0"] == ["GPU 0"] and on["train1"] == ["GPU 1", "GPU 2"]
    bars = {b["step"]["name"]: b for b in drawn["bars"]}
    assert bars["load"]["y"] == bars["report"]["y"]  # the CPU lane is free again when report is queued
    assert bars["train0"]["waited"] == 1 and bars["train0"]["ran"] == 7
    assert bars["train0"]["wait_width"] > 0 and bars["train0"]["run_x"] > bars["train0"]["wait_x"]
    assert {name for name, b in bars.items() if b["critical"]} == {"load", "train0", "report"}


def test_the_graph_of_a_1000_step_chain_is_laid_out_in_1000_levels():
    from localpipe.studio import graphics

    names = [f"s{i}" for i in range(1000)]
    steps = [{"name": n} for n in reversed(names)]  # consumers before producers: no recursion either way
    edges = [{"source": a, "target": b} for a, b in zip(names, names[1:], strict=False)]
    drawn = graphics.dag(steps, edges)
    x = {node["step"]["name"]: node["x"] for node in drawn["nodes"]}
    assert x["s999"] == 999 * (graphics.NODE_WIDTH + graphics.LEVEL_GAP) and len(drawn["edges"]) == 999


def test_another_module_adds_routes_and_a_background_task_that_share_the_token(root):
    import asyncio

    from starlette.responses import JSONResponse
    from starlette.routing import Route

    ticks = []

    async def tick(app):
        while True:
            ticks.append(app.state.layout.root)
            await asyncio.sleep(0.01)

    async def submit(request):
        await request.app.state.guard.check_write(request)
        return JSONResponse({"submitted": True})

    app = create_app(
        root / ".localpipe", TOKEN, extra_routes=[Route("/api/submit", submit, methods=["POST"])], background=[tick]
    )
    with TestClient(app, base_url="http://127.0.0.1") as client:
        assert client.post("/api/submit").status_code == 401
        client.get(f"/runs.json?token={TOKEN}")
        assert client.post("/api/submit").status_code == 403  # the link's cookie alone
        assert client.post("/api/submit", headers={"X-Localpipe-Token": TOKEN}).json() == {"submitted": True}
        deadline = time.monotonic() + 5
        while not ticks:
            assert time.monotonic() < deadline
            time.sleep(0.01)
    count = len(ticks)
    time.sleep(0.05)
    assert ticks[0] == root and len(ticks) == count  # stopped with the server


def test_an_error_page_says_what_kind_of_error_and_links_no_twin(client):
    missing = client.get("/runs/999999999")
    assert missing.status_code == 404 and "<h1>Not here</h1>" in missing.text and 'class="twin"' not in missing.text
    refused = client.post("/runs/1/cancel")
    assert refused.status_code == 403 and "<h1>Not allowed</h1>" in refused.text
    assert 'class="twin"' in client.get("/runs").text


def test_published_pipelines_pages_and_the_portal_urls_of_runs_experiments_and_published_pipelines(
    ws, project, monkeypatch
):
    """A published pipeline has a page (parameters, steps, the runs submitted from it); every
    handle's portal_url is its page in the studio, at LOCALPIPE_SERVER_URL."""
    from localpipe import Experiment, Pipeline, PipelineData, PipelineParameter, PythonScriptStep

    monkeypatch.setenv("LOCALPIPE_SERVER_URL", "http://127.0.0.1:8765")
    project("src/a.py", "import sys; open(sys.argv[2], 'w').write(sys.argv[4])\n")
    project("src/b.py", "print(open(__import__('sys').argv[1]).read())\n")
    data = PipelineData("data", is_directory=False)
    n = PipelineParameter("n", default_value=3)
    first = PythonScriptStep(
        "a.py", name="first", source_directory=str(ws.root / "src"), arguments=["--out", data, "--n", n]
    )
    second = PythonScriptStep(
        "b.py", name="second <b>", source_directory=str(ws.root / "src"), arguments=[data.as_input()]
    )
    published = Pipeline(ws, [second]).publish("scoring", description="nightly", version="1.0")
    run = published.submit(ws, "nightly", pipeline_parameters={"n": 5})
    assert run.wait_for_completion(show_output=False) == "Completed"

    with TestClient(create_app(ws.root / ".localpipe", TOKEN), base_url="http://127.0.0.1:8765") as client:
        client.cookies.set("localpipe_token_8765", TOKEN)
        listed = client.get("/published.json").json()["published"]
        assert [(p["name"], p["version"], p["status"], p["runs"]) for p in listed] == [("scoring", "1.0", "Active", 1)]
        page = client.get(published.portal_url.removeprefix("http://127.0.0.1:8765"))
        assert page.status_code == 200 and "nightly" in page.text and published.endpoint in page.text
        assert "second &lt;b&gt;" in page.text and "second <b>" not in page.text  # escaped
        twin = client.get(f"/published/{published.id}.json").json()
        assert twin["parameters"] == {"n": 3} and [r["id"] for r in twin["runs"]] == [run._number]
        assert [(s["name"], s["reads_from"]) for s in twin["steps"]] == [("first", []), ("second <b>", ["first"])]
        assert client.get("/published/nope").status_code == 404
        step = run.find_step_run("second <b>")[0]
        for handle in (run, step, Experiment(ws, "nightly"), published):
            url = handle.get_portal_url()
            assert url == handle.portal_url and url.startswith("http://127.0.0.1:8765/"), url
            assert client.get(url.removeprefix("http://127.0.0.1:8765")).status_code == 200, url


def test_a_log_tail_never_splits_a_character(client, root):
    """A running step's log can end inside a character (a block-buffered stdout is flushed every
    8 KiB, whatever it holds; a progress bar's █ is 3 bytes): the live tail answers the whole
    characters and the offset before the cut one, and the page's last 256 KiB start on one."""
    log = root / ".localpipe/runs/1/prep/stderr.log"
    saved = log.read_bytes() if log.exists() else None
    bar = "█".encode()
    try:
        log.write_bytes(b"ab" + bar + bar[:1])
        first = client.get("/runs/1/log?step=prep&stream=stderr&offset=0").json()
        assert (first["text"], first["offset"]) == ("ab█", 5)
        with open(log, "ab") as handle:
            handle.write(bar[1:] + b"\n")
        second = client.get(f"/runs/1/log?step=prep&stream=stderr&offset={first['offset']}").json()
        assert (second["text"], second["offset"]) == ("█\n", 9)
        log.write_bytes(bar * 100_000)  # its last 256 KiB begin inside a character
        tail = re.search(r'<pre id="log-stderr"[^>]*>([^<]*)</pre>', client.get("/runs/1/steps/prep").text)[1]
        assert "\ufffd" not in tail and set(tail) == {"█"}
    finally:
        log.unlink(missing_ok=True)
        if saved is not None:
            log.write_bytes(saved)


def _a_run_logging(root, values: list) -> int:
    """A workspace at ``root`` with one made-up run whose one step (s0000) logged ``values`` as "loss"."""
    from localpipe.client.workspace import history_of
    from localpipe.sdk.workspace import Workspace
    from localpipe.state.models import insert_rows

    history = history_of(Workspace.create(root))
    run = add_wide_run(history.tables, history.database, 1)
    step = history.tables.StepRun.get(history.tables.StepRun.run == run).id
    with history.database.write():
        insert_rows(
            history.tables.Metric, [{"step_run": step, "name": "loss", "kind": "scalar", "value": v} for v in values]
        )
    return run


def test_a_slow_page_holds_up_no_other_request(tmp_path):
    """A page that takes seconds (the 200,000 values a step logged, as JSON) is made in a thread of
    its own: an open run page's live status, or any other page, is answered meanwhile."""
    import threading

    run = _a_run_logging(tmp_path / "ws", [1 / (i + 1) for i in range(200_000)])
    app = create_app(tmp_path / "ws/.localpipe", TOKEN)
    with TestClient(app, base_url="http://127.0.0.1", headers={"X-Localpipe-Token": TOKEN}) as client:
        ended = {}

        def slow():
            assert len(client.get(f"/runs/{run}/metrics.json").json()["metrics"]) == 200_000
            ended["slow"] = time.monotonic()

        thread = threading.Thread(target=slow)
        thread.start()
        time.sleep(0.2)  # the slow page is being made
        assert client.get(f"/runs/{run}/status.json").json()["status"] == "Completed"
        assert client.get("/runs.json").json()["total"] == 1
        answered = time.monotonic()
        thread.join()
    assert answered < ended["slow"], "the status and the runs list waited for the slow page"


def test_a_series_of_50000_values_is_charted_in_a_page_of_kilobytes(tmp_path):
    """A step that logged its loss at every batch: the charts of its page and of the run's metrics
    page (2.3 MB for 200,000 values) draw at most two points (the lowest and the highest) per
    pixel column, spikes kept."""
    values = [1 / (i + 1) for i in range(50_000)]
    values[12_345] = 50.0  # one spike
    run = _a_run_logging(tmp_path / "ws", values)
    app = create_app(tmp_path / "ws/.localpipe", TOKEN)
    with TestClient(app, base_url="http://127.0.0.1", headers={"X-Localpipe-Token": TOKEN}) as client:
        for url in (f"/runs/{run}/metrics", f"/runs/{run}/steps/s0000"):
            html = client.get(url).text
            assert len(html) < 100_000, (url, len(html))
            points = [p.split(",") for p in re.search(r'<polyline class="series" points="([^"]*)"', html)[1].split()]
            assert 348 <= len(points) <= 2 * 348, len(points)  # the chart's 348 pixels inside its margins
            assert min(float(y) for _, y in points) == 36.0  # the spike, at the top


def test_a_chart_of_values_near_a_floats_limits_is_drawn_not_a_500(tmp_path):
    """Values a diverging training can log (1e308 and -1e308, whose span is past a float's
    range; the same tiny or huge value twice) are charted: they answered the metrics page and
    the step page with 500 (OverflowError, ZeroDivisionError)."""
    from localpipe.studio.graphics import line_chart

    run = _a_run_logging(tmp_path / "ws", [1e308, -1e308, 0.5])
    app = create_app(tmp_path / "ws/.localpipe", TOKEN)
    with TestClient(app, base_url="http://127.0.0.1", headers={"X-Localpipe-Token": TOKEN}) as client:
        for url in (f"/runs/{run}/metrics", f"/runs/{run}/steps/s0000"):
            answer = client.get(url)
            assert answer.status_code == 200 and "<polyline" in answer.text, url
    for values in ([1e308, -1e308], [1.7e308, 1.7e308], [-1.7e308, -1.7e308], [5e-324, 5e-324], [0.0, 0.0]):
        chart = line_chart(list(enumerate(values)))
        ys = [float(p.split(",")[1]) for p in chart["points"].split()]
        assert len(ys) == 2 and all(36 <= y <= 144 for y in ys) and chart["y_ticks"], (values, chart)


def test_a_rerun_continues_on_a_step_failure_as_the_run_did(tmp_path):
    """A run submitted with --continue-on-step-failure is rerun with it: the rerun stopped at the
    first failure, leaving the steps not downstream of it unrun."""
    root = tmp_path / "ws"
    steps = "\n".join(
        f'{name} = PythonScriptStep(name="{name}", script_name="{name}.py", source_directory="s", allow_reuse=False)'
        for name in ("fail", "early", "late")
    )
    write(
        root / "cont.py",
        "from localpipe import Pipeline, PythonScriptStep, Workspace\n"
        f"ws = Workspace.from_config()\n{steps}\nlate.run_after(early)\n"
        "pipeline = Pipeline(workspace=ws, steps=[fail, late])\n",
    )
    write(root / "s/fail.py", "raise SystemExit(3)\n")
    write(root / "s/early.py", "import time\ntime.sleep(1)\n")
    write(root / "s/late.py", "print('late')\n")
    studio_helpers.localpipe(root, "init", str(root))
    proc = subprocess.run(
        [sys.executable, "-m", "localpipe", "submit", "cont.py", "--continue-on-step-failure"], cwd=root, timeout=120
    )
    assert proc.returncode == 1
    app = create_app(root / ".localpipe", TOKEN)
    with TestClient(app, base_url="http://127.0.0.1", headers={"X-Localpipe-Token": TOKEN}) as client:
        first = client.get("/runs/1.json").json()
        assert (
            first["continue_on_step_failure"]
            and {s["name"]: s["status"] for s in first["steps"]}["late"] == "Completed"
        )
        new_id = client.post("/runs/1/rerun").json()["run"]
        deadline = time.monotonic() + 60
        while (run := client.get(f"/runs/{new_id}.json").json())["status"] in (
            "NotStarted",
            "Queued",
            "Preparing",
            "Running",
            "Finalizing",
        ):
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert run["continue_on_step_failure"], run
    assert {s["name"]: s["status"] for s in run["steps"]} == {
        "fail": "Failed",
        "early": "Completed",
        "late": "Completed",
    }


def test_a_damaged_history_db_is_one_line_on_the_page_that_reads_it(tmp_path):
    """A history.db whose pages were damaged (a disk error, a copy cut short) answered the pages
    that read them with a bare "Internal Server Error": the page says what is wrong in one line."""
    import sqlite3

    run = _a_run_logging(tmp_path / "ws", [float(i) for i in range(20_000)])
    from localpipe.state.reader import close_all

    close_all()
    history = tmp_path / "ws/.localpipe/history.db"
    with sqlite3.connect(history) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    size = history.stat().st_size
    with open(history, "r+b") as handle:  # the metrics' pages, past the first half of the file
        handle.seek(size // 2 // 4096 * 4096)
        handle.write(b"\xff" * (size // 4))
    app = create_app(tmp_path / "ws/.localpipe", TOKEN)
    with TestClient(
        app, base_url="http://127.0.0.1", headers={"X-Localpipe-Token": TOKEN}, raise_server_exceptions=False
    ) as client:
        answer = client.get(f"/runs/{run}/metrics.json")
        assert answer.status_code == 500
        assert answer.json()["error"] == (
            f"{history} is damaged (database disk image is malformed): save what SQLite can still read (sqlite3 "
            f"{history} .recover), then move it away and run `localpipe init` to start a new one"
        )
        page = client.get(f"/runs/{run}/metrics")
        assert page.status_code == 500 and "is damaged (database disk image is malformed)" in page.text


def test_a_scripts_refused_action_is_answered_in_json_as_its_success_is(client):
    """A script posting with the token header (the curl line of docs/studio.md) gets JSON when
    the action is done, {"message": ...}, and got the HTML error page when it was refused."""
    headers = {"X-Localpipe-Token": TOKEN}
    done = client.post("/runs/1/cancel", headers=headers)
    assert done.status_code == 400
    assert done.json() == {"error": "run 1 is already Completed: there is nothing to cancel"}
    missing = client.post("/runs/999999999/rerun", headers=headers)  # the speed test adds 10,000 runs
    assert missing.status_code == 404 and missing.json()["error"].startswith("run 999999999 does not exist")
    refused = client.post("/runs/1/rerun", headers=headers, data={"param.nope": "1"})
    assert refused.status_code == 400 and refused.json()["error"].startswith("the rerun was refused: ")
    # a browser's form, without the header, gets the error page
    form = client.post("/runs/1/cancel", data={"token": TOKEN})
    assert form.status_code == 400 and '<p class="error">run 1 is already Completed' in form.text


def test_an_output_of_30000_files_lists_its_first_1000_at_once(client, root):
    """The output link of a step that wrote 30,000 files: the listing (its first 1,000 files) took
    12 s for 50,000, each file's path resolved and the whole tree sorted before the first 1,000
    were kept; the tree is walked in order until 1,000, a link resolved alone."""
    digest = client.get("/runs/1/steps/prep.json").json()["outputs"][0]["digest"]
    folder = root / ".localpipe/objects" / digest[:2] / digest
    url = "/runs/1/output.json?step=prep&output=prepared"
    started = time.perf_counter()
    assert client.get(url).json()["files"] == ["rows.csv"]
    small = time.perf_counter() - started
    os.chmod(folder, 0o755)
    try:
        for part in range(30):
            (folder / f"many/p{part:02d}").mkdir(parents=True)
            for i in range(1000):
                (folder / f"many/p{part:02d}/f{i:04d}.txt").write_text("x")
        (folder / "many/p00/f0000.txt").unlink()
        (folder / "many/p00/f0000.txt").symlink_to(folder / "rows.csv")  # a link inside the tree: listed
        started = time.perf_counter()
        files = client.get(url).json()["files"]
        big = time.perf_counter() - started
    finally:
        shutil.rmtree(folder / "many")
        os.chmod(folder, 0o555)
    assert files == [f"many/p00/f{i:04d}.txt" for i in range(1000)]
    print(f"studio: an output's listing of 1 file {small:.4f}s, of 30,000 files {big:.4f}s")
    assert big < max(1.0, 50 * small), (small, big)


def test_an_experiments_page_reads_the_last_value_of_each_metric_not_all_of_them(tmp_path):
    """An experiment whose runs logged their loss at each of 40,000 batches: its page charts each
    run's last value, and read and decoded every value of every run for it (seconds a page)."""
    from localpipe.client.workspace import history_of
    from localpipe.sdk.workspace import Workspace
    from localpipe.state.models import insert_rows

    history = history_of(Workspace.create(tmp_path / "ws"))
    tables = history.tables

    def runs_logging(count: int) -> list[int]:
        made = []
        for r in range(5):
            run = add_wide_run(tables, history.database, 1)
            step = tables.StepRun.get(tables.StepRun.run == run).id
            rows = [{"step_run": step, "name": "loss", "kind": "scalar", "value": r + i / count} for i in range(count)]
            rows.append({"step_run": step, "name": "loss", "kind": "scalar", "value": "diverged"})  # not a number
            rows.append({"step_run": step, "name": "note", "kind": "scalar", "value": True})
            with history.database.write():
                insert_rows(tables.Metric, rows)
            made.append(run)
        return made

    few = runs_logging(10)
    app = create_app(tmp_path / "ws/.localpipe", TOKEN)
    with TestClient(app, base_url="http://127.0.0.1", headers={"X-Localpipe-Token": TOKEN}) as client:
        small = _seconds_per_request(client, "/experiments/wide.json", 3)
    many = runs_logging(40_000)
    with TestClient(app, base_url="http://127.0.0.1", headers={"X-Localpipe-Token": TOKEN}) as client:
        metrics = client.get("/experiments/wide.json").json()["metrics"]
        large = _seconds_per_request(client, "/experiments/wide.json", 3)
    expected = [[run, r + 9 / 10] for r, run in enumerate(few)] + [
        [run, r + 39_999 / 40_000] for r, run in enumerate(many)
    ]
    assert metrics == {"loss": expected}  # the last number of each run: a text or a boolean is no point
    print(f"studio: an experiment's page, 5 runs of 10 values {small:.4f}s, and 5 of 40,000 {large:.4f}s")
    assert large < max(1.0, 20 * small), (small, large)


def test_comparing_runs_reads_the_last_value_of_each_metric_not_all_of_them(tmp_path):
    """Two runs whose step logged its loss 100,000 times: the comparison shows each one's last
    value, and read and decoded every value of both runs for it."""
    run = _a_run_logging(tmp_path / "ws", [i / 100_000 for i in range(100_000)] + ["diverged"])
    app = create_app(tmp_path / "ws/.localpipe", TOKEN)
    with TestClient(app, base_url="http://127.0.0.1", headers={"X-Localpipe-Token": TOKEN}) as client:
        compared = client.get(f"/compare.json?a={run}&b={run}").json()
        took = _seconds_per_request(client, f"/compare?a={run}&b={run}", 3)
        status = _seconds_per_request(client, f"/runs/{run}.json", 3)
    assert compared["metrics"] == [{"step": "s0000", "name": "loss", "a": "diverged", "b": "diverged"}]
    print(f"studio: comparing two runs of 100,000 values {took:.4f}s, a run's twin {status:.4f}s")
    assert took < max(1.0, 20 * status), (status, took)


def test_the_experiments_page_of_4000_experiments_is_not_quadratic(tmp_path):
    """A workspace whose runs each went to an experiment of its own (a name per date, per
    sweep): the experiments page matched every experiment against every (experiment, status)
    count, 9.6 s for 5,000 experiments; it costs about what the rows cost."""
    from localpipe.client.workspace import history_of
    from localpipe.sdk.workspace import Workspace
    from localpipe.state.models import insert_rows

    history = history_of(Workspace.create(tmp_path / "ws"))
    tables = history.tables

    def experiments(first: int, count: int) -> None:
        with history.database.write():
            graph = tables.PipelineGraph.create(digest=f"g{first}", graph={"steps": []})
            insert_rows(tables.Experiment, [{"name": f"e{i:05d}"} for i in range(first, first + count)])
            ids = [e.id for e in tables.Experiment.select().where(tables.Experiment.name >= f"e{first:05d}")]
            runs = [{"experiment": e, "pipeline": graph.id, "status": s} for e in ids for s in ("Completed", "Failed")]
            insert_rows(tables.PipelineRun, runs)

    experiments(0, 40)
    app = create_app(tmp_path / "ws/.localpipe", TOKEN)
    with TestClient(app, base_url="http://127.0.0.1", headers={"X-Localpipe-Token": TOKEN}) as client:
        few = _seconds_per_request(client, "/experiments.json", 3)
        experiments(40, 3960)
        found = client.get("/experiments.json").json()["experiments"]
        many = _seconds_per_request(client, "/experiments.json", 2)
    assert len(found) == 4000 and all(e["statuses"] == {"Completed": 1, "Failed": 1} for e in found)
    print(f"studio: the experiments page of 40 experiments {few:.4f}s, of 4,000 {many:.4f}s")
    assert many < max(1.0, 200 * few), (few, many)
