"""A hyperparameter sweep's pure parts (docs/hyperdrive.md): its trials sampled up front, and which
running trials its early-termination policy ends.

The trials of a random sampling are drawn from a seeded generator (the sampling's ``rndseed``), so
the same configuration gives the same trials, and so the same cache keys; a grid's are every
combination, in the order of its parameters and values.
"""

from __future__ import annotations

import itertools
import json
import math
import random

from localpipe.sdk.hyperdrive import HyperDriveStep

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
        import statistics  # here, not at the top: every plan imports this module, few sweeps need it

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


# -- sweeps as steps of a pipeline -------------------------------------------------------------
def expand(steps: list) -> tuple[list, list[dict]]:
    """``steps`` with each HyperDriveStep's trials before it (steps ``NAME_HD_0``, ... it runs after),
    and the sweeps they make. A HyperDriveStep is expanded once, when first planned: planning the
    pipeline again (status, then submit) gives the same trials."""
    expanded, sweeps = [], []
    for step in steps:
        if isinstance(step, HyperDriveStep):
            if step.sweep is None:
                _expand_step(step)
            expanded += step.trial_steps
            sweeps.append(step.sweep)
        expanded.append(step)
    return expanded, sweeps


def _expand_step(step) -> None:
    trials, step.sweep = plan_trials(step.hyperdrive_config, f"{step.name}_HD_", step.name)
    for name, values in trials.items():
        trial = step.hyperdrive_config.run_config.step(
            name=name,
            extra_arguments=[*step.trial_arguments, *trial_arguments(values)],
            allow_reuse=step.trial_allow_reuse,
        )
        trial.inputs = [*trial.inputs, *step.trial_inputs]
        trial.version = step.trial_version
        step.trial_steps.append(trial)
        step.run_after(trial)
    step.arguments[step.arguments.index("--trials") + 1] = json.dumps(list(trials))


def plan_trials(config, prefix: str, step: str | None = None) -> tuple[dict[str, dict], dict]:
    """A HyperDriveConfig's trials, named ``PREFIX0``, ``PREFIX1``, ..., with their values; and the
    sweep as the graph records it (``step``: the HyperDriveStep it belongs to, if any). Without an
    ``rndseed``, a seed is drawn and recorded, so that the draw can be repeated."""
    sweep = config.sweep()
    generator = sweep["generator_config"]
    seed = (generator.get("properties") or {}).get("rndseed")
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    drawn = sample(generator, sweep["max_total_runs"], seed)
    trials = {f"{prefix}{index}": values for index, values in enumerate(drawn)}
    # Each trial's values as pairs: history.db keeps JSON with sorted keys, and the order is the space's.
    record = {**sweep, "seed": seed, "trials": {name: list(values.items()) for name, values in trials.items()}}
    return trials, ({**record, "step": step} if step else record)


def trial_arguments(values: dict) -> list[str]:
    """A trial's values as the options its script is given: ``--lr 0.01``."""
    return [part for name, value in values.items() for part in (argument_name(name), str(value))]
