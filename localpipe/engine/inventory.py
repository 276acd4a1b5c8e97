"""What this machine offers to steps: CPUs, memory, GPUs and a Docker daemon, as plain values."""

from __future__ import annotations

from dataclasses import asdict

from localpipe.hw.gpus import detect_gpus
from localpipe.hw.host import detect_host


def inventory() -> dict:
    host = detect_host()
    gpus = detect_gpus()
    return {
        "cpus": host.cpus,
        "memory_total": host.memory_total,
        "memory_available": host.memory_available,
        "gpus": [asdict(g) for g in gpus.gpus],
        "gpu_problem": gpus.problem,
        "docker": docker_status(),
    }


def docker_status() -> str:
    """'daemon answers (version X)' or why not, in a few words."""
    try:
        from localpipe.engine.executors.docker import daemon_status
    except ImportError:
        return "the docker Python package is not installed"
    return daemon_status()
