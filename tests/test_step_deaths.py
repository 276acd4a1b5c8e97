"""Steps that die badly are recorded as Failed with a readable reason, and the rest goes on."""

from __future__ import annotations

import os

import pytest

from localpipe import ComputeTarget, LocalCompute, Pipeline, PythonScriptStep

DEATHS = {
    "sigkill": ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)\n", "killed by signal 9 (SIGKILL)"),
    "segfault": ("import ctypes\nctypes.string_at(0)\n", "killed by signal 11 (SIGSEGV)"),
    "abort": ("import os\nos.abort()\n", "killed by signal 6 (SIGABRT)"),
    "closed_stdout": ("import os\nos.close(1)\nprint('x' * 100000)\n", "exit code 1"),
}


@pytest.mark.parametrize("death", sorted(DEATHS))
def test_a_dying_step_is_failed_with_a_reason_and_its_neighbour_completes(ws, project, run_pipeline, death):
    script, reason = DEATHS[death]
    project("src/die/die.py", script)
    project("src/ok/ok.py", "print('fine')\n")
    die = PythonScriptStep("die.py", name="die", source_directory=ws.root / "src/die")
    ok = PythonScriptStep("ok.py", name="ok", source_directory=ws.root / "src/ok")
    _, status, steps = run_pipeline(Pipeline(ws, [die, ok]), continue_on_step_failure=True)
    assert status.value == "Failed"
    assert (steps["die"]["status"], steps["die"]["reason"]) == ("Failed", reason)
    assert steps["ok"]["status"] == "Completed"


def test_exceeding_the_memory_limit_is_named_in_the_reason(ws, project, run_pipeline):
    project("src/big/big.py", "block = bytearray(600 * 1024 * 1024)\n")
    small = ComputeTarget.create(ws, "small", LocalCompute.provisioning_configuration(memory_per_step=256 * 2**20))
    step = PythonScriptStep("big.py", name="big", source_directory=ws.root / "src/big", compute_target=small)
    _, _, steps = run_pipeline(Pipeline(ws, [step]))
    assert steps["big"]["status"] == "Failed"
    assert steps["big"]["reason"] == "exit code 1: it ran out of its memory limit (256 MiB, memory_per_step)"
    assert "MemoryError" in steps["big"]["log_tail"]


MAPS_WITHOUT_USING = """
import mmap, sys, tempfile
with tempfile.TemporaryFile(dir=".") as data:  # a dataset read through a memory map (Arrow, numpy.memmap)
    data.truncate(1024 * 2**20)
    view = mmap.mmap(data.fileno(), 0, access=mmap.ACCESS_READ)
reserved = mmap.mmap(-1, 1024 * 2**20, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS, prot=0)  # PROT_NONE, as CUDA reserves
print("mapped", len(view) >> 20, "and reserved", len(reserved) >> 20, "MiB")
"""


@pytest.mark.parametrize("start", ["zygote", "exec"])
def test_the_memory_limit_counts_what_a_step_allocates_not_what_it_maps(ws, project, run_pipeline, monkeypatch, start):
    """memory_per_step was RLIMIT_AS, which counts every mapping: a step of a STANDARD_D2_V2 target
    (7 GiB) could not memory-map an 8 GiB file, as the VM it stands for can, nor reserve the address
    space CUDA reserves. It limits what a step writes to (RLIMIT_DATA); the 600 MiB allocation of
    the test above still fails."""
    if start == "exec":
        monkeypatch.setenv("LOCALPIPE_STEP_START", "exec")
    project("src/maps/maps.py", MAPS_WITHOUT_USING)
    small = ComputeTarget.create(ws, "small", LocalCompute.provisioning_configuration(memory_per_step=256 * 2**20))
    step = PythonScriptStep("maps.py", name="maps", source_directory=ws.root / "src/maps", compute_target=small)
    _, status, steps = run_pipeline(Pipeline(ws, [step]))
    assert (status.value, steps["maps"]["status"]) == ("Completed", "Completed"), steps["maps"]["log_tail"]


def test_a_hundred_megabytes_of_output_keep_their_head_and_tail_and_the_log_tail_stays_small(ws, project, run_pipeline):
    """The default cap (LOCALPIPE_MAX_LOG_BYTES, 64 MiB a stream) keeps the first and the last 32 MiB."""
    project(
        "src/loud/loud.py",
        """
        import sys
        line = "y" * 1023 + "\\n"
        for _ in range(100 * 1024):
            sys.stdout.write(line)
        print("the end", file=sys.stderr)
        sys.exit(2)
    """,
    )
    run_id, _, steps = run_pipeline(
        Pipeline(ws, [PythonScriptStep("loud.py", name="loud", source_directory=ws.root / "src/loud")])
    )
    assert steps["loud"]["reason"] == "exit code 2"
    log = ws.state_dir / "runs" / str(run_id) / "loud" / "stdout.log"
    assert 64 * 2**20 < log.stat().st_size < 64 * 2**20 + 1024
    with open(log, "rb") as handle:
        handle.seek(32 * 2**20)
        note = handle.read(300).decode()
        handle.seek(-1024, os.SEEK_END)
        end = handle.read()
    assert note.startswith(f"\n[localpipe: {36 * 2**20} bytes cut here: the log keeps the first {32 * 2**20}")
    assert end == (b"y" * 1023 + b"\n")
    assert steps["loud"]["log_tail"] == "the end"
