"""A fake NVML with pynvml's function names and pynvml's own exceptions, for tests and GPU-less machines.

Selected by the ``LOCALPIPE_FAKE_GPUS`` environment variable (see `FakeNvml.from_spec`).
pynvml is imported here only for its exception classes, which load no driver.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import pynvml

from localpipe.errors import UsageError

ENV_VAR = "LOCALPIPE_FAKE_GPUS"
GIB = 1024**3
DEFAULT_NAME = "Fake GPU"
DEFAULT_MEMORY = 80 * GIB

_SPEC_FORMS = '"4" (4 GPUs of 80 GiB), "2x16GiB" (2 GPUs of 16 GiB), "none" (driver, no GPUs) or "nodriver"'
_COUNT_SPEC = re.compile(r"(\d+)(?:x(\d+)gib)?")


@dataclass(frozen=True)
class FakeGpu:
    """One fake device; ``utilization=None`` makes utilization queries raise NotSupported."""

    name: str = DEFAULT_NAME
    memory_total: int = DEFAULT_MEMORY
    memory_used: int = 0
    utilization: int | None = 0


@dataclass(frozen=True)
class FakeHandle:
    """What `FakeNvml.nvmlDeviceGetHandleByIndex` returns; opaque to callers, like NVML's."""

    index: int


@dataclass(frozen=True)
class FakeMemory:
    """Mirrors pynvml's ``c_nvmlMemory_t``: bytes."""

    total: int
    free: int
    used: int


@dataclass(frozen=True)
class FakeUtilization:
    """Mirrors pynvml's ``c_nvmlUtilization_t``: percent."""

    gpu: int
    memory: int


class FakeNvml:
    """Module-like stand-in for pynvml that fails the way the real library does."""

    def __init__(self, gpus: Sequence[FakeGpu] = (), *, driver: bool = True):
        self.gpus = tuple(gpus)
        self.driver = driver
        # NVML counts nvmlInit calls; each needs its own nvmlShutdown.
        self._init_count = 0

    @classmethod
    def from_spec(cls, spec: str) -> FakeNvml:
        """Build a fake from a ``LOCALPIPE_FAKE_GPUS`` value: "4", "2x16GiB", "none" or "nodriver"."""
        text = spec.strip().lower()
        if text == "none":
            return cls(())
        if text == "nodriver":
            return cls((), driver=False)
        match = _COUNT_SPEC.fullmatch(text)
        if match is None:
            raise _bad_spec(spec)
        count = int(match.group(1))
        gib = int(match.group(2) or DEFAULT_MEMORY // GIB)
        if count < 1 or gib < 1:
            raise _bad_spec(spec)
        return cls([FakeGpu(memory_total=gib * GIB) for _ in range(count)])

    @property
    def initialized(self) -> bool:
        """Whether nvmlInit has been called more often than nvmlShutdown."""
        return self._init_count > 0

    def nvmlInit(self) -> None:
        """Start a session; raises NVMLError_LibraryNotFound for a fake without a driver."""
        if not self.driver:
            raise pynvml.NVMLError_LibraryNotFound()
        self._init_count += 1

    def nvmlShutdown(self) -> None:
        """End one session; raises NVMLError_Uninitialized when none is open."""
        self._require_init()
        self._init_count -= 1

    def nvmlDeviceGetCount(self) -> int:
        """The number of fake devices."""
        self._require_init()
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeHandle:
        """A handle for device `index`; raises NVMLError_InvalidArgument when out of range."""
        self._require_init()
        if not isinstance(index, int) or not 0 <= index < len(self.gpus):
            raise pynvml.NVMLError_InvalidArgument()
        return FakeHandle(index)

    def nvmlDeviceGetUUID(self, handle: FakeHandle) -> str:
        """A deterministic UUID ending in the device index."""
        return f"GPU-00000000-0000-0000-0000-{self._index(handle):012d}"

    def nvmlDeviceGetName(self, handle: FakeHandle) -> str:
        """The device name, as str like current pynvml."""
        return self.gpus[self._index(handle)].name

    def nvmlDeviceGetMemoryInfo(self, handle: FakeHandle) -> FakeMemory:
        """Total, free and used memory in bytes."""
        gpu = self.gpus[self._index(handle)]
        return FakeMemory(total=gpu.memory_total, free=gpu.memory_total - gpu.memory_used, used=gpu.memory_used)

    def nvmlDeviceGetUtilizationRates(self, handle: FakeHandle) -> FakeUtilization:
        """GPU utilization in percent; raises NVMLError_NotSupported where the fake GPU has none."""
        gpu = self.gpus[self._index(handle)]
        if gpu.utilization is None:
            raise pynvml.NVMLError_NotSupported()
        # The fake has no memory controller to measure; 0 is what an idle one reads.
        return FakeUtilization(gpu=gpu.utilization, memory=0)

    def _require_init(self) -> None:
        if not self.initialized:
            raise pynvml.NVMLError_Uninitialized()

    def _index(self, handle: FakeHandle) -> int:
        self._require_init()
        if not isinstance(handle, FakeHandle) or not 0 <= handle.index < len(self.gpus):
            raise pynvml.NVMLError_InvalidArgument()
        return handle.index


def _bad_spec(spec: str) -> UsageError:
    return UsageError(f"{ENV_VAR}={spec!r} is not understood; use {_SPEC_FORMS}")
