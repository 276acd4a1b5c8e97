"""detect_gpus through the fake NVML (which raises pynvml's own errors) and through the real pynvml."""

import dataclasses
import subprocess
import sys
from pathlib import Path

import pynvml
import pytest

from localpipe.errors import UsageError
from localpipe.hw.fake_nvml import GIB, FakeGpu, FakeHandle, FakeNvml
from localpipe.hw.gpus import NO_DEVICES, NO_DRIVER, GpuInfo, detect_gpus, nvml_module

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def fake_gpus(monkeypatch):
    """Select the fake through LOCALPIPE_FAKE_GPUS, as a user would."""

    def use(spec: str) -> None:
        monkeypatch.setenv("LOCALPIPE_FAKE_GPUS", spec)

    return use


def test_four_fake_gpus(fake_gpus):
    fake_gpus("4")
    report = detect_gpus()
    assert report.problem is None
    assert [gpu.index for gpu in report.gpus] == [0, 1, 2, 3]
    assert [gpu.uuid for gpu in report.gpus] == [f"GPU-00000000-0000-0000-0000-00000000000{i}" for i in range(4)]
    assert {gpu.name for gpu in report.gpus} == {"Fake GPU"}
    assert all(gpu.memory_total == gpu.memory_free == 80 * GIB for gpu in report.gpus)
    assert all(gpu.utilization == 0 for gpu in report.gpus)


def test_sized_fake_gpus(fake_gpus):
    fake_gpus("2x16GiB")
    report = detect_gpus()
    assert [gpu.memory_total for gpu in report.gpus] == [16 * GIB, 16 * GIB]


def test_driver_without_devices(fake_gpus):
    fake_gpus("none")
    report = detect_gpus()
    assert report.gpus == ()
    assert report.problem == NO_DEVICES
    assert "no GPU devices" in report.problem


def test_no_driver(fake_gpus):
    fake_gpus("nodriver")
    report = detect_gpus()
    assert report.gpus == ()
    assert report.problem == NO_DRIVER
    assert "driver" in report.problem


def test_real_nvml_on_this_machine_reports_a_problem_without_raising(monkeypatch):
    monkeypatch.delenv("LOCALPIPE_FAKE_GPUS", raising=False)
    assert nvml_module() is pynvml
    report = detect_gpus()
    if report.gpus:
        pytest.skip(f"a real GPU is present ({report.gpus[0].name}); this test covers GPU-less machines")
    assert report.problem
    assert "\n" not in report.problem


def test_empty_variable_means_the_real_library(monkeypatch):
    monkeypatch.setenv("LOCALPIPE_FAKE_GPUS", "")
    assert nvml_module() is pynvml


def test_detect_shuts_nvml_down():
    fake = FakeNvml.from_spec("4")
    detect_gpus(fake)
    assert not fake.initialized


def test_unreadable_device_fails_the_report_and_still_shuts_down():
    class LostGpu(FakeNvml):
        def nvmlDeviceGetMemoryInfo(self, handle):
            raise pynvml.NVMLError_GpuIsLost()

    fake = LostGpu([FakeGpu()])
    report = detect_gpus(fake)
    assert report.gpus == ()
    assert report.problem == "NVML error reading GPU 0: GPU is lost"
    assert not fake.initialized


def test_unsupported_utilization_is_none():
    report = detect_gpus(FakeNvml([FakeGpu(utilization=None), FakeGpu(utilization=37)]))
    assert [gpu.utilization for gpu in report.gpus] == [None, 37]


def test_bytes_from_older_pynvml_become_str():
    class OldPynvml(FakeNvml):
        def nvmlDeviceGetName(self, handle):
            return super().nvmlDeviceGetName(handle).encode()

        def nvmlDeviceGetUUID(self, handle):
            return super().nvmlDeviceGetUUID(handle).encode()

    (gpu,) = detect_gpus(OldPynvml([FakeGpu(name="Tesla V100")])).gpus
    assert gpu.name == "Tesla V100"
    assert gpu.uuid == "GPU-00000000-0000-0000-0000-000000000000"


def test_fake_raises_the_real_pynvml_classes():
    with pytest.raises(pynvml.NVMLError_LibraryNotFound) as caught:
        FakeNvml.from_spec("nodriver").nvmlInit()
    assert caught.value.value == pynvml.NVML_ERROR_LIBRARY_NOT_FOUND

    fake = FakeNvml.from_spec("2")
    fake.nvmlInit()
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        fake.nvmlDeviceGetHandleByIndex(2)
    with pytest.raises(pynvml.NVMLError_InvalidArgument):
        fake.nvmlDeviceGetName(FakeHandle(5))


def test_uninitialized_calls_raise_uninitialized():
    fake = FakeNvml.from_spec("1")
    with pytest.raises(pynvml.NVMLError_Uninitialized) as caught:
        fake.nvmlDeviceGetCount()
    assert caught.value.value == pynvml.NVML_ERROR_UNINITIALIZED

    fake.nvmlInit()
    handle = fake.nvmlDeviceGetHandleByIndex(0)
    fake.nvmlShutdown()
    # As with NVML, handles are unusable once the session is shut down.
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        fake.nvmlDeviceGetMemoryInfo(handle)
    with pytest.raises(pynvml.NVMLError_Uninitialized):
        fake.nvmlShutdown()


@pytest.mark.parametrize("spec", ["", "0", "four", "2x0GiB", "2x16GB", "-1", "x16GiB"])
def test_bad_spec_names_the_variable_and_the_forms(spec):
    with pytest.raises(UsageError) as caught:
        FakeNvml.from_spec(spec)
    message = str(caught.value)
    assert f"LOCALPIPE_FAKE_GPUS={spec!r}" in message
    assert all(form in message for form in ('"4"', '"2x16GiB"', '"none"', '"nodriver"'))
    assert "\n" not in message


def test_bad_spec_in_the_environment_is_a_usage_error(fake_gpus):
    fake_gpus("lots")
    with pytest.raises(UsageError, match="LOCALPIPE_FAKE_GPUS='lots'"):
        detect_gpus()


def test_gpu_info_is_frozen(fake_gpus):
    fake_gpus("1")
    (gpu,) = detect_gpus().gpus
    assert isinstance(gpu, GpuInfo)
    with pytest.raises(dataclasses.FrozenInstanceError):
        gpu.memory_free = 0


def test_importing_gpus_does_not_import_pynvml():
    code = "import sys, localpipe.hw.gpus; print('pynvml' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO_ROOT)
    assert result.stdout.strip() == "False"
