"""Steps in Docker containers (issue 15), on a real daemon, in an image made here from Debian's
packages without any registry (mmdebstrap + docker import: ``docker_image`` below, as .ci/run
makes it). Skipped, with the reason, only where no Docker daemon answers."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.defect_helpers import popen_localpipe, query, step_rows

pytestmark = pytest.mark.docker

IMAGE = "localpipe-test/python:3.11"
ROOTFS = Path(os.environ.get("LOCALPIPE_TEST_ROOTFS", Path.home() / ".cache" / "localpipe-test" / "rootfs.tar"))


def _docker(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], check=check, capture_output=True, text=True, **kwargs)


def _cannot(reason: str):
    """Skip, with the reason; in CI (.ci/run sets LOCALPIPE_REQUIRE_DOCKER) these tests never skip."""
    if os.environ.get("LOCALPIPE_REQUIRE_DOCKER"):
        pytest.fail(f"{reason}, and LOCALPIPE_REQUIRE_DOCKER is set (.ci/docker should have made it)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def docker_image() -> str:
    """The test image: a Debian rootfs with python3 (3.11), imported once (the tar is kept in ROOTFS)."""
    if shutil.which("docker") is None or _docker("info", check=False).returncode != 0:
        _cannot("no Docker daemon answers here (.ci/docker starts one)")
    if _docker("image", "inspect", IMAGE, check=False).returncode != 0:
        if not ROOTFS.exists():
            if shutil.which("mmdebstrap") is None:
                _cannot("the test image is missing and mmdebstrap is not installed to make it (.ci/docker does)")
            ROOTFS.parent.mkdir(parents=True, exist_ok=True)
            partial = ROOTFS.with_suffix(".partial.tar")
            subprocess.run(
                ["mmdebstrap", "--variant=apt", "--include=python3", "bookworm", str(partial)],
                check=True,
                capture_output=True,
            )
            partial.rename(ROOTFS)
        _docker("import", str(ROOTFS), IMAGE)
    return IMAGE


PIPELINE = """
from azureml.core import Environment, Workspace
from azureml.core.runconfig import RunConfiguration, DockerConfiguration
from azureml.pipeline.core import Pipeline, PipelineData, PipelineParameter
from azureml.pipeline.steps import CommandStep, PythonScriptStep

ws = Workspace.from_config()
rc = RunConfiguration()
rc.environment = Environment.from_docker_image("in-docker", "{image}")
{extra}
"""

WRITES = """
import os, sys
from azureml.core import Run
out = sys.argv[sys.argv.index("--out") + 1]
os.makedirs(out, exist_ok=True)
in_container = os.path.exists("/.dockerenv")
with open(os.path.join(out, "result.txt"), "w") as f:
    f.write(f"container={in_container} python={sys.version_info[0]}.{sys.version_info[1]} cwd={os.getcwd()}\\n")
Run.get_context().log("in_container", int(in_container))
print("greeting", os.environ.get("AML_PARAMETER_greeting"))
"""


def pipeline(project, extra: str, image: str = IMAGE, steps: str = "") -> Path:
    return project("pipeline.py", PIPELINE.format(image=image, extra=extra) + steps)


def test_a_python_step_and_a_command_step_run_in_containers_and_are_reused(ws, project, localpipe, docker_image):
    project("src/write.py", WRITES)
    pipeline(
        project,
        "",
        steps="""
data = PipelineData("data")
greeting = PipelineParameter("greeting", default_value="hello")
write = PythonScriptStep("write.py", source_directory="src", arguments=["--out", data], outputs=[data],
                         params={"greeting": greeting}, runconfig=rc, name="write")
count = PipelineData("count")
script = "cat $0/result.txt > $1/copy.txt; id -u >> $1/copy.txt"
read = CommandStep(command=["sh", "-c", script, data.as_input(), count], outputs=[count], runconfig=rc, name="read")
pipeline = Pipeline(ws, [read])
""",
    )
    first = localpipe("submit", "pipeline.py")
    assert first.returncode == 0, first.stdout + first.stderr
    download = localpipe("download", "1", "read", "count", ws.root / "got", check=True)
    copy = (ws.root / "got" / "count" / "copy.txt").read_text().splitlines()
    assert copy[0].startswith("container=True python=3.11 cwd=") and copy[0].endswith("/snapshot")
    assert copy[1] == str(os.getuid())  # the submitting user's uid:gid, not the image's root
    outputs = list((ws.root / ".localpipe" / "objects").rglob("copy.txt"))
    assert outputs and all(p.stat().st_uid == os.getuid() for p in outputs)
    metrics = localpipe("metrics", "1", "--json", check=True)
    assert '"in_container"' in metrics.stdout and "1" in metrics.stdout
    assert "greeting hello" in (ws.root / ".localpipe" / "runs" / "1" / "write" / "stdout.log").read_text()
    assert _containers(ws, 1) == []  # removed at the end
    second = localpipe("submit", "pipeline.py", check=True)
    assert second.stdout.count("reused from run 1") == 2, second.stdout


READS = """
import os, sys
from azureml.core import Run
data = sys.argv[sys.argv.index("--data") + 1]
print("param", os.environ["AML_PARAMETER_size"])
print("token", os.environ["API_TOKEN"])
try:
    open(os.path.join(data, "new.txt"), "w").write("x")
    print("input writable")
except OSError as exc:
    print("input read-only", exc.strerror)
print("sees history.db", os.path.exists(os.path.join(os.environ["LOCALPIPE_WORKSPACE"], ".localpipe", "history.db")))
print("sees pipeline.py", os.path.exists(os.path.join(os.environ["LOCALPIPE_WORKSPACE"], "pipeline.py")))
"""


def test_inputs_are_read_only_nothing_else_of_the_workspace_is_seen_and_secrets_are_masked(
    ws, project, localpipe, docker_image
):
    project(
        "make/make.py",
        "import sys, os\nos.makedirs(sys.argv[1], exist_ok=True)\nopen(sys.argv[1] + '/a', 'w').write('a')\n",
    )
    project("src/reads.py", READS)
    pipeline(
        project,
        "",
        steps="""
data = PipelineData("data")
make = PythonScriptStep("make.py", source_directory="make", arguments=[data], outputs=[data], name="make")
reads = PythonScriptStep("reads.py", source_directory="src", arguments=["--data", data.as_input()], inputs=[data],
                         params={"size": PipelineParameter("size", default_value=3)}, runconfig=rc, name="reads",
                         secret_env=["API_TOKEN"])
pipeline = Pipeline(ws, [reads])
""",
    )
    result = localpipe("submit", "pipeline.py", env={"API_TOKEN": "s3cr3t-value-42"})
    assert result.returncode == 0, result.stdout + result.stderr
    log = (ws.root / ".localpipe" / "runs" / "1" / "reads" / "stdout.log").read_text()
    assert "param 3" in log and "token ***" in log and "s3cr3t" not in log
    assert "input read-only" in log
    assert "sees history.db False" in log and "sees pipeline.py False" in log


def test_the_memory_limit_kills_a_step_that_exceeds_it_with_a_reason_that_says_so(ws, project, localpipe, docker_image):
    project("src/big.py", "import time\nblocks = [bytearray(16 * 2**20) for _ in range(40)]\ntime.sleep(1)\n")
    pipeline(
        project,
        "",
        steps="""
from azureml.core.compute import ComputeTarget
from localpipe import LocalCompute
small = ComputeTarget.create(ws, "small", LocalCompute.provisioning_configuration(memory_per_step=96 * 2**20))
big = PythonScriptStep("big.py", source_directory="src", compute_target=small, runconfig=rc, name="big")
pipeline = Pipeline(ws, [big])
""",
    )
    result = localpipe("submit", "pipeline.py")
    assert result.returncode == 1
    ((status, reason),) = step_rows(ws.root, 1).values()
    assert status == "Failed" and "killed by signal 9 (SIGKILL): it ran out of its memory limit (96 MiB" in reason


SLOW = "pipeline = Pipeline(ws, [PythonScriptStep('slow.py', source_directory='src', runconfig=rc, name='slow')])\n"


def test_a_containers_exit_code_is_the_steps(ws, project, localpipe, docker_image):
    steps = """
fails = CommandStep(command=["sh", "-c", "echo broken >&2; exit 3"], runconfig=rc, name="fails")
killed = CommandStep(command=["sh", "-c", "kill -9 $$"], runconfig=rc, name="killed")
pipeline = Pipeline(ws, [fails, killed])
"""
    pipeline(project, "", steps=steps)
    result = localpipe("submit", "pipeline.py")
    assert result.returncode == 1
    rows = step_rows(ws.root, 1)
    assert rows["fails"] == ("Failed", "exit code 3")
    # a signal is reported as for a step run here: the container's 137 (128 + 9) was "exit code 137"
    assert rows["killed"] == ("Failed", "killed by signal 9 (SIGKILL)"), rows["killed"]
    assert query(ws.root, "SELECT name, exit_code, signal FROM step_run WHERE run_id = 1 ORDER BY name") == [
        ("fails", 3, None),
        ("killed", None, 9),
    ]
    assert _read(ws.root / ".localpipe" / "runs" / "1" / "fails" / "stderr.log") == "broken\n"


def test_a_cancel_between_the_containers_creation_and_its_start_stops_it(tmp_path, docker_image, monkeypatch):
    """A terminate that came after the container was created but before it started sent its stop
    to a container not yet running (nothing to stop); then it started, and the step ran to its end."""
    from docker.models.containers import Container

    from localpipe.engine.executors import Launch
    from localpipe.engine.executors.docker import DockerExecutor

    executor = DockerExecutor()
    real_start = Container.start

    def start_after_a_cancel(container, **kwargs):
        executor.terminate("k", grace=1)
        time.sleep(1)  # the stop reaches the daemon first
        return real_start(container, **kwargs)

    monkeypatch.setattr(Container, "start", start_after_a_cancel)
    spec = {"image": IMAGE, "env": {}, "user": f"{os.getuid()}:{os.getgid()}", "labels": {}, "mounts": []}
    launch = Launch("k", ["sleep", "60"], "/", {}, str(tmp_path / "out"), str(tmp_path / "err"), executor="docker",
                    container=spec)  # fmt: skip
    started = time.monotonic()
    executor.start(launch)
    try:
        (ended,) = executor.wait(30)
    finally:
        executor.close()
    assert time.monotonic() - started < 20
    assert ended.exit_code is None and ended.signal in (signal.SIGTERM, signal.SIGKILL), ended


def _containers(ws, run_id: int) -> list[str]:
    """The containers of run ``run_id`` of ``ws``: the daemon is the machine's, with other workspaces' runs."""
    labels = [f"label=localpipe.workspace={ws.root}", f"label=localpipe.run={run_id}"]
    return _docker("ps", "-aq", "--filter", labels[0], "--filter", labels[1]).stdout.split()


def test_a_timeout_and_a_cancel_stop_and_remove_the_container(ws, project, localpipe, docker_image):
    project("src/slow.py", "import time\nprint('started', flush=True)\ntime.sleep(120)\n")
    pipeline(
        project,
        "rc.max_run_duration_seconds = 2",
        steps="""
slow = PythonScriptStep("slow.py", source_directory="src", runconfig=rc, name="slow")
pipeline = Pipeline(ws, [slow])
""",
    )
    started = time.monotonic()
    result = localpipe("submit", "pipeline.py")
    assert result.returncode == 1 and time.monotonic() - started < 30
    assert step_rows(ws.root, 1)["slow"] == ("Failed", "timed out after 2s")
    assert _containers(ws, 1) == []

    pipeline(project, "", steps=SLOW)  # no time limit
    proc = popen_localpipe(ws.root, "submit", "pipeline.py", "--regenerate-outputs")
    wait_for(
        lambda: "started" in _read(ws.root / ".localpipe" / "runs" / "2" / "slow" / "stdout.log"), 60, what="the step"
    )
    assert len(_containers(ws, 2)) == 1
    localpipe("cancel", "2", check=True)
    assert proc.wait(30) == 130
    assert step_rows(ws.root, 2)["slow"][0] == "Canceled"
    assert _containers(ws, 2) == []


def _remove_images(reference: str) -> None:
    """Remove the images localpipe built that match ``reference``, so that a test builds its own."""
    found = _docker("images", "-q", "--filter", f"reference={reference}").stdout.split()
    if found:
        _docker("rmi", "-f", *found)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def test_a_killed_schedulers_container_is_removed_by_recovery(ws, project, localpipe, docker_image):
    project("src/slow.py", "import time\nprint('started', flush=True)\ntime.sleep(120)\n")
    pipeline(
        project,
        "",
        steps=SLOW,
    )
    proc = popen_localpipe(ws.root, "submit", "pipeline.py")
    wait_for(
        lambda: "started" in _read(ws.root / ".localpipe" / "runs" / "1" / "slow" / "stdout.log"), 60, what="the step"
    )
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(_containers(ws, 1)) == 1  # a container does not die with its scheduler
    localpipe("runs", check=True)  # the first command that looks recovers the run
    assert _containers(ws, 1) == []
    assert query(ws.root, "SELECT status FROM pipeline_run WHERE id = 1") == [("Failed",)]


DOCKERFILE = "FROM localpipe-test/python:3.11\nRUN echo {marker} > /marker\n"


def test_a_dockerfile_is_built_once_and_changing_the_base_reruns_the_step(ws, project, localpipe, docker_image):
    _remove_images("localpipe-dockerfile")
    project("src/marker.py", "print('marker', open('/marker').read().strip())\n")
    steps = """
rc.environment = Environment.from_dockerfile("built", {dockerfile!r})
step = PythonScriptStep("marker.py", source_directory="src", runconfig=rc, name="marker")
pipeline = Pipeline(ws, [step])
"""
    pipeline(project, "", steps=steps.format(dockerfile=DOCKERFILE.format(marker="one")))
    localpipe("submit", "pipeline.py", check=True)
    assert "marker one" in _read(ws.root / ".localpipe" / "runs" / "1" / "marker" / "stdout.log")
    again = localpipe("submit", "pipeline.py", check=True)
    assert "reused from run 1" in again.stdout
    pipeline(project, "", steps=steps.format(dockerfile=DOCKERFILE.format(marker="two")))
    changed = localpipe("submit", "pipeline.py", check=True)
    assert "environment changed" in changed.stdout
    assert "marker two" in _read(ws.root / ".localpipe" / "runs" / "3" / "marker" / "stdout.log")

    pipeline(project, "", steps=steps.format(dockerfile="FROM localpipe-test/python:3.11\nRUN exit 3\n"))
    failed = localpipe("submit", "pipeline.py")
    assert failed.returncode == 1
    reason = step_rows(ws.root, 4)["marker"][1]
    assert reason.startswith("its Dockerfile could not be built: ") and "image-build.log" in reason
    assert (
        _docker("images", "-q", "--filter", "reference=localpipe-dockerfile").stdout.count("\n") == 2
    )  # none half-built


def test_a_missing_image_a_missing_daemon_and_azures_base_images(ws, project, localpipe, docker_image):
    project("src/hello.py", "print('hello')\n")
    steps = (
        "pipeline = Pipeline(ws, [PythonScriptStep('hello.py', source_directory='src', runconfig=rc, name='hello')])\n"
    )
    pipeline(project, "", image="nosuch/image:1", steps=steps)
    missing = localpipe("submit", "pipeline.py")
    assert missing.returncode == 2
    assert "Docker image nosuch/image:1 is not on this machine" in missing.stderr
    assert "docker pull nosuch/image:1, or docker load -i FILE.tar" in missing.stderr
    assert "Traceback" not in missing.stderr

    pipeline(project, "", steps=steps)
    no_daemon = localpipe("submit", "pipeline.py", env={"DOCKER_HOST": f"unix://{ws.root}/no-docker.sock"})
    assert no_daemon.returncode == 2 and 'step "hello" runs in Docker: no Docker daemon answers' in no_daemon.stderr

    azure = """
from azureml.core.runconfig import DEFAULT_CPU_IMAGE
rc = RunConfiguration()
rc.environment.docker.enabled = True
rc.environment.docker.base_image = DEFAULT_CPU_IMAGE
"""
    pipeline(project, azure, steps=steps)
    refused = localpipe("submit", "pipeline.py", env={"LOCALPIPE_AZUREML_IMAGES": "require"})
    assert (
        refused.returncode == 2 and "docker pull mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04" in refused.stderr
    )
    ran = localpipe("submit", "pipeline.py")
    assert ran.returncode == 0, ran.stderr
    assert (
        "Azure ML's base image mcr.microsoft.com/azureml/openmpi4.1.0-ubuntu20.04 is not on this machine" in ran.stderr
    )
    assert "hello" in _read(ws.root / ".localpipe" / "runs" / "1" / "hello" / "stdout.log")


def test_a_base_image_in_a_registry_runs_under_the_registrys_name_and_its_password_is_kept_nowhere(
    ws, project, localpipe, docker_image
):
    project("src/hello.py", "print('hello from the registry image')\n")
    steps = (
        "pipeline = Pipeline(ws, [PythonScriptStep('hello.py', source_directory='src', runconfig=rc, name='hello')])\n"
    )
    registry = """
from azureml.core.container_registry import ContainerRegistry
registry = ContainerRegistry()
registry.address, registry.username, registry.password = "{address}", "robot", "s3cret-password"
rc.environment = Environment.from_docker_image("in-registry", "{image}", container_registry=registry)
"""
    _docker("tag", docker_image, f"registry.localpipe.test:5000/{docker_image}")
    try:
        pipeline(project, registry.format(address="registry.localpipe.test:5000", image=docker_image), steps=steps)
        ran = localpipe("submit", "pipeline.py")
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert "hello from the registry image" in _read(ws.root / ".localpipe" / "runs" / "1" / "hello" / "stdout.log")
    finally:
        _docker("rmi", f"registry.localpipe.test:5000/{docker_image}")
    assert b"s3cret-password" not in (ws.root / ".localpipe" / "history.db").read_bytes()

    pipeline(project, registry.format(address="elsewhere.localpipe.test", image=docker_image), steps=steps)
    missing = localpipe("submit", "pipeline.py")
    assert missing.returncode == 2
    assert (
        f"Docker image elsewhere.localpipe.test/{docker_image} is not on this machine (localpipe pulls nothing): "
        f"docker login elsewhere.localpipe.test, then docker pull elsewhere.localpipe.test/{docker_image}"
    ) in missing.stderr


def test_planning_refuses_what_docker_cannot_do(ws, project, localpipe, docker_image):
    project("src/hello.py", "print('hello')\n")
    gpu = """
from azureml.core.compute import ComputeTarget
from localpipe import LocalCompute
gpu = ComputeTarget.create(ws, "gpu", LocalCompute.provisioning_configuration(gpus_per_step=1))
"""
    steps = "step = PythonScriptStep('hello.py', source_directory='src', runconfig=rc, name='train'{})\n"
    steps += "pipeline = Pipeline(ws, [step])\n"
    pipeline(project, gpu, steps=steps.format(", compute_target=gpu"))
    no_nvidia = "nvidia" not in _docker("info", "--format", "{{json .Runtimes}}").stdout
    result = localpipe("submit", "pipeline.py", env={"LOCALPIPE_FAKE_GPUS": "2"})
    if no_nvidia:  # the test machines' daemons have no nvidia runtime
        assert result.returncode == 2
        assert 'step "train" runs in Docker and needs GPUs, but this Docker daemon cannot give containers GPUs' in (
            result.stderr
        )

    pipeline(project, "", steps=steps.format(""))
    bad = localpipe("submit", "pipeline.py", env={"LOCALPIPE_AZUREML_IMAGES": "sometimes"})
    assert bad.returncode == 2
    assert bad.stderr.strip() == (
        'error: LOCALPIPE_AZUREML_IMAGES="sometimes" is neither "local" nor "require": set one of them, or unset it'
    )


def test_a_container_gets_the_claimed_gpus_by_uuid_its_paths_and_only_the_steps_variables(tmp_path):
    """What the executor is handed (a GPU device request cannot run here: no GPU, no nvidia runtime)."""
    from localpipe.engine.executors import Launch
    from localpipe.engine.resources import Placement
    from localpipe.engine.workdir import StepFolder, containerize
    from localpipe.hw.gpus import GpuInfo
    from localpipe.plan.graph import StepSpec

    folder = StepFolder(tmp_path / "runs" / "1" / "s")
    (folder.inputs / "several").mkdir(parents=True)
    (tmp_path / "data").mkdir()
    os.symlink(tmp_path / "data", folder.inputs / "several" / "data")
    spec = StepSpec(
        name="s", kind="python", script="s.py", source_dir=None, argv=[], inputs={}, outputs={}, params={},
        pipeline_params={}, environment={"kind": "docker", "image": IMAGE, "shm_size": "1g"}, compute_target="gpu",
        allow_reuse=True, version=None, secret_env=["TOKEN"],
    )  # fmt: skip
    gpus = tuple(GpuInfo(i, f"GPU-{i}", "Fake", 1, 1, None) for i in (1, 3))
    base = {"PATH": "/usr/bin", "TOKEN": "secret", "UNRELATED": "x"}
    env = {**base, "AML_PARAMETER_a": "1", "LOCALPIPE_INPUTS": json.dumps({"d": str(tmp_path / "store" / "o")})}
    launch = Launch("s", ["python3", "s.py"], str(folder.root), env, "out", "err", memory_limit=2**30)
    containerize(launch, spec, folder, Placement(7, 2, 2**30, gpus), None, base, {"localpipe.run": "1"})
    container = launch.container
    assert launch.executor == "docker" and container["gpus"] == ["GPU-1", "GPU-3"]
    assert container["image"] == IMAGE and container["shm_size"] == "1g" and container["cpus"] == 2
    assert container["user"] == f"{os.getuid()}:{os.getgid()}"
    assert dict(container["mounts"]) == {
        str(folder.root): False,
        str(tmp_path / "store" / "o"): True,
        str(tmp_path / "data"): True,
    }
    assert container["env"]["TOKEN"] == "secret" and container["env"]["AML_PARAMETER_a"] == "1"
    assert "PATH" not in container["env"] and "UNRELATED" not in container["env"]


def _one_package(tmp_path: Path, name: str) -> tuple[Path, str]:
    """A folder holding a wheel of ``name`` 1.0, and the pipeline lines that install it over the image."""
    from tests.wheels import make_wheel

    wheels = tmp_path / "wheels"
    wheels.mkdir()
    make_wheel(wheels, name, "1.0", "VERSION = 1\n")
    return (
        wheels,
        f"""
from azureml.core.conda_dependencies import CondaDependencies
rc.environment.python.user_managed_dependencies = False
rc.environment.python.conda_dependencies = CondaDependencies.create(pip_packages=["{name}==1.0"])
""",
    )


def test_an_environments_packages_are_a_layer_over_the_image_built_once(ws, project, localpipe, docker_image, tmp_path):
    from tests.wheels import offline_index

    _remove_images("localpipe-env")
    wheels, extra = _one_package(tmp_path, "lp-tiny")
    project("src/uses.py", "import lp_tiny, sys\nprint('lp_tiny', lp_tiny.VERSION, 'python', sys.executable)\n")
    steps = "step = PythonScriptStep('uses.py', source_directory='src', runconfig=rc, name='s', allow_reuse=False)\n"
    pipeline(project, extra, steps=steps + "pipeline = Pipeline(ws, [step])\n")
    env = offline_index(wheels)
    first = localpipe("submit", "pipeline.py", env=env)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "lp_tiny 1 python /usr/bin/python3" in _read(ws.root / ".localpipe" / "runs" / "1" / "s" / "stdout.log")
    assert "COPY packages /opt/localpipe/packages" in _read(
        ws.root / ".localpipe" / "runs" / "1" / "s" / "image-build.log"
    )
    localpipe("submit", "pipeline.py", env=env, check=True)
    assert not (ws.root / ".localpipe" / "runs" / "2" / "s" / "image-build.log").exists()  # built once
    assert "lp_tiny 1" in _read(ws.root / ".localpipe" / "runs" / "2" / "s" / "stdout.log")

    pipeline(project, extra.replace("lp-tiny==1.0", "lp-missing"), steps=steps + "pipeline = Pipeline(ws, [step])\n")
    failed = localpipe("submit", "pipeline.py", env=env)
    assert failed.returncode == 1
    reason = step_rows(ws.root, 3)["s"][1]
    assert (
        reason.startswith(f"its packages could not be added to image {IMAGE}: uv pip exited with")
        and "image-build.log" in reason
    )


# -- links and FIFOs a container leaves in its folder (tests/test_paths_review.py) --

# In a container: the host folder it is given is not there, yet links to it lead there outside.
IN_CONTAINER = """
import os, sys
out, host = sys.argv[1], sys.argv[2]
root = os.environ["LOCALPIPE_STEP_DIR"]
assert not os.path.exists(host), "the container sees the host folder"
os.rename(os.path.dirname(out), os.path.join(root, "moved"))
os.symlink(host, os.path.join(root, "outputs"))  # the commit would move host/data into the store
os.symlink(os.path.join(host, "keep.txt"), os.path.join(root, "stdout.log"))  # made on the first print
os.mkfifo(os.path.join(root, "stderr.log"))  # read for the log tail of a failed step
print("appended to the host's keep.txt")
"""

DOCKER_PIPELINE = """
from localpipe import Environment, Pipeline, PipelineData, PythonScriptStep, RunConfiguration, Workspace
config = RunConfiguration()
config.environment = Environment.from_docker_image("in-docker", {image!r})
pipeline = Pipeline(Workspace.from_config(), [PythonScriptStep(
    "s.py", name="s", source_directory="src", runconfig=config, arguments=[PipelineData("data"), {outside!r}])])
"""


@pytest.mark.timeout(120)
def test_a_containers_links_and_fifos_in_its_folder_reach_nothing_outside(
    ws, project, localpipe, tmp_path, docker_image
):
    """Found by the paths review (tests/test_paths_review.py shows each on a local step): a step in
    a container sees only its folder, yet a link it makes there names a path of the machine, where
    localpipe, outside the container, followed it (the commit moved the host folder into the store,
    its log was appended to a host file), and a FIFO there hung the run. Now the host folder is
    exactly as it was, and the step fails naming them."""
    from tests.test_paths_review import REPLACED_FIX, outside_folder, snapshot

    outside = outside_folder(tmp_path)
    before = snapshot(outside)
    project("src/s.py", IN_CONTAINER)
    project("p.py", DOCKER_PIPELINE.format(image=docker_image, outside=str(outside)))
    proc = localpipe("submit", "p.py", timeout=100)
    assert snapshot(outside) == before, (proc.stdout, proc.stderr)
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    status, reason = query(ws.root, "SELECT status, reason FROM step_run")[0]
    replaced = "outputs by a link, stdout.log by a link, stderr.log by a FIFO"
    assert (status, reason) == ("Failed", f"the step replaced {replaced}{REPLACED_FIX}")


# Leaves among its run files a link to a host file it cannot see (a secret of the machine's, say).
RUN_FILE_LINK = """
import os, sys
os.makedirs("outputs", exist_ok=True)
open("outputs/kept.txt", "w").write("kept")
os.symlink(sys.argv[2], "outputs/model.pkl")
os.symlink(os.path.dirname(sys.argv[2]), "outputs/folder")
os.symlink("kept.txt", "outputs/inside.txt")
"""


@pytest.mark.timeout(120)
def test_a_containers_run_file_links_out_of_its_folder_are_not_kept(ws, project, localpipe, tmp_path, docker_image):
    """Found by the paths review: a step in a container could leave among its run files (./outputs)
    a link to a host file it cannot see; on the host, download_file, register_model and a
    HyperDriveStep's best model read that file (into the object store, for a model). Such a link is
    not kept among its run files; one inside its folder is."""
    from localpipe import PipelineRun

    secret = tmp_path / "host" / "secret.txt"
    secret.parent.mkdir()
    secret.write_text("a secret of the machine's\n")
    project("src/s.py", RUN_FILE_LINK)
    project("p.py", DOCKER_PIPELINE.format(image=docker_image, outside=str(secret)))
    proc = localpipe("submit", "p.py", timeout=100)
    assert proc.returncode == 0, (proc.stdout, proc.stderr)
    step_run = PipelineRun.get(ws, 1).find_step_run("s")[0]
    names = [n for n in step_run.get_file_names() if n.startswith("outputs/")]
    assert names == ["outputs/inside.txt", "outputs/kept.txt"], names
    assert sorted(os.listdir(ws.root / ".localpipe" / "runs" / "1" / "s" / "files" / "outputs")) == [
        "inside.txt",
        "kept.txt",
    ]


def test_an_images_entrypoint_does_not_swallow_the_steps_command(ws, project, localpipe, docker_image, tmp_path):
    """An image with an ENTRYPOINT (most published images have one) runs the step's command, not
    the entrypoint with the command as its arguments: the step "completed" without running."""
    tag = "localpipe-test/entrypoint:1"
    label = f"localpipe-test.entrypoint={time.time_ns()}"  # a new image each time: no layer of a test before
    (tmp_path / "Dockerfile").write_text(
        f'FROM {docker_image}\nLABEL {label}\nENTRYPOINT ["/bin/echo", "entrypoint-said"]\n'
    )
    _docker("build", "-q", "-t", tag, str(tmp_path))
    project("src/write.py", WRITES)
    steps = """
data = PipelineData("data")
write = PythonScriptStep("write.py", source_directory="src", arguments=["--out", data], outputs=[data],
                         runconfig=rc, name="write")
pipeline = Pipeline(ws, [write])
"""
    try:
        pipeline(project, "", image=tag, steps=steps)
        result = localpipe("submit", "pipeline.py")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "entrypoint-said" not in _read(ws.root / ".localpipe" / "runs" / "1" / "write" / "stdout.log")
        assert list((ws.root / ".localpipe" / "objects").rglob("result.txt"))

        # Packages over it: the image's Python version is asked of its python3, not of the entrypoint.
        from tests.wheels import offline_index

        wheels, extra = _one_package(tmp_path, "lp-entry")
        project("src/uses.py", "import lp_entry\nprint('lp_entry', lp_entry.VERSION)\n")
        uses = (
            "pipeline = Pipeline(ws, [PythonScriptStep('uses.py', source_directory='src', runconfig=rc, name='u')])\n"
        )
        pipeline(project, extra, image=tag, steps=uses)
        second = localpipe("submit", "pipeline.py", env=offline_index(wheels))
        assert second.returncode == 0, second.stdout + second.stderr
        assert _read(ws.root / ".localpipe" / "runs" / "2" / "u" / "stdout.log") == "lp_entry 1\n"
    finally:  # the image and the packages' layer over it, which has its label
        for image in _docker("images", "-q", "--filter", f"label={label}", check=False).stdout.split():
            _docker("rmi", "-f", image, check=False)


def test_an_image_without_python3_leaves_no_container_behind(ws, project, localpipe, docker_image, tmp_path):
    """Packages over an image with no python3: the step fails in one line, and the container that
    asked the image's Python version, which could not start, is removed all the same."""
    tag = "localpipe-test/no-python:1"
    rootfs = tmp_path / "rootfs"
    rootfs.mkdir()
    (rootfs / "README").write_text("no python here\n")
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tmp_path / "rootfs.tar"), "."], check=True)
    _docker("import", str(tmp_path / "rootfs.tar"), tag)
    extra = """
from azureml.core.conda_dependencies import CondaDependencies
rc.environment.python.user_managed_dependencies = False
rc.environment.python.conda_dependencies = CondaDependencies.create(pip_packages=["six"])
"""
    try:
        pipeline(
            project,
            extra,
            image=tag,
            steps="pipeline = Pipeline(ws, [CommandStep(command=['true'], runconfig=rc, name='s')])\n",
        )
        result = localpipe("submit", "pipeline.py")
        assert result.returncode == 1
        reason = step_rows(ws.root, 1)["s"][1]
        assert reason.startswith(f"its packages could not be added to image {tag}: ") and '"python3"' in reason
        assert _docker("ps", "-aq", "--filter", f"ancestor={tag}").stdout.split() == []
    finally:
        for container in _docker("ps", "-aq", "--filter", f"ancestor={tag}", check=False).stdout.split():
            _docker("rm", "-f", container, check=False)
        _docker("rmi", "-f", tag, check=False)


def test_an_image_name_docker_cannot_read_is_one_line(ws, project, localpipe, docker_image):
    """An image name that is no Docker reference (capitals, a space, a bad digest): the daemon's 400
    was a traceback when planning; it is one problem naming the step and environment."""
    project("src/hello.py", "print('hello')\n")
    steps = (
        "pipeline = Pipeline(ws, [PythonScriptStep('hello.py', source_directory='src', runconfig=rc, name='hello')])\n"
    )
    for image in ("Myorg/Tools:1", "myorg/tools@sha256:0000"):
        pipeline(project, "", image=image, steps=steps)
        refused = localpipe("submit", "pipeline.py")
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert "Traceback" not in refused.stderr
        assert (
            f'step "hello": environment "in-docker": Docker image {image} is not a name Docker accepts '
            "(invalid reference format"
        ) in refused.stderr, refused.stderr


def test_a_shm_size_docker_cannot_read_is_refused_when_planning(ws, project, localpipe, docker_image):
    """DockerConfiguration(shm_size="abc") failed the step when it started, after the steps before it
    ran, with docker-py's "The specified value for memory (abc)"; it is refused before anything runs."""
    project("src/hello.py", "print('hello')\n")
    steps = (
        "pipeline = Pipeline(ws, [PythonScriptStep('hello.py', source_directory='src', runconfig=rc, name='hello')])\n"
    )
    for size in ("abc", "-1g", "4 g"):
        pipeline(project, f"rc.docker = DockerConfiguration(use_docker=True, shm_size={size!r})", steps=steps)
        refused = localpipe("submit", "pipeline.py")
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert (
            f'step "hello": environment "in-docker": shm_size {size!r} is not a size: a whole number of bytes, '
            "or one with the unit b, k, m or g (512m, 4g)"
        ) in refused.stderr, refused.stderr
    pipeline(project, "rc.docker = DockerConfiguration(use_docker=True, shm_size='64mb')", steps=steps)
    assert localpipe("submit", "pipeline.py").returncode == 0


def test_a_time_limit_stops_a_step_whose_image_is_still_building(ws, project, localpipe, docker_image):
    """A time limit (as a cancel) waited for the step's image build to end, however long it took:
    a 2 s limit ended the step after the 30 s build. It stops the step at once."""
    project("src/hello.py", "print('hello')\n")
    label = f"localpipe-test.slow-build={time.time_ns()}"  # a new Dockerfile each time: nothing built before
    dockerfile = f"FROM {docker_image}\nLABEL {label}\nRUN sleep 30\n"
    steps = f"""
rc.environment = Environment.from_dockerfile("slow-build", {dockerfile!r})
rc.max_run_duration_seconds = 2
pipeline = Pipeline(ws, [PythonScriptStep("hello.py", source_directory="src", runconfig=rc, name="hello")])
"""
    pipeline(project, "", steps=steps)
    try:
        started = time.monotonic()
        result = localpipe("submit", "pipeline.py")
        took = time.monotonic() - started
        assert result.returncode == 1, result.stdout + result.stderr
        assert step_rows(ws.root, 1)["hello"] == ("Failed", "timed out after 2s")
        assert took < 20, f"the step ended {took:.0f} s after it started, its image still building"
    finally:  # the build's untagged layers (its LABEL's), which the daemon keeps when a build stops
        for image in _docker("images", "-aq", "--filter", f"label={label}", check=False).stdout.split():
            _docker("rmi", "-f", image, check=False)
