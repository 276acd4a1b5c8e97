"""A sweep's parameter space: what each parameter expression (``["uniform", [0, 1]]``, as the SDK
writes them) means, drawn at random, and the points of a discrete space."""

from __future__ import annotations

import math
import random


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
    return quantized(draw([base, args[:2]], rng), args[2])


def quantized(value: float, q):
    """``value`` rounded to a multiple of ``q`` (an int where ``q`` is one)."""
    return round(value / q) * q


def point(values: dict) -> tuple:
    """A trial's values as a comparable key (``1`` and ``1.0`` apart, as its arguments are)."""
    return tuple(repr(value) for value in values.values())


def space_size(space: dict) -> int | None:
    """How many distinct points a space of ``choice`` and ``quniform`` has; None with a continuous
    parameter (``uniform``)."""
    size = 1
    for expression in space.values():
        if expression[0] == "uniform":
            return None
        size *= len(points(expression))
    return size


def points(expression: list) -> list:
    """Every value of a discrete expression: a ``choice``'s options, a ``quniform``'s multiples of ``q``."""
    kind, args = expression
    if kind == "choice":
        return list(dict.fromkeys(args[0]))
    low, high, q = args
    return [step * q for step in range(round(low / q), round(high / q) + 1)]
