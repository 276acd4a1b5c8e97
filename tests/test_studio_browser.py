"""The studio in a real browser: Debian's chromium, driven by Playwright (one browser for these
tests), against a real ``localpipe serve`` process.

Without chromium these tests skip saying why; in CI (.ci/run sets LOCALPIPE_REQUIRE_BROWSER, and
installs chromium) they never skip. LOCALPIPE_STUDIO_SCREENSHOTS=FOLDER saves the main pages
there as PNGs (the ones in docs/ were made so).
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from pathlib import Path

import pytest

from tests.studio_helpers import SCRIPT_STEP, add_wide_run, start_waiting_run

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("LOCALPIPE_STUDIO_SCREENSHOTS")
COLOURS = {"Completed": "rgb(140, 233, 154)", "Reused": "rgb(208, 191, 255)", "Running": "rgb(116, 192, 252)"}


def _base(link: str) -> str:
    return link.split("/?", 1)[0]


def _fill(page, selector: str) -> str:
    return page.locator(selector).first.evaluate("el => getComputedStyle(el).fill")


def _shot(page, name: str) -> None:
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"studio-{name}.png"))


def test_click_through_runs_a_run_its_dag_a_step_its_log_a_chart_and_a_comparison(studio, no_alerts):
    root, link = studio
    page = no_alerts
    page.goto(link)
    assert "token=" not in page.url  # sent on without it: the cookie keeps it, the history does not
    _shot(page, "runs")
    page.locator("a.run-link", has_text="2").click()
    page.wait_for_url("**/runs/2")
    nodes = page.locator("svg.dag g.node")
    assert nodes.count() == 2
    assert _fill(page, 'g.node[data-step="prep"] rect') == COLOURS["Completed"]
    reused = page.locator("g.node").filter(has_text="reused from run 1")
    assert reused.get_attribute("data-step") == SCRIPT_STEP
    assert _fill(page, "g.node.st-Reused rect") == COLOURS["Reused"]
    assert "reused from run 1" in reused.locator("title").text_content()
    assert page.locator("svg.timeline g.bar").count() == 1
    _shot(page, "run")
    page.locator('g.node[data-step="prep"]').click()
    page.wait_for_url("**/runs/2/steps/prep")
    assert "prep says <b>hello</b> & <script>alert(2)</script>" in page.locator("#log-stdout").text_content()
    chart = page.locator('section.metric[data-metric="loss"] svg.chart polyline')
    assert len(chart.get_attribute("points").split()) == 6
    _shot(page, "step")
    page.locator("h1 a", has_text="Run 2").click()
    page.locator("a", has_text="metrics").first.click()
    page.wait_for_url("**/runs/2/metrics")
    assert page.locator('section.metric[data-metric="accuracies"] polyline').count() == 1
    assert page.locator('img.logged[alt="figure"]').evaluate("img => img.naturalWidth") == 1
    page.locator("header nav a", has_text="Runs").click()
    page.locator('input.pick[value="1"]').check()
    page.locator('input.pick[value="2"]').check()
    page.locator("#compare-button").click()
    page.wait_for_url("**/compare?a=1&b=2")
    assert page.locator("h1").text_content() == "Compare run 1 and run 2"
    assert page.locator("tr.differs").filter(has_text=SCRIPT_STEP).count() == 1
    _shot(page, "compare")


def test_a_running_run_changes_colour_without_a_reload_and_cancel_ends_it(studio, no_alerts, tmp_path):
    root, link = studio
    page = no_alerts
    flags = tmp_path / "flags"
    run_id = start_waiting_run(root, flags)
    page.goto(f"{link}".replace("/?", f"/runs/{run_id}?"))
    first = 'g.node[data-step="first"]'
    assert _fill(page, first + " rect") == COLOURS["Running"]
    page.evaluate("window.notReloaded = true")
    (flags / "go").touch()
    shown = page.wait_for_function(
        f"""() => document.querySelector('{first}').classList.contains('st-Completed') && Date.now() / 1000""",
        polling="raf",
        timeout=15_000,
    ).json_value()
    assert _fill(page, first + " rect") == COLOURS["Completed"]
    assert page.evaluate("window.notReloaded") is True
    with urllib.request.urlopen(link.replace("/?", f"/runs/{run_id}/status.json?")) as answer:
        ended = json.load(answer)["steps"]["first"]["ended_at"]
    latency = shown - ended
    print(f"status change shown {latency:.3f}s after the step ended")
    assert latency < 0.5
    page.locator('g.node[data-step="second"].st-Running').wait_for(timeout=15_000)
    _shot(page, "live")
    page.locator("#cancel").click()
    page.locator("#run-status .badge", has_text="Canceled").wait_for(timeout=20_000)
    with urllib.request.urlopen(link.replace("/?", f"/runs/{run_id}.json?")) as answer:
        run = json.load(answer)
    assert run["status"] == "Canceled"
    assert {s["name"]: s["status"] for s in run["steps"]} == {"first": "Completed", "second": "Canceled"}


def test_a_step_pages_log_tail_goes_on_after_a_failed_poll(studio, page, tmp_path):
    """A log poll that failed (the server restarting, a network blip) stopped the step page's tail
    for good: it now tries again."""
    root, link = studio
    run_id = start_waiting_run(root, tmp_path / "flags", "--regenerate-outputs")
    failed = []

    def fail_twice(route):
        if len(failed) < 2:
            failed.append(route.request.url)
            route.abort()
        else:
            route.continue_()

    try:
        page.route("**/log?step=second*", fail_twice)
        page.goto(link.replace("/?", f"/runs/{run_id}/steps/second?"))
        (tmp_path / "flags/go").touch()
        page.locator("pre[data-stream]", has_text="second runs").wait_for(timeout=20_000)
        assert len(failed) == 2
    finally:
        token = link.split("token=", 1)[1]
        cancel = urllib.request.Request(
            link.replace("/?", f"/runs/{run_id}/cancel?"), method="POST", headers={"X-Localpipe-Token": token}
        )
        urllib.request.urlopen(cancel).close()


def test_a_run_page_is_made_again_when_its_run_ends(studio, page, tmp_path):
    """What only the end tells (the run's error, its steps' exit codes, a sweep's best trial) was
    missing from a page that followed the run until a reload: the page reloads itself as it ends."""
    root, link = studio
    run_id = start_waiting_run(root, tmp_path / "flags", "--regenerate-outputs")
    page.goto(link.replace("/?", f"/runs/{run_id}?"))
    page.locator('g.node[data-step="first"].st-Running').wait_for(timeout=15_000)
    page.evaluate("window.followed = true")
    token = link.split("token=", 1)[1]
    cancel = urllib.request.Request(  # from elsewhere, not from this page's form
        link.replace("/?", f"/runs/{run_id}/cancel?"), method="POST", headers={"X-Localpipe-Token": token}
    )
    urllib.request.urlopen(cancel).close()
    page.wait_for_function("() => window.followed === undefined", timeout=20_000)
    assert page.locator("#run").get_attribute("data-live") == "no"
    assert page.locator("#run-status .badge").inner_text() == "Canceled"


def test_seven_pages_of_a_running_run_leave_the_studio_reachable(studio, page, tmp_path):
    """A browser opens at most six connections to one server: each page of a running run that
    listened to its event stream held one, so with six open a seventh page of the studio never
    loaded (until a run ended). The pages poll the run's status instead."""
    root, link = studio
    run_id = start_waiting_run(root, tmp_path / "flags", "--regenerate-outputs")
    try:
        page.goto(link.replace("/?", f"/runs/{run_id}?"))
        pages = [page] + [page.context.new_page() for _ in range(6)]
        for other in pages[1:6]:
            other.goto(link.replace("/?", f"/runs/{run_id}?"))
        time.sleep(1)  # each is following the run
        started = time.perf_counter()
        pages[6].goto(link.replace("/?", "/runs?"), timeout=15_000)
        assert pages[6].locator("a.run-link").count() >= 2
        print(f"a seventh page loaded in {time.perf_counter() - started:.3f}s")
        (tmp_path / "flags/go").touch()
        for other in pages[:6]:  # and every one of them still follows the run
            other.locator('g.node[data-step="second"].st-Running').wait_for(timeout=15_000)
    finally:
        token = link.split("token=", 1)[1]
        cancel = urllib.request.Request(
            link.replace("/?", f"/runs/{run_id}/cancel?"), method="POST", headers={"X-Localpipe-Token": token}
        )
        urllib.request.urlopen(cancel).close()


def _load_seconds(page, url: str) -> float:
    page.goto(url)  # once to warm the server's templates and the browser's cache
    took = []
    for _ in range(2):
        started = time.perf_counter()
        page.goto(url, wait_until="load")
        took.append(time.perf_counter() - started)
    return min(took)


def test_a_1000_step_run_page_renders_quickly_and_pans(studio, no_alerts):
    """Under 1 s on a quiet machine (docs/studio.md has the figures); on a loaded one the same
    promise as a law measured under the same load: a 1,000-step page costs about ten 100-step
    pages, a zoom frame a few empty frames."""
    from localpipe.client.workspace import history_of
    from localpipe.sdk.workspace import Workspace

    root, link = studio
    page = no_alerts
    history = history_of(Workspace.from_config(root))
    runs = {steps: add_wide_run(history.tables, history.database, steps) for steps in (100, 1000)}
    took = {steps: _load_seconds(page, link.replace("/?", f"/runs/{run}?")) for steps, run in runs.items()}
    assert page.locator("svg.dag g.node").count() == 1000
    frames = page.evaluate(
        """async () => {
            const svg = document.getElementById('dag');
            const frame = async (work) => {
                const t0 = performance.now();
                for (let i = 0; i < 20; i++) { work(); await new Promise(requestAnimationFrame); }
                return (performance.now() - t0) / 20;
            };
            const empty = await frame(() => {});
            const zoom = await frame(() => svg.dispatchEvent(
                new WheelEvent('wheel', {deltaY: -40, clientX: 300, clientY: 300, cancelable: true})));
            return {empty, zoom, transform: svg.style.transform};
        }"""
    )
    assert frames["transform"].startswith("translate(") and "scale(" in frames["transform"]
    print(f"run pages loaded in Chromium by steps: {took}; frames (ms): {frames}")
    assert took[1000] < max(1.0, 15 * took[100]), took
    assert frames["zoom"] < max(100, 5 * frames["empty"]), frames  # drawing every label: 125 ms here


def test_the_lists_and_the_run_page_work_with_javascript_off(studio, browser):
    root, link = studio
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(link)
        page.locator('select[name="status"]').select_option("Completed")
        page.locator("button", has_text="Filter").click()
        page.wait_for_url("**/runs?experiment=&status=Completed")
        assert page.locator("a.run-link").count() >= 2
        page.locator('input.pick[value="1"]').check()
        page.locator('input.pick[value="2"]').check()
        page.locator("#compare-button").click()
        assert page.locator("h1").text_content() == "Compare run 1 and run 2"
        page.goto(_base(link) + "/runs/2")
        assert page.locator("svg.dag g.node").count() == 2
        assert _fill(page, 'g.node[data-step="prep"] rect') == COLOURS["Completed"]
        page.locator("#only-failed").click()
        assert page.locator(".dag-box.only-failed").count() == 1
    finally:
        context.close()
