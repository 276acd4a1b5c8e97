"""Host resources: how many CPUs this process may use and how much memory the machine has."""

from __future__ import annotations

import os
from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class HostResources:
    """CPUs and memory of this host; memory in bytes."""

    cpus: int
    memory_total: int
    memory_available: int


CPUS_ENV = "LOCALPIPE_CPUS"


def detect_host() -> HostResources:
    """Read the logical CPUs this process may run on and the machine's memory.

    ``LOCALPIPE_CPUS`` (a positive integer) replaces the CPU count: to keep cores for other work.
    """
    from localpipe.errors import UsageError

    override = os.environ.get(CPUS_ENV, "").strip()
    if override:
        if not override.isdigit() or int(override) < 1:
            raise UsageError(f'{CPUS_ENV}="{override}" is not a positive integer: set it to a CPU count or unset it')
        memory = psutil.virtual_memory()
        return HostResources(cpus=int(override), memory_total=memory.total, memory_available=memory.available)
    # The affinity mask is what a scheduler may actually use (taskset, cgroups
    # cpusets, batch systems); the machine-wide count would overcommit.
    if hasattr(os, "sched_getaffinity"):
        cpus = len(os.sched_getaffinity(0))
    else:
        cpus = psutil.cpu_count(logical=True) or 1
    memory = psutil.virtual_memory()
    return HostResources(cpus=cpus, memory_total=memory.total, memory_available=memory.available)
