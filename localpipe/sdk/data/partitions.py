"""``partition_format``: values read from the folders and names of a dataset's files, as the SDK does.

``"/{Department}/{PartitionDate:yyyy/MM/dd}/data.csv"`` names the end of each file's path: ``{key}``
is one folder or name part (text), ``{key:yyyy/MM/dd/HH/mm/ss}`` a datetime made of the parts it
names, ``*`` anything within one folder. A file whose path does not end that way has no values
(missing). The keys are the dataset's ``partition_keys``. What the format names before its first
key may be absent: a registered version's copy holds its files below the dataset's root, without
the datastore folders above it (``dataset_partition_test/{user}/...`` still reads ``u1/...``).
"""

from __future__ import annotations

import datetime
import os
import re
from functools import lru_cache

from localpipe.errors import UserErrorException

DATE_PARTS = {"yyyy": ("year", r"\d{4}"), "MM": ("month", r"\d{2}"), "dd": ("day", r"\d{2}"),
              "HH": ("hour", r"\d{2}"), "mm": ("minute", r"\d{2}"), "ss": ("second", r"\d{2}")}  # fmt: skip
TOKEN = re.compile(r"\{([^{}:]+)(?::([^{}]*))?\}|\*\*|\*|[^{}*]+")


@lru_cache(maxsize=64)
def parse(partition_format: str) -> tuple[re.Pattern, tuple[str, ...], frozenset]:
    """The pattern matching the end of a file's path, the keys in order, and those that are datetimes."""
    text = partition_format.lstrip("/")
    position, pattern, keys, dates, prefix = 0, [], [], set(), 0
    while position < len(text):
        token = TOKEN.match(text, position)
        if token is None:
            raise UserErrorException(
                f"partition_format {partition_format!r}: unbalanced braces: write keys as {{name}} "
                "or {name:yyyy/MM/dd}"
            )
        position = token.end()
        key, date_format = token.group(1), token.group(2)
        if key is not None:
            group = f"k{len(keys)}"
            keys.append(key.strip())
            if date_format:
                dates.add(key.strip())
                pattern.append(_date_pattern(group, date_format, partition_format))
            else:
                pattern.append(f"(?P<{group}>[^/]+)")
        elif token.group(0) == "**":
            pattern.append(".*")
        elif token.group(0) == "*":
            pattern.append("[^/]*")
        else:
            pattern.append(re.escape(token.group(0)))
        if not keys:
            prefix = len(pattern)
    head, rest = "".join(pattern[:prefix]), "".join(pattern[prefix:])
    optional = f"(?:{head})?" if head.endswith("/") else head
    return re.compile("(?:^|/)" + optional + rest + "$"), tuple(keys), frozenset(dates)


def _date_pattern(group: str, date_format: str, partition_format: str) -> str:
    parts = re.split(r"(yyyy|MM|dd|HH|mm|ss)", date_format)
    if not any(part in DATE_PARTS for part in parts):
        raise UserErrorException(
            f"partition_format {partition_format!r}: {date_format!r} names no date part: use yyyy, MM, dd, HH, mm, ss"
        )
    return "".join(
        f"(?P<{group}_{DATE_PARTS[part][0]}>{DATE_PARTS[part][1]})" if part in DATE_PARTS else re.escape(part)
        for part in parts
    )


def keys(partition_format: str | None) -> list[str]:
    """The partition keys ``partition_format`` names ([] for None)."""
    return list(parse(partition_format)[1]) if partition_format else []


def values(partition_format: str, path: str) -> dict:
    """The value of each key for the file at ``path`` (None where its path does not match)."""
    pattern, names, dates = parse(partition_format)
    found = pattern.search(path.replace(os.sep, "/"))
    result = {}
    for index, name in enumerate(names):
        group = f"k{index}"
        if found is None:
            result[name] = None
        elif name in dates:
            parts = {
                unit: int(found.group(f"{group}_{unit}"))
                for unit, _ in DATE_PARTS.values()
                if f"{group}_{unit}" in found.re.groupindex
            }
            result[name] = datetime.datetime(parts.pop("year", 1), parts.pop("month", 1), parts.pop("day", 1), **parts)
        else:
            result[name] = found.group(group)
    return result
