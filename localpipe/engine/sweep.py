"""The scheduler's hook for hyperparameter sweeps (docs/hyperdrive.md): at most
``max_concurrent_runs`` trials of a sweep at once, and its early-termination policy applied to the
primary metric as the scheduler ingests what trials log (``engine/metrics.py``).

The rules themselves are pure (``plan/sweep.py``); this keeps what they are applied to: each
trial's series of the primary metric, the intervals already judged, the trials ended early.
"""

from __future__ import annotations

import numbers

from localpipe.plan.sweep import to_stop


class SweepWatch:
    """The sweeps of one run, as the scheduler sees them."""

    def __init__(self, sweeps: list[dict], started: float):
        self.sweeps = sweeps
        self.deadlines = [started + sweep["max_duration_minutes"] * 60 for sweep in sweeps]
        self.sweep_of = {trial: index for index, sweep in enumerate(sweeps) for trial in sweep["trials"]}
        self.series: dict[str, list[float]] = {trial: [] for trial in self.sweep_of}
        self.evaluated: dict[str, int] = {}
        self.stopped: set[str] = set()  # trials ended by a policy or the sweep's duration: not failures

    def observe(self, trial: str, rows: list[dict]) -> None:
        """Take the metric rows a trial logged since the last call."""
        if trial not in self.sweep_of:
            return
        metric = self.sweeps[self.sweep_of[trial]]["primary_metric_config"]["name"]
        self.series[trial] += [
            float(row["value"])
            for row in rows
            if row["name"] == metric and isinstance(row["value"], numbers.Real) and not isinstance(row["value"], bool)
        ]

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
            mine = [trial for trial in running if trial in trials]
            goal = sweep["primary_metric_config"]["goal"]
            stops.update(to_stop(sweep["policy_config"], goal, series, mine, self.evaluated))
        self.stopped.update(stops)
        return stops
