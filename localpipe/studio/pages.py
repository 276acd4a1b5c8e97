"""The studio's routes: each page answers as HTML or as its JSON twin (docs/studio.md lists them).

A page is a plain function, which Starlette calls in its pool of threads: a page that takes
seconds (a step's 200,000 metric values) holds up no other request, an open page's live
status among them. What runs on the event loop itself (the event stream, the actions) reads
history.db through ``run_in_threadpool`` too."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import Route

import localpipe.status
import localpipe.studio.graphics as graphics
from localpipe.errors import NotFoundError
from localpipe.plan.sweep import ranked_trials
from localpipe.state.views import Views
from localpipe.studio.render import page, wants_json
from localpipe.studio.security import FILE_HEADERS, form_fields

PAGE_SIZE = 50
MAX_PAGE_SIZE = 500  # what ``?limit=`` may ask of a list of runs
LOG_PAGE_BYTES = 256 * 1024  # of a log shown at once: the page shows its end, the download all of it
LIVE_POLL_SECONDS = 0.1  # how often an open run page's event stream looks for status changes
ACTIVE = {status.value for status in localpipe.status.ACTIVE}


def _views(request: Request) -> Views:
    return request.app.state.views


def _int(request: Request, name: str, default: int) -> int:
    try:
        number = max(int(request.query_params.get(name, default)), 0)
    except ValueError:
        number = None
    if number is None or number >= 1 << 63:  # past SQLite's integers
        raise HTTPException(400, f'"{name}" must be a whole number')
    return number


def _limit(request: Request) -> int:
    """A list's ``?limit=``: PAGE_SIZE when absent or 0, never more than MAX_PAGE_SIZE."""
    return min(_int(request, "limit", PAGE_SIZE), MAX_PAGE_SIZE) or PAGE_SIZE


# -- runs and experiments -------------------------------------------------------------------------
def runs_list(request: Request):
    experiment = request.query_params.get("experiment") or None
    status = request.query_params.get("status") or None
    data = _views(request).runs(experiment, status, _limit(request), _int(request, "offset", 0))
    data["experiment"], data["status"] = experiment, status
    experiments = _views(request).experiment_names() if not wants_json(request) else []
    return page(request, "runs.html", data, experiments=experiments)


def experiments_list(request: Request):
    return page(request, "experiments.html", {"experiments": _views(request).experiments()})


def experiment_page(request: Request):
    name = _name(request, "name")
    views = _views(request)
    runs = views.runs(name, None, _limit(request), _int(request, "offset", 0)) if name else {"total": 0}
    if not runs["total"]:  # "" too: views.runs reads it as every experiment
        raise NotFoundError(f'experiment "{name}" has no runs here: see the experiments page')
    metrics = views.experiment_metrics(name)
    data = {"name": name, **runs, "metrics": {k: [list(p) for p in v] for k, v in metrics.items()}}
    charts = {metric: graphics.line_chart(points, "run") for metric, points in metrics.items()}
    return page(request, "experiment.html", data, charts=charts)


def _name(request: Request, key: str) -> str:
    """A path parameter, less the twin's ``.json`` suffix."""
    value = request.path_params[key]
    return value[: -len(".json")] if request.url.path.endswith(".json") else value


# -- one run ----------------------------------------------------------------------------------------
def run_page(request: Request):
    views = _views(request)
    run = views.run(_name(request, "run"))
    run["critical_path"] = sorted(graphics.critical_path(run["steps"], run["edges"]))
    run["sweeps"] = _sweeps(views, run)
    if wants_json(request):
        return JSONResponse(run)
    failed_only = request.query_params.get("failed") == "1"
    return page(
        request,
        "run.html",
        run,
        dag=graphics.dag(run["steps"], run["edges"]),
        timeline=graphics.timeline(run["steps"], run["edges"], time.time()),
        failed_only=failed_only,
        active=run["status"] in ACTIVE,
        rerunnable=bool(run["pipeline_file"]),
    )


def _sweeps(views: Views, run: dict) -> list[dict]:
    """A run's hyperparameter sweeps: each one's primary metric, its trials best first, and a chart
    of each trial's best value in the order the trials were made (a Bayesian sweep's should improve)."""
    sweeps = views.sweeps(run["id"])
    if not sweeps:
        return []
    metrics, steps = views.metrics_of_steps(run["steps"]), {step["name"]: step for step in run["steps"]}
    found = []
    for sweep in sweeps:
        trials = ranked_trials(sweep, metrics, steps)
        by_order = sorted((t["index"], t["best"]) for t in trials if t["best"] is not None)
        found.append({
            "metric": sweep["primary_metric_config"],
            "sampling": sweep["generator_config"]["name"],
            "trials": trials,
            "chart": graphics.line_chart(by_order, "trial") if by_order else None,
        })  # fmt: skip
    return found


def run_timeline(request: Request):
    """The run page's timeline alone (an SVG fragment): the live page fetches it again as steps change."""
    run = _views(request).run(request.path_params["run"])
    return page(request, "timeline.html", run, timeline=graphics.timeline(run["steps"], run["edges"], time.time()))


def run_status(request: Request):
    """The run's status and its steps' (the live page's data), with an ETag: a poller that sends
    ``If-None-Match`` gets 304 until something changes."""
    data = _views(request).statuses(request.path_params["run"])
    body = json.dumps(data, sort_keys=True).encode()
    tag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
    if request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers={"ETag": tag})
    return Response(body, media_type="application/json", headers={"ETag": tag, "Cache-Control": "no-cache"})


async def run_events(request: Request):
    """Server-sent events: the run's statuses (as ``status.json``) each time they change, until
    the run has ended and that was sent."""
    views = _views(request)
    run_id = request.path_params["run"]
    await run_in_threadpool(views.statuses, run_id)  # a missing run is a 404, not an empty stream

    async def stream():
        last = None
        while True:
            data = await run_in_threadpool(views.statuses, run_id)
            text = json.dumps(data, sort_keys=True)
            if text != last:
                last = text
                yield f"data: {text}\n\n"
                if data["status"] not in ACTIVE:
                    return
            await asyncio.sleep(LIVE_POLL_SECONDS)

    return StreamingResponse(stream(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})


def step_page(request: Request):
    views = _views(request)
    run_id, name = request.path_params["run"], request.path_params["name"]
    try:
        step = views.step(run_id, name)
    except NotFoundError:
        if not name.endswith(".json"):
            raise
        step = views.step(run_id, name[: -len(".json")])
    step["metrics"] = views.metrics(run_id, step["name"])
    step["logs"] = {stream: _log_info(request, step, stream) for stream in ("stdout", "stderr")}
    if wants_json(request):
        return JSONResponse(step)
    tails = {stream: _read_log(request, step, stream, None) for stream in ("stdout", "stderr")}
    return page(
        request, "step.html", step, tails=tails, charts=_charts(step["metrics"]), active=step["status"] in ACTIVE
    )


def _log_path(request: Request, step: dict, stream: str) -> Path | None:
    """A step's log file, inside the workspace's run folders; a reused step's are those of the
    step run that produced its outputs. None when there is none (or it leads outside)."""
    if stream not in ("stdout", "stderr"):
        raise HTTPException(400, f'"{stream}" is not a log: stdout or stderr')
    layout = request.app.state.layout
    run, name = step["run"], step["name"]
    if step["reused_from_id"]:
        origin = _views(request).step_run_location(step["reused_from_id"])
        if origin is None:
            return None
        run, name = origin
    return _inside(layout.runs, layout.step_dir(run, name) / f"{stream}.log")


def _inside(root: Path, path: Path) -> Path | None:
    """``path`` when it and whatever links it passes through stay inside ``root``; else None."""
    try:
        real = path.resolve(strict=True)
    except (OSError, RuntimeError):
        return None
    return real if real.is_relative_to(root.resolve()) and real.is_file() else None


def _log_info(request: Request, step: dict, stream: str) -> dict:
    path = _log_path(request, step, stream)
    return {"size": path.stat().st_size if path else 0, "reused_from_run": step["reused_from_run"]}


def _read_log(request: Request, step: dict, stream: str, offset: int | None) -> tuple[str, int]:
    """The log's text from ``offset`` (None: its last LOG_PAGE_BYTES), and the offset after it."""
    path = _log_path(request, step, stream)
    if path is None:
        return "", 0
    with open(path, "rb") as handle:
        end = handle.seek(0, os.SEEK_END)
        start = max(end - LOG_PAGE_BYTES, 0) if offset is None else min(offset, end)
        handle.seek(start)
        data = handle.read(min(end - start, LOG_PAGE_BYTES * 4))
    if offset is None and start:  # the last 256 KiB may begin inside a character: from the next one
        skip = next((i for i, byte in enumerate(data[:4]) if byte & 0xC0 != 0x80), 0)
        data, start = data[skip:], start + skip
    data = data[: _whole_characters(data)]  # the rest is read with the bytes written after it
    return data.decode("utf-8", errors="replace"), start + len(data)


def _whole_characters(data: bytes) -> int:
    """How many bytes of ``data`` end on a whole UTF-8 character: a log read while its step
    writes can end inside one (a block-buffered stdout is flushed wherever its 8 KiB end)."""
    for back in range(1, min(len(data), 4) + 1):
        byte = data[-back]
        if byte & 0xC0 != 0x80:  # the last character's first byte: how long it should be
            length = 2 if 0xC0 <= byte < 0xE0 else 3 if 0xE0 <= byte < 0xF0 else 4 if 0xF0 <= byte < 0xF8 else 1
            return len(data) - back if length > back else len(data)
    return len(data)


def step_log(request: Request):
    """A step's stdout or stderr: all of it (``?download=1``), or from ``?offset=`` (the live
    tail: JSON with the text and the next offset)."""
    step = _views(request).step(request.path_params["run"], request.query_params.get("step", ""))
    stream = request.query_params.get("stream", "stdout")
    if request.query_params.get("download"):
        path = _log_path(request, step, stream)
        if path is None:
            raise HTTPException(404, f'step "{step["name"]}" has no {stream} log here')
        # What the log holds now: a running step's log grows while it is sent.
        return StreamingResponse(
            _file_until(path, path.stat().st_size),
            media_type="text/plain; charset=utf-8",
            headers={
                **FILE_HEADERS,
                "Content-Disposition": f"attachment; filename*=UTF-8''{quote(step['name'])}.{stream}.log",
            },
        )
    text, offset = _read_log(request, step, stream, _int(request, "offset", 0))
    return JSONResponse({"text": text, "offset": offset, "status": step["status"]})


def _file_until(path: Path, end: int):
    """The first ``end`` bytes of ``path``, in chunks."""
    with open(path, "rb") as handle:
        while end > 0 and (chunk := handle.read(min(end, 1 << 16))):
            end -= len(chunk)
            yield chunk


def step_output(request: Request):
    """An output of a step: its files (JSON), or one of them (``?file=``) to download."""
    views = _views(request)
    step = views.step(request.path_params["run"], request.query_params.get("step", ""))
    name = request.query_params.get("output", "")
    output = next((o for o in step["outputs"] if o["name"] == name), None)
    if output is None:
        names = ", ".join(o["name"] for o in step["outputs"]) or "none"
        raise NotFoundError(f'step "{step["name"]}" has no output "{name}" (its outputs: {names})')
    layout = request.app.state.layout
    root = layout.objects / output["digest"][:2] / output["digest"]
    wanted = request.query_params.get("file")
    if wanted is None:
        files = _first_files(root, 1000)
        if len(files) == 1 and not wants_json(request) and (root / files[0]).is_file():
            wanted = files[0]
        else:
            return JSONResponse({"output": name, "digest": output["digest"], "size": output["size"], "files": files})
    path = _inside(root, root / wanted)
    if path is None:
        raise HTTPException(404, f'output "{name}" has no file "{wanted}"')
    return FileResponse(path, filename=path.name, headers=FILE_HEADERS)


def _first_files(root: Path, count: int) -> list[str]:
    """The first ``count`` files of the tree at ``root`` in name order (a folder's files where its
    name comes), as paths relative to it: walked until there are ``count`` (an output may hold
    millions), never into a linked folder; a link is listed when it leads to a file inside the
    tree (resolved alone: a file is inside as it is)."""
    found: list[str] = []

    def walk(folder: Path) -> bool:
        with os.scandir(folder) as entries:
            for entry in sorted(entries, key=lambda e: e.name):
                path = Path(entry.path)
                if entry.is_dir(follow_symlinks=False):
                    if walk(path):
                        return True
                elif entry.is_file(follow_symlinks=False) or (entry.is_symlink() and _inside(root, path)):
                    found.append(path.relative_to(root).as_posix())
                    if len(found) == count:
                        return True
        return False

    walk(root)
    return found


def metric_image(request: Request):
    """The image a step logged with ``log_image``: its own run file, or a file in a run's folder or an output."""
    views = _views(request)
    step = views.step(request.path_params["run"], request.query_params.get("step", ""))
    name = request.query_params.get("name", "")
    index = _int(request, "index", 0)
    images = [m for m in views.metrics(step["run"], step["name"]) if m["kind"] == "image" and m["name"] == name]
    if index >= len(images):
        raise HTTPException(404, f'step "{step["name"]}" logged no image "{name}" (number {index})')
    layout = request.app.state.layout
    run, step_name = step["run"], step["name"]
    if step["reused_from_id"]:
        run, step_name = views.step_run_location(step["reused_from_id"]) or (run, step_name)
    value = str(images[index]["value"])
    folder = layout.step_dir(run, step_name)
    if os.path.isabs(value):  # in a run's folder or an output's tree: never history.db or the REST token beside them
        path = _inside(layout.runs, Path(value)) or _inside(layout.objects, Path(value))
    else:
        path = _inside(folder / "files", folder / "files" / value)
    if path is None:
        raise HTTPException(404, f'the image "{name}" is not inside the workspace any more')
    return FileResponse(path, headers=FILE_HEADERS)


def run_metrics(request: Request):
    run_id = request.path_params["run"]
    metrics = _views(request).metrics(run_id)
    return page(request, "metrics.html", {"run": run_id, "metrics": metrics}, charts=_charts(metrics))


def _charts(metrics: list[dict]) -> list[dict]:
    """What the metrics page draws: per (step, name), a chart of a series (``log`` called again
    and again, ``log_list``), a table of ``log_row`` / ``log_table``, images, or the value."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for metric in metrics:
        groups.setdefault((metric["step"], metric["name"]), []).append(metric)
    charts = []
    for (step, name), found in groups.items():
        kind = found[0]["kind"]
        chart = {"step": step, "name": name, "kind": kind, "count": len(found)}
        if kind == "scalar" and len(found) > 1:
            chart["line"] = graphics.line_chart([(i, m["value"]) for i, m in enumerate(found)], "step")
        elif kind == "list":
            values = [v for m in found for v in (m["value"] if isinstance(m["value"], list) else [m["value"]])]
            chart["line"] = graphics.line_chart(list(enumerate(values)), "index")
        elif kind in ("row", "table"):
            rows = []
            for m in found:
                value = m["value"] if isinstance(m["value"], dict) else {"value": m["value"]}
                if kind == "table" and all(isinstance(v, list) for v in value.values()):
                    rows += [dict(zip(value, cells, strict=False)) for cells in zip(*value.values(), strict=False)]
                else:
                    rows.append(value)
            chart["columns"] = list(dict.fromkeys(k for row in rows for k in row))
            chart["rows"] = rows[:500]
        elif kind == "image":
            chart["images"] = list(range(len(found)))
        else:
            chart["value"] = found[-1]["value"]
        charts.append(chart)
    return charts


# -- comparing runs, datasets -------------------------------------------------------------------------
def compare_page(request: Request):
    views = _views(request)
    picked = request.query_params.getlist("pick")  # the runs list's check boxes, without JavaScript
    a, b = request.query_params.get("a"), request.query_params.get("b")
    if (a is None or b is None) and len(picked) == 2:
        b, a = picked  # the list is newest first: the older run on the left
    if a is None or b is None:
        raise HTTPException(400, "compare needs two runs: /compare?a=RUN&b=RUN (or choose two in the runs list)")
    first, second = views.run(a), views.run(b)
    data = {"a": _summary(first), "b": _summary(second)}
    names = list(dict.fromkeys([s["name"] for s in first["steps"]] + [s["name"] for s in second["steps"]]))
    steps_a = {s["name"]: s for s in first["steps"]}
    steps_b = {s["name"]: s for s in second["steps"]}
    data["steps"] = [{"name": n, "a": _brief(steps_a.get(n)), "b": _brief(steps_b.get(n))} for n in names]
    keys = sorted(set(first["parameters"] or {}) | set(second["parameters"] or {}))
    data["parameters"] = [
        {"name": k, "a": (first["parameters"] or {}).get(k), "b": (second["parameters"] or {}).get(k)} for k in keys
    ]
    metrics = {}
    for side, run in (("a", first), ("b", second)):
        for m in views.last_scalars(run["id"]):
            metrics.setdefault((m["step"], m["name"]), {})[side] = m["value"]
    data["metrics"] = [{"step": s, "name": n, **values} for (s, n), values in metrics.items()]
    edges_a = {(e["source"], e["target"], e["data"]) for e in first["edges"]}
    edges_b = {(e["source"], e["target"], e["data"]) for e in second["edges"]}
    data["graph"] = {
        "only_a": sorted(set(steps_a) - set(steps_b)),
        "only_b": sorted(set(steps_b) - set(steps_a)),
        "edges_only_a": [list(e) for e in sorted(edges_a - edges_b, key=str)],
        "edges_only_b": [list(e) for e in sorted(edges_b - edges_a, key=str)],
    }
    return page(request, "compare.html", data)


def _summary(run: dict) -> dict:
    return {k: run[k] for k in ("id", "experiment", "status", "submitted_at", "started_at", "ended_at")}


def _brief(step: dict | None) -> dict | None:
    if step is None:
        return None
    took = step["ended_at"] - step["started_at"] if step["ended_at"] and step["started_at"] else None
    return {
        "status": step["status"],
        "reason": step["reason"],
        "seconds": took,
        "reused_from_run": step["reused_from_run"],
    }


def published_list(request: Request):
    return page(request, "published.html", {"published": _views(request).published()})


def published_page(request: Request):
    from localpipe.client.publishing import published_endpoint

    found = _views(request).published_pipeline(_name(request, "id"))
    return page(request, "published_pipeline.html", {**found, "endpoint": published_endpoint(found["published_id"])})


def datasets_list(request: Request):
    return page(request, "datasets.html", {"datasets": _views(request).datasets()})


def dataset_page(request: Request):
    return page(request, "dataset.html", _views(request).dataset(_name(request, "name")))


# -- actions ----------------------------------------------------------------------------------------------
async def cancel_action(request: Request):
    await request.app.state.guard.check_write(request)
    from localpipe.engine.recovery import cancel_run
    from localpipe.state.history import History

    run_id = request.path_params["run"]
    message = await run_in_threadpool(cancel_run, History.open(request.app.state.layout), run_id)
    return _acted(request, f"/runs/{run_id}", message)


async def rerun_action(request: Request):
    """Submit the run's pipeline file again, with its parameters (or the form's ``param.NAME``)
    and, when it went on past a failed step, ``--continue-on-step-failure``."""
    await request.app.state.guard.check_write(request)
    run = await run_in_threadpool(_views(request).run, request.path_params["run"])
    if not run["pipeline_file"]:
        raise HTTPException(400, f"run {run['id']} was not submitted from a pipeline file: it cannot be rerun here")
    form = await form_fields(request)
    parameters = {k: v for k, v in (run["parameters"] or {}).items() if not isinstance(v, dict | list)}
    parameters |= {k[len("param.") :]: v for k, v in form.items() if k.startswith("param.")}
    layout = request.app.state.layout
    command = [sys.executable, "-m", "localpipe", "-w", str(layout.root), "submit", run["pipeline_file"]]
    command += ["-e", run["experiment"], "--detach"]
    if run["continue_on_step_failure"]:  # as the run did (a one-off --regenerate-outputs is not repeated)
        command.append("--continue-on-step-failure")
    for key, value in parameters.items():
        command += ["--param", f"{key}={value}"]
    proc = await run_in_threadpool(
        subprocess.run, command, capture_output=True, text=True, cwd=str(layout.root), timeout=300
    )
    if proc.returncode != 0:
        raise HTTPException(400, f"the rerun was refused: {proc.stderr.strip() or proc.stdout.strip()}")
    try:
        new_id = int(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):  # `submit --detach` prints the id alone: anything else is its own story
        raise HTTPException(400, f"the rerun said no run id: {proc.stdout.strip() or proc.stderr.strip()}") from None
    return _acted(request, f"/runs/{new_id}", f"run {new_id} submitted", run=new_id)


def _acted(request: Request, where: str, message: str, **extra):
    if wants_json(request):
        return JSONResponse({"message": message, **extra})
    return RedirectResponse(where, status_code=303)


def _twins(path: str, endpoint) -> list[Route]:
    """A page and its JSON twin (the same path with ``.json``)."""
    return [Route(path, endpoint), Route(path + ".json", endpoint)]


ROUTES = [
    Route("/", runs_list),
    Route("/favicon.ico", lambda request: Response(status_code=204)),
    *_twins("/runs", runs_list),
    *_twins("/experiments", experiments_list),
    Route("/experiments/{name:path}", experiment_page),
    *_twins("/compare", compare_page),
    *_twins("/published", published_list),
    Route("/published/{id:path}", published_page),
    *_twins("/datasets", datasets_list),
    Route("/datasets/{name:path}", dataset_page),
    Route("/runs/{run:int}/status.json", run_status),
    Route("/runs/{run:int}/events", run_events),
    Route("/runs/{run:int}/timeline", run_timeline),
    *_twins("/runs/{run:int}/metrics", run_metrics),
    Route("/runs/{run:int}/log", step_log),
    *_twins("/runs/{run:int}/output", step_output),
    Route("/runs/{run:int}/image", metric_image),
    Route("/runs/{run:int}/cancel", cancel_action, methods=["POST"]),
    Route("/runs/{run:int}/rerun", rerun_action, methods=["POST"]),
    Route("/runs/{run:int}/steps/{name:path}", step_page),
    Route("/runs/{run}", run_page),
]
