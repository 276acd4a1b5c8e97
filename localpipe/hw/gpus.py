"""GPU discovery through NVML: the one hardware boundary, the only module that imports pynvml to talk to a driver.

pynvml is imported inside functions so that importing localpipe stays fast and works
without a driver. A missing driver or zero devices is a `GpuReport.problem`, not an exception.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from localpipe.hw.fake_nvml import FakeNvml

NO_DRIVER = "no NVIDIA driver found (NVML library not loadable)"
DRIVER_NOT_LOADED = "NVIDIA driver installed but not loaded (NVML: Driver Not Loaded)"
NO_DEVICES = "NVIDIA driver found but no GPU devices"
VISIBLE_ENV = "CUDA_VISIBLE_DEVICES"


@dataclass(frozen=True)
class GpuInfo:
    """One GPU as NVML reports it; memory in bytes, utilization in percent (None where unsupported)."""

    index: int
    uuid: str
    name: str
    memory_total: int
    memory_free: int
    utilization: int | None


@dataclass(frozen=True)
class GpuReport:
    """The GPUs found, or, when none can be used, a one-line `problem` saying why."""

    gpus: tuple[GpuInfo, ...]
    problem: str | None


def nvml_module() -> ModuleType | FakeNvml:
    """The real pynvml, or a `FakeNvml` built from ``LOCALPIPE_FAKE_GPUS`` when that is set and non-empty."""
    from localpipe.hw import fake_nvml

    spec = os.environ.get(fake_nvml.ENV_VAR)
    if spec:
        return fake_nvml.FakeNvml.from_spec(spec)
    import pynvml

    return pynvml


def detect_gpus(nvml: ModuleType | FakeNvml | None = None) -> GpuReport:
    """List the GPUs through `nvml` (default: `nvml_module()`), only those ``CUDA_VISIBLE_DEVICES``
    names when it is set (`visible_only`); NVML errors become the report's problem."""
    import pynvml  # for its exception classes, which the fake raises too

    if nvml is None:
        nvml = nvml_module()
    try:
        nvml.nvmlInit()
    except pynvml.NVMLError_LibraryNotFound:
        return GpuReport((), NO_DRIVER)
    except pynvml.NVMLError_DriverNotLoaded:
        return GpuReport((), DRIVER_NOT_LOADED)
    except pynvml.NVMLError as exc:
        return GpuReport((), f"NVML error: {exc}")
    try:
        return visible_only(_read_devices(nvml, pynvml), os.environ.get(VISIBLE_ENV))
    finally:
        try:
            nvml.nvmlShutdown()
        except pynvml.NVMLError:
            # The readings are already taken; a failed shutdown leaves nothing to act on.
            pass


def visible_only(report: GpuReport, visible: str | None) -> GpuReport:
    """The GPUs of ``report`` that a ``CUDA_VISIBLE_DEVICES`` value leaves a process (all when unset), in
    NVML order. As CUDA reads it: each entry an index or a UUID (``GPU-...``, or a leading part of one
    naming a single GPU), and the list ends at the first entry that names none (``-1``, a MIG
    instance: not a whole GPU). An index is NVML's, CUDA's too with ``CUDA_DEVICE_ORDER=PCI_BUS_ID``
    or GPUs all alike: on a machine with mixed GPUs, UUIDs say which for certain."""
    if visible is None or not report.gpus:
        return report
    named: set[int] = set()
    for entry in visible.split(","):
        entry = entry.strip().lower()
        if entry.isdigit():
            found = [g.index for g in report.gpus if g.index == int(entry)]
        else:
            found = [g.index for g in report.gpus if entry.startswith("gpu-") and g.uuid.lower().startswith(entry)]
        if len(found) != 1:
            break
        named.update(found)
    gpus = tuple(g for g in report.gpus if g.index in named)
    if not gpus:
        return GpuReport((), f"{VISIBLE_ENV}={visible!r} leaves none of this machine's {len(report.gpus)} GPUs")
    return GpuReport(gpus, None)


def _read_devices(nvml: ModuleType | FakeNvml, pynvml: ModuleType) -> GpuReport:
    try:
        count = nvml.nvmlDeviceGetCount()
    except pynvml.NVMLError as exc:
        return GpuReport((), f"NVML error: {exc}")
    if count == 0:
        return GpuReport((), NO_DEVICES)
    gpus = []
    for index in range(count):
        try:
            gpus.append(_read_gpu(nvml, pynvml, index))
        except pynvml.NVMLError as exc:
            # A device NVML cannot read (lost, needs a reset) wants the user's attention,
            # so it fails the whole report instead of being skipped silently.
            return GpuReport((), f"NVML error reading GPU {index}: {exc}")
    return GpuReport(tuple(gpus), None)


def _read_gpu(nvml: ModuleType | FakeNvml, pynvml: ModuleType, index: int) -> GpuInfo:
    handle = nvml.nvmlDeviceGetHandleByIndex(index)
    memory = nvml.nvmlDeviceGetMemoryInfo(handle)
    try:
        utilization: int | None = nvml.nvmlDeviceGetUtilizationRates(handle).gpu
    except pynvml.NVMLError_NotSupported:
        utilization = None
    return GpuInfo(
        index=index,
        uuid=_text(nvml.nvmlDeviceGetUUID(handle)),
        name=_text(nvml.nvmlDeviceGetName(handle)),
        memory_total=int(memory.total),
        memory_free=int(memory.free),
        utilization=utilization,
    )


def _text(value: bytes | str) -> str:
    # Older pynvml releases return bytes, newer ones str.
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else value
