"""Bayesian sampling's proposals (``BayesianParameterSampling``, docs/hyperdrive.md): a pure function
of the trials that ended, their values and their best primary metric, to the next trial's values.

The method is the Tree-structured Parzen Estimator (Bergstra et al., "Algorithms for Hyper-Parameter
Optimization", NeurIPS 2011): the trials seen are split into the best tenth (at least one) and the
rest; each parameter gets a density over its range from each group (a kernel on each value seen, or
each choice's count, mixed with the range's own uniform density, so that no region is ruled out);
candidates are drawn from the best trials' density and the one most likely among the best rather
than the rest is proposed. Azure ML does not say which Bayesian method its service runs; this one
needs no library beyond Python's. Its constants were chosen on four test functions (Branin's, two
mixed spaces of choice, quniform and uniform, a 4-dimensional bowl), against random sampling with
as many trials, on seeds other than those the tests use.

Every proposal draws from a generator seeded with the sweep's seed and the trial's index, so the same
results give the same proposals (and a resubmitted sweep reuses its trials).
"""

from __future__ import annotations

import math
import random

from localpipe.plan.space import RANDOM_ATTEMPTS, point, quantized, random_point

GOOD_FRACTION = 0.1  # of the trials seen, the share taken as the best (at least one)
CANDIDATES = 24  # values drawn from the best trials' density for each proposal
PRIOR_WEIGHT = 2.0  # the range's own density, weighed as two more kernels among those of the values seen
MIN_BANDWIDTH = 0.1  # of the range: the narrowest kernel


def propose(space: dict, observed: list[tuple[dict, float]], taken: set[tuple], seed: int, index: int) -> dict:
    """The values of trial ``index``: ``observed`` holds (values, score) of the trials seen, higher
    scores better; ``taken`` the points (``point(values)``) of every trial so far, which it avoids.
    With fewer than two trials seen, a random point."""
    rng = random.Random(f"{seed}:{index}")
    if len(observed) < 2:
        return random_point(space, taken, rng)
    ranked = sorted(observed, key=lambda pair: pair[1], reverse=True)
    cut = max(1, math.ceil(GOOD_FRACTION * len(ranked)))
    good = [values for values, _ in ranked[:cut]]
    rest = [values for values, _ in ranked[cut:]]
    candidates = [{name: _draw(expression, [g[name] for g in good], rng) for name, expression in space.items()}
                  for _ in range(CANDIDATES)]  # fmt: skip

    def ratio(values: dict) -> float:
        return sum(
            math.log(_density(expression, [g[name] for g in good], values[name]))
            - math.log(_density(expression, [r[name] for r in rest], values[name]))
            for name, expression in space.items()
        )

    for candidate in sorted(candidates, key=ratio, reverse=True):
        if point(candidate) not in taken:
            return candidate
    return random_point(space, taken, rng)


def _draw(expression: list, seen: list, rng: random.Random):
    """A value from the density of ``seen`` (``_density``)."""
    kind, args = expression
    if kind == "choice":
        options = args[0]
        weights = [PRIOR_WEIGHT / len(options) + sum(1 for s in seen if s == option) for option in options]
        return rng.choices(options, weights)[0]
    low, high = args[0], args[1]
    value = None
    if rng.random() >= PRIOR_WEIGHT / (PRIOR_WEIGHT + len(seen)):  # a kernel's share, not the range's own
        center, width = rng.choice(seen), _bandwidth(low, high, seen)
        for _ in range(RANDOM_ATTEMPTS):  # drawn again until within the range: clipped, draws would pile on its ends
            if low <= (value := rng.gauss(center, width)) <= high:
                break
        else:
            value = None
    if value is None:
        value = rng.uniform(low, high)
    return value if kind == "uniform" else quantized(value, args[2])


def _density(expression: list, seen: list, value) -> float:
    """The density of ``seen`` at ``value``: a choice's counts with a prior share each, or a mix of
    the range's uniform density and a normal kernel on each value seen."""
    kind, args = expression
    if kind == "choice":
        options = args[0]
        return (PRIOR_WEIGHT / len(options) + sum(1 for s in seen if s == value)) / (PRIOR_WEIGHT + len(seen))
    low, high = args[0], args[1]
    width = _bandwidth(low, high, seen)
    kernels = sum(math.exp(-0.5 * ((value - s) / width) ** 2) for s in seen) / (width * math.sqrt(2 * math.pi))
    return (PRIOR_WEIGHT / (high - low) + kernels) / (PRIOR_WEIGHT + len(seen))


def _bandwidth(low: float, high: float, seen: list) -> float:
    """Scott's rule on the values seen, never under a tenth of the range (one value, or equal ones)."""
    spread = (high - low) * MIN_BANDWIDTH
    if len(seen) > 1:
        mean = sum(seen) / len(seen)
        deviation = math.sqrt(sum((s - mean) ** 2 for s in seen) / (len(seen) - 1))
        spread = max(spread, 1.06 * deviation * len(seen) ** -0.2)
    return spread
