"""The scheduler's hook for hyperparameter sweeps (docs/hyperdrive.md): at most
``max_concurrent_runs`` trials of a sweep at once, its early-termination policy applied to the
primary metric as the scheduler ingests what trials log (``engine/metrics.py``), and a Bayesian
sweep's trials proposed from the primary metric of the trials that ended before them.

The rules themselves are pure (``plan/sweep.py``); this keeps what they are applied to: each
trial's series of the primary metric, the intervals already judged, the trials ended early.
"""

from __future__ import annotations

import math
import numbers

from localpipe.plan.sweep import proposal, to_stop
from localpipe.sdk.hyperdrive import is_metric_value
from localpipe.state import reader


class SweepWatch:
    """The sweeps of one run, as the scheduler sees them."""

    def __init__(self, sweeps: list[dict], started: float):
        self.sweeps = sweeps
        self.deadlines = [started + sweep["max_duration_minutes"] * 60 for sweep in sweeps]
        self.sweep_of = {trial: index for index, sweep in enumerate(sweeps) for trial in sweep["trials"]}
        self.series: dict[str, list[float]] = {trial: [] for trial in self.sweep_of}
        self.evaluated: dict[str, int] = {}
        self.stopped: set[str] = set()  # trials ended by a policy or the sweep's duration: not failures
        self.origins: dict[str, int] = {}  # trials reused: the step run whose metrics they show

    def reused(self, trial: str, step_run_id: int) -> None:
        """``trial`` was reused from ``step_run_id``: a proposal reads that run's metrics for it."""
        if trial in self.sweep_of:
            self.origins[trial] = step_run_id

    def needs_proposal(self, trial: str) -> bool:
        """Whether ``trial`` is a Bayesian sweep's whose values are still to be proposed."""
        index = self.sweep_of.get(trial)
        return index is not None and self.sweeps[index]["trials"][trial] is None

    def propose(self, trial: str, history) -> dict:
        """The values of ``trial`` (``needs_proposal``), kept with its sweep; ``history`` holds the
        metrics of the step runs its earlier trials were reused from."""
        sweep = self.sweeps[self.sweep_of[trial]]
        for name in [name for name in self.origins if self.sweep_of[name] == self.sweep_of[trial]]:
            self.observe(name, _step_metrics(history, self.origins.pop(name)))
        choose = max if sweep["primary_metric_config"]["goal"] == "maximize" else min
        best = {name: choose(values) for name, values in self.series.items() if values}
        values = proposal(sweep, trial, best)
        sweep["trials"][trial] = list(values.items())
        return values

    def observe(self, trial: str, rows: list[dict]) -> None:
        """Take the metric rows a trial logged since the last call."""
        if trial not in self.sweep_of:
            return
        metric = self.sweeps[self.sweep_of[trial]]["primary_metric_config"]["name"]
        for row in rows:
            if row["name"] != metric:
                continue
            # A list (run.log_list) is its values in order, as get_metrics() and the run's ranking read it.
            for value in row["value"] if isinstance(row["value"], list) else [row["value"]]:
                if is_metric_value(value):
                    self.series[trial].append(_as_float(value))

    def within_cap(self, ready, busy: set[str]) -> list[str]:
        """The ready steps that may claim resources now: a sweep's trials only while fewer than its
        ``max_concurrent_runs`` are busy (running, or claimed for a launch)."""
        room = [sweep["max_concurrent_runs"] for sweep in self.sweeps]
        for trial in busy:
            if trial in self.sweep_of:
                room[self.sweep_of[trial]] -= 1
        allowed = []
        for name in ready:
            index = self.sweep_of.get(name)
            if index is not None:
                if room[index] <= 0:
                    continue
                room[index] -= 1
            allowed.append(name)
        return allowed

    def to_stop(self, running: list[str], unfinished: list[str], now: float) -> dict[str, str]:
        """The trials to end now, each with its reason: the running ones a policy ends, and every
        unfinished trial of a sweep past its ``max_duration_minutes``."""
        stops: dict[str, str] = {}
        running = [trial for trial in running if trial not in self.stopped]  # ending already
        unfinished = [trial for trial in unfinished if trial not in self.stopped]
        for index, sweep in enumerate(self.sweeps):
            trials = set(sweep["trials"])
            if now >= self.deadlines[index]:
                reason = f"the sweep reached its max_duration_minutes ({sweep['max_duration_minutes']:g})"
                stops.update((trial, reason) for trial in unfinished if trial in trials)
                continue
            series = {trial: self.series[trial] for trial in trials}
            # The trials of the sweeps it resumes from are compared with as its own (they run no more).
            resumed = sweep.get("warm_start", {}).get("trials", [])
            series.update((f"resumed {index}", logged) for index, (_, logged) in enumerate(resumed))
            mine = [trial for trial in running if trial in trials]
            goal = sweep["primary_metric_config"]["goal"]
            stops.update(to_stop(sweep["policy_config"], goal, series, mine, self.evaluated))
        self.stopped.update(stops)
        return stops


def _as_float(value: numbers.Real) -> float:
    """``value`` as a float; an int beyond a float's range (``10**400``) as an infinity of its sign."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _step_metrics(history, step_run_id: int) -> list[dict]:
    """The metric rows a step run logged (the run a reused trial was reused from, whose results its
    sweep's proposals read)."""
    state = history.steps.state(step_run_id)
    return reader.metrics(history.layout, state.run_id, state.name)
