"""PipelineParameter: a named value with a default, overridable at each submission."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PipelineParameter:
    """A pipeline-level value usable in a step's ``arguments`` and ``params``."""

    name: str
    default_value: Any


def given_values(pipeline_parameters) -> dict | None:
    """``pipeline_parameters`` of a submission, checked to be what the SDK takes: None or a dict
    of parameter names to values (a list of pairs, say, was an AttributeError from inside)."""
    from localpipe.errors import UserErrorException

    if pipeline_parameters is None or isinstance(pipeline_parameters, dict):
        return pipeline_parameters
    raise UserErrorException(
        f"pipeline_parameters is a {type(pipeline_parameters).__name__}: pass a dict of parameter names to "
        'values, such as {"max_iter": 300}'
    )
