"""Host resources: how many CPUs this process may use and how much memory the machine has."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass


@dataclass(frozen=True)
class HostResources:
    """CPUs and memory of this host; memory in bytes."""

    cpus: int
    memory_total: int
    usable_cpus: int  # those this process may run on: ``cpus`` unless LOCALPIPE_CPUS says otherwise

    @property
    def memory_available(self) -> int:
        """What could be given to new processes now without swapping (the kernel's estimate)."""
        import psutil  # only here: a submission needs the total alone, and psutil takes 10-30 ms to import

        return psutil.virtual_memory().available


CPUS_ENV = "LOCALPIPE_CPUS"


def detect_host() -> HostResources:
    """Read the logical CPUs this process may run on and the machine's memory.

    ``LOCALPIPE_CPUS`` (a positive integer) replaces the CPU count: below it, to keep cores for
    other work; above it, to run more one-CPU steps at once than there are CPUs (steps that mostly
    wait), which ``oversubscription`` warns about.
    """
    from localpipe.errors import UsageError

    # The affinity mask is what a scheduler may actually use (taskset, cgroups
    # cpusets, batch systems); the machine-wide count would overcommit.
    if hasattr(os, "sched_getaffinity"):
        usable = len(os.sched_getaffinity(0))
    else:
        usable = os.cpu_count() or 1
    cpus = usable
    override = os.environ.get(CPUS_ENV, "").strip()
    if override:
        if not override.isdigit() or int(override) < 1:
            raise UsageError(f'{CPUS_ENV}="{override}" is not a positive integer: set it to a CPU count or unset it')
        cpus = int(override)
    memory_total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")  # psutil's total: /proc/meminfo's MemTotal
    return HostResources(cpus, memory_total, usable)


_SYSTEMS = {"darwin": "macOS", "win32": "Windows", "cygwin": "Windows (Cygwin)"}


def require_linux() -> None:
    """Refuse, before anything is recorded, to run a pipeline anywhere but on Linux: the step
    supervisor ends a step and what it started through Linux's own process controls (pidfds,
    /proc, a child subreaper, the parent-death signal)."""
    from localpipe.errors import UsageError

    if not sys.platform.startswith("linux"):
        system = _SYSTEMS.get(sys.platform, sys.platform)
        raise UsageError(
            f"localpipe runs pipelines on Linux only, and this is {system}: run it on a Linux machine or "
            "virtual machine (WSL 2 on Windows)"
        )


def oversubscription(host: HostResources) -> str | None:
    """The one-line warning a submission gives when LOCALPIPE_CPUS is above the CPUs it may run on."""
    if host.cpus <= host.usable_cpus:
        return None
    return (
        f"{CPUS_ENV}={host.cpus} is more than the {host.usable_cpus} CPUs this process may run on: "
        f"up to {host.cpus} CPU slots are given to steps at once, sharing those CPUs"
    )
