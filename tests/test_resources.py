"""Compute targets, GPU placement, claims shared between schedulers, and `localpipe resources`."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import psutil
import pytest

from localpipe import AmlCompute, ComputeTarget, LocalCompute, Pipeline, PythonScriptStep
from localpipe.client.workspace import history_of
from localpipe.engine.resources import ClaimRequest, ResourcePool, process_alive, process_start
from localpipe.errors import PipelineValidationError, UsageError
from localpipe.hw.fake_nvml import FakeNvml
from localpipe.hw.gpus import detect_gpus

RECORD = """
import json, os, sys, time
start = time.time()
time.sleep(float(sys.argv[2]))
with open(sys.argv[1], "a") as log:
    log.write(json.dumps({"step": os.environ["LOCALPIPE_STEP_NAME"], "start": start, "end": time.time(),
                          "cuda": os.environ.get("CUDA_VISIBLE_DEVICES")}) + "\\n")
"""


def overlaps(spans: list[dict]) -> int:
    """The largest number of spans open at one moment."""
    events = sorted([(s["start"], 1) for s in spans] + [(s["end"], -1) for s in spans])
    open_now = peak = 0
    for _, delta in events:
        open_now += delta
        peak = max(peak, open_now)
    return peak


def test_eight_one_gpu_steps_on_four_fake_gpus_never_share_one(ws, project, run_pipeline, monkeypatch):
    monkeypatch.setenv("LOCALPIPE_FAKE_GPUS", "4")
    monkeypatch.setenv("LOCALPIPE_CPUS", "8")
    log = ws.root / "spans.jsonl"
    project("src/g/g.py", RECORD)
    gpu = ComputeTarget.create(ws, "gpu", LocalCompute.provisioning_configuration(gpus_per_step=1))
    steps = [
        PythonScriptStep(
            "g.py",
            name=f"g{i}",
            source_directory=ws.root / "src/g",
            compute_target=gpu,
            arguments=[log, 0.4],
            allow_reuse=False,
        )
        for i in range(8)
    ]
    _, status, rows = run_pipeline(Pipeline(ws, steps))
    assert status.value == "Completed"
    spans = [json.loads(line) for line in log.read_text().splitlines()]
    uuids = {g.uuid: g.index for g in detect_gpus(FakeNvml.from_spec("4")).gpus}
    by_gpu: dict[str, list] = {}
    for span in spans:
        assert span["cuda"] in uuids  # exactly one GPU, named by UUID
        assert rows[span["step"]]["placement"]["gpus"] == [uuids[span["cuda"]]]
        by_gpu.setdefault(span["cuda"], []).append(span)
    assert all(overlaps(group) == 1 for group in by_gpu.values())
    assert overlaps(spans) > 1  # they did run side by side, on different GPUs


def test_a_gpu_step_on_a_machine_without_gpus_fails_validation_with_the_reason(ws, project, monkeypatch):
    from localpipe.engine.submit import plan

    monkeypatch.setenv("LOCALPIPE_FAKE_GPUS", "nodriver")
    project("src/g/g.py", "print(1)\n")
    gpu = ComputeTarget.create(ws, "gpu", LocalCompute.provisioning_configuration(gpus_per_step=1))
    pipeline = Pipeline(
        ws, [PythonScriptStep("g.py", name="g", source_directory=ws.root / "src/g", compute_target=gpu)]
    )
    with pytest.raises(
        PipelineValidationError,
        match=r'step "g" needs 1 GPU but this machine cannot give them '
        r"\(no NVIDIA driver found",
    ):
        plan(history_of(ws), pipeline)


def test_more_cpus_than_the_machine_has_fails_validation(ws, project, monkeypatch):
    from localpipe.engine.submit import plan

    monkeypatch.setenv("LOCALPIPE_CPUS", "2")
    project("src/g/g.py", "print(1)\n")
    big = ComputeTarget.create(ws, "big", LocalCompute.provisioning_configuration(cpus_per_step=64))
    pipeline = Pipeline(
        ws, [PythonScriptStep("g.py", name="g", source_directory=ws.root / "src/g", compute_target=big)]
    )
    with pytest.raises(PipelineValidationError, match='step "g" needs 64 CPUs per step but this machine has 2'):
        plan(history_of(ws), pipeline)

    # Steps that ask the same of one target are one problem naming them (a sweep's trials were one a step).
    steps = [
        PythonScriptStep("g.py", name=f"g{n}", source_directory=ws.root / "src/g", compute_target=big) for n in range(6)
    ]
    with pytest.raises(PipelineValidationError) as refused:
        plan(history_of(ws), Pipeline(ws, steps))
    assert refused.value.problems == [
        'steps "g0", "g1", "g2" and 3 more each need 64 CPUs per step but this machine has 2: lower it on compute '
        'target "big" or use another target'
    ]
    with pytest.raises(PipelineValidationError) as refused:
        plan(history_of(ws), Pipeline(ws, steps[:2]))
    assert refused.value.problems[0].startswith('steps "g0" and "g1" each need 64 CPUs per step but ')


def test_the_seeds_compute_target_code_runs_unchanged(ws, capsys):
    compute_name = "aml-compute"
    vm_size = "STANDARD_NC6"
    if compute_name in ws.compute_targets:
        raise AssertionError("a fresh workspace has no such target")
    provisioning_config = AmlCompute.provisioning_configuration(vm_size=vm_size, min_nodes=0, max_nodes=4)
    compute_target = ComputeTarget.create(ws, compute_name, provisioning_config)
    compute_target.wait_for_completion(show_output=True, min_node_count=None, timeout_in_minutes=20)
    status = compute_target.status.serialize()
    assert status["provisioningState"] == "Succeeded" and status["vmSize"] == "STANDARD_NC6"
    found = ws.compute_targets[compute_name]
    assert type(found) is AmlCompute
    assert (found.cpus_per_step, found.gpus_per_step, found.max_concurrent_steps) == (6, 1, 4)
    assert "aml-compute: Succeeded" in capsys.readouterr().out


def test_an_unknown_vm_size_names_the_closest_known_ones():
    with pytest.raises(UsageError, match="'STANDARD_NC6X': did you mean STANDARD_NC6"):
        AmlCompute.provisioning_configuration(vm_size="STANDARD_NC6X")
    with pytest.raises(UsageError, match="supported_vmsizes"):
        AmlCompute.provisioning_configuration(vm_size="nope")


def test_the_vm_sizes_the_samples_use_are_known(ws):
    """D, DS, E, F and NC/ND/NV families (the samples use STANDARD_DS12_V2, STANDARD_D2_V2,
    Standard_NC6s_v3, STANDARD_DS11_V2...), listed as AmlCompute.supported_vmsizes lists them."""
    for name, cpus, gpus in [
        ("STANDARD_DS12_V2", 4, 0),
        ("Standard_D13_v2", 8, 0),
        ("STANDARD_E16S_V3", 16, 0),
        ("Standard_F16s_v2", 16, 0),
        ("Standard_NC24rs_v3", 24, 4),
        ("Standard_ND40rs_v2", 40, 8),
        ("Standard_NV12s_v3", 12, 1),
        ("STANDARD_D4_V3", 4, 0),
    ]:
        config = AmlCompute.provisioning_configuration(vm_size=name, max_nodes=2)
        assert (config.cpus_per_step, config.gpus_per_step) == (cpus, gpus), name
    sizes = {s["name"]: s for s in AmlCompute.supported_vmsizes(ws)}
    assert sizes["Standard_DS12_v2"] == {"name": "Standard_DS12_v2", "vCPUs": 4, "gpus": 0, "memoryGB": 28.0}


def test_max_concurrent_steps_caps_a_target(ws, project, run_pipeline, monkeypatch):
    monkeypatch.setenv("LOCALPIPE_CPUS", "8")
    log = ws.root / "spans.jsonl"
    project("src/g/g.py", RECORD)
    one_at_a_time = ComputeTarget.create(ws, "serial", LocalCompute.provisioning_configuration(max_concurrent_steps=1))
    steps = [
        PythonScriptStep(
            "g.py", name=f"s{i}", source_directory=ws.root / "src/g", compute_target=one_at_a_time, arguments=[log, 0.2]
        )
        for i in range(3)
    ]
    run_pipeline(Pipeline(ws, steps))
    assert overlaps([json.loads(line) for line in log.read_text().splitlines()]) == 1


def test_claims_of_a_dead_scheduler_are_reclaimed(ws):
    history = history_of(ws)
    m = history.tables
    experiment = m.Experiment.create(name="e")
    graph = m.PipelineGraph.create(digest="d", graph={})
    run = m.PipelineRun.create(experiment=experiment, pipeline=graph, status="Running")
    step = m.StepRun.create(run=run, name="held", status="Running")
    dead = psutil.Popen(["true"])
    dead.wait()
    m.ResourceClaim.create(
        run=run, step_run=step, target="local", cpus=2, gpus=[], holder_pid=dead.pid, holder_started=1.0
    )
    pool = ResourcePool(history, run.id, cpus=2, memory=2**30)
    mine = m.StepRun.create(run=run, name="mine", status="Queued")
    placements, others = pool.claim(
        [ClaimRequest("mine", mine.id, "local", {"cpus": 2, "gpus": 0, "memory": None, "max_concurrent": None})]
    )
    assert set(placements) == {"mine"} and not others
    assert [c.step_run_id for c in m.ResourceClaim.select()] == [mine.id]


def test_a_process_is_told_by_its_start_since_boot_whatever_its_name(tmp_path):
    """``process_start`` reads the start from /proc/PID/stat past the name, which may hold ") (":
    the same instant psutil gives, less the boot time; a later start or an ended process is not it."""
    named = tmp_path / "odd) name (x"
    named.symlink_to(shutil.which("sleep"))
    process = subprocess.Popen([str(named), "30"])
    try:
        assert psutil.Process(process.pid).name() == "odd) name (x"[:15]  # the kernel keeps 15 characters
        started = process_start(process.pid)
        assert abs(started - (psutil.Process(process.pid).create_time() - psutil.boot_time())) < 1.0
        assert process_alive(process.pid, started) and process_alive(process.pid, None)
        assert not process_alive(process.pid, started + 0.5)  # another process given the same pid
    finally:
        process.kill()
        process.wait()
    assert not process_alive(process.pid, started)


def test_this_process_is_alive_only_as_the_process_that_started_when_it_did():
    """A scheduler's recovery sees its own run: told from a dead scheduler whose pid it was given."""
    started = process_start()
    assert process_alive(os.getpid(), started) and process_alive(os.getpid(), None)
    assert not process_alive(os.getpid(), started - 0.5)


def test_a_clock_step_that_moves_the_boot_time_leaves_a_live_scheduler_alive(monkeypatch):
    """/proc/stat's btime is whole seconds derived from the wall clock: a step of milliseconds (NTP,
    a laptop's resume) across a second moves every psutil create_time by one, which made each live
    scheduler look gone (its run marked Failed, "scheduler exited"). Starts are read since boot."""
    from psutil import _pslinux

    started = process_start()
    # What an earlier localpipe recorded (psutil's create_time, an epoch time) is still recognised.
    assert process_alive(os.getpid(), psutil.Process().create_time())
    booted = psutil.boot_time()
    monkeypatch.setattr(_pslinux, "boot_time", lambda: booted - 1.0)
    assert abs(psutil.Process().create_time() - (booted + started)) >= 0.99  # the step, as psutil sees it
    assert process_alive(os.getpid(), started)


def test_a_live_claim_blocks_and_release_frees(ws):
    history = history_of(ws)
    m = history.tables
    experiment = m.Experiment.create(name="e")
    run = m.PipelineRun.create(
        experiment=experiment, pipeline=m.PipelineGraph.create(digest="d", graph={}), status="Running"
    )
    a, b = (m.StepRun.create(run=run, name=n, status="Queued") for n in "ab")
    pool = ResourcePool(history, run.id, cpus=1, memory=2**30)
    need = {"cpus": 1, "gpus": 0, "memory": None, "max_concurrent": None}
    first, _ = pool.claim([ClaimRequest("a", a.id, "local", need), ClaimRequest("b", b.id, "local", need)])
    assert set(first) == {"a"}
    pool.release(first["a"])
    second, _ = pool.claim([ClaimRequest("b", b.id, "local", need)])
    assert set(second) == {"b"}


def test_a_claim_backfills_but_reads_no_further_than_it_must(ws):
    history = history_of(ws)
    m = history.tables
    experiment = m.Experiment.create(name="e")
    run = m.PipelineRun.create(
        experiment=experiment, pipeline=m.PipelineGraph.create(digest="d", graph={}), status="Running"
    )
    pool = ResourcePool(history, run.id, cpus=3, memory=2**30)

    def need(cpus):
        return {"cpus": cpus, "gpus": 0, "memory": None, "max_concurrent": None}

    # 2 CPUs go to "big0"; "big1" does not fit, nor would any like it; "small1000" takes the last CPU.
    wanted = [("big", 2)] * 1000 + [("small", 1)] * 1000
    looked_at = []

    def requests():
        for index, (kind, cpus) in enumerate(wanted):
            step = m.StepRun.create(run=run, name=f"{kind}{index}", status="Queued")
            looked_at.append(step.name)
            yield ClaimRequest(step.name, step.id, "local", need(cpus))

    placements, others = pool.claim(requests())
    assert set(placements) == {"big0", "small1000"} and not others
    assert len(looked_at) == 1002  # up to the first request after the CPUs ran out, not the 998 behind it
    assert [c.cpus for c in m.ResourceClaim.select().order_by(m.ResourceClaim.id)] == [2, 1]


def test_resources_command_lists_fake_gpus_and_says_why_there_are_none(invoke, monkeypatch):
    monkeypatch.setenv("LOCALPIPE_FAKE_GPUS", "2x16GiB")
    found = json.loads(invoke("resources", "--json").output)
    assert [g["index"] for g in found["gpus"]] == [0, 1] and found["cpus"] >= 1
    text = invoke("resources").output
    assert "GPU 1: Fake GPU" in text and "Docker:" in text
    monkeypatch.setenv("LOCALPIPE_FAKE_GPUS", "nodriver")
    lines = [line for line in invoke("resources").output.splitlines() if line.startswith("GPUs")]
    assert lines == ["GPUs: none (no NVIDIA driver found (NVML library not loadable))"]


def test_show_prints_the_placement(invoke, ws, project, monkeypatch):
    monkeypatch.setenv("LOCALPIPE_FAKE_GPUS", "2")
    project("proj/g/g.py", "import os\nprint(os.environ['CUDA_VISIBLE_DEVICES'])\n")
    project(
        "proj/pipeline.py",
        """
        from localpipe import ComputeTarget, LocalCompute, Pipeline, PythonScriptStep, Workspace
        ws = Workspace.from_config()
        gpu = ComputeTarget.create(ws, "gpu", LocalCompute.provisioning_configuration(gpus_per_step=2))
        pipeline = Pipeline(ws, [PythonScriptStep("g.py", name="g", source_directory="g", compute_target=gpu)])
    """,
    )
    assert invoke("submit", ws.root / "proj/pipeline.py").exit_code == 0
    assert "placed on 1 CPU, GPU 0,1" in invoke("show", "1").output
    assert invoke("logs", "1", "g").output.strip().count("GPU-") == 2


def test_localpipe_cpus_above_the_machines_oversubscribes_with_a_warning(ws, project, localpipe):
    """Issue 17, item 7: LOCALPIPE_CPUS above the CPUs this process may run on is allowed (steps
    that mostly wait), runs that many one-CPU steps at once, and says so in one line at submit."""
    import os

    usable = len(os.sched_getaffinity(0))
    slots = usable + 2
    log = ws.root / "spans.jsonl"
    project("src/s/s.py", RECORD)
    steps = ", ".join(
        f'PythonScriptStep("s.py", name="s{i}", source_directory="src/s", arguments=[{str(log)!r}, 1.0])'
        for i in range(slots)
    )
    pipeline = project(
        "pipeline.py",
        f"""
        from localpipe import Pipeline, PythonScriptStep, Workspace
        pipeline = Pipeline(Workspace.from_config(), [{steps}])
        """,
    )

    over = localpipe("submit", pipeline, env={"LOCALPIPE_CPUS": str(slots)})

    assert over.returncode == 0, over.stderr
    assert over.stderr.splitlines() == [
        f"warning: LOCALPIPE_CPUS={slots} is more than the {usable} CPUs this process may run on: "
        f"up to {slots} CPU slots are given to steps at once, sharing those CPUs"
    ]
    assert overlaps([json.loads(line) for line in log.read_text().splitlines()]) == slots

    within = localpipe("submit", pipeline, env={"LOCALPIPE_CPUS": str(usable)})
    assert within.returncode == 0 and within.stderr == ""


def test_experiment_submit_warns_when_localpipe_cpus_oversubscribes(ws, project, monkeypatch):
    import os

    from localpipe import Experiment

    usable = len(os.sched_getaffinity(0))
    monkeypatch.setenv("LOCALPIPE_CPUS", str(usable + 1))
    project("src/g/g.py", "print(1)\n")
    pipeline = Pipeline(ws, [PythonScriptStep("g.py", name="g", source_directory=ws.root / "src/g")])
    with pytest.warns(UserWarning, match=rf"^LOCALPIPE_CPUS={usable + 1} is more than the {usable} CPUs") as caught:
        run = Experiment(ws, "over").submit(pipeline)
    ours = [w for w in caught if str(w.message).startswith("LOCALPIPE_CPUS=")]
    assert len(ours) == 1 and ours[0].filename == __file__  # pointed at the submit() call
    run.wait_for_completion()


def test_steps_get_only_the_gpus_cuda_visible_devices_leaves_the_submitter(ws, project, run_pipeline, monkeypatch):
    """On a shared machine ``CUDA_VISIBLE_DEVICES=1`` keeps a user's work off GPU 0: steps were given
    GPU 0 all the same (NVML lists every GPU), and an empty value (no GPU) gave them one too."""
    from localpipe.engine.submit import plan

    monkeypatch.setenv("LOCALPIPE_FAKE_GPUS", "2")
    monkeypatch.setenv("LOCALPIPE_CPUS", "4")
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    log = ws.root / "spans.jsonl"
    project("src/g/g.py", RECORD)
    gpu = ComputeTarget.create(ws, "gpu", LocalCompute.provisioning_configuration(gpus_per_step=1))
    steps = [
        PythonScriptStep(
            "g.py", name=f"g{i}", source_directory=ws.root / "src/g", compute_target=gpu, arguments=[log, 0.2]
        )
        for i in range(2)
    ]
    _, status, rows = run_pipeline(Pipeline(ws, steps))
    assert status.value == "Completed"
    second = "GPU-00000000-0000-0000-0000-000000000001"  # the fake NVML's GPU 1
    assert [json.loads(line)["cuda"] for line in log.read_text().splitlines()] == [second, second]
    assert [rows[f"g{i}"]["placement"]["gpus"] for i in range(2)] == [[1], [1]]

    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    one = Pipeline(ws, [PythonScriptStep("g.py", name="g", source_directory=ws.root / "src/g", compute_target=gpu)])
    with pytest.raises(PipelineValidationError, match="cannot give them \\(CUDA_VISIBLE_DEVICES='' leaves none"):
        plan(history_of(ws), one)


@pytest.mark.parametrize(
    ("visible", "indices"),
    [
        (None, [0, 1, 2, 3]),
        ("2,0", [0, 2]),  # NVML order, as placement picks them
        ("GPU-00000000-0000-0000-0000-000000000003, 1", [1, 3]),  # a UUID, spaces around
        ("GPU-00000000-0000-0000-0000-00000000000", []),  # a prefix naming four GPUs names none
        ("1,7,2", [1]),  # as CUDA reads it: the list ends at the first entry naming no device
        ("-1", []),
        ("MIG-4e6b1d08-5b1c-5c1c-9f7f-2b0f3f0e6a1d", []),  # a MIG instance is not a whole GPU
    ],
)
def test_cuda_visible_devices_is_read_as_cuda_reads_it(monkeypatch, visible, indices):
    if visible is None:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    else:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", visible)
    report = detect_gpus(FakeNvml.from_spec("4"))
    assert [g.index for g in report.gpus] == indices
    assert (report.problem is None) == bool(indices)


def test_two_workspaces_never_run_steps_on_one_gpu_at_once(tmp_path, monkeypatch):
    """Claims live in each workspace's history.db: two projects on one workstation each put a step on
    GPU 0 at the same time. A GPU claimed is also locked machine-wide (LOCALPIPE_GPU_LOCKS)."""
    import sys
    import textwrap

    monkeypatch.setenv("LOCALPIPE_FAKE_GPUS", "1")
    monkeypatch.setenv("LOCALPIPE_CPUS", "4")
    monkeypatch.setenv("LOCALPIPE_GPU_LOCKS", str(tmp_path / "gpu-locks"))
    log = tmp_path / "spans.jsonl"
    procs = []
    for name in ("one", "two"):
        root = tmp_path / name
        (root / "g").mkdir(parents=True)
        (root / "g/g.py").write_text(RECORD)
        (root / "p.py").write_text(
            textwrap.dedent(f"""
            from localpipe import ComputeTarget, LocalCompute, Pipeline, PythonScriptStep, Workspace
            ws = Workspace.create({str(root)!r}, exist_ok=True)
            gpu = ComputeTarget.create(ws, "gpu", LocalCompute.provisioning_configuration(gpus_per_step=1))
            pipeline = Pipeline(ws, [PythonScriptStep("g.py", name="{name}", source_directory="g",
                                                      compute_target=gpu, arguments=[{str(log)!r}, 1.5])])
            """)
        )
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "localpipe", "submit", "p.py"], cwd=root, stdout=subprocess.PIPE, text=True
            )
        )
    assert [p.wait(timeout=120) for p in procs] == [0, 0], [p.stdout.read() for p in procs]
    spans = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(spans) == 2 and overlaps(spans) == 1, spans


def test_a_step_whose_gpus_are_gone_when_the_run_starts_fails_saying_so(ws, project, history, monkeypatch):
    """Validation saw two GPUs; the scheduler, starting after it, saw none (the driver gone, a GPU
    fallen off the bus: an NVML error): the step waited Queued for ever, saying nothing."""
    from localpipe.engine.submit import prepare_run, run_prepared

    monkeypatch.setenv("LOCALPIPE_FAKE_GPUS", "2")
    project("src/g/g.py", "print(1)\n")
    gpu = ComputeTarget.create(ws, "gpu", LocalCompute.provisioning_configuration(gpus_per_step=1))
    cpu = PythonScriptStep("g.py", name="cpu", source_directory=ws.root / "src/g", allow_reuse=False)
    steps = [PythonScriptStep("g.py", name="g", source_directory=ws.root / "src/g", compute_target=gpu), cpu]
    prepared = prepare_run(history, Pipeline(ws, steps), "gone", continue_on_step_failure=True)
    monkeypatch.setenv("LOCALPIPE_FAKE_GPUS", "nodriver")
    assert run_prepared(history, prepared).value == "Failed"
    rows = {s["name"]: s for s in history.runs.details(prepared.run_id)["steps"]}
    assert rows["g"]["status"] == "Failed" and rows["cpu"]["status"] == "Completed"
    assert rows["g"]["reason"] == (
        "needs 1 GPU but this machine cannot give it now (no NVIDIA driver found (NVML library not loadable)); "
        "it could when the run was submitted"
    )
