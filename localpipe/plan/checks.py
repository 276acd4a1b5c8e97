"""Checks of the plain values a declaration carries: step names, parameter defaults, versions, the
numbers of a run configuration, and the text handed to a process.

Each check adds a readable problem to ``found`` (planning reports them all at once) and returns
the value to plan with, so that a bad value never reaches the scheduler, a file name or a process.
"""

from __future__ import annotations

import math
import posixpath
from typing import Any

MAX_STEP_NAME = 255  # characters: longer names cannot be shown, nor kept in a file name


def step_name(name: Any, found: list[str]) -> None:
    """A step name is non-empty text of at most MAX_STEP_NAME characters, with no NUL."""
    if not isinstance(name, str) or not name:
        found.append(f"step name {name!r} is not a name: pass name= a non-empty string")
    elif "\0" in name:
        found.append(f"step name {name!r} holds a NUL character: remove it")
    elif len(name) > MAX_STEP_NAME:
        found.append(f'step name "{name[:40]}..." is {len(name)} characters long: use at most {MAX_STEP_NAME}')


def parameter_default(name: str, default: Any, found: list[str]) -> bool:
    """A PipelineParameter's default is a string, a finite number or a boolean; False when not."""
    if isinstance(default, float) and not math.isfinite(default):
        found.append(f'parameter "{name}": default value {default!r} is not a finite number: use a number')
        return False
    if not isinstance(default, (str, int, float, bool)):
        found.append(
            f'parameter "{name}": default value {_short(default)} of type {type(default).__name__} cannot be '
            "passed to a step: use a string, a number or a boolean"
        )
        return False
    if isinstance(default, str) and "\0" in default:
        found.append(f'parameter "{name}": default value {default!r} holds a NUL character: remove it')
        return False
    return True


def version(label: str, value: Any, found: list[str]) -> str | None:
    """A step's version: None, or text (a number is taken as its text)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return str(value)
    found.append(
        f"{label}: version {_short(value)} of type {type(value).__name__} is not a string: "
        'pass version="1" or leave it out'
    )
    return None


def timeout_seconds(label: str, value: Any, found: list[str]) -> float | None:
    """``RunConfiguration.timeout_seconds``: None, or a positive finite number of seconds."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value <= 0:
        found.append(
            f"{label}: timeout_seconds {value!r} is not a positive number of seconds: "
            "pass one like 3600, or None for no limit"
        )
        return None
    return float(value)


def max_retries(label: str, value: Any, found: list[str]) -> int:
    """``RunConfiguration.max_retries``: a whole number, 0 or more."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        found.append(f"{label}: max_retries {value!r} is not a whole number of retries: pass 0 or more")
        return 0
    return value


def process_text(label: str, what: str, text: str, found: list[str]) -> None:
    """Text handed to a process (an argument, a parameter) cannot hold a NUL character."""
    if "\0" in text:
        found.append(f"{label}: {what} {text!r} holds a NUL character, which no process can be given: remove it")


def path_on_compute(label: str, name: str, value: Any, found: list[str]) -> None:
    """Where a downloaded input goes: a relative path that stays in the step's inputs folder."""
    if value is None:
        return
    if not isinstance(value, str) or not value or "\0" in value:
        found.append(f'{label}: input "{name}": path_on_compute {value!r} is not a path: pass a relative one')
        return
    normal = posixpath.normpath(value)
    if posixpath.isabs(value) or normal == ".." or normal.startswith("../"):
        found.append(
            f'{label}: input "{name}": path_on_compute "{value}" leaves the step\'s folder: '
            'use a relative path such as "data/raw"'
        )


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
