"""A sweep's parameter space: what each parameter expression (``["uniform", [0, 1]]``, as the SDK
writes them) means, drawn at random, and the points of a discrete space."""

from __future__ import annotations

import itertools
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
    """Every value of a discrete expression (``LISTED``): a ``choice``'s options, a ``randint``'s
    integers, a ``quniform``'s multiples of ``q``."""
    kind, args = expression
    if kind == "choice":
        return list(dict.fromkeys(args[0]))
    if kind == "randint":
        return list(range(args[0]))
    low, high, q = args
    return [step * q for step in range(round(low / q), round(high / q) + 1)]


RANDOM_ATTEMPTS = 100  # random draws for a point not taken yet, before a discrete space's are listed
LISTED = frozenset({"choice", "randint", "quniform"})  # the expressions whose every value ``points`` lists


def random_point(space: dict, taken: set[tuple], rng: random.Random) -> dict:
    """A point of ``space`` not in ``taken`` (``point(values)`` of each), drawn at random; when
    ``RANDOM_ATTEMPTS`` draws all hit taken points of a space of ``LISTED`` expressions, its first
    free point (a space nearly full is drawn to its last point). ValueError when there is none: every
    point is taken (or, in a space that cannot be listed, was drawn each time)."""
    for _ in range(RANDOM_ATTEMPTS):
        values = {name: draw(expression, rng) for name, expression in space.items()}
        if point(values) not in taken:
            return values
    if all(expression[0] in LISTED for expression in space.values()):
        names = list(space)
        for combo in itertools.product(*(points(space[name]) for name in names)):
            values = dict(zip(names, combo, strict=True))
            if point(values) not in taken:
                return values
    raise ValueError("every point of the space is taken")
