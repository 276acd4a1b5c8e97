"""A hyperparameter sweep's pure parts (docs/hyperdrive.md): its trials sampled up front, and which
running trials its early-termination policy ends.

The trials of a random sampling are drawn from a seeded generator (the sampling's ``rndseed``), so
the same configuration gives the same trials, and so the same cache keys; a grid's are every
combination, in the order of its parameters and values. A Bayesian sampling's first trials are
random too; each later one waits for the trials before it (all but the ``max_concurrent_runs - 1``
last) to end and is proposed from their results (``plan/bayes.py``) when it is about to be decided.
"""

from __future__ import annotations

import itertools
import json
import random

from localpipe.plan.bayes import propose
from localpipe.plan.space import point, random_point, space_size
from localpipe.sdk.hyperdrive import BayesianParameterSampling, HyperDriveStep, is_metric_value

BAYESIAN_RANDOM_TRIALS = 10  # a Bayesian sweep's random trials (at most half of them, at least max_concurrent_runs)


def sample(generator_config: dict, max_total_runs: int, seed: int, max_concurrent_runs: int = 1) -> list[dict | None]:
    """The trials' hyperparameter values (name -> value), at most ``max_total_runs`` of them; fewer
    when the space has fewer distinct points (a grid, or a sampling of discrete values only). A
    Bayesian sampling's trials after its random ones are None: ``proposal`` gives them later."""
    space = generator_config["parameter_space"]
    if generator_config["name"] == "GRID":
        names = list(space)
        combos = itertools.product(*(space[name][1][0] for name in names))
        return [dict(zip(names, combo, strict=True)) for combo in itertools.islice(combos, max_total_runs)]
    if generator_config["name"] == BayesianParameterSampling.SAMPLING_NAME:
        size = space_size(space)
        total = max_total_runs if size is None else min(max_total_runs, size)
        start = min(total, max(max_concurrent_runs, min(BAYESIAN_RANDOM_TRIALS, total // 2)))
        return [*_random_trials(space, start, seed), *[None] * (total - start)]
    return _random_trials(space, max_total_runs, seed)


def _random_trials(space: dict, count: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    trials: list[dict] = []
    seen: set[tuple] = set()
    for _ in range(count):
        try:
            values = random_point(space, seen, rng)
        except ValueError:
            break  # every point of a discrete space is taken
        seen.add(point(values))
        trials.append(values)
    return trials


def proposal_waits(sweep: dict) -> dict[str, list[str]]:
    """For each trial a Bayesian sweep proposes, the trials that must end before it starts, so that
    every trial before it but the ``max_concurrent_runs - 1`` last has ended when it is proposed (it
    sees the same results whatever their timing, and no more than ``max_concurrent_runs`` trials
    run at once): all of them for the first ``max_concurrent_runs`` proposed, then only the window
    that the proposed trial ``max_concurrent_runs`` before it did not wait for itself (its own start
    says the rest ended): ``max_concurrent_runs`` edges a trial, not one per earlier trial."""
    names = trial_order(sweep)
    concurrent = sweep["max_concurrent_runs"]
    waits = {}
    for index, name in enumerate(names):
        if sweep["trials"][name] is None:
            chained = sweep["trials"][names[index - concurrent]] is None
            waits[name] = names[index - 2 * concurrent + 1 if chained else 0 : index - concurrent + 1]
    return waits


def trial_order(sweep: dict) -> list[str]:
    """The names of ``sweep``'s trials in the order they were planned (``PREFIX0``, ``PREFIX1``, ...):
    history.db keeps the sweep as JSON with sorted keys, where ``HD_10`` comes before ``HD_2``."""
    return sorted(sweep["trials"], key=lambda name: int(name.rsplit("_", 1)[1]))


def proposal(sweep: dict, trial: str, best: dict[str, float]) -> dict:
    """The values Bayesian sampling gives ``trial`` of ``sweep``, from ``best`` (each earlier trial's
    best primary metric, those that logged it) of the trials it waited for (``proposal_waits``) and
    the trials of the runs it resumes from."""
    maximize = sweep["primary_metric_config"]["goal"] == "maximize"
    names = trial_order(sweep)
    index = names.index(trial)
    observed = [
        (dict(sweep["trials"][name]), value if maximize else -value)
        for name in names[: index - sweep["max_concurrent_runs"] + 1]
        if (value := best.get(name)) is not None
    ]
    # The trials of the sweeps it resumes from (HyperDriveConfig(resume_from=...)), as its own.
    resumed = sweep.get("warm_start", {}).get("trials", [])
    observed += [(dict(pairs), max(s) if maximize else -min(s)) for pairs, s in resumed if s]
    taken = {point(dict(values)) for values in sweep["trials"].values() if values is not None}
    # In the space's order, as the random trials have their values (history.db sorts the space's keys).
    order = next(values for values in sweep["trials"].values() if values is not None)
    space = {name: sweep["generator_config"]["parameter_space"][name] for name, _ in order}
    return propose(space, observed, taken, sweep["seed"], index)


def ranked_trials(sweep: dict, metrics: list[dict], steps: dict[str, dict]) -> list[dict]:
    """A sweep's trials, best first, each ``{"name", "index", "status", "values", "best"}`` (the
    best value of the primary metric among ``metrics``, the run's metric rows; None when it logged
    none); ``steps`` the run's steps by name: their status, and the values Bayesian sampling
    proposed, in their properties (a trial not yet proposed has none)."""
    metric, maximize = sweep["primary_metric_config"]["name"], sweep["primary_metric_config"]["goal"] == "maximize"
    logged: dict[str, list[float]] = {}
    for row in metrics:
        if row["name"] == metric:  # a list (run.log_list) is its values, as get_metrics() gives them
            values = row["value"] if isinstance(row["value"], list) else [row["value"]]
            logged.setdefault(row["step"], []).extend(value for value in values if is_metric_value(value))
    rows = []
    for index, name in enumerate(trial_order(sweep)):
        values, step = sweep["trials"][name], steps.get(name, {})
        if values is None:
            values = json.loads((step.get("properties") or {}).get("hyperparameters", "{}")).items()
        mine = logged.get(name)
        best = (max if maximize else min)(mine) if mine else None
        rows.append({"name": name, "index": index, "status": step.get("status"), "values": dict(values), "best": best})
    rows.sort(key=lambda r: (r["best"] is None, -(r["best"] or 0) if maximize else (r["best"] or 0)))
    return rows


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
    wait_for_proposals(step.trial_steps, step.sweep)
    step.arguments[step.arguments.index("--trials") + 1] = json.dumps(list(trials))


def wait_for_proposals(trial_steps: list, sweep: dict) -> None:
    """Each trial a Bayesian sweep proposes runs after the trials it waits for (``proposal_waits``)."""
    by_name = {trial.name: trial for trial in trial_steps}
    for name, earlier in proposal_waits(sweep).items():
        for other in earlier:
            by_name[name].run_after(by_name[other])


def plan_trials(config, prefix: str, step: str | None = None) -> tuple[dict[str, dict], dict]:
    """A HyperDriveConfig's trials, named ``PREFIX0``, ``PREFIX1``, ..., with their values; and the
    sweep as the graph records it (``step``: the HyperDriveStep it belongs to, if any). Without an
    ``rndseed``, a seed is drawn and recorded, so that the draw can be repeated."""
    sweep = config.sweep()
    generator = sweep["generator_config"]
    seed = (generator.get("properties") or {}).get("rndseed")
    if seed is None:
        seed = random.SystemRandom().randrange(2**31)
    drawn = sample(generator, sweep["max_total_runs"], seed, sweep["max_concurrent_runs"])
    trials = {f"{prefix}{index}": values for index, values in enumerate(drawn)}
    # Each trial's values as pairs: history.db keeps JSON with sorted keys, and the order is the space's.
    pairs = {name: None if values is None else list(values.items()) for name, values in trials.items()}
    record = {**sweep, "seed": seed, "trials": pairs}
    return trials, ({**record, "step": step} if step else record)


def trial_arguments(values: dict | None) -> list[str]:
    """A trial's values as the options its script is given: ``--lr 0.01`` (none yet for a trial that
    Bayesian sampling proposes when it is about to run)."""
    return [part for name, value in (values or {}).items() for part in (argument_name(name), str(value))]
