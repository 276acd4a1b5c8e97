"""PipelineParameter: a named value with a default, overridable at each submission."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class PipelineParameter:
    """A pipeline-level value usable in a step's ``arguments`` and ``params``."""

    name: str
    default_value: Any
