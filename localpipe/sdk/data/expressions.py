"""Filter expressions: ``dataset["age"] > 30``, ``ds.file_metadata("Size") > 1000``, combined with
``&``, ``|`` and ``~``, as the SDK's ``filter(expression)`` takes them.

An expression is kept as plain data (nested lists, datetimes as ``{"datetime": iso}``), so that a
TabularDataset records it among its row operations and a step or a registered version gets it as
JSON. ``rows_matching`` applies one to a pandas DataFrame; ``record_matches`` to one file's record.
"""

from __future__ import annotations

import datetime
import operator
import os

from localpipe.errors import UserErrorException

COMPARISONS = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}
TEXT_TESTS = {"starts_with": "startswith", "ends_with": "endswith", "contains": "__contains__"}
FILE_METADATA = ("Size", "LastModifiedTime", "CreationTime", "Extension", "CanSeek")


class Expression:
    """A condition on each record, built from a column (``dataset["name"]``) or a file's metadata."""

    def __init__(self, tree: list):
        self.tree = tree

    def _compare(self, op: str, other) -> Expression:
        return Expression([op, self.tree, _operand(other)])

    def __eq__(self, other) -> Expression:  # type: ignore[override]
        return self._compare("==", other)

    def __ne__(self, other) -> Expression:  # type: ignore[override]
        return self._compare("!=", other)

    def __lt__(self, other) -> Expression:
        return self._compare("<", other)

    def __le__(self, other) -> Expression:
        return self._compare("<=", other)

    def __gt__(self, other) -> Expression:
        return self._compare(">", other)

    def __ge__(self, other) -> Expression:
        return self._compare(">=", other)

    def __and__(self, other) -> Expression:
        return Expression(["and", self.tree, _operand(other)])

    def __or__(self, other) -> Expression:
        return Expression(["or", self.tree, _operand(other)])

    def __invert__(self) -> Expression:
        return Expression(["not", self.tree])

    def starts_with(self, value: str) -> Expression:
        return Expression(["starts_with", self.tree, _operand(value)])

    def ends_with(self, value: str) -> Expression:
        return Expression(["ends_with", self.tree, _operand(value)])

    def contains(self, value: str) -> Expression:
        return Expression(["contains", self.tree, _operand(value)])

    def is_null(self) -> Expression:
        return Expression(["is_null", self.tree])

    def __bool__(self):
        raise UserErrorException("a dataset expression has no truth value: combine conditions with &, | and ~")

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Expression({self.tree!r})"


def column(name: str) -> Expression:
    return Expression(["col", str(name)])


def file_metadata(name: str) -> Expression:
    if name not in FILE_METADATA:
        raise UserErrorException(f"file_metadata: {name!r} is not one of {', '.join(FILE_METADATA)}")
    return Expression(["meta", name])


def expression_tree(expression, caller: str) -> list:
    """The plain data of ``expression``, checked."""
    if not isinstance(expression, Expression):
        raise UserErrorException(
            f'{caller}: {expression!r} is not a dataset expression: build one from dataset["column"] '
            "(or dataset.file_metadata(...)) with ==, <, >, &, | ..."
        )
    return expression.tree


def _operand(value) -> list:
    if isinstance(value, Expression):
        return value.tree
    if type(value).__module__ == "numpy" and hasattr(value, "item"):  # a value read from a DataFrame: np.int64(3)
        # a datetime64 in nanoseconds would be an int: in microseconds it is a datetime
        value = (value.astype("datetime64[us]") if type(value).__name__ == "datetime64" else value).item()
    if isinstance(value, datetime.datetime):
        return ["lit", {"datetime": value.isoformat()}]
    if isinstance(value, datetime.date):
        return ["lit", {"datetime": datetime.datetime(value.year, value.month, value.day).isoformat()}]
    if value is None or isinstance(value, (bool, int, float, str)):
        return ["lit", value]
    raise UserErrorException(f"a dataset expression cannot compare with {value!r}: use a number, text or datetime")


def _literal(value):
    if isinstance(value, dict) and "datetime" in value:
        return datetime.datetime.fromisoformat(value["datetime"])
    return value


# -- on a table (pandas) -----------------------------------------------------------------------------


def rows_matching(table, tree: list):
    """A boolean Series: which rows of ``table`` the expression holds for (missing values never do)."""
    import pandas as pd

    result = _on_table(pd, table, tree)
    if not isinstance(result, pd.Series):
        return pd.Series([bool(result)] * len(table), index=table.index)
    return result.fillna(False).astype(bool)


def _on_table(pd, table, tree):
    kind = tree[0]
    if kind == "col":
        if tree[1] not in table.columns:
            raise UserErrorException(f"filter: column {tree[1]!r} is not in the dataset (it has {list(table.columns)})")
        return table[tree[1]]
    if kind == "lit":
        return _literal(tree[1])
    if kind == "meta":
        raise UserErrorException("filter: file_metadata(...) is for a FileDataset's files, not a table's rows")
    if kind in ("and", "or", "not"):
        parts = [_truth(pd, table, _on_table(pd, table, t)) for t in tree[1:]]
        return ~parts[0] if kind == "not" else (parts[0] & parts[1] if kind == "and" else parts[0] | parts[1])
    if kind == "is_null":
        return _on_table(pd, table, tree[1]).isna()
    left, right = _on_table(pd, table, tree[1]), _on_table(pd, table, tree[2])
    if kind in TEXT_TESTS:
        text = left.astype("string")
        method = {"starts_with": text.str.startswith, "ends_with": text.str.endswith}.get(kind)
        return method(right, na=False) if method else text.str.contains(right, regex=False, na=False)
    left, right = _as_times(pd, left, right), _as_times(pd, right, left)
    return COMPARISONS[kind](left, right)


def _truth(pd, table, value):
    if isinstance(value, pd.Series):
        return value.fillna(False).astype(bool)
    return pd.Series([bool(value)] * len(table), index=table.index)


def _as_times(pd, value, other):
    """A column compared with a datetime is read as datetimes (text that is none is missing)."""
    if isinstance(value, pd.Series) and isinstance(other, datetime.datetime):
        if not pd.api.types.is_datetime64_any_dtype(value):
            value = pd.to_datetime(value, errors="coerce")
        if getattr(value.dt, "tz", None) is not None and other.tzinfo is None:
            value = value.dt.tz_localize(None)
    return value


# -- on a file -------------------------------------------------------------------------------------


def record_matches(tree: list, record: dict, path: str) -> bool:
    """Whether the expression holds for one file: ``record`` has its ``Path`` and partition values."""
    return bool(_on_record(tree, record, path))


def _on_record(tree, record: dict, path: str):
    kind = tree[0]
    if kind == "col":
        if tree[1] not in record:
            raise UserErrorException(f"filter: {tree[1]!r} is not a column of the files (they have {list(record)})")
        return record[tree[1]]
    if kind == "lit":
        return _literal(tree[1])
    if kind == "meta":
        return _file_metadata(path, tree[1])
    if kind == "and":
        return _on_record(tree[1], record, path) and _on_record(tree[2], record, path)
    if kind == "or":
        return _on_record(tree[1], record, path) or _on_record(tree[2], record, path)
    if kind == "not":
        return not _on_record(tree[1], record, path)
    if kind == "is_null":
        return _on_record(tree[1], record, path) is None
    left, right = _on_record(tree[1], record, path), _on_record(tree[2], record, path)
    if left is None or right is None:
        return False
    if kind in TEXT_TESTS:
        return getattr(str(left), TEXT_TESTS[kind])(str(right))
    try:
        return COMPARISONS[kind](left, right)
    except TypeError:
        raise UserErrorException(f"filter: cannot compare {left!r} with {right!r}") from None


def _file_metadata(path: str, name: str):
    stat = os.stat(path)
    utc = datetime.timezone.utc  # noqa: UP017  (steps may run on Python 3.8-3.10, which lack datetime.UTC)
    if name == "Size":
        return stat.st_size
    if name == "LastModifiedTime":
        return datetime.datetime.fromtimestamp(stat.st_mtime, utc).replace(tzinfo=None)
    if name == "CreationTime":
        return datetime.datetime.fromtimestamp(stat.st_ctime, utc).replace(tzinfo=None)
    if name == "Extension":
        return os.path.splitext(path)[1].lstrip(".")
    return True  # CanSeek: every local file can
