"""The geometry of the studio's pictures: the DAG in levels, the timeline, line charts.

Pure functions over plain data; the templates draw the SVG from what they return (so that
every string in it is escaped by the template engine).
"""

from __future__ import annotations

import math
import sys
from collections import defaultdict

NODE_WIDTH, NODE_HEIGHT = 180, 34
LEVEL_GAP, ROW_GAP = 70, 14
LANE_HEIGHT, LANE_LABEL = 20, 70
CHART_WIDTH, CHART_HEIGHT, CHART_MARGIN = 420, 180, 36


def levels(names: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """Each step's level: 0 for a step with no producer, else one more than its deepest producer."""
    parents = defaultdict(list)
    for source, target in edges:
        parents[target].append(source)
    level: dict[str, int] = {}
    for name in names:  # iteratively: a 1,000-step chain must not recurse 1,000 deep
        stack = [name]
        while stack:
            top = stack[-1]
            if top in level:
                stack.pop()
                continue
            pending = [p for p in parents[top] if p not in level and p not in stack]
            if pending:
                stack.extend(pending)
                continue
            level[top] = 1 + max((level.get(p, 0) for p in parents[top]), default=-1)
            stack.pop()
    return level


def dag(steps: list[dict], edges: list[dict]) -> dict:
    """The run's graph laid out left to right in levels: each level a column, its steps ordered
    by where their producers sit (one barycentre pass), so that most edges run straight."""
    names = [s["name"] for s in steps]
    known = set(names)
    pairs = sorted({(e["source"], e["target"]) for e in edges if e["source"] in known and e["target"] in known})
    level = levels(names, pairs)
    columns: dict[int, list[str]] = defaultdict(list)
    for name in names:
        columns[level[name]].append(name)
    parents = defaultdict(list)
    for source, target in pairs:
        parents[target].append(source)
    row: dict[str, float] = {}
    for depth in sorted(columns):
        column = columns[depth]
        order = {name: i for i, name in enumerate(column)}
        column.sort(
            key=lambda n: (sum(row[p] for p in parents[n]) / len(parents[n]) if parents[n] else order[n], order[n])
        )
        for i, name in enumerate(column):
            row[name] = i
    place = {}
    for depth, column in columns.items():
        for i, name in enumerate(column):
            place[name] = (depth * (NODE_WIDTH + LEVEL_GAP), i * (NODE_HEIGHT + ROW_GAP))
    nodes = [{"step": s, "x": place[s["name"]][0], "y": place[s["name"]][1]} for s in steps]
    lines = []
    for source, target in pairs:
        (x1, y1), (x2, y2) = place[source], place[target]
        x1, y1, y2 = x1 + NODE_WIDTH, y1 + NODE_HEIGHT // 2, y2 + NODE_HEIGHT // 2
        middle = (x1 + x2) // 2
        lines.append({"source": source, "target": target, "d": f"M{x1},{y1} C{middle},{y1} {middle},{y2} {x2},{y2}"})
    width = (max(columns, default=0) + 1) * (NODE_WIDTH + LEVEL_GAP) - LEVEL_GAP
    height = max((len(c) for c in columns.values()), default=1) * (NODE_HEIGHT + ROW_GAP) - ROW_GAP
    return {"nodes": nodes, "edges": lines, "width": max(width, NODE_WIDTH), "height": max(height, NODE_HEIGHT)}


def critical_path(steps: list[dict], edges: list[dict]) -> set[str]:
    """The chain of steps that decided when the run ended: from the step that ended last, back
    through the producer of each that ended last."""
    ended = {s["name"]: s["ended_at"] for s in steps if s["ended_at"] and s["started_at"]}
    if not ended:
        return set()
    parents = defaultdict(list)
    for e in edges:
        parents[e["target"]].append(e["source"])
    path, name = set(), max(ended, key=ended.get)
    while name is not None and name not in path:
        path.add(name)
        before = [p for p in parents[name] if p in ended]
        name = max(before, key=ended.get) if before else None
    return path


def timeline(steps: list[dict], edges: list[dict], now: float) -> dict:
    """The steps that ran, as bars on lanes: one lane per GPU for steps holding GPUs, CPU slot
    lanes for the others, Ray lanes for steps run on a Ray cluster (a step takes the first lane of
    its kind free when it was queued). Each bar has its
    wait (queued to started) apart from its run (started to ended, or to ``now``). CPU slot lanes
    are drawn, not recorded: placements say how many slots a step held, not which."""
    ran = [s for s in steps if _begin(s) is not None]
    if not ran:
        return {"lanes": [], "bars": [], "width": 0, "height": 0, "ticks": []}
    start = min(_begin(s) for s in ran)
    end = max((s["ended_at"] or now) for s in ran)
    span = max(end - start, 1e-3)
    scale = 900 / span
    critical = critical_path(steps, edges)
    lanes: list[str] = []
    free_at: dict[int, float] = {}
    bars = []
    for s in sorted(ran, key=_begin):
        begin = _begin(s)
        finish = s["ended_at"] or now
        gpus = (s["placement"] or {}).get("gpus") or []
        held = []  # a step holding GPUs is drawn on each of their lanes
        for gpu in gpus:
            label = f"GPU {gpu}"
            if label not in lanes:
                lanes.append(label)
            held.append(lanes.index(label))
        if not held:  # a step on a Ray target held none of this machine's slots: lanes of its own
            kind = "Ray" if (s["placement"] or {}).get("executor") == "ray" else "CPU"
            lane = next((i for i, t in free_at.items() if t <= begin and lanes[i].startswith(kind)), None)
            if lane is None:
                lane = len(lanes)
                lanes.append(f"{kind} {sum(1 for name in lanes if name.startswith(kind)) + 1}")
            held.append(lane)
            free_at[lane] = finish
        started = s["started_at"] is not None
        running = s["started_at"] if started else finish
        for lane in held:
            bars.append(
                {
                    "step": s,
                    "y": lane * LANE_HEIGHT,
                    "wait_x": round(LANE_LABEL + (begin - start) * scale, 1),
                    "wait_width": round(max((running - begin) * scale, 0), 1),
                    "run_x": round(LANE_LABEL + (running - start) * scale, 1),
                    "run_width": round(max((finish - running) * scale, 1), 1) if started else 0,
                    "critical": s["name"] in critical,
                    "waited": running - begin,
                    "ran": finish - running,
                }
            )
    step = _nice_step(span / 6)
    ticks = [
        {"x": round(LANE_LABEL + t * scale, 1), "label": _seconds(t)}
        for t in (i * step for i in range(int(span / step) + 1))
    ]
    return {
        "lanes": [{"label": label, "y": i * LANE_HEIGHT} for i, label in enumerate(lanes)],
        "bars": bars,
        "width": LANE_LABEL + 900 + 10,
        "height": len(lanes) * LANE_HEIGHT,
        "ticks": ticks,
    }


def _begin(step: dict) -> float | None:
    """When a step began to wait for its turn: queued, else (a step started without queueing) started."""
    return step["queued_at"] if step["queued_at"] is not None else step["started_at"]


def line_chart(points: list[tuple[float, float]], x_label: str = "") -> dict:
    """A line chart of ``points`` (x, y): the polyline, and ticks on both axes."""
    finite = [(x, y) for x, y in points if _finite(x) and _finite(y)]
    if not finite:
        return {"points": "", "dots": [], "x_ticks": [], "y_ticks": [], "width": CHART_WIDTH, "height": CHART_HEIGHT}
    xs, ys = [p[0] for p in finite], [p[1] for p in finite]
    x0, x1 = min(xs), max(xs)
    y0, y1 = min(ys), max(ys)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        pad = abs(y0 or 1) * 0.1
        if y0 - pad == y0:  # a value so small that a tenth of it is nothing
            pad = 0.1
        y0, y1 = max(y0 - pad, -sys.float_info.max), min(y1 + pad, sys.float_info.max)
    inner_w, inner_h = CHART_WIDTH - 2 * CHART_MARGIN, CHART_HEIGHT - 2 * CHART_MARGIN

    def at(x, y):
        return (
            CHART_MARGIN + _fraction(x, x0, x1) * inner_w,
            CHART_MARGIN + inner_h - _fraction(y, y0, y1) * inner_h,
        )

    placed = [at(x, y) for x, y in finite]
    dots = [{"x": px, "y": py, "label": f"{x:g}: {y:g}"} for (px, py), (x, y) in zip(placed, finite, strict=True)]
    return {
        "points": " ".join(f"{px:.1f},{py:.1f}" for px, py in _thinned(placed, inner_w)),
        "dots": dots if len(dots) <= 200 else [],
        "x_ticks": [{"x": at(v, y0)[0], "label": f"{v:g}"} for v in _ticks(x0, x1)],
        "y_ticks": [{"y": at(x0, v)[1], "label": f"{v:.4g}"} for v in _ticks(y0, y1)],
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "x_label": x_label,
    }


def _thinned(placed: list[tuple[float, float]], columns: int) -> list[tuple[float, float]]:
    """``placed`` with at most its lowest and highest point in each of the chart's ``columns``
    pixel columns, in their order: a series of 200,000 values (a loss logged at every batch)
    draws as it would whole, spikes kept, in a page of kilobytes, not megabytes."""
    if len(placed) <= 2 * columns:
        return placed
    extremes: dict[int, tuple[int, int]] = {}
    for i, (px, py) in enumerate(placed):
        column = min(max(int(px - CHART_MARGIN), 0), columns - 1)
        low, high = extremes.get(column, (i, i))
        extremes[column] = (i if py < placed[low][1] else low, i if py > placed[high][1] else high)
    return [placed[i] for i in sorted({i for pair in extremes.values() for i in pair})]


def _finite(value) -> bool:
    """Whether ``value`` is a number a chart can place (an int past a float's range cannot be)."""
    if not isinstance(value, int | float) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(float(value))
    except OverflowError:
        return False


def _fraction(value: float, low: float, high: float) -> float:
    """Where ``value`` lies from ``low`` (0) to ``high`` (1); halved when the span is past a
    float's range (1e308 and -1e308, values a diverging training logs)."""
    if math.isinf(high - low):
        return (value / 2 - low / 2) / (high / 2 - low / 2)
    return (value - low) / (high - low)


def _ticks(low: float, high: float) -> list[float]:
    step = _nice_step(high / 4 - low / 4)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int(high / step - first / step + 1e-9) + 1)]


def _nice_step(rough: float) -> float:
    if rough <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(rough))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= rough)


def _seconds(value: float) -> str:
    return f"{value:g}s" if value < 120 else f"{value / 60:.0f}m"
