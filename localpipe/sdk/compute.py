"""Compute targets: named pools of this machine's resources that steps run on."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class ComputeTarget:
    """A named local resource pool; ``local`` is the whole machine, one CPU slot a step."""

    name: str
    cpus_per_step: int = 1
    gpus_per_step: int = 0
    memory_per_step: int | None = None
    max_concurrent_steps: int | None = None


LOCAL = ComputeTarget("local")


def compute_targets(ws) -> dict[str, ComputeTarget]:
    """Every compute target of ``ws`` by name: ``local`` and those created in it."""
    from localpipe.state import records

    return {"local": LOCAL, **records.compute_targets(ws)}
