"""Common Azure VM sizes (vCPUs, GPUs, memory) as Microsoft documents them, looked up by name.

A compute target declared with an Azure ``vm_size`` is mapped to what it would claim locally.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from localpipe.errors import UsageError

_GIB = 1024**3


@dataclass(frozen=True)
class VmSize:
    """One Azure VM size: its upper-case name, vCPUs, NVIDIA GPUs, memory in bytes, and its name as
    Azure spells it."""

    name: str
    cpus: int
    gpus: int
    memory_bytes: int
    spelled: str


def _size(name: str, cpus: int, gpus: int, memory_gib: float) -> VmSize:
    return VmSize(name=name.upper(), cpus=cpus, gpus=gpus, memory_bytes=int(memory_gib * _GIB), spelled=name)


# Figures from the Azure "Sizes for virtual machines" pages: vCPU, GPU count, Memory: GiB. The D, DS,
# E and F families have the same figures with and without "s" (premium storage), which is added.
_FAMILIES = (
    # General purpose: Dv2 / DSv2
    ("D1_v2", 1, 0, 3.5),
    ("D2_v2", 2, 0, 7),
    ("D3_v2", 4, 0, 14),
    ("D4_v2", 8, 0, 28),
    ("D5_v2", 16, 0, 56),
    ("D11_v2", 2, 0, 14),
    ("D12_v2", 4, 0, 28),
    ("D13_v2", 8, 0, 56),
    ("D14_v2", 16, 0, 112),
    ("D15_v2", 20, 0, 140),
    # General purpose: Dv3 / Dsv3, Dv4 / Dsv4, Dv5 / Dsv5
    *((f"D{n}{s}_v{v}", n, 0, 4 * n) for v in (3, 4, 5) for s in ("", "s") for n in (2, 4, 8, 16, 32, 48, 64)),
    # Memory optimised: Ev3 / Esv3 (E64 has 432 GiB), Ev4 / Esv4 (504)
    *((f"E{n}{s}_v3", n, 0, 432 if n == 64 else 8 * n) for s in ("", "s") for n in (2, 4, 8, 16, 20, 32, 48, 64)),
    *((f"E{n}{s}_v4", n, 0, 504 if n == 64 else 8 * n) for s in ("", "s") for n in (2, 4, 8, 16, 20, 32, 48, 64)),
    # Compute optimised: F / Fs, Fsv2
    *((f"F{n}{s}", n, 0, 2 * n) for s in ("", "s") for n in (1, 2, 4, 8, 16)),
    *((f"F{n}s_v2", n, 0, 2 * n) for n in (2, 4, 8, 16, 32, 48, 64, 72)),
    # GPU: NC (K80; one GPU is half a K80 card), NCv2 (P100), NCv3 (V100), NCasT4_v3 (T4), NC A100 v4
    ("NC6", 6, 1, 56),
    ("NC12", 12, 2, 112),
    ("NC24", 24, 4, 224),
    ("NC24r", 24, 4, 224),
    ("NC6s_v2", 6, 1, 112),
    ("NC12s_v2", 12, 2, 224),
    ("NC24s_v2", 24, 4, 448),
    ("NC6s_v3", 6, 1, 112),
    ("NC12s_v3", 12, 2, 224),
    ("NC24s_v3", 24, 4, 448),
    ("NC24rs_v3", 24, 4, 448),
    ("NC4as_T4_v3", 4, 1, 28),
    ("NC8as_T4_v3", 8, 1, 56),
    ("NC16as_T4_v3", 16, 1, 110),
    ("NC64as_T4_v3", 64, 4, 440),
    ("NC24ads_A100_v4", 24, 1, 220),
    ("NC48ads_A100_v4", 48, 2, 440),
    ("NC96ads_A100_v4", 96, 4, 880),
    # GPU: ND (P40), NDv2 (V100), NDasrA100_v4 (A100 40 GB)
    ("ND6s", 6, 1, 112),
    ("ND12s", 12, 2, 224),
    ("ND24s", 24, 4, 448),
    ("ND40rs_v2", 40, 8, 672),
    ("ND96asr_v4", 96, 8, 900),
    # GPU: NV (M60; one GPU is half a card), NVv3 (M60)
    ("NV6", 6, 1, 56),
    ("NV12", 12, 2, 112),
    ("NV24", 24, 4, 224),
    ("NV12s_v3", 12, 1, 112),
    ("NV24s_v3", 24, 2, 224),
    ("NV48s_v3", 48, 4, 448),
)
# Dv2's premium-storage twins are spelled DS1_v2, not D1s_v2.
_SIZES = [_size(f"Standard_{name}", cpus, gpus, memory) for name, cpus, gpus, memory in _FAMILIES]
_SIZES += [
    _size(f"Standard_DS{name[1:]}", cpus, gpus, memory)
    for name, cpus, gpus, memory in _FAMILIES
    if name.startswith("D") and name.endswith("_v2") and name[1].isdigit()
]

VM_SIZES: dict[str, VmSize] = {size.name: size for size in _SIZES}


def lookup_vm_size(name: str) -> VmSize:
    """The size called `name`, in any letter case; UsageError with the closest known names otherwise."""
    size = VM_SIZES.get(str(name).strip().upper())
    if size is None:
        close = difflib.get_close_matches(str(name).strip().upper(), VM_SIZES, n=3)
        hint = f"did you mean {' or '.join(close)}? " if close else ""
        raise UsageError(
            f"unknown Azure VM size {name!r}: {hint}AmlCompute.supported_vmsizes(ws) lists the {len(VM_SIZES)} known"
        )
    return size
