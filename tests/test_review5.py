"""Hostile review of environment images, saved datasets' lifecycle, ParallelRunStep YAML saving
and the step supervisor's exit: each test here failed before its fix, but the supervisor's two
stress tests, which found no defect and keep its promise tested. The Docker ones are skipped where
no daemon answers (tests/test_docker.py makes the test image)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time

import pytest

from localpipe.sdk.environment import DockerBuildContext, Environment
from tests.conftest import wait_for
from tests.defect_helpers import popen_localpipe
from tests.test_docker import IMAGE, _docker, _read, docker_image  # noqa: F401  (a fixture)
from tests.test_docker_images import CONTEXT_PIPELINE


@pytest.mark.parametrize("target", ["/nonexistent/anywhere", "OUTSIDE"])
@pytest.mark.usefixtures("docker_image")
@pytest.mark.docker
def test_a_build_context_with_a_symlink_out_of_it_or_to_nothing_builds_as_docker_sends_the_link(
    ws, project, tmp_path, target
):
    # Docker sends a symlink as a link, never what it points to: a dangling one or one out of the
    # folder (node_modules/.bin, a link to a shared file) builds; its target text is what counts.
    outside = tmp_path / "outside.txt"
    outside.write_text("one")
    project("ctx/Dockerfile", f"FROM {IMAGE}\nRUN echo {ws.root} > /where\n")  # the link just lies there
    os.symlink(str(outside) if target == "OUTSIDE" else target, ws.root / "ctx" / "link")
    env = Environment.from_docker_build_context("linked", DockerBuildContext.from_local_directory(ws, ws.root / "ctx"))
    tag = env.get_image_details(ws).repository
    assert env.build(ws).built == [tag]
    outside.write_text("two")  # not in the context: nothing to rebuild
    assert env.get_image_details(ws).repository == tag
    os.unlink(ws.root / "ctx" / "link")
    os.symlink("/elsewhere", ws.root / "ctx" / "link")  # the link itself changed: a new image
    assert env.get_image_details(ws).repository != tag


@pytest.mark.usefixtures("docker_image")
@pytest.mark.docker
def test_an_edit_of_a_dockerfile_outside_its_context_rebuilds(ws, project):
    project("ctx/data.txt", "x\n")
    project("Dockerfile.outside", f"FROM {IMAGE}\nRUN echo {ws.root} one > /o\n")
    context = DockerBuildContext.from_local_directory(ws, ws.root / "ctx", dockerfile_path="../Dockerfile.outside")
    env = Environment.from_docker_build_context("outside", context)
    first = env.get_image_details(ws).repository
    project("Dockerfile.outside", f"FROM {IMAGE}\nRUN echo {ws.root} two > /o\n")
    assert env.get_image_details(ws).repository != first  # else the old image would run the new Dockerfile


BUILD = """
import json, sys
from localpipe import Workspace
from localpipe.sdk.environment import DockerBuildContext, Environment

ws = Workspace.from_config(path=sys.argv[1])
env = Environment.from_docker_build_context("both", DockerBuildContext.from_local_directory(ws, sys.argv[1] + "/ctx"))
print(json.dumps(env.build(ws).built))
"""


@pytest.mark.usefixtures("docker_image")
@pytest.mark.docker
def test_two_processes_building_one_context_at_once_build_it_once(ws, project):
    project("ctx/Dockerfile", f"FROM {IMAGE}\nRUN sleep 1 && echo {ws.root} > /where\n")
    project("build.py", BUILD)
    builders = [
        subprocess.Popen([sys.executable, "build.py", str(ws.root)], cwd=ws.root, stdout=subprocess.PIPE, text=True)
        for _ in range(3)
    ]
    built = sorted(json.loads(builder.communicate(timeout=120)[0]) for builder in builders)
    assert [len(tags) for tags in built] == [0, 0, 1]  # the others waited, then found the image


EDITED_PIPELINE = """
from azureml.core import Environment, Workspace
from azureml.core.environment import DockerBuildContext
from azureml.core.runconfig import RunConfiguration
from azureml.pipeline.core import Pipeline, PipelineData
from azureml.pipeline.steps import PythonScriptStep

ws = Workspace.from_config()
rc = RunConfiguration()
rc.environment = Environment.from_docker_build_context("ctx", DockerBuildContext.from_local_directory(ws, "ctx"))
ready = PipelineData("ready", datastore=ws.get_default_datastore())
first = PythonScriptStep("wait.py", source_directory="src", arguments=[ready], outputs=[ready], name="first")
second = PythonScriptStep("marker.py", source_directory="src", inputs=[ready], runconfig=rc, name="second")
pipeline = Pipeline(ws, [first, second])
"""


@pytest.mark.usefixtures("docker_image")
@pytest.mark.docker
def test_a_build_context_edited_after_planning_never_leaves_its_image_under_the_planned_digest(ws, project, localpipe):
    # The image is built when its step starts, maybe long after planning: built from the edited
    # folder but tagged with the planned digest, it came back, stale, once the edit was undone.
    project("ctx/Dockerfile", f"FROM {IMAGE}\nCOPY marker.txt /marker\nRUN echo {ws.root} > /where\n")
    project("ctx/marker.txt", "one\n")
    project("src/marker.py", "print('marker', open('/marker').read().strip())\n")
    project(
        "src/wait.py",
        "import os, sys, time\nos.makedirs(sys.argv[1], exist_ok=True)\nopen('started', 'w').close()\n"
        "while not os.path.exists('go'):\n    time.sleep(0.05)\n",
    )
    project("pipeline.py", EDITED_PIPELINE)
    submitter = subprocess.Popen(
        [sys.executable, "-m", "localpipe", "submit", "pipeline.py"], cwd=ws.root, stdout=subprocess.PIPE, text=True
    )
    first = ws.root / ".localpipe" / "runs" / "1" / "first"
    wait_for(lambda: (first / "started").exists() or list(first.rglob("started")), what="the first step to start")
    project("ctx/marker.txt", "two\n")  # while the run goes on: the second step's image is not built yet
    for started in first.rglob("started"):
        (started.parent / "go").touch()
    out, _ = submitter.communicate(timeout=120)
    second = ws.root / ".localpipe" / "runs" / "1" / "second"
    assert "changed since the run was planned" in (_read(second / "stderr.log") + out + _read(second / "reason.txt"))

    project("ctx/marker.txt", "one\n")  # undone: the planned digest again, and its image is the right one
    localpipe("submit", "pipeline.py", check=True)
    assert "marker one" in _read(ws.root / ".localpipe" / "runs" / "2" / "second" / "stdout.log")


FORKS_AND_LEAVES = """
import os, sys, time
kind = sys.argv[1]
if kind == "leave":  # a grandchild in a session of its own, then the step exits at once
    if os.fork() == 0:
        os.setsid()
        time.sleep(60)
        os._exit(0)
elif kind == "hop":  # a child that keeps forking, each new one in a session of its own
    if os.fork() == 0:
        while True:
            if os.fork():
                os._exit(0)
            os.setsid()
    time.sleep(60)
else:  # forks short-lived children in a loop, itself staying
    while True:
        if os.fork() == 0:
            os._exit(0)
        os.wait()
"""

RANDOM_KILL_PIPELINE = """
from localpipe import Pipeline, PythonScriptStep, Workspace
pipeline = Pipeline(Workspace.from_config(), [
    PythonScriptStep("step.py", name=kind, source_directory="src", arguments=[kind], allow_reuse=False)
    for kind in ("leave", "hop", "loop")
])
"""


@pytest.mark.timeout(120)
def test_a_scheduler_killed_at_random_moments_leaves_nothing_of_its_steps_running(ws, project):
    """SIGKILL of `localpipe submit` while its steps fork in loops, hop sessions and leave setsid
    grandchildren (being reparented to the supervisor as it learns its scheduler is gone): nothing
    of the workspace's steps runs afterwards, whatever the moment."""
    from tests.test_concurrency_defects import end_processes_of, processes_of

    project("src/step.py", FORKS_AND_LEAVES)
    project("p.py", RANDOM_KILL_PIPELINE)
    delays = random.Random(5).sample([i / 20 for i in range(4, 40)], 6)
    try:
        for delay in delays:
            submit = popen_localpipe(ws.root, "submit", "p.py")
            time.sleep(delay)
            submit.kill()
            submit.communicate()
            wait_for(lambda: not processes_of(ws), timeout=5, what=lambda d=delay: f"{d} s: left {processes_of(ws)}")
    finally:
        end_processes_of(ws)


@pytest.mark.timeout(120)
def test_runs_ending_as_their_steps_grandchildren_are_reparented_leave_nothing_running(ws, project, localpipe):
    """The supervisor exits at once when nothing is below it: a step that exits as its setsid
    grandchild is reparented must still take the grandchild with it, run after run."""
    from tests.test_concurrency_defects import end_processes_of, processes_of

    project("src/step.py", FORKS_AND_LEAVES)
    project("p.py", RANDOM_KILL_PIPELINE.replace('("leave", "hop", "loop")', '("leave",)'))
    try:
        for _ in range(6):
            localpipe("submit", "p.py", check=True)
            assert not processes_of(ws, scans=3)
    finally:
        end_processes_of(ws)


@pytest.mark.usefixtures("docker_image")
@pytest.mark.docker
def test_a_parallel_run_step_in_a_registered_docker_image_environment_saves_and_its_file_is_reused(
    ws, project, tmp_path
):
    # Its environment was matched without the machine's Docker: the image's id (planned from the
    # daemon) never equalled None, and every Docker-image environment read as "no registered one".
    from localpipe import Environment, Experiment, Pipeline
    from tests.test_pipeline_yaml import _parallel_pipeline, _statuses

    Environment.from_docker_image("indocker", IMAGE).register(ws)
    run = Experiment(ws, "yaml").submit(_parallel_pipeline(ws, project, Environment.get(ws, "indocker")))
    assert run.wait_for_completion() == "Completed"

    path = run.save(str(tmp_path / "docker.yml"))

    assert '"environment": "indocker"' in (tmp_path / "docker.score.parallel_run_config.yml").read_text()
    again = Experiment(ws, "yaml").submit(Pipeline.load_yaml(ws, path))
    assert again.wait_for_completion() == "Completed"
    assert _statuses(again) == {"score": f'reused from run {run.id} (step "score")'}


def test_a_build_context_that_cannot_be_used_is_one_problem_not_also_no_image(ws):
    from localpipe.plan.environments import resolve

    gone = DockerBuildContext(DockerBuildContext.LocationType.StorageAccount, str(ws.root / "gone"), "Dockerfile")
    found: list[str] = []
    resolve('step "s"', Environment.from_docker_build_context("gone", gone), None, found, {})
    assert found == [
        f'step "s": environment "gone": Docker build context {ws.root / "gone"} has no Dockerfile (the folder does '
        "not exist): add it, or pass dockerfile_path= to DockerBuildContext.from_local_directory"
    ]  # not also "runs in Docker but names no image: set docker.base_image", which it was never to have


@pytest.mark.usefixtures("docker_image")
@pytest.mark.docker
def test_get_image_details_and_build_refuse_in_one_line_naming_the_environment_once(ws):
    # It read: "the pipeline is invalid: environment "dig": environment "dig": Docker image ...",
    # of a call that has no pipeline.
    from localpipe.errors import UserErrorException

    absent = f"{IMAGE}@sha256:{'0' * 64}"
    env = Environment.from_docker_image("dig", absent)
    for call in (env.get_image_details, env.build):
        with pytest.raises(UserErrorException) as refused:
            call(ws)
        name = call.__name__
        assert str(refused.value) == (
            f'Environment.{name}: environment "dig": Docker image {absent} is not on this machine (localpipe pulls '
            f"nothing): docker pull {absent}, or docker load -i FILE.tar"
        )


@pytest.mark.usefixtures("docker_image")
@pytest.mark.docker
def test_a_build_context_holding_the_workspace_is_reused_and_never_sends_its_state(ws, project, localpipe):
    # DockerBuildContext.from_local_directory(ws, ".") beside a Dockerfile at the project's top: its
    # digest covered .localpipe/, which each submission changes (history.db, the run's folder), so
    # every run rebuilt the image and reran the step; the daemon was sent the object store too.
    project("src/marker.py", "import os\nprint('state in image:', os.path.exists('/app/.localpipe'))\n")
    project("Dockerfile", f"FROM {IMAGE}\nCOPY . /app\nRUN echo {ws.root} > /where\n")
    project("pipeline.py", CONTEXT_PIPELINE.replace('from_local_directory(ws, "ctx")', 'from_local_directory(ws, ".")'))
    first = localpipe("submit", "pipeline.py", check=True)
    assert "Completed" in first.stdout
    assert "state in image: False" in _read(ws.root / ".localpipe" / "runs" / "1" / "marker" / "stdout.log")
    again = localpipe("submit", "pipeline.py", check=True)
    assert "reused from run 1" in again.stdout


@pytest.mark.usefixtures("docker_image")
@pytest.mark.docker
def test_a_file_its_dockerignore_leaves_out_is_no_part_of_a_build_contexts_image(ws, project):
    # The daemon is never sent it: its edits (a log written as the runs go on, .git at each commit)
    # rebuilt the image and reran every step in it.
    project("ctx/Dockerfile", f"FROM {IMAGE}\nCOPY . /app\nRUN echo {ws.root} > /where\n")
    project("ctx/.dockerignore", "# not in the image\nlogs\n**/*.tmp\n!keep.tmp\n")
    project("ctx/logs/run.log", "one\n")
    project("ctx/deep/x.tmp", "one\n")
    project("ctx/keep.tmp", "one\n")
    env = Environment.from_docker_build_context(
        "ignoring", DockerBuildContext.from_local_directory(ws, ws.root / "ctx")
    )
    tag = env.get_image_details(ws).repository
    project("ctx/logs/run.log", "two\n")
    project("ctx/logs/new.log", "two\n")
    project("ctx/deep/x.tmp", "two\n")
    assert env.get_image_details(ws).repository == tag
    project("ctx/keep.tmp", "two\n")  # excepted from the pattern: sent, so it counts
    assert env.get_image_details(ws).repository != tag
    built = env.build(ws).image  # what the daemon was sent is what was hashed
    listed = _docker("run", "--rm", built, "sh", "-c", "cd /app && find . | sort").stdout.split()
    assert listed == [".", "./.dockerignore", "./Dockerfile", "./deep", "./keep.tmp"]


@pytest.mark.usefixtures("docker_image")
@pytest.mark.docker
def test_a_build_context_edited_once_the_daemon_has_it_builds_the_planned_image(ws, project):
    # The daemon was sent the folder as planned: an edit while it builds changes nothing of the
    # image, which was refused (and untagged) all the same.
    import threading

    project("ctx/Dockerfile", f"FROM {IMAGE}\nCOPY marker.txt /marker\nRUN sleep 2 && echo {ws.root} > /where\n")
    project("ctx/marker.txt", "one\n")
    env = Environment.from_docker_build_context("during", DockerBuildContext.from_local_directory(ws, ws.root / "ctx"))
    tag = env.get_image_details(ws).repository
    outcome: list = []
    builder = threading.Thread(target=lambda: outcome.append(_outcome(env.build, ws)))
    builder.start()
    running = ["ps", "--no-trunc", "--format", "{{.Command}}"]  # the RUN step's container
    wait_for(lambda: str(ws.root) in _docker(*running).stdout, what="the daemon to run the Dockerfile's RUN")
    project("ctx/marker.txt", "two\n")
    builder.join(60)
    assert outcome and outcome[0].built == [tag]
    assert _docker("run", "--rm", tag, "cat", "/marker").stdout == "one\n"


def _outcome(call, *args):
    try:
        return call(*args)
    except Exception as exc:  # noqa: BLE001  (the test says what it was)
        return exc


def test_a_build_context_with_a_file_name_that_is_not_utf8_is_hashed_as_docker_sends_it(ws, project):
    # Its digest raised UnicodeEncodeError (a traceback when planning); Docker sends such a name.
    from localpipe.plan.environments import resolve

    project("ctx/Dockerfile", f"FROM {IMAGE}\n")
    odd = os.path.join(os.fsencode(ws.root / "ctx"), b"caf\xe9.txt")
    with open(odd, "w") as handle:
        handle.write("one")
    os.symlink(b"caf\xe9.txt", os.path.join(os.fsencode(ws.root / "ctx"), b"link\xff"))
    env = Environment.from_docker_build_context("odd", DockerBuildContext.from_local_directory(ws, ws.root / "ctx"))

    def digest() -> str:
        found: list[str] = []
        planned = resolve('step "s"', env, None, found, {})
        assert found == []
        return planned["context_digest"]

    first = digest()
    with open(odd, "w") as handle:
        handle.write("two")
    assert digest() != first


@pytest.mark.usefixtures("docker_image")
@pytest.mark.docker
def test_a_published_parallel_run_step_in_a_docker_image_environment_with_packages_saves(ws, project, tmp_path):
    # Its packages layer's digest is of the image's id on this machine, which the writer's
    # planning (without the machine) has not: it was refused as "no registered one".
    from localpipe import CondaDependencies, Environment, Pipeline
    from tests.test_pipeline_yaml import _parallel_pipeline

    environment = Environment.from_docker_image("packaged", IMAGE)
    environment.python.user_managed_dependencies = False
    environment.python.conda_dependencies = CondaDependencies.create(pip_packages=["six==1.16.0"])
    environment.register(ws)
    published = _parallel_pipeline(ws, project, Environment.get(ws, "packaged")).publish("packaged")

    loaded = Pipeline.load_yaml(ws, published.save(str(tmp_path / "packaged.yml")))

    assert '"environment": "packaged"' in (tmp_path / "packaged.score.parallel_run_config.yml").read_text()
    machine = ("image_id", "packages_digest")  # what a plan without the daemon (load_yaml's) leaves out
    planned = [
        {k: v for k, v in graph.steps["score"].environment.items() if k not in machine}
        for graph in (loaded.graph, published.get_graph())
    ]
    assert planned[0] == planned[1] and planned[0]["packages"]["requirements"] == ["six==1.16.0"]


@pytest.mark.parametrize("when", ["create", "update"])
def test_a_schedule_given_a_dataset_as_a_pipeline_parameter_refuses_in_one_line(ws, project, when):
    # It raised "TypeError: Object of type FileDataset is not JSON serializable" from the database.
    from localpipe import Dataset, Pipeline, PipelineParameter, PythonScriptStep, Schedule, ScheduleRecurrence
    from localpipe.errors import UserErrorException
    from localpipe.sdk.data import DatasetConsumptionConfig

    project("src/see.py", "print('see')\n")
    project("a/a.txt", "a")
    project("b/b.txt", "b")
    default = Dataset.File.from_files(str(ws.root / "a"))
    consumed = DatasetConsumptionConfig("data", PipelineParameter("data", default_value=default)).as_mount()
    step = PythonScriptStep("see.py", name="see", source_directory=str(ws.root / "src"), arguments=[consumed])
    published = Pipeline(ws, [step]).publish("scheduled")
    every = ScheduleRecurrence(frequency="Hour", interval=1)
    other = {"data": Dataset.File.from_files(str(ws.root / "b"))}
    with pytest.raises(UserErrorException) as refused:
        if when == "create":
            Schedule.create(ws, "s", published.id, "exp", recurrence=every, pipeline_parameters=other)
        else:
            Schedule.create(ws, "s", published.id, "exp", recurrence=every).update(pipeline_parameters=other)
    assert str(refused.value) == (
        'pipeline_parameters "data" is a FileDataset, which a schedule keeps no form of (its parameters are '
        "strings, numbers and booleans): publish the pipeline with it as the parameter's default"
    )


def test_a_registered_environments_build_context_inside_the_workspace_moves_with_it(ws, project, tmp_path):
    # Saved datasets' paths inside the workspace are kept relative to it; a registered build
    # context's folder was kept absolute: the workspace moved, its environment named a folder gone.
    import shutil

    from localpipe import Workspace
    from localpipe.plan.environments import resolve
    from localpipe.state.history import close_all

    project("docker/ctx/Dockerfile", f"FROM {IMAGE}\n")
    context = DockerBuildContext.from_local_directory(ws, ws.root / "docker" / "ctx")
    Environment.from_docker_build_context("inside", context).register(ws)
    close_all()
    moved = tmp_path / "moved"
    shutil.move(ws.root, moved)

    there = Workspace.from_config(str(moved))
    found = Environment.get(there, "inside")
    assert found.docker.build_context.location == str(moved / "docker" / "ctx")
    problems: list[str] = []
    resolve('step "s"', found, None, problems, {})
    assert problems == []
    assert Environment.list(there)["inside"].docker.build_context.location == str(moved / "docker" / "ctx")
    assert found.register(there).version == "1"  # the same definition: no new version


@pytest.mark.usefixtures("docker_image")
@pytest.mark.docker
def test_a_step_in_a_build_contexts_image_is_reused_after_the_workspace_moved(ws, project, localpipe, tmp_path):
    # Its cache key held the context's folder, not only its content's digest: moved, every such
    # step ran again ("environment changed"), while the steps beside it were reused.
    import shutil

    from localpipe.state.history import close_all

    project("src/marker.py", "print('marker', open('/marker').read().strip())\n")
    project("ctx/Dockerfile", f"FROM {IMAGE}\nCOPY marker.txt /marker\nRUN echo {ws.root} > /where\n")
    project("ctx/marker.txt", "moved\n")
    project("pipeline.py", CONTEXT_PIPELINE)
    localpipe("submit", "pipeline.py", check=True)
    close_all()
    moved = tmp_path / "moved"
    shutil.move(ws.root, moved)
    again = localpipe("submit", "pipeline.py", check=True, cwd=moved)
    assert "reused from run 1" in again.stdout, again.stdout


def test_a_build_context_file_that_cannot_be_read_is_one_line_naming_it(tmp_path):
    # Row 260. Root reads every file, so the digest is made by a child that has given up root
    # (nobody's uid) where the tests run as root; the folder sits where that user can reach it.
    import tempfile

    from localpipe.errors import UsageError
    from localpipe.plan.environments import build_context_digest

    folder = tempfile.mkdtemp(prefix="localpipe-unreadable-")
    secret = os.path.join(folder, "secret.key")
    try:
        os.chmod(folder, 0o755)
        with open(os.path.join(folder, "Dockerfile"), "w") as handle:
            handle.write(f"FROM {IMAGE}\n")
        with open(secret, "w") as handle:
            handle.write("key")
        os.chmod(os.path.join(folder, "Dockerfile"), 0o644)
        build_context_digest(folder, "Dockerfile")  # readable: hashed (and the hash's module loaded before the fork)
        os.chmod(secret, 0o000)
        read, write = os.pipe()
        child = os.fork()
        if child == 0:  # pragma: no cover (the child reports through the pipe)
            os.close(read)
            message = "no error"
            try:
                if os.geteuid() == 0:
                    os.setgid(65534), os.setuid(65534)
                build_context_digest(folder, "Dockerfile")
            except UsageError as exc:
                message = str(exc)
            except BaseException as exc:
                message = f"{type(exc).__name__}: {exc}"
            os.write(write, message.encode())
            os._exit(0)
        os.close(write)
        with os.fdopen(read) as pipe:
            message = pipe.read()
        os.waitpid(child, 0)
        assert message == f"cannot read {secret}: Permission denied: fix its permissions"
    finally:
        subprocess.run(["rm", "-rf", folder], check=True)  # root: the unreadable file goes too
