"""Run and step statuses, and which of them are final (docs/lifecycle.md shows the transitions)."""

from __future__ import annotations

from enum import Enum


class RunStatus(str, Enum):
    """The status of a pipeline run or a step run, stored as its text."""

    NOT_STARTED = "NotStarted"
    QUEUED = "Queued"
    PREPARING = "Preparing"
    RUNNING = "Running"
    FINALIZING = "Finalizing"
    COMPLETED = "Completed"
    FAILED = "Failed"
    CANCELED = "Canceled"
    REUSED = "Reused"

    def __str__(self) -> str:
        return self.value

    @property
    def is_final(self) -> bool:
        return self in FINAL

    @property
    def succeeded(self) -> bool:
        return self in (RunStatus.COMPLETED, RunStatus.REUSED)


FINAL = frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED, RunStatus.REUSED})
ACTIVE = frozenset(set(RunStatus) - FINAL)

# Allowed transitions of a step run; the scheduler refuses any other.
STEP_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.NOT_STARTED: frozenset({RunStatus.QUEUED, RunStatus.REUSED, RunStatus.CANCELED}),
    RunStatus.QUEUED: frozenset(
        {
            RunStatus.QUEUED,
            RunStatus.PREPARING,
            RunStatus.RUNNING,
            RunStatus.CANCELED,
            RunStatus.FAILED,
            RunStatus.REUSED,
        }
    ),
    RunStatus.PREPARING: frozenset({RunStatus.RUNNING, RunStatus.FAILED, RunStatus.CANCELED}),
    RunStatus.RUNNING: frozenset({RunStatus.FINALIZING, RunStatus.FAILED, RunStatus.CANCELED, RunStatus.QUEUED}),
    RunStatus.FINALIZING: frozenset({RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELED}),
}
