"""Checks of the plain values a declaration carries: step names, parameter defaults, versions, the
numbers of a run configuration, and the text handed to a process.

Each check adds a readable problem to ``found`` (planning reports them all at once) and returns
the value to plan with, so that a bad value never reaches the scheduler, a file name or a process.
"""

from __future__ import annotations

import math
import os
import posixpath
from typing import Any

MAX_STEP_NAME = 255  # characters: longer names cannot be shown, nor kept in a file name


def step_name(name: Any, found: list[str]) -> None:
    """A step name is text of at most MAX_STEP_NAME characters, not blank, with no control character."""
    if not isinstance(name, str) or not name.strip():
        found.append(f"step name {_short(name)} is not a name: pass name= a non-empty string")
    elif "\0" in name:
        found.append(f"step name {name!r} holds a NUL character: remove it")
    elif any(ord(c) < 32 or ord(c) == 127 for c in name):
        found.append(f"step name {name!r} holds a control character (a line break, a tab): remove it")
    elif len(name) > MAX_STEP_NAME:
        found.append(f'step name "{name[:40]}..." is {len(name)} characters long: use at most {MAX_STEP_NAME}')


def parameter_default(name: str, default: Any, found: list[str]) -> bool:
    """A PipelineParameter's default is a string, a finite number or a boolean; False when not."""
    if isinstance(default, int) and not _writable(default):
        found.append(f'parameter "{name}": default value is a number of over {_MAX_DIGITS} digits: use a smaller one')
        return False
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
        return text(label, "version", value, found)
    found.append(
        f"{label}: version {_short(value)} of type {type(value).__name__} is not a string: "
        'pass version="1" or leave it out'
    )
    return None


def timeout_seconds(label: str, value: Any, found: list[str]) -> float | None:
    """``RunConfiguration.timeout_seconds``: None, or a positive finite number of seconds."""
    if value is None:
        return None
    try:
        seconds = float(value) if isinstance(value, int | float) and not isinstance(value, bool) else math.nan
    except OverflowError:
        seconds = math.inf
    if not math.isfinite(seconds) or seconds <= 0:
        found.append(
            f"{label}: timeout_seconds {_short(value)} is not a positive number of seconds: "
            "pass one like 3600, or None for no limit"
        )
        return None
    return float(value)


def max_retries(label: str, value: Any, found: list[str]) -> int:
    """``RunConfiguration.max_retries``: a whole number, 0 or more."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        found.append(f"{label}: max_retries {_short(value)} is not a whole number of retries: pass 0 or more")
        return 0
    return value


def text(label: str, what: str, value: Any, found: list[str]) -> str:
    """``value`` (text, a number or a path) as the text a process is given: no NUL in it, and a
    number small enough to be written out."""
    if isinstance(value, int) and not _writable(value):
        found.append(f"{label}: {what} is a number of over {_MAX_DIGITS} digits: pass a smaller one")
        return ""
    written = str(value)
    if "\0" in written:
        found.append(f"{label}: {what} {written!r} holds a NUL character, which no process can be given: remove it")
    return written


def variable_name(label: str, what: str, name: Any, found: list[str]) -> bool:
    """A name that becomes (part of) an environment variable's: non-empty text with no "=" or NUL."""
    if isinstance(name, str) and name and "=" not in name and "\0" not in name:
        return True
    found.append(f'{label}: {what} {_short(name)} cannot name an environment variable: use letters, digits and "_"')
    return False


def flag(label: str, what: str, value: Any, found: list[str]) -> bool:
    """A setting that is True or False (a string such as "no" would read as True)."""
    if isinstance(value, bool):
        return value
    found.append(f"{label}: {what} {_short(value)} is not True or False: pass a boolean")
    return bool(value)


_MAX_DIGITS = 4300  # Python's own limit for writing an int as text


def _writable(number: int) -> bool:
    return number.bit_length() < _MAX_DIGITS * 3.3


def path_on_compute(label: str, name: str, value: Any, found: list[str]) -> None:
    """Where a downloaded input goes: a relative path that stays in the step's inputs folder."""
    if value is None:
        return
    if not isinstance(value, str) or not value or "\0" in value:
        found.append(f'{label}: input "{name}": path_on_compute {_short(value)} is not a path: pass a relative one')
        return
    if _leaves(value):
        found.append(
            f'{label}: input "{name}": path_on_compute "{value}" leaves the step\'s folder: '
            'use a relative path such as "data/raw"'
        )
    elif _too_long(value):
        found.append(
            f'{label}: input "{name}": path_on_compute {_short(value)} has a part longer than a file name can be '
            f"({NAME_MAX} bytes): shorten it"
        )


def input_folder(label: str, name: str, found: list[str]) -> None:
    """An input put in a folder of its name (downloaded without path_on_compute, or several files
    together): a name that makes one inside the step's inputs folder."""
    if "\0" in name or _leaves(name) or _too_long(name):
        found.append(
            f"{label}: input name {_short(name)} cannot name its folder in the step's inputs folder: use a plain "
            'name (letters, digits, "_", "-", "."), or give path_on_compute'
        )


NAME_MAX = 255  # bytes of one file name


def _leaves(path: str) -> bool:
    normal = posixpath.normpath(path)
    return posixpath.isabs(path) or normal == ".." or normal.startswith("../")


def _too_long(path: str) -> bool:
    return any(len(os.fsencode(part)) > NAME_MAX for part in path.split("/"))


def _short(value: Any) -> str:
    if isinstance(value, int) and not _writable(value):
        return f"(a number of over {_MAX_DIGITS} digits)"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
