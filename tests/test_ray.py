"""The Ray executor (docs/scale-out.md): steps on a RayCompute target run as Ray tasks of a real
local Ray, started once for this file (``ray`` marker: ``python -m pytest -m ray`` runs only
these). Without Ray installed they skip, saying so; in CI (.ci/run sets LOCALPIPE_REQUIRE_RAY)
they fail instead."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import threading
import time

import psutil
import pytest

from localpipe import ComputeTarget, Pipeline, PipelineData, PythonScriptStep, RayCompute, RunConfiguration
from localpipe.errors import UsageError
from localpipe.status import RunStatus
from tests.conftest import wait_for, write

HEAD_CPUS, SECOND_CPUS = 4, 2  # logical: Ray reserves them, it does not pin; more than localpipe's slot here
CLUSTER_CPUS = HEAD_CPUS + SECOND_CPUS
WORKER = "ray::localpipe:"  # the process title of a Ray worker running a step's task


@pytest.fixture(scope="module")
def ray_cluster():
    """A local Ray of two nodes (two raylets on this machine) for these tests, its cold start paid
    once and gone before the next test file, whose timings its idle processes would disturb: the
    dashboard off, small object stores, no GPU; the head has 4 CPUs and the custom resource
    "special", the second node 2 CPUs and "second". Gives its address and the second raylet's pid."""
    try:
        import ray
        from ray.cluster_utils import Cluster
    except ImportError:
        if os.environ.get("LOCALPIPE_REQUIRE_RAY"):
            pytest.fail("ray is not installed, and LOCALPIPE_REQUIRE_RAY is set: pip install -e '.[test]'")
        pytest.skip("ray is not installed: pip install 'localpipe[ray]'")
    store = 80 * 2**20
    cluster = Cluster(
        initialize_head=True,
        head_node_args={
            "num_cpus": HEAD_CPUS, "num_gpus": 0, "resources": {"special": 1}, "include_dashboard": False,
            "object_store_memory": store,
        },
    )  # fmt: skip
    second = cluster.add_node(num_cpus=SECOND_CPUS, num_gpus=0, resources={"second": 1}, object_store_memory=store)
    ray.init(address=cluster.address, log_to_driver=False)
    yield {"address": cluster.address, "second_raylet": second.all_processes["raylet"][0].process.pid}
    ray.shutdown()
    cluster.shutdown()


@pytest.fixture
def ray_address(ray_cluster):
    return ray_cluster["address"]


def _target(ws, address, name="ray", **config):
    return ComputeTarget.create(ws, name, RayCompute.provisioning_configuration(address=address, **config))


def _one_step_pipeline(project, address, target="ray", script="s.py", **asked):
    """pipeline.py in the workspace: one step, src/SCRIPT, on a Ray target of ``address``."""
    project(
        "pipeline.py",
        f"""
        from localpipe import ComputeTarget, Pipeline, PythonScriptStep, RayCompute, Workspace
        ws = Workspace.from_config()
        config = RayCompute.provisioning_configuration(address={address!r}, **{asked!r})
        target = ComputeTarget.create(ws, {target!r}, config)
        pipeline = Pipeline(ws, [PythonScriptStep({script!r}, source_directory="src", compute_target=target)])
        """,
    )


def _chain_step(ws, project, name, arguments, target, body=""):
    """A step that says which process runs it (its supervisor's parent: a Ray worker, or not)."""
    project(
        f"src/{name}/{name}.py",
        f"""
        import os, sys
        import psutil
        print("runner:", psutil.Process().parent().parent().name())
        print("gpus:", repr(os.environ["CUDA_VISIBLE_DEVICES"]), os.environ.get("CUDA_DEVICE_ORDER"))
        args = sys.argv[1:]
        {body}
        """,
    )
    return PythonScriptStep(
        f"{name}.py", name=name, source_directory=ws.root / "src" / name, arguments=arguments, compute_target=target
    )


@pytest.mark.ray
def test_a_mixed_pipeline_runs_its_ray_steps_as_ray_tasks_and_is_reused_and_rerun_by_the_same_rules(
    ws, project, run_pipeline, ray_address
):
    cluster = _target(ws, ray_address)
    raw, features = PipelineData("raw"), PipelineData("features")
    write_out = "os.makedirs(args[-1], exist_ok=True); open(os.path.join(args[-1], 'f'), 'w').write({})"
    prep = _chain_step(ws, project, "prep", [raw], None, write_out.format("'1,2,3'"))  # local
    read = "open(os.path.join(args[0], 'f')).read()"
    feat = _chain_step(ws, project, "feat", [raw.as_input(), features], cluster, write_out.format(read + " + '!'"))
    # On the submitting machine (a local Ray's node is), a Ray step may open the workspace's records.
    records = "from localpipe import Run; print('workspace:', Run.get_context().experiment.workspace.root)"
    train = _chain_step(
        ws, project, "train", [features.as_input()], cluster, "print(open(args[0] + '/f').read()); " + records
    )

    run_id, status, steps = run_pipeline(Pipeline(ws, [train]), slots=1)
    assert status is RunStatus.COMPLETED, {n: s["reason"] for n, s in steps.items()}
    logs = {n: (ws.state_dir / "runs" / str(run_id) / n / "stdout.log").read_text() for n in steps}
    assert WORKER not in logs["prep"]  # the local step ran here, under the step supervisor
    assert f"runner: {WORKER}feat" in logs["feat"] and f"runner: {WORKER}train" in logs["train"]
    # No GPU asked: none visible; a Ray step keeps the node's device order, a local one gets PCI order.
    assert "gpus: '' None" in logs["feat"] and "gpus: '' PCI_BUS_ID" in logs["prep"]
    assert (
        "1,2,3!" in logs["train"] and f"workspace: {ws.root}" in logs["train"]
    )  # the output a Ray step wrote reached the next one through the workspace
    assert steps["feat"]["placement"]["executor"] == "ray" and "executor" not in steps["prep"]["placement"]

    _, status, again = run_pipeline(Pipeline(ws, [train]))
    assert status is RunStatus.COMPLETED and {s["status"] for s in again.values()} == {"Reused"}

    project("src/train/train.py", (ws.root / "src/train/train.py").read_text() + "print('edited')\n")
    _, status, edited = run_pipeline(Pipeline(ws, [train]))
    assert {n: s["status"] for n, s in edited.items()} == {"prep": "Reused", "feat": "Reused", "train": "Completed"}
    assert edited["train"]["reason"] == "runs: source changed (train.py)"


@pytest.mark.ray
def test_ray_places_steps_by_the_cpus_and_custom_resources_they_ask_for(
    ws, project, tmp_path, run_pipeline, ray_cluster
):
    # localpipe's own pool has one slot (slots=1): any overlap below is Ray's doing, within Ray's limits.
    address = ray_cluster["address"]
    wide = _target(ws, address, "wide", cpus_per_step=2)
    special = _target(ws, address, "special", resources={"special": 1})
    second = _target(ws, address, "second", resources={"second": 1})
    # The 2-CPU steps wait for each other (up to 30 s): they all finish at once only if Ray ran them at once.
    together = tmp_path / "together"
    together.mkdir()
    meet = (
        f"open(os.path.join({str(together)!r}, args[0]), 'w').close(); import time; end = time.time() + 30\n"
        f"        while len(os.listdir({str(together)!r})) < 3 and time.time() < end: time.sleep(0.05)\n"
        f"        print('together:', len(os.listdir({str(together)!r})))"
    )
    times = tmp_path / "times"
    record = (
        "import time; t = time.time(); time.sleep(1.0); "
        f"open({str(times)!r}, 'a').write(f'{{args[0]}} {{t}} {{time.time()}}\\n'); "
        "print('raylet:', psutil.Process().parent().parent().parent().pid)"
    )
    runs = []
    for steps in (
        [_chain_step(ws, project, f"w{i}", [f"wide{i}"], wide, meet) for i in range(3)],
        [_chain_step(ws, project, f"s{i}", [f"special{i}"], special, record) for i in range(2)]
        + [_chain_step(ws, project, "n2", ["second"], second, record)],
    ):
        run_id, status, rows = run_pipeline(Pipeline(ws, steps), slots=1)
        assert status is RunStatus.COMPLETED, {n: s["reason"] for n, s in rows.items()}
        runs.append(run_id)

    def log(run_id, step):
        return (ws.state_dir / "runs" / str(run_id) / step / "stdout.log").read_text()

    # 2 CPUs each: two on the head (4 CPUs) and one on the second node (2 CPUs), all at once.
    assert all("together: 3" in log(runs[0], f"w{i}") for i in range(3))
    spans = [tuple(map(float, line.split()[1:])) for line in times.read_text().splitlines() if "special" in line]
    assert spans[0][1] <= spans[1][0] or spans[1][1] <= spans[0][0]  # one "special" in the cluster: one at a time
    assert f"raylet: {ray_cluster['second_raylet']}" in log(runs[1], "n2")  # "second" is only there: it ran there


@pytest.mark.ray
def test_cancel_ends_the_ray_tasks_and_frees_their_resources(ws, project, tmp_path, localpipe, ray_address):
    import ray

    pid_file = tmp_path / "pid"
    _one_step_pipeline(project, ray_address, script="sleep.py", cpus_per_step=3)
    project(
        "src/sleep.py",
        f"""
        import os, signal, sys, time
        def ended(*_):
            print("SIGTERM came", flush=True)
            sys.exit(3)
        signal.signal(signal.SIGTERM, ended)
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        time.sleep(120)
        """,
    )
    run_id = localpipe("submit", "pipeline.py", "--detach", check=True).stdout.strip()
    pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), 60, what="the step to start"))
    assert ray.available_resources().get("CPU", 0) == CLUSTER_CPUS - 3  # Ray holds the step's CPUs

    localpipe("cancel", run_id, check=True)
    wait_for(lambda: not psutil.pid_exists(pid), 20, what="the step's process to end")
    shown = json.loads(localpipe("show", run_id, "--json", check=True).stdout)
    wait_for(
        lambda: json.loads(localpipe("show", run_id, "--json").stdout)["status"] == "Canceled", 20, what="Canceled"
    )
    assert ray.available_resources().get("CPU", 0) == CLUSTER_CPUS  # the task ended: its CPUs are free again
    logs = localpipe("logs", run_id, check=True).stdout
    assert "SIGTERM came" in logs  # politely first: the step had its grace period
    assert shown["steps"][0]["name"] == "sleep.py"


@pytest.mark.ray
def test_a_ray_worker_killed_mid_run_fails_the_step_with_a_reason_and_the_step_is_retried(
    ws, project, tmp_path, run_pipeline, ray_address
):
    cluster = _target(ws, ray_address)
    marker = tmp_path / "worker"
    project(
        "src/victim/victim.py",
        f"""
        import os, time
        import psutil
        if not os.path.exists({str(marker)!r}):  # the first attempt: killed with its worker
            open({str(marker)!r}, "w").write(str(psutil.Process().parent().parent().pid))
            time.sleep(120)
        """,
    )
    config = RunConfiguration()
    config.max_retries = 1
    step = PythonScriptStep(
        "victim.py", name="victim", source_directory=ws.root / "src/victim", compute_target=cluster, runconfig=config
    )

    def kill_the_worker():
        pid = int(wait_for(lambda: marker.exists() and marker.read_text(), 60, what="the first attempt"))
        assert psutil.Process(pid).name().startswith(WORKER)
        os.kill(pid, signal.SIGKILL)

    killer = threading.Thread(target=kill_the_worker)
    killer.start()
    _, status, steps = run_pipeline(Pipeline(ws, [step]))
    killer.join()
    assert status is RunStatus.COMPLETED and steps["victim"]["attempt"] == 2
    assert steps["victim"]["reason"].startswith(
        "retry 1 of 1 after: the Ray worker running it died (WorkerCrashedError"
    )


@pytest.mark.ray
def test_a_ray_step_asking_for_what_no_node_has_is_refused_at_validation(ws, project, invoke, ray_address):
    project(
        "pipeline.py",
        f"""
        from localpipe import ComputeTarget, Dataset, Environment, ParallelRunConfig, ParallelRunStep, Pipeline
        from localpipe import PipelineData, PythonScriptStep, RayCompute, RunConfiguration, Workspace
        ws = Workspace.from_config()
        def target(name, **asked):
            config = RayCompute.provisioning_configuration(address={ray_address!r}, **asked)
            return ComputeTarget.create(ws, name, config)
        def step(name, target, **more):
            return PythonScriptStep("s.py", name=name, source_directory="src", compute_target=target, **more)
        docker = RunConfiguration()
        docker.environment.docker.enabled = True
        docker.environment.docker.base_image = "python:3.11-slim"
        steps = [
            step("gpu", target("gpu", gpus_per_step=1)),
            step("tpu", target("tpu", resources={{"tpu": 2}})),
            step("big", target("big", cpus_per_step=64)),
            step("boxed", "gpu", runconfig=docker),
        ]
        target("plain")
        parallel = ParallelRunConfig(
            environment=Environment("e"), entry_script="s.py", source_directory="src", error_threshold=-1,
            output_action="append_row", compute_target="plain", node_count=1, process_count_per_node=1,
        )
        scores = PipelineData("scores", datastore=ws.get_default_datastore())
        files = Dataset.File.from_files("data").as_named_input("files")
        steps.append(ParallelRunStep("par", parallel, inputs=[files], output=scores))
        pipeline = Pipeline(ws, steps)
        """,
    )
    project("src/s.py", "print('never runs')\n")
    project("data/a.txt", "a\n")
    result = invoke("submit", "pipeline.py")
    assert result.exit_code == 2
    problems = [line.strip() for line in result.output.splitlines() if line.strip().startswith("- ")]
    where = f"in the Ray cluster at {ray_address}"
    expected = [
        f'- step "gpu" asks Ray for 1 GPU per step, but {where}, no node has any: lower it on compute target "gpu" '
        "or use another target",
        f'- step "tpu" asks Ray for 2 of resource "tpu" per step, but {where}, no node has any: lower it on compute '
        'target "tpu" or use another target',
        f'- step "big" asks Ray for 64 CPUs per step, but {where}, the most a node has is {HEAD_CPUS}: lower it on '
        'compute target "big" or use another target',
    ]
    assert [p for p in problems if p in expected] == expected
    assert any('step "boxed" runs in Docker and on Ray target "gpu"' in p for p in problems)
    assert (
        '- step "par" is a ParallelRunStep on Ray target "plain": its workers are placed on this machine only; '
        "use a local target (or one step per partition on Ray)"
    ) in problems
    assert not (ws.state_dir / "runs").exists() or not any((ws.state_dir / "runs").iterdir())  # nothing recorded


@pytest.mark.ray
def test_a_node_that_cannot_see_a_path_says_which(tmp_path, ray_address):
    import ray

    from localpipe.engine.executors.ray import cluster, sees

    elsewhere = tmp_path / "not-shared"
    elsewhere.mkdir()
    # The node-side half: a check file it cannot read back, an interpreter it lacks.
    assert ray.get(sees.remote({str(elsewhere): "never-written"}, [sys.executable, "/no/such/python"])) == [
        str(elsewhere),
        "/no/such/python",
    ]
    # The whole check, on a path and interpreter every node of this one-machine cluster does see,
    # and on an interpreter that none has: each node names it.
    found = cluster(ray_address, [str(elsewhere)], [sys.executable, "/no/such/python"])
    assert sorted(found["unseen"]) == [
        f"Ray node {node['name']} has no /no/such/python, the Python steps run on: install the same Python, "
        "with localpipe, at that path on every node (docs/scale-out.md)"
        for node in found["nodes"]
    ]
    found = cluster(ray_address, [str(elsewhere)], [sys.executable])
    assert found["problem"] is None and found["unseen"] == [] and list(elsewhere.iterdir()) == []
    assert sorted(sorted(set(node["resources"]) & {"special", "second"}) for node in found["nodes"]) == [
        ["second"],
        ["special"],
    ]  # both nodes were asked, each by a task of its own


# -- without Ray, and the target's own checks: no cluster needed -------------------------------------


def test_without_ray_installed_a_ray_step_fails_validation_with_one_line_naming_the_extra(ws, project, tmp_path):
    hidden = write(tmp_path / "no-ray/ray/__init__.py", "raise ImportError(\"No module named 'ray'\")\n")
    _one_step_pipeline(project, "auto")
    project("src/s.py", "print('never runs')\n")
    proc = subprocess.run(
        [sys.executable, "-m", "localpipe", "submit", "pipeline.py"],
        cwd=ws.root,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(hidden.parent.parent)},
        timeout=60,
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.splitlines()[0] == (
        'error: the pipeline is invalid: steps on Ray target "ray" cannot run: Ray is not installed here: '
        "pip install 'localpipe[ray]'; compute target \"ray\" was not kept (this refused submission created it): "
        "fix the pipeline and run it again to create it anew"
    )


def test_a_ray_compute_target_is_kept_and_read_back_as_one(ws, invoke):
    made = ComputeTarget.create(
        ws,
        "cluster",
        RayCompute.provisioning_configuration(
            address="ray://head:10001", cpus_per_step=0.5, gpus_per_step=1, resources={"special": 2},
            runtime_env={"env_vars": {"MODE": "fast"}},
        ),
    )  # fmt: skip
    found = ComputeTarget(ws, "cluster")
    assert isinstance(made, RayCompute) and isinstance(found, RayCompute) and found.type == "RayCompute"
    assert (found.config.address, found.cpus_per_step, found.config.resources) == (
        "ray://head:10001",
        0.5,
        {"special": 2},
    )
    assert RayCompute(ws, "cluster").config.runtime_env == {"env_vars": {"MODE": "fast"}}
    listed = {t["name"]: t for t in json.loads(invoke("compute", "--json").output)}
    assert listed["cluster"]["kind"] == "RayCompute" and listed["cluster"]["address"] == "ray://head:10001"
    assert "Ray at ray://head:10001" in invoke("compute").output


@pytest.mark.parametrize(
    "config, named",
    [
        ({"cpus_per_step": 0}, "cpus_per_step must be a number above 0, not 0"),
        ({"gpus_per_step": -1}, "gpus_per_step must be a number of at least 0, not -1"),
        ({"resources": {"special": "one"}}, "resources must map resource names to amounts above 0"),
        ({"resources": {"CPU": 2}}, "resources may not name CPU or GPU: ask for them with cpus_per_step"),
        ({"runtime_env": {"pip": ["torch"]}}, "runtime_env may only hold env_vars"),
        ({"address": ""}, 'address must be "auto", "HOST:PORT", "ray://HOST:10001" or None'),
    ],
)
def test_a_ray_target_with_a_bad_value_is_refused_naming_it(config, named):
    with pytest.raises(UsageError, match="^RayCompute: ") as caught:
        RayCompute.provisioning_configuration(**config)
    assert named in str(caught.value)


def test_validation_asks_the_ray_nodes_for_each_interpreter_the_ray_steps_run_on(ws, project, tmp_path):
    """A step on this process's interpreter and one on an ``interpreter_path`` of its own: the
    cluster is asked for both (and for no local step's), and what a node lacks is a problem."""
    from localpipe import Environment
    from localpipe.errors import PipelineValidationError
    from localpipe.plan.graph import Capacity, plan_pipeline
    from localpipe.sdk.compute import compute_targets

    other = tmp_path / "python3"
    other.symlink_to(sys.executable)
    asked = []

    def cluster(address, cache, pythons):
        asked.append((address, cache, pythons))
        return {
            "problem": None,
            "nodes": [{"name": "n1", "resources": {"CPU": 4}}],
            "unseen": [f"n1 lacks {pythons[0]}"],
        }

    project("src/a.py", "")
    target = _target(ws, "10.0.0.1:6379")
    own = RunConfiguration()
    own.environment = Environment("own")
    own.environment.python.user_managed_dependencies = True
    own.environment.python.interpreter_path = str(other)
    steps = [
        PythonScriptStep("a.py", name="default", source_directory="src", compute_target=target),
        PythonScriptStep("a.py", name="own", source_directory="src", compute_target=target, runconfig=own),
        PythonScriptStep("a.py", name="here", source_directory="src"),
    ]
    capacity = Capacity(cpus=2, memory=2**30, ray=cluster)
    with pytest.raises(PipelineValidationError) as caught:
        plan_pipeline(Pipeline(ws, steps), compute_targets=compute_targets(ws), capacity=capacity)
    assert asked == [("10.0.0.1:6379", False, tuple(sorted([sys.executable, str(other)])))]
    assert f"n1 lacks {min(sys.executable, str(other))}" in str(caught.value)


def test_a_ray_step_asking_for_what_no_single_node_has_at_once_is_refused_at_validation(ws, project):
    """Ray places a task on one node: a step asking for 2 CPUs and the resource "second", on a
    cluster where only a 1-CPU node has "second", waits in Ray's queue for ever (its timeout counts
    from its start on a node). Each amount was checked against the most any node had, so it passed
    (found by a review, 3 Dec 2026)."""
    from localpipe.errors import PipelineValidationError
    from localpipe.plan.graph import Capacity, plan_pipeline
    from localpipe.sdk.compute import compute_targets

    def cluster(address, cache, pythons):
        nodes = [
            {"name": "head", "resources": {"CPU": 4, "GPU": 1}},
            {"name": "n2", "resources": {"CPU": 1, "second": 1}},
        ]
        return {"problem": None, "nodes": nodes, "unseen": []}

    project("src/a.py", "")
    steps = [
        PythonScriptStep(
            "a.py",
            name=name,
            source_directory=ws.root / "src",
            compute_target=_target(ws, "10.0.0.1:6379", name, **asked),
        )
        for name, asked in [
            ("split", {"cpus_per_step": 2, "resources": {"second": 1}}),
            ("gpu-second", {"gpus_per_step": 0.5, "resources": {"second": 1}}),
            ("fits", {"cpus_per_step": 1, "resources": {"second": 1}}),
            ("fits-head", {"cpus_per_step": 4, "gpus_per_step": 1}),
        ]
    ]
    capacity = Capacity(cpus=2, memory=2**30, ray=cluster)
    with pytest.raises(PipelineValidationError) as caught:
        plan_pipeline(Pipeline(ws, steps), compute_targets=compute_targets(ws), capacity=capacity)
    problems = [line.strip() for line in str(caught.value).splitlines() if line.strip().startswith("- ")]
    where = "in the Ray cluster at 10.0.0.1:6379"
    assert problems == [
        f'- step "split" asks Ray for 2 CPUs and 1 of resource "second" per step, but {where}, no node has all of '
        'them (Ray runs a task on one node): lower it on compute target "split" or use another target',
        f'- step "gpu-second" asks Ray for 1 CPU, 0.5 GPUs and 1 of resource "second" per step, but {where}, no node '
        'has all of them (Ray runs a task on one node): lower it on compute target "gpu-second" or use another target',
    ]


def test_a_node_looks_for_an_interpreter_named_without_a_folder_on_the_steps_path(tmp_path):
    """An ``interpreter_path`` of "python3" runs whatever the step's PATH finds, here as on a node:
    checked as a path, it was missing on every node, and the pipeline refused (found by a review,
    2 Dec 2026)."""
    from localpipe.engine.executors.ray import _sees

    folder = tmp_path / "bin"
    folder.mkdir()
    (folder / "python-of-steps").symlink_to(sys.executable)
    wanted = [sys.executable, "python-of-steps", "no-such-python", "/no/such/python"]
    assert _sees({}, wanted, str(folder)) == ["no-such-python", "/no/such/python"]


def test_an_ipv6_address_is_probed_as_ray_writes_it(tmp_path):
    """Ray writes an IPv6 address in brackets ([::1]:6379, as `ray start` prints it): with them
    kept in the host name, validation found nothing there (found by a review, 2 Dec 2026)."""
    from localpipe.engine.executors.ray import _answers

    try:
        server = socket.create_server(("::1", 0), family=socket.AF_INET6)
    except OSError:
        pytest.skip("no IPv6 loopback here")

    def answer_as_grpc():  # a gRPC server's first frame: SETTINGS, empty, on stream 0
        connection, _ = server.accept()
        with connection:
            connection.sendall(bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
            connection.recv(1024)

    threading.Thread(target=answer_as_grpc, daemon=True).start()
    with server:
        _answers(f"[::1]:{server.getsockname()[1]}")
        with pytest.raises(ConnectionError, match=r"nothing answers at \[::1\]:1: "):
            _answers("[::1]:1")


def test_a_cluster_that_wants_a_token_is_refused_at_once_saying_how_to_give_it(monkeypatch):
    """`ray start` makes a cluster with token authentication; ray.init sends no token to an
    explicit address without RAY_AUTH_MODE=token, retried for 20 s with a warning line a second,
    and validation then said no cluster answered there and to start one (found by a review, 3 Dec
    2026). A fake GCS answers as Ray's does: SETTINGS with values, then grpc-status 16, or 0."""
    from localpipe.engine.executors.ray import Unusable, _answers

    monkeypatch.delenv("RAY_AUTH_MODE", raising=False)
    status = {"now": b"16"}
    server = socket.create_server(("127.0.0.1", 0))
    server.settimeout(30)

    def answer_as_a_gcs():
        while True:
            try:
                connection, _ = server.accept()
            except OSError:
                return
            with connection:
                settings = bytes([0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 4, 0, 64, 0, 0])  # INITIAL_WINDOW_SIZE
                connection.sendall(settings)
                connection.recv(1024)
                answer = b"\x88\x00\x0bgrpc-status\x02" + status["now"]  # :status 200, as gRPC writes it
                connection.sendall(len(answer).to_bytes(3, "big") + bytes([1, 5, 0, 0, 0, 1]) + answer)
                time.sleep(0.2)

    threading.Thread(target=answer_as_a_gcs, daemon=True).start()
    address = f"127.0.0.1:{server.getsockname()[1]}"
    with server:
        started = time.monotonic()
        with pytest.raises(Unusable) as caught:
            _answers(address)
        assert str(caught.value) == (
            f"the Ray cluster at {address} asks for token authentication: set RAY_AUTH_MODE=token here, with the "
            "cluster's token in ~/.ray/auth_token or RAY_AUTH_TOKEN (docs/scale-out.md)"
        )
        assert time.monotonic() - started < 3
        monkeypatch.setenv("RAY_AUTH_MODE", "token")  # then Ray sends the token: not asked
        _answers(address)
        monkeypatch.delenv("RAY_AUTH_MODE")
        status["now"] = b"0"  # a cluster without authentication
        _answers(address)


def test_a_ray_client_address_without_ray_client_installed_says_what_to_install():
    """``localpipe[ray]`` installs Ray without its client (grpcio): a ``ray://`` address, the first
    form docs/scale-out.md shows, was refused as "no Ray cluster answers there: start it" although
    its server answered (found by a review, 3 Dec 2026)."""
    import importlib.util

    if importlib.util.find_spec("grpc") is not None:
        pytest.skip("Ray's client (grpcio) is installed here")
    server = socket.create_server(("127.0.0.1", 0))  # something listens, as a Ray client server would
    address = f"ray://127.0.0.1:{server.getsockname()[1]}"
    ask = (
        "import sys; from localpipe.engine.executors.ray import cluster; print(cluster(sys.argv[1], [], [])['problem'])"
    )
    with server:  # in a process of its own: this one may be connected to the test cluster already
        problem = subprocess.run([sys.executable, "-c", ask, address], capture_output=True, text=True, timeout=60)
    assert problem.stdout.strip() == (
        "a ray:// address needs Ray's client, which is not installed here: pip install 'ray[client]', or give "
        "the cluster's GCS address (HOST:6379) to connect as a driver"
    )


_RESTARTED = """
import socket
import ray
from ray.cluster_utils import Cluster
from localpipe.engine.executors.ray import cluster

free = socket.socket()
free.bind(("127.0.0.1", 0))
port = free.getsockname()[1]
free.close()
head = {"num_cpus": 1, "include_dashboard": False, "object_store_memory": 80 * 2**20, "gcs_server_port": port}
first = Cluster(initialize_head=True, head_node_args=head)
print("first:", cluster(first.address, [], [])["problem"], flush=True)
job = ray.get_runtime_context().get_job_id()
print("again:", cluster(first.address, [], [])["problem"], ray.get_runtime_context().get_job_id() == job, flush=True)
first.head_node.kill_all_processes(check_alive=False, allow_graceful=False)
second = Cluster(initialize_head=True, head_node_args={**head, "num_cpus": 2})
found = cluster(first.address, [], [])
print("restarted:", found["problem"], [node["resources"].get("CPU") for node in found["nodes"]], flush=True)
ray.shutdown()
second.shutdown()
"""


@pytest.mark.ray
@pytest.mark.timeout(300)
def test_a_connection_kept_from_run_to_run_follows_a_cluster_restarted_at_its_address(ray_cluster):
    """A watcher (or a notebook) stays connected to a cluster between runs: when its head was
    restarted, the next validation's first call into Ray aborted the whole process (a C++ check:
    WrongClusterID), which killed `localpipe watch` (found by a review, 3 Dec 2026). Now it is
    connected to anew, once, and the same cluster is kept."""
    result = subprocess.run([sys.executable, "-c", _RESTARTED], capture_output=True, text=True, timeout=280)
    lines = [line for line in result.stdout.splitlines() if line.split(":")[0] in ("first", "again", "restarted")]
    assert lines == ["first: None", "again: None True", "restarted: None [2.0]"], result.stderr[-2000:]
    assert result.returncode == 0, result.stderr[-2000:]


def test_steps_on_ray_targets_of_two_clusters_are_refused(ws, project, run_pipeline):
    from localpipe.errors import PipelineValidationError

    project("src/s.py", "print('never runs')\n")
    steps = [
        PythonScriptStep("s.py", name=name, source_directory=ws.root / "src", compute_target=_target(ws, address, name))
        for name, address in (("one", "10.0.0.1:6379"), ("two", "10.0.0.2:6379"))
    ]
    with pytest.raises(PipelineValidationError, match="a run connects to one Ray cluster"):
        run_pipeline(Pipeline(ws, steps))


@pytest.mark.ray
def test_a_ray_target_where_no_cluster_answers_is_refused_at_validation(ws, project, localpipe, ray_address):
    _one_step_pipeline(project, "127.0.0.1:1", "far")
    project("src/s.py", "print('never runs')\n")
    proc = localpipe("submit", "pipeline.py", timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.startswith(
        'error: the pipeline is invalid: steps on Ray target "far" cannot run: no Ray cluster answers at 127.0.0.1:1 '
        "(ConnectionError: nothing answers at 127.0.0.1:1: Connection refused): start it (ray start --head) or fix "
        "the target's address"
    )


@pytest.mark.ray
def test_a_ray_target_where_another_service_answers_is_refused_at_once_naming_it(ws, project, localpipe, ray_address):
    """Ray retries for minutes at an address where a web server (or Ray's dashboard) answers, or
    where something listens without answering: validation refuses it in moments; a cluster's GCS
    passes the same check."""
    from http.server import HTTPServer, SimpleHTTPRequestHandler

    from localpipe.engine.executors.ray import CONNECT_SECONDS, _answers

    _answers(ray_address)
    server = HTTPServer(("127.0.0.1", 0), SimpleHTTPRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    silent = socket.create_server(("127.0.0.1", 0))  # listens, never accepts: connections wait in its backlog
    try:
        address = f"127.0.0.1:{server.server_port}"
        _one_step_pipeline(project, address, "web")
        project("src/s.py", "print('never runs')\n")
        started = time.monotonic()
        proc = localpipe("submit", "pipeline.py", timeout=60)
        assert proc.returncode == 2 and time.monotonic() - started < 20
        assert proc.stderr.startswith(  # Python's web server answers an HTTP/2 preface with an HTML page
            f'error: the pipeline is invalid: steps on Ray target "web" cannot run: no Ray cluster answers at '
            f"{address} (ConnectionError: the service at {address} is not a Ray cluster's GCS (it does not speak "
            "gRPC: it answered '<!DOCTYPE')): start it (ray start --head) or fix the target's address"
        ), proc.stderr
        quiet = f"127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(ConnectionError, match=r"is not a Ray cluster's GCS \(it did not answer gRPC within"):
            _answers(quiet)
        assert time.monotonic() - started < CONNECT_SECONDS + 2
    finally:
        server.shutdown()
        silent.close()


@pytest.mark.ray
def test_a_ray_step_over_its_timeout_is_ended_and_fails_saying_so(ws, project, tmp_path, run_pipeline, ray_address):
    pid_file = tmp_path / "pid"
    project(
        "src/slow/slow.py", f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(60)\n"
    )
    config = RunConfiguration()
    config.timeout_seconds = 2
    step = PythonScriptStep(
        "slow.py", name="slow", source_directory=ws.root / "src/slow", compute_target=_target(ws, ray_address),
        runconfig=config,
    )  # fmt: skip
    _, status, steps = run_pipeline(Pipeline(ws, [step]))
    assert status is RunStatus.FAILED and steps["slow"]["reason"] == "timed out after 2s"
    assert not psutil.pid_exists(int(pid_file.read_text()))


@pytest.mark.ray
def test_a_ray_steps_timeout_counts_from_its_start_on_a_node_not_from_its_wait_in_rays_queue(
    ws, project, run_pipeline, ray_address
):
    # Two steps of the one "special": the second waits in Ray's queue for the first (1.5 s), then
    # runs 1.5 s of its own: within its 2.5 s timeout, though 3 s after it was handed to Ray.
    project("src/nap/nap.py", "import time; time.sleep(1.5)\n")
    config = RunConfiguration()
    config.timeout_seconds = 2.5
    special = _target(ws, ray_address, "special", resources={"special": 1})
    steps = [
        PythonScriptStep(
            "nap.py",
            name=f"nap{i}",
            source_directory=ws.root / "src/nap",
            arguments=[str(i)],
            compute_target=special,
            runconfig=config,
        )  # fmt: skip
        for i in range(2)
    ]
    _, status, rows = run_pipeline(Pipeline(ws, steps))
    assert status is RunStatus.COMPLETED, {n: s["reason"] for n, s in rows.items()}
    assert max(s["ended_at"] - s["started_at"] for s in rows.values()) > 2.5  # one did wait in Ray's queue


def test_a_step_on_another_machine_than_its_scheduler_is_refused_history_db(tmp_path, monkeypatch):
    from localpipe import Workspace
    from localpipe.client.workspace import history_of
    from localpipe.errors import StateError
    from localpipe.state.history import MACHINE_ENV, History, machine_id

    layout = history_of(Workspace.create(tmp_path / "other")).layout
    monkeypatch.setenv(MACHINE_ENV, machine_id())
    History(layout).close()  # the same machine: opened as ever
    monkeypatch.setenv(MACHINE_ENV, "the-submitting-machine")
    with pytest.raises(StateError, match="is the history of a scheduler on another machine: a step on a Ray node"):
        History(layout)


def test_a_pipeline_without_ray_steps_never_imports_ray(ws, project):
    project("src/s.py", "print('local')\n")
    project(
        "run.py",
        """
        import sys
        from localpipe import Pipeline, PythonScriptStep, Workspace
        from localpipe.engine.submit import prepare_run, run_prepared
        from localpipe.client.workspace import history_of
        ws = Workspace.from_config()
        history = history_of(ws)
        prepared = prepare_run(history, Pipeline(ws, [PythonScriptStep("s.py", source_directory="src")]), "local")
        print(run_prepared(history, prepared), "ray" in sys.modules)
        """,
    )
    proc = subprocess.run([sys.executable, "run.py"], cwd=ws.root, capture_output=True, text=True, timeout=60)
    assert proc.stdout.split() == ["Completed", "False"], proc.stderr


@pytest.mark.ray
def test_a_killed_scheduler_leaves_no_ray_step_running(ws, project, tmp_path, ray_address):
    pid_file = tmp_path / "pid"
    project("src/s.py", f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)\n")
    _one_step_pipeline(project, ray_address)
    scheduler = subprocess.Popen(
        [sys.executable, "-m", "localpipe", "submit", "pipeline.py"],
        cwd=ws.root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        pid = int(wait_for(lambda: pid_file.exists() and pid_file.read_text(), 60, what="the step to start"))
    finally:
        scheduler.kill()  # SIGKILL: nothing of localpipe's runs after it
        scheduler.wait()
    # Ray sees its driver gone and kills the tasks it owned; the step supervisor on the node ends the step.
    wait_for(lambda: not psutil.pid_exists(pid), 30, what="the step of the killed scheduler to end")


def test_the_studio_timeline_draws_ray_steps_on_lanes_of_their_own():
    from localpipe.studio.graphics import timeline

    def step(name, begin, end, placement):
        return {"name": name, "queued_at": begin, "started_at": begin, "ended_at": end, "placement": placement}

    local, ray = {"cpus": 1, "gpus": []}, {"cpus": 1, "gpus": [], "executor": "ray"}
    drawn = timeline([step("a", 0, 2, local), step("b", 0, 2, ray), step("c", 0, 2, ray), step("d", 2, 3, ray)], [], 3)
    lanes = [lane["label"] for lane in drawn["lanes"]]
    assert lanes == ["CPU 1", "Ray 1", "Ray 2"]
    assert {bar["step"]["name"]: lanes[bar["y"] // (drawn["lanes"][1]["y"])] for bar in drawn["bars"]} == {
        "a": "CPU 1", "b": "Ray 1", "c": "Ray 2", "d": "Ray 1",
    }  # fmt: skip


@pytest.mark.ray
def test_a_local_ray_has_the_cpus_and_gpus_validation_counted_for_it(tmp_path):
    # address=None is checked against this machine's CPU slots (LOCALPIPE_CPUS here) and GPUs (two
    # fakes here): a local Ray with fewer would keep a step that passed validation in its queue for
    # ever, past its timeout.
    pytest.importorskip("ray")
    slots = os.cpu_count() + 3
    script = """
        import ray
        from localpipe.engine.executors.ray import cluster, connect
        connect(None)
        counted, has = cluster(None, [], [])["nodes"][0]["resources"], ray.cluster_resources()
        print(counted["CPU"], int(has["CPU"]), counted["GPU"], int(has.get("GPU", 0)))
    """
    env = {**os.environ, "LOCALPIPE_CPUS": str(slots), "LOCALPIPE_FAKE_GPUS": "2"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert proc.stdout.split() == [str(slots), str(slots), "2", "2"], proc.stderr[-2000:]


@pytest.mark.ray
@pytest.mark.timeout(120)  # without the fix, the driver's thread died and the step waited for ever
def test_a_ray_step_whose_task_ray_refuses_fails_saying_so(ws, project, run_pipeline, ray_address):
    # Ray checks a task's options only when it is submitted: here, an amount finer than it counts.
    project("src/s/s.py", "print('ran')\n")
    fine = _target(ws, ray_address, "fine", resources={"special": 0.00001})
    step = PythonScriptStep("s.py", name="refused", source_directory=ws.root / "src/s", compute_target=fine)
    _, status, rows = run_pipeline(Pipeline(ws, [step]))
    assert status is RunStatus.FAILED
    assert rows["refused"]["reason"].startswith("Ray refused its task (ValueError: The precision of the fractional")
