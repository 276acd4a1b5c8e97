"""Common Azure VM sizes (vCPUs, GPUs, memory) as Microsoft documents them, looked up by name.

A compute target declared with an Azure ``vm_size`` is mapped to what it would claim locally.
"""

from __future__ import annotations

from dataclasses import dataclass

from localpipe.errors import UsageError

_GIB = 1024**3


@dataclass(frozen=True)
class VmSize:
    """One Azure VM size: its upper-case name, vCPUs, NVIDIA GPUs and memory in bytes."""

    name: str
    cpus: int
    gpus: int
    memory_bytes: int


def _size(name: str, cpus: int, gpus: int, memory_gib: float) -> VmSize:
    return VmSize(name=name.upper(), cpus=cpus, gpus=gpus, memory_bytes=int(memory_gib * _GIB))


# Figures from the Azure "Sizes for virtual machines" pages: vCPU, GPU count, Memory: GiB.
_SIZES = (
    # General purpose, Dv2 / DSv2 / Dsv3
    _size("Standard_D1_v2", 1, 0, 3.5),
    _size("Standard_D2_v2", 2, 0, 7),
    _size("Standard_D3_v2", 4, 0, 14),
    _size("Standard_D4_v2", 8, 0, 28),
    _size("Standard_D5_v2", 16, 0, 56),
    _size("Standard_D11_v2", 2, 0, 14),
    _size("Standard_D12_v2", 4, 0, 28),
    _size("Standard_DS2_v2", 2, 0, 7),
    _size("Standard_DS3_v2", 4, 0, 14),
    _size("Standard_DS4_v2", 8, 0, 28),
    _size("Standard_D2s_v3", 2, 0, 8),
    _size("Standard_D4s_v3", 4, 0, 16),
    _size("Standard_D8s_v3", 8, 0, 32),
    _size("Standard_D16s_v3", 16, 0, 64),
    # Compute optimized, Fsv2
    _size("Standard_F2s_v2", 2, 0, 4),
    _size("Standard_F4s_v2", 4, 0, 8),
    _size("Standard_F8s_v2", 8, 0, 16),
    # GPU: NC (K80; one GPU is half a K80 card), NCv3 (V100), NCasT4_v3 (T4), NC A100 v4
    _size("Standard_NC6", 6, 1, 56),
    _size("Standard_NC12", 12, 2, 112),
    _size("Standard_NC24", 24, 4, 224),
    _size("Standard_NC6s_v3", 6, 1, 112),
    _size("Standard_NC12s_v3", 12, 2, 224),
    _size("Standard_NC24s_v3", 24, 4, 448),
    _size("Standard_NC4as_T4_v3", 4, 1, 28),
    _size("Standard_NC8as_T4_v3", 8, 1, 56),
    _size("Standard_NC16as_T4_v3", 16, 1, 110),
    _size("Standard_NC64as_T4_v3", 64, 4, 440),
    _size("Standard_NC24ads_A100_v4", 24, 1, 220),
    _size("Standard_NC48ads_A100_v4", 48, 2, 440),
    _size("Standard_NC96ads_A100_v4", 96, 4, 880),
    # GPU: NDv2 (V100), NDasrA100_v4 (A100 40 GB), NV (M60; one GPU is half a card)
    _size("Standard_ND40rs_v2", 40, 8, 672),
    _size("Standard_ND96asr_v4", 96, 8, 900),
    _size("Standard_NV6", 6, 1, 56),
    _size("Standard_NV12", 12, 2, 112),
    _size("Standard_NV24", 24, 4, 224),
)

VM_SIZES: dict[str, VmSize] = {size.name: size for size in _SIZES}


def lookup_vm_size(name: str) -> VmSize:
    """The size called `name`, in any letter case; raises UsageError naming the known sizes."""
    size = VM_SIZES.get(name.strip().upper())
    if size is None:
        raise UsageError(f"unknown Azure VM size {name!r}; known sizes: {', '.join(sorted(VM_SIZES))}")
    return size
