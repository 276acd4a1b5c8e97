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


def detect_host() -> HostResources:
    """Read the logical CPUs this process may run on and the machine's memory."""
    # The affinity mask is what a scheduler may actually use (taskset, cgroups
    # cpusets, batch systems); the machine-wide count would overcommit.
    if hasattr(os, "sched_getaffinity"):
        cpus = len(os.sched_getaffinity(0))
    else:
        cpus = psutil.cpu_count(logical=True) or 1
    memory = psutil.virtual_memory()
    return HostResources(cpus=cpus, memory_total=memory.total, memory_available=memory.available)
