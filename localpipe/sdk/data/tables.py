"""Reading a tabular dataset's files into one pandas DataFrame, and the row and column operations
(``keep_columns``, ``take``, ``random_split`` ...) a TabularDataset records to apply after reading.

pandas (and pyarrow for Parquet) are optional: imported here, when a table is read.
"""

from __future__ import annotations

import datetime
import os
import random

import localpipe.sdk.data.partitions as partitions
from localpipe.errors import UsageError, UserErrorException
from localpipe.sdk.data.expressions import rows_matching

# The SDK's encodings (FileEncoding) and the codec each is read with.
ENCODINGS = {
    "utf8": "utf-8",
    "iso88591": "iso-8859-1",
    "latin1": "latin-1",
    "ascii": "ascii",
    "utf16": "utf-16",
    "utf32": "utf-32",
    "utf8bom": "utf-8-sig",
    "windows1252": "cp1252",
}
COLUMN_TYPES = ("int", "float", "str", "bool", "datetime")
ERROR_CHOICES = ("null", "fail")


def pandas():
    try:
        import pandas
    except ImportError:
        raise UsageError("reading a tabular dataset needs pandas: pip install 'localpipe[pandas]'") from None
    return pandas


def column_types(caller: str, given: dict | None) -> dict | None:
    """``set_column_types`` as plain names (``int``, ``float``, ``str``, ``bool``, ``datetime``): Python
    types, their names, or the SDK's DataType names (``DataType.to_long()`` ...) are accepted."""
    if given is None:
        return None
    import datetime

    names = {int: "int", float: "float", str: "str", bool: "bool", datetime.datetime: "datetime"}
    aliases = {"long": "int", "integer": "int", "double": "float", "string": "str", "boolean": "bool"}
    result = {}
    for column, kind in dict(given).items():
        name = names.get(kind) or aliases.get(str(kind).lower(), str(kind).lower())
        if name not in COLUMN_TYPES:
            raise UserErrorException(
                f'{caller}: set_column_types["{column}"] = {kind!r} is not a type localpipe reads: '
                f"use one of int, float, str, bool, datetime"
            )
        result[str(column)] = name
    return result


def read_table(files: list[str], root: str, options: dict, on_error: str = "null", out_of_range_datetime: str = "null"):
    """The rows of ``files`` (each read by ``options["format"]``) as one DataFrame, with the recorded
    operations applied."""
    for name, value in (("on_error", on_error), ("out_of_range_datetime", out_of_range_datetime)):
        if value not in ERROR_CHOICES:
            raise UserErrorException(f"to_pandas_dataframe: {name}={value!r}: use 'null' or 'fail'")
    pd = pandas()
    frames = []
    for path in files:
        frame = _read_one(pd, path, options)
        if options.get("partition_format"):  # the values its path holds, first (as the SDK adds them)
            found = partitions.values(options["partition_format"], path)
            for position, (key, value) in enumerate(found.items()):
                frame.insert(position, key, pd.Series([value] * len(frame), index=frame.index, dtype=_dtype(value)))
        if options.get("include_path"):
            frame.insert(0, "Path", "/" + os.path.relpath(path, root))
        frames.append(frame)
    if not frames:
        raise UserErrorException(f"tabular dataset at {root}: no files to read: check the path")
    read = [frame for frame in frames if len(frame.columns)] or frames[:1]  # an empty file adds nothing
    table = pd.concat(read, ignore_index=True)
    table = _set_types(pd, table, options.get("set_column_types") or {}, on_error, out_of_range_datetime)
    for operation in options.get("transforms") or ():
        table = _apply(table, operation)
    return table


def _read_one(pd, path: str, options: dict):
    kind = options.get("format", "delimited")
    if kind == "parquet":
        try:
            return pd.read_parquet(path)
        except ImportError:
            raise UsageError("reading Parquet files needs pyarrow: pip install 'localpipe[parquet]'") from None
    encoding = ENCODINGS.get(options.get("encoding", "utf8"), "utf-8")
    if kind == "json_lines":
        return pd.read_json(path, lines=True, encoding=encoding)
    header = options.get("header", True)
    try:
        return pd.read_csv(
            path,
            sep=options.get("separator", ","),
            header=0 if header else None,
            encoding=encoding,
            keep_default_na=not options.get("empty_as_string", False),
        )
    except pd.errors.EmptyDataError:  # an empty file (a part a job left empty): no rows
        return pd.DataFrame()
    except UnicodeDecodeError as exc:
        raise UserErrorException(
            f'tabular dataset file "{path}" is not {options.get("encoding", "utf8")} text ({exc.reason}): '
            f"pass encoding= the one it is written in ({', '.join(ENCODINGS)})"
        ) from None
    except pd.errors.ParserError as exc:
        raise UserErrorException(
            f'tabular dataset file "{path}" could not be read as delimited text ({str(exc).strip()}): '
            "fix the file, or pass the separator= it uses"
        ) from None


def _dtype(value) -> str:
    return "datetime64[ns]" if isinstance(value, datetime.datetime) else "object"


def _set_types(pd, table, types: dict, on_error: str, out_of_range: str):
    errors = "coerce" if on_error == "null" else "raise"
    for column, kind in types.items():
        if column not in table.columns:
            continue
        if kind in ("int", "float"):
            values = pd.to_numeric(table[column], errors=errors)
            table[column] = values.astype("Int64") if kind == "int" else values.astype(float)
        elif kind == "datetime":
            table[column] = pd.to_datetime(table[column], errors="coerce" if out_of_range == "null" else "raise")
        elif kind == "bool":
            table[column] = table[column].map(_truth).astype("boolean")
        else:
            table[column] = table[column].astype("string")
    return table


def _truth(value):
    text = str(value).strip().lower()
    return True if text in ("true", "1", "yes") else False if text in ("false", "0", "no") else None


def _apply(table, operation):
    kind, *args = operation
    if kind == "keep_columns":
        return table[[c for c in args[0] if c in table.columns]]
    if kind == "drop_columns":
        return table.drop(columns=[c for c in args[0] if c in table.columns])
    if kind == "take":
        return table.head(args[0]).reset_index(drop=True)
    if kind == "skip":
        return table.iloc[args[0] :].reset_index(drop=True)
    if kind == "sample":  # ("sample", probability, seed, keep): rows drawn (keep=True) or the others
        probability, seed, keep = args
        draws = random.Random(seed)
        chosen = [(draws.random() < probability) == keep for _ in range(len(table))]
        return table[chosen].reset_index(drop=True)
    if kind == "filter":  # ("filter", expression tree): the rows it holds for (expressions.py)
        return table[rows_matching(table, args[0])].reset_index(drop=True)
    raise UsageError(f"tabular dataset: unknown operation {kind!r}")
