"""TabularDataset's filters and time series, as the SDK has them: ``filter(expression)``, the
timestamp columns (``with_timestamp_columns``) and the time filters over them (``time_after`` ...).
(``partition_by``, which makes new datasets, is TabularDataset's own, in datasets.py.)

Each filter is recorded as a row operation (``("filter", expression tree)``, ``tables.py``), applied
when the table is read; ``time_recent`` fixes its start when it is called, as the SDK does.
"""

from __future__ import annotations

import datetime

from localpipe.errors import DatasetTimestampMissingError, UserErrorException
from localpipe.sdk.data.expressions import column, expression_tree

HALF_SECOND = 500_000  # microseconds: an upper bound is rounded to the nearest second, as in the SDK


class TabularOperations:
    """A mixin of TabularDataset (it has ``timestamp``, ``partition_timestamp`` and ``_then``)."""

    def filter(self, expression):
        """The rows the expression holds for: ``dataset.filter(dataset["age"] > 30)``."""
        return self._then("filter", expression_tree(expression, "TabularDataset.filter"))

    # -- time series -----------------------------------------------------------------------------------
    @property
    def timestamp_columns(self) -> tuple[str | None, str | None]:
        """``(timestamp, partition_timestamp)``: the columns the time filters use."""
        return (self.timestamp, self.partition_timestamp)

    def with_timestamp_columns(self, timestamp=None, partition_timestamp=None, validate: bool = False, **kwargs):
        """A dataset whose rows are in time by column ``timestamp`` (and the coarser
        ``partition_timestamp``); None clears them. The SDK's older names ``fine_grain_timestamp`` and
        ``coarse_grain_timestamp`` are accepted (deprecated there); any other keyword is a TypeError."""
        from dataclasses import replace

        unknown = sorted(set(kwargs) - {"fine_grain_timestamp", "coarse_grain_timestamp"})
        if unknown:
            raise TypeError(f"with_timestamp_columns() got an unexpected keyword argument '{unknown[0]}'")
        fine, coarse = kwargs.get("fine_grain_timestamp"), kwargs.get("coarse_grain_timestamp")
        if (timestamp or partition_timestamp) and (fine or coarse):
            raise UserErrorException(
                "fine_grain_timestamp and coarse_grain_timestamp have been replaced by timestamp and "
                "partition_timestamp parameters and cannot be used together."
            )
        for fine_name, coarse_name, given_fine, given_coarse in (
            ("timestamp", "partition_timestamp", timestamp, partition_timestamp),
            ("fine_grain_timestamp", "coarse_grain_timestamp", fine, coarse),
        ):
            if not given_fine and given_coarse:
                raise UserErrorException(f"{coarse_name} can be assigned only if {fine_name} is assigned.")
            if given_fine and given_fine == given_coarse:
                raise UserErrorException(f"{coarse_name} cannot be the same as {fine_name}.")
        timestamp, partition_timestamp = (timestamp, partition_timestamp) if timestamp else (fine, coarse)
        if validate:
            self._check_time_columns([timestamp, partition_timestamp])
        return replace(self, name=None, version=None, registration=None, timestamp=timestamp or None,
                       partition_timestamp=partition_timestamp or None)  # fmt: skip

    def time_before(self, end_time, include_boundary: bool = True, validate: bool = True):
        """The rows up to ``end_time`` (a datetime)."""
        return self._time_filter("time_before", None, end_time, include_boundary, validate)

    def time_after(self, start_time, include_boundary: bool = True, validate: bool = True):
        """The rows from ``start_time`` (a datetime)."""
        return self._time_filter("time_after", start_time, None, include_boundary, validate)

    def time_between(self, start_time, end_time, include_boundary: bool = True, validate: bool = True):
        """The rows from ``start_time`` to ``end_time``."""
        return self._time_filter("time_between", start_time, end_time, include_boundary, validate)

    def time_recent(self, time_delta, include_boundary: bool = True, validate: bool = True):
        """The rows of the last ``time_delta`` (a timedelta) before now."""
        start = datetime.datetime.now() - time_delta
        return self._time_filter("time_recent", start, None, include_boundary, validate)

    def _time_filter(self, method: str, lower, upper, include_boundary: bool, validate: bool):
        if not self.timestamp:
            raise DatasetTimestampMissingError(
                f"Cannot perform time-series filter `{method}` on dataset without timestamp columns defined. "
                "Please use `with_timestamp_columns` to enable time-series capabilities"
            )
        if validate:
            self._check_time_columns([self.timestamp, self.partition_timestamp])
        if lower is not None:
            lower = lower.replace(microsecond=0)
        if upper is not None:
            upper = (upper + datetime.timedelta(seconds=1) if upper.microsecond > HALF_SECOND else upper).replace(
                microsecond=0
            )
        condition = None
        for name in filter(None, (self.partition_timestamp, self.timestamp)):
            part = ~column(name).is_null()
            if lower is not None:
                part = part & (column(name) >= lower if include_boundary else column(name) > lower)
            if upper is not None:
                part = part & (column(name) <= upper if include_boundary else column(name) < upper)
            condition = part if condition is None else condition & part
        return self.filter(condition)

    def _check_time_columns(self, columns: list) -> None:
        import pandas as pd

        sample = self.take(1).to_pandas_dataframe()
        for name in filter(None, columns):
            if name not in sample.columns:
                raise UserErrorException(f"column {name!r} is not in the dataset: it has {list(sample.columns)}")
            values = sample[name]
            if (
                not pd.api.types.is_datetime64_any_dtype(values)
                and pd.to_datetime(values, errors="coerce").isna().any()
            ):
                raise UserErrorException(
                    f"column {name!r} does not hold dates: read it as one with set_column_types={{{name!r}: "
                    "DataType.to_datetime()}, or pass validate=False"
                )
