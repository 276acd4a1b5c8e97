"""Environment images as in Azure ML SDK v1 (docs/docker.md): a Docker build context
(``DockerBuildContext``, ``Environment.from_docker_build_context``), ``Environment.build``,
``build_local(ws, useDocker=True)`` and ``get_image_details``, on a real daemon, with images
``FROM`` the test image of tests/test_docker.py (no package installs, no registry)."""

from __future__ import annotations

import json
import os
import time

import pytest

from localpipe import PipelineRun
from localpipe.content.statcache import StatCache
from localpipe.errors import UserErrorException
from localpipe.sdk.environment import DockerBuildContext, Environment
from tests.test_docker import IMAGE, _docker, _read, docker_image  # noqa: F401  (a fixture)

pytestmark = [pytest.mark.docker, pytest.mark.usefixtures("docker_image")]  # skipped where no daemon answers

CONTEXT_PIPELINE = """
from azureml.core import Environment, Workspace
from azureml.core.environment import DockerBuildContext
from azureml.core.runconfig import RunConfiguration
from azureml.pipeline.core import Pipeline
from azureml.pipeline.steps import PythonScriptStep

ws = Workspace.from_config()
rc = RunConfiguration()
rc.environment = Environment.from_docker_build_context("ctx", DockerBuildContext.from_local_directory(ws, "ctx"))
step = PythonScriptStep("marker.py", source_directory="src", runconfig=rc, name="marker")
pipeline = Pipeline(ws, [step])
"""


def _context(project, marker: str) -> None:
    dockerfile = project("ctx/Dockerfile", f"FROM {IMAGE}\nCOPY marker.txt /marker\n")
    project("ctx/marker.txt", marker + "\n")
    project("ctx/where.txt", str(dockerfile.parent))  # a fresh image for each test: every file counts


def test_a_step_runs_in_its_build_contexts_image_and_an_edit_of_the_context_rebuilds_and_reruns(ws, project, localpipe):
    project(
        "src/marker.py", "import os\nprint('marker', open('/marker').read().strip(), os.path.exists('/.dockerenv'))\n"
    )
    project("pipeline.py", CONTEXT_PIPELINE)
    _context(project, "one")
    localpipe("submit", "pipeline.py", check=True)
    assert "marker one True" in _read(ws.root / ".localpipe" / "runs" / "1" / "marker" / "stdout.log")
    assert (ws.root / ".localpipe" / "runs" / "1" / "marker" / "image-build.log").is_file()
    ran_in = PipelineRun.get(ws, "1").find_step_run("marker")[0].get_environment().docker.build_context
    assert (ran_in.location, ran_in.dockerfile_path) == (str(ws.root / "ctx"), "Dockerfile")
    again = localpipe("submit", "pipeline.py", check=True)
    assert "reused from run 1" in again.stdout

    _context(project, "two")  # the Dockerfile unchanged: a file it copies changed
    changed = localpipe("submit", "pipeline.py", check=True)
    assert "environment changed" in changed.stdout
    assert "marker two True" in _read(ws.root / ".localpipe" / "runs" / "3" / "marker" / "stdout.log")
    assert "Step 2/2 : COPY marker.txt /marker" in _read(
        ws.root / ".localpipe" / "runs" / "3" / "marker" / "image-build.log"
    )

    (ws.root / "ctx" / "Dockerfile").unlink()
    missing = localpipe("submit", "pipeline.py")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    assert f"Docker build context {ws.root / 'ctx'} has no Dockerfile: add it" in missing.stderr


def test_build_builds_the_image_once_a_step_reuses_it_and_get_image_details_says_whether_it_exists(
    ws, project, localpipe
):
    _context(project, "built ahead")
    context = DockerBuildContext.from_local_directory(ws, ws.root / "ctx")
    assert context.location == str(ws.root / "ctx") and context.dockerfile_path == "Dockerfile"
    assert context.location_type is DockerBuildContext.LocationType.StorageAccount
    env = Environment.from_docker_build_context("ctx", context)

    before = env.get_image_details(ws)
    assert before["imageExistsInRegistry"] is False and before.image_exist is False
    assert before.repository.startswith("localpipe-context:") and before.registry is None
    assert before.image == before.repository and before.interpreter_path == "python3"
    assert before.dockerfile == f"FROM {IMAGE}\nCOPY marker.txt /marker\n"

    details = env.build(ws)
    assert details.wait_for_completion(show_output=False) is details
    assert details.status == "Succeeded" and details.built == [before.repository] and details.image == before.repository
    assert details.log_url.startswith("file://") and "COPY marker.txt" in details.get_log()
    assert env.version == "1"  # registered, as Azure's build does
    after = env.get_image_details(ws)
    assert after.image_exist and after.repository == before.repository
    image_id = _docker("image", "inspect", "-f", "{{.Id}}", before.repository).stdout.strip()

    listed = json.loads(localpipe("envs", "--images", "--json", check=True).stdout)
    assert {"tag": before.repository, "kind": "build context"}.items() <= next(
        entry for entry in listed if entry["tag"] == before.repository
    ).items()
    assert before.repository in localpipe("envs", "--images", check=True).stdout

    second = env.build(ws)
    assert second.built == [] and second.get_log() is None and env.version == "1"
    registered = Environment.get(ws, "ctx")  # the context is kept with the registration
    assert registered.docker.build_context.location == str(ws.root / "ctx")
    assert registered.docker.build_context.location_type is DockerBuildContext.LocationType.StorageAccount
    assert registered.get_image_details(ws).repository == before.repository

    project("src/marker.py", "print('marker', open('/marker').read().strip())\n")
    project("pipeline.py", CONTEXT_PIPELINE)
    localpipe("submit", "pipeline.py", check=True)
    step = ws.root / ".localpipe" / "runs" / "1" / "marker"
    assert "marker built ahead" in _read(step / "stdout.log")
    assert "Step" not in _read(step / "image-build.log")  # no second build: the step found the image
    assert _docker("image", "inspect", "-f", "{{.Id}}", before.repository).stdout.strip() == image_id


def test_build_local_with_docker_and_what_cannot_be_built(ws, project, capsys):
    env = Environment.from_dockerfile("df", f"FROM {IMAGE}\nRUN echo {ws.root} > /built\n")  # a fresh image
    env.build_local(ws, useDocker=True)
    assert capsys.readouterr().out.startswith('environment "df": image localpipe-dockerfile:')
    env.build_local(ws)  # docker.enabled: Azure's build_local builds the image too
    assert "is on this machine already: nothing to build" in capsys.readouterr().out
    assert env.version is None  # build_local registers nothing

    with pytest.raises(UserErrorException, match="pushImageToWorkspaceAcr"):
        env.build_local(ws, useDocker=True, pushImageToWorkspaceAcr=True)

    absent = Environment.from_dockerfile("absent", "FROM nosuch/base:1\nRUN true\n")
    with pytest.raises(UserErrorException) as refused:
        absent.build(ws)
    message = str(refused.value)
    assert "its FROM image nosuch/base:1 is not on this machine" in message
    assert "docker pull nosuch/base:1, or docker load -i FILE.tar" in message and "(log: " in message
    assert ws.service.environments().get("absent") is None  # a failed build registers nothing

    failing = Environment.from_dockerfile("failing", f"FROM {IMAGE}\nRUN exit 3\n")
    with pytest.raises(UserErrorException, match=r'environment "failing": its Dockerfile could not be built: .*3'):
        failing.build(ws)

    plain = Environment("plain")  # Azure's base image, which this machine lacks
    with pytest.raises(UserErrorException, match='Environment.build: environment "plain" has no Docker image'):
        plain.build(ws)

    _context(project, "gone")
    kept = Environment.from_docker_build_context("kept", DockerBuildContext.from_local_directory(ws, ws.root / "ctx"))
    (ws.root / "ctx" / "Dockerfile").unlink()  # after the context was made: refused when it is used
    with pytest.raises(
        UserErrorException,
        match=r'^Environment.build: environment "kept": Docker build context .*ctx has no Dockerfile',
    ):
        kept.build(ws)

    (ws.root / "empty").mkdir()
    with pytest.raises(UserErrorException, match=r"empty has no Dockerfile: add it, or pass dockerfile_path="):
        DockerBuildContext.from_local_directory(ws, ws.root / "empty")
    remote = Environment.from_docker_build_context(
        "git", DockerBuildContext(DockerBuildContext.LocationType.Git, "https://example.com/r.git")
    )
    with pytest.raises(UserErrorException, match="is not a folder of this machine"):
        remote.get_image_details(ws)


def test_no_daemon_is_one_line(ws, project, localpipe, monkeypatch):
    _context(project, "x")
    env = Environment.from_docker_build_context("ctx", DockerBuildContext.from_local_directory(ws, ws.root / "ctx"))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{ws.root}/no-docker.sock")
    with pytest.raises(
        UserErrorException, match="^Environment.build runs in Docker: no Docker daemon answers .*: start it"
    ):
        env.build(ws)
    listed = localpipe("envs", "--images", env={"DOCKER_HOST": f"unix://{ws.root}/no-docker.sock"})
    assert listed.returncode == 2
    assert (
        listed.stderr.strip() == "error: no Docker daemon answers: start it (sudo dockerd, or systemctl start docker)"
    )


def test_planning_hashes_a_build_context_through_the_workspaces_stat_cache(ws, project, localpipe):
    project("src/marker.py", "print('marker', open('/marker').read().strip())\n")
    project("pipeline.py", CONTEXT_PIPELINE)
    _context(project, "cached")
    data = project("ctx/data.bin", "x" * 100_000)
    hour_ago = time.time() - 3600
    for path in (ws.root / "ctx").iterdir():  # out of the racy window: what planning hashes is remembered
        os.utime(path, (hour_ago, hour_ago))
    localpipe("submit", "pipeline.py", check=True)
    remembered = StatCache(ws.root / ".localpipe" / "statcache.bin")
    assert remembered.lookup(str(data), data.stat()) is not None

    assert "reuse" in localpipe("status", "pipeline.py", check=True).stdout  # stats only (test_build_context_hashing)

    data.write_text("y" * 100_000)  # the same size, its time put back: its change time (ctime) tells
    os.utime(data, (hour_ago, hour_ago))
    assert "environment changed" in localpipe("status", "pipeline.py", check=True).stdout
    os.utime(data)  # an edit as an editor makes it: a new modification time
    assert "environment changed" in localpipe("status", "pipeline.py", check=True).stdout
