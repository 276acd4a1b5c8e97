"""detect_host against the real machine, read through psutil."""

import dataclasses
import os

import psutil
import pytest

from localpipe.hw.host import HostResources, detect_host


def test_cpus_are_those_this_process_may_use():
    host = detect_host()
    if hasattr(os, "sched_getaffinity"):
        assert host.cpus == len(os.sched_getaffinity(0))
    else:
        assert host.cpus == psutil.cpu_count(logical=True)


def test_a_narrower_cpu_affinity_gives_fewer_cpus():
    import subprocess
    import sys

    code = (
        "import os; os.sched_setaffinity(0, {0}); from localpipe.hw.host import detect_host; print(detect_host().cpus)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "1"


def test_memory_is_the_machines():
    host = detect_host()
    assert host.memory_total == psutil.virtual_memory().total
    assert 0 < host.memory_available <= host.memory_total


def test_host_resources_are_frozen():
    host = detect_host()
    assert isinstance(host, HostResources)
    with pytest.raises(dataclasses.FrozenInstanceError):
        host.cpus = 0
