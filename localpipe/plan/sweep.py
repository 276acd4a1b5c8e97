"""A hyperparameter sweep's pure parts (docs/hyperdrive.md): its trials sampled up front, and which
running trials its early-termination policy ends.

The trials of a random sampling are drawn from a seeded generator (the sampling's ``rndseed``), so
the same configuration gives the same trials, and so the same cache keys; a grid's are every
combination, in the order of its parameters and values.
"""

from __future__ import annotations

import itertools
import math
import random
import statistics

RANDOM_ATTEMPTS = 100  # draws per trial before a discrete space is taken as exhausted


def sample(generator_config: dict, max_total_runs: int, seed: int) -> list[dict]:
    """The trials' hyperparameter values (name -> value), at most ``max_total_runs`` of them; fewer
    when the space has fewer distinct points (a grid, or a random sampling of choices only)."""
    space = generator_config["parameter_space"]
    if generator_config["name"] == "GRID":
        names = list(space)
        combos = itertools.product(*(space[name][1][0] for name in names))
        return [dict(zip(names, combo, strict=True)) for combo in itertools.islice(combos, max_total_runs)]
    rng = random.Random(seed)
    trials: list[dict] = []
    seen: set[tuple] = set()
    for _ in range(max_total_runs):
        for _ in range(RANDOM_ATTEMPTS):
            values = {name: draw(expression, rng) for name, expression in space.items()}
            point = tuple(repr(v) for v in values.values())
            if point not in seen:
                break
        else:
            break  # every point of a discrete space is taken
        seen.add(point)
        trials.append(values)
    return trials


def draw(expression: list, rng: random.Random):
    """One value of a parameter expression, with Azure ML's meaning of each."""
    kind, args = expression
    if kind == "choice":
        return rng.choice(args[0])
    if kind == "randint":
        return rng.randrange(args[0])
    if kind == "uniform":
        return rng.uniform(args[0], args[1])
    if kind == "loguniform":
        return math.exp(rng.uniform(args[0], args[1]))
    if kind == "normal":
        return rng.gauss(args[0], args[1])
    if kind == "lognormal":
        return math.exp(rng.gauss(args[0], args[1]))
    base = {"quniform": "uniform", "qloguniform": "loguniform", "qnormal": "normal", "qlognormal": "lognormal"}[kind]
    q = args[2]
    return round(draw([base, args[:2]], rng) / q) * q


def argument_name(name: str) -> str:
    """The command-line option a parameter is passed as: ``lr`` and ``--lr`` are both ``--lr``."""
    return name if name.startswith("-") else f"--{name}"


# -- early termination -------------------------------------------------------------------------
def to_stop(
    policy: dict, goal: str, series: dict[str, list[float]], running: list[str], evaluated: dict[str, int]
) -> dict[str, str]:
    """The running trials ``policy`` ends now, each with the reason; ``series`` holds every trial's
    primary metric in the order logged (finished trials' too), ``evaluated`` the interval up to which
    each trial was looked at (updated here: each interval is judged once, with what is known then)."""
    name = policy["name"]
    if name == "Default":
        return {}
    config = policy["properties"]
    every, delay = config["evaluation_interval"], config["delay_evaluation"]
    better = 1.0 if goal == "maximize" else -1.0  # scores: higher is better whatever the goal
    scores = {trial: [better * v for v in values] for trial, values in series.items()}
    stops = {}
    for trial in running:
        done = evaluated.get(trial, 0)
        reached = len(scores.get(trial, []))
        evaluated[trial] = reached
        for interval in range(done + 1, reached + 1):
            if interval < delay or interval % every:
                continue
            reason = _judge(name, config, trial, interval, scores, better)
            if reason:
                stops[trial] = f"terminated early by {policy_title(name)} at interval {interval}: {reason}"
                break
    return stops


def _judge(name: str, config: dict, trial: str, interval: int, scores: dict, better: float) -> str | None:
    """Why ``trial`` is ended at ``interval``, or None; compared with every trial that reached it."""
    peers = {t: values[:interval] for t, values in scores.items() if len(values) >= interval}
    best_so_far = {t: max(values) for t, values in peers.items()}
    own = best_so_far[trial]
    if name == "Bandit":
        leader = max(best_so_far.values())
        if "slack_factor" in config:
            factor = 1 + config["slack_factor"]
            # In the metric's own units: maximize ends Y * (1 + f) < best, minimize ends Y / (1 + f) > best.
            behind = own * factor < leader if better > 0 else -own / factor > -leader
            slack = f"slack_factor {config['slack_factor']:g}"
        else:
            behind = own + config["slack_amount"] < leader
            slack = f"slack_amount {config['slack_amount']:g}"
        if behind:
            return f"best {better * own:g} is outside {slack} of the best trial's {better * leader:g}"
        return None
    if name == "MedianStopping":
        median = statistics.median(statistics.fmean(values) for values in peers.values())
        if own < median:
            return f"best {better * own:g} is worse than the median {better * median:g} of the running averages"
        return None
    if name == "TruncationSelection":
        # The lowest ``cut`` trials end, but never one tied with a trial that stays: a tie is no ranking.
        cut = len(peers) * config["truncation_percentage"] // 100
        kept_from = sorted(best_so_far.values())[cut]
        if own < kept_from:
            return (
                f"best {better * own:g} is in the lowest {config['truncation_percentage']}% "
                f"of the {len(peers)} trials at this interval"
            )
        return None
    raise ValueError(f"unknown early termination policy {name!r}")


def policy_title(name: str) -> str:
    """The SDK's class name of a policy's recorded name (``Bandit`` -> ``BanditPolicy``)."""
    return {"Default": "NoTerminationPolicy", "TruncationSelection": "TruncationSelectionPolicy"}.get(
        name, f"{name}Policy"
    )
