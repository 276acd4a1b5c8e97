"""Executors start, watch and stop step processes; they decide nothing and record nothing.

Every executor starts a ``Launch`` and hands back its ``Exit`` from ``wait`` once it ends, so the
scheduler does not care where a process runs (here, in a container, or on another engine).
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Launch:
    """What to run for one step attempt."""

    key: str  # the scheduler's handle for the step
    argv: list[str]
    cwd: str
    env: dict[str, str]
    stdout: str
    stderr: str
    memory_limit: int | None = None  # bytes of address space, enforced with RLIMIT_AS
    masked: list[str] = field(default_factory=list)  # secret values replaced by *** in the logs


@dataclass
class Exit:
    """How a process ended."""

    key: str
    exit_code: int | None
    signal: int | None
    peak_memory: int | None
    error: str | None = None  # the process could not be started at all
