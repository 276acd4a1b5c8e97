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

from tests.conftest import wait_for, write
from tests.defect_helpers import popen_localpipe, query, step_rows

pytestmark = pytest.mark.docker

IMAGE = "localpipe-test/python:3.11"
ROOTFS = Path(os.environ.get("LOCALPIPE_TEST_ROOTFS", Path.home() / ".cache" / "localpipe-test" / "rootfs.tar"))


def _docker(*args: str, check: bool = True, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], check=check, capture_output=True, text=True, **kwargs)


@pytest.fixture(scope="session")
def docker_image() -> str:
    """The test image: a Debian rootfs with python3 (3.11), imported once (the tar is kept in ROOTFS)."""
    if shutil.which("docker") is None or _docker("info", check=False).returncode != 0:
        pytest.skip("no Docker daemon answers here (.ci/run starts one)")
    if _docker("image", "inspect", IMAGE, check=False).returncode != 0:
        if not ROOTFS.exists():
            if shutil.which("mmdebstrap") is None:
                pytest.skip("the test image is missing and mmdebstrap is not installed to make it (.ci/run does)")
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
read = CommandStep(command=["sh", "-c", "cat $0/result.txt > $1/copy.txt; id -u >> $1/copy.txt", data.as_input(), count],
                   outputs=[count], runconfig=rc, name="read")
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
    assert _docker("ps", "-aq", "--filter", "label=localpipe.run=1").stdout.strip() == ""  # removed at the end
    second = localpipe("submit", "pipeline.py", check=True)
    assert second.stdout.count("reused from run 1") == 2, second.stdout
