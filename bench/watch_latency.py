"""`localpipe watch` latency: from saving a step's script to that step's process starting.

A temp workspace (``Workspace.create``) holds a pipeline of 3 independent steps, ``a``, ``b`` and
``c``, each its own source folder. The very first statement of each step script records
``time.time()``; the script then writes it to ``<results>/<step>.<run id>`` (from the
environment: ``LOCALPIPE_STEP_NAME``, ``LOCALPIPE_RUN_ID``; the results folder lies outside
everything watched). A ``Watcher`` (debounce 0.2 s, the default) runs in a thread of this
process, as tests/test_watch.py drives it. After its first run has completed, step ``b``'s script
is saved ``--saves`` times, each time with different content; each save waits until the rerun's
``b`` has written its start time, then until that run has ended (``a`` and ``c`` must be Reused,
``b`` Completed), before the next save. The figure of a save is the step's start time minus
``time.time()`` taken just before the write.

The figure includes the 200 ms debounce (the watcher waits for the tree to be quiet that long
after the last event) and the step interpreter's start-up (measured on its own below, as
"python start-up"). Target: median < 400 ms.

Where the time goes is timed alongside, from this process's clocks around the watcher's own
methods (wrapped here, not changed): the save to the first event queued (inotify and watchdog),
the event to ``Watcher._handle`` (the debounce), ``_handle`` up to ``_load_and_submit``,
``_load_and_submit`` up to the scheduler's thread running (plan, hash, record the run), the
scheduler thread up to ``LocalExecutor.start`` (deciding, preparing the step folder), Popen
itself, and the step process up to its first statement. ``--profile`` also runs cProfile in the
watcher thread (around ``_load_and_submit``) and in the scheduler threads (``Scheduler.execute``
up to the step's launch), summed over the saves; the latency figures are then inflated by the
profiler and reported as such.

    python bench/watch_latency.py [--saves 20] [--profile] [--keep]
"""

from __future__ import annotations

import cProfile
import os
import queue
import statistics
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

from _common import base_parser, machine, print_profile, report_ms, temp_folder

TARGET_MS = 400
DEBOUNCE = 0.2
STEPS = ("a", "b", "c")
EDITED = "b"

STEP_SCRIPT = """\
import time; STARTED = time.time()
import os
_name = os.path.join({results!r}, os.environ["LOCALPIPE_STEP_NAME"] + "." + os.environ["LOCALPIPE_RUN_ID"])
with open(_name + ".tmp", "w") as _out:
    _out.write(repr(STARTED))
os.replace(_name + ".tmp", _name)
# save {save}
"""

PIPELINE = """
from localpipe import Pipeline, PythonScriptStep, Workspace

ws = Workspace.from_config()
steps = [PythonScriptStep("step.py", name=name, source_directory=name) for name in {steps!r}]
pipeline = Pipeline(ws, steps, description="bench: watch latency")
"""


def wait_for(condition, what: str, timeout: float = 60.0, interval: float = 0.002):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    sys.exit(f"bench: timed out waiting for {what}")


class Clock:
    """Wall-clock moments (time.time(), comparable with the step's own) of what the watcher does."""

    def __init__(self):
        self.marks: list[tuple[float, str]] = []
        self.lock = threading.Lock()

    def mark(self, what: str) -> None:
        with self.lock:
            self.marks.append((time.time(), what))

    def first(self, what: str, after: float, before: float) -> float | None:
        return next((t for t, w in self.marks if w == what and after <= t < before), None)


class _TimedQueue(queue.Queue):
    """The watcher's change queue, noting when each path is put on it."""

    def __init__(self, clock: Clock):
        super().__init__()
        self.clock = clock

    def put(self, item, block=True, timeout=None):
        if item:
            self.clock.mark("event")
        super().put(item, block, timeout)


def instrument(watcher, clock: Clock, profiles: dict[str, cProfile.Profile] | None) -> None:
    """Wrap the watcher's methods (on this instance) and the executor's start (on its class) with marks."""
    from localpipe.engine import scheduler as scheduler_module
    from localpipe.engine.executors.local import LocalExecutor

    watcher.changes = _TimedQueue(clock)
    handle, load_and_submit = watcher._handle, watcher._load_and_submit

    def timed_handle(paths):
        clock.mark("handle")
        return handle(paths)

    def timed_load_and_submit(paths):
        clock.mark("submit")
        profiler = profiles["watcher"] if profiles is not None and paths else None
        if profiler is not None:
            profiler.enable()
        try:
            return load_and_submit(paths)
        finally:
            if profiler is not None:
                profiler.disable()
            clock.mark("submitted")

    watcher._handle, watcher._load_and_submit = timed_handle, timed_load_and_submit

    execute, start = scheduler_module.Scheduler.execute, LocalExecutor.start
    local = threading.local()

    def timed_execute(self):
        clock.mark("execute")
        profiler = cProfile.Profile() if profiles is not None else None
        local.profiler = profiler
        if profiler is not None:
            profiler.enable()
        try:
            return execute(self)
        finally:
            if getattr(local, "profiler", None) is not None:  # no step was launched
                local.profiler.disable()

    def timed_start(self, launch):
        profiler = getattr(local, "profiler", None)
        if profiler is not None:  # the profile covers the scheduler up to the first launch
            profiler.disable()
            local.profiler = None
            if launch.key == EDITED:
                profiles.setdefault("schedulers", []).append(profiler)
        clock.mark(f"popen:{launch.key}")
        try:
            return start(self, launch)
        finally:
            clock.mark(f"popened:{launch.key}")

    scheduler_module.Scheduler.execute = timed_execute
    LocalExecutor.start = timed_start


def python_startup(results: Path, repeats: int = 10) -> list[float]:
    """Seconds from before a Popen of this interpreter to its first statement (the step's floor)."""
    samples = []
    for _ in range(repeats):
        before = time.time()
        out = subprocess.run(
            [sys.executable, "-c", "import time; print(repr(time.time()))"],
            cwd=results,
            capture_output=True,
            text=True,
            env=dict(os.environ),
            check=True,
        ).stdout
        samples.append(float(out) - before)
    return samples


def main() -> int:
    parser = base_parser(__doc__.splitlines()[0])
    parser.add_argument("--saves", type=int, default=20)
    parser.add_argument("--profile", action="store_true", help="Also cProfile the watcher and scheduler threads.")
    args = parser.parse_args()
    print(f"watch_latency: on {machine()}")

    from localpipe import Workspace
    from localpipe.client.workspace import history_of
    from localpipe.state.history import close_all
    from localpipe.watch import Watcher

    with temp_folder("watch", keep=args.keep) as folder:
        ws = Workspace.create(folder / "ws")
        results = folder / "results"
        results.mkdir()
        proj = ws.root / "proj"
        for name in STEPS:
            (proj / name).mkdir(parents=True)
            (proj / name / "step.py").write_text(STEP_SCRIPT.format(results=str(results), save=0))
        (proj / "pipeline.py").write_text(textwrap.dedent(PIPELINE.format(steps=STEPS)).lstrip())

        def run_done(run_id: int) -> bool:
            m = history_of(ws).tables
            run = m.PipelineRun.get_or_none(m.PipelineRun.id == run_id)
            return run is not None and run.status in ("Completed", "Failed", "Canceled")

        def steps_of(run_id: int) -> dict[str, str]:
            m = history_of(ws).tables
            return {s.name: s.status for s in m.StepRun.select().where(m.StepRun.run == run_id)}

        clock = Clock()
        profiles: dict | None = {"watcher": cProfile.Profile()} if args.profile else None
        lines: list[str] = []
        watcher = Watcher(ws, str(proj / "pipeline.py"), "bench-watch", debounce=DEBOUNCE, echo=lines.append)
        instrument(watcher, clock, profiles)
        thread = threading.Thread(target=watcher.run, name="watcher", daemon=True)
        thread.start()
        try:
            wait_for(lambda: run_done(1), "the first run", timeout=120)
            if steps_of(1) != {name: "Completed" for name in STEPS}:
                sys.exit(f"bench: the first run did not complete every step: {steps_of(1)}\n" + "\n".join(lines))
            time.sleep(0.5)  # let the watcher settle into waiting for changes

            script = proj / EDITED / "step.py"
            latencies: list[float] = []
            saves: list[tuple[float, float, int]] = []  # (save time, step start, run id)
            last_run = 1
            for i in range(1, args.saves + 1):
                content = STEP_SCRIPT.format(results=str(results), save=i)
                save_time = time.time()
                script.write_text(content)

                def started(after: int = last_run) -> int | None:
                    found = [int(p.suffix[1:]) for p in results.glob(f"{EDITED}.*") if p.suffix[1:].isdigit()]
                    newer = [r for r in found if r > after]
                    return min(newer) if newer else None

                run_id = wait_for(started, f"save {i}'s rerun of step {EDITED}")
                start_time = float((results / f"{EDITED}.{run_id}").read_text())
                wait_for(lambda run_id=run_id: run_done(run_id), f"run {run_id} to end")
                statuses = steps_of(run_id)
                expected = {name: "Completed" if name == EDITED else "Reused" for name in STEPS}
                if statuses != expected:
                    sys.exit(f"bench: run {run_id} after save {i} is {statuses}, expected {expected}")
                latencies.append(start_time - save_time)
                saves.append((save_time, start_time, run_id))
                last_run = run_id
                time.sleep(0.3)  # the run's threads wind down; the watcher waits for the next change
            runs = sorted(int(p.suffix[1:]) for p in results.glob(f"{EDITED}.*") if p.suffix[1:].isdigit())
            if runs != list(range(1, args.saves + 2)):
                sys.exit(f"bench: expected one rerun per save, got runs {runs} for step {EDITED}")
        finally:
            watcher.stop()
            thread.join(timeout=60)
            close_all()
        floor = python_startup(results)

        print(
            f"pipeline: steps {', '.join(STEPS)} (independent, each its own source folder); "
            f"{args.saves} saves of {EDITED}/step.py, each rerun {EDITED} Completed and the others Reused"
        )
        print(
            "the figure includes the 200 ms debounce and the Python start-up of the step process"
            + (" (PROFILED: cProfile inflates it)" if args.profile else "")
        )
        report_ms(f"save -> step {EDITED}'s first statement", latencies, TARGET_MS)
        report_ms("python start-up alone (Popen of this interpreter -> its first statement)", floor)

        # Where the time goes, save by save, from the marks.
        parts = {
            "save -> first event queued (inotify, watchdog)": ("save", "event"),
            "first event -> Watcher._handle (debounce)": ("event", "handle"),
            "_handle -> _load_and_submit": ("handle", "submit"),
            "_load_and_submit -> Scheduler.execute (plan, hash, record run)": ("submit", "execute"),
            "Scheduler.execute -> LocalExecutor.start (decide, prepare)": ("execute", f"popen:{EDITED}"),
            "LocalExecutor.start (Popen)": (f"popen:{EDITED}", f"popened:{EDITED}"),
            "Popen returned -> step's first statement": (f"popened:{EDITED}", "started"),
        }
        breakdown: dict[str, list[float]] = {label: [] for label in parts}
        windows = [s[0] for s in saves[1:]] + [float("inf")]
        for (save_time, start_time, _), until in zip(saves, windows, strict=True):
            moments = {"save": save_time, "started": start_time}
            for what in ("event", "handle", "submit", "submitted", "execute", f"popen:{EDITED}", f"popened:{EDITED}"):
                moments[what] = clock.first(what, save_time, until)
            for label, (a, b) in parts.items():
                if moments.get(a) is not None and moments.get(b) is not None:
                    breakdown[label].append(moments[b] - moments[a])
        print("where the time goes (median / min / max over the saves, ms):")
        for label, values in breakdown.items():
            if values:
                print(
                    f"    {label:62s} {statistics.median(values) * 1000:7.1f} {min(values) * 1000:7.1f} "
                    f"{max(values) * 1000:7.1f}"
                )
            else:
                print(f"    {label:62s} (not seen)")

        if profiles is not None:
            stats = folder / "watcher.stats"
            profiles["watcher"].dump_stats(stats)
            print(f"\nprofile of the watcher thread in _load_and_submit, summed over {args.saves} saves:")
            print_profile(stats, top=15)
            schedulers = profiles.get("schedulers", [])
            if schedulers:
                import pstats

                merged = pstats.Stats(schedulers[0])
                for profiler in schedulers[1:]:
                    merged.add(profiler)
                merged.dump_stats(folder / "scheduler.stats")
                print(
                    f"\nprofile of the scheduler threads from execute() to the launch of {EDITED}, "
                    f"summed over {len(schedulers)} runs:"
                )
                print_profile(folder / "scheduler.stats", top=15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
