"""``RunConfiguration.history``: the SDK's ``HistoryConfiguration``, what a run's history keeps."""

from __future__ import annotations


class HistoryConfiguration:
    """What a run's history keeps, as the SDK's defaults say, and as localpipe always does: the
    files a step writes to ``./outputs`` (``output_collection``) and ``./logs``
    (``directories_to_watch``), and a snapshot of its source (``snapshot_project``). Setting them
    is kept and changes nothing: every run here keeps all three (docs/runs.md)."""

    def __init__(self):
        self.output_collection = True
        self.snapshot_project = True
        self.directories_to_watch = ["logs"]

    def __repr__(self) -> str:
        return (
            f"HistoryConfiguration(output_collection={self.output_collection}, "
            f"snapshot_project={self.snapshot_project}, directories_to_watch={self.directories_to_watch})"
        )
