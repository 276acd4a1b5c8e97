"""Environments that install packages (issue 13): built once per definition in the machine's
cache, with uv, from wheels made here (no package index), run by real `localpipe` processes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.defect_helpers import popen_localpipe, query, step_rows
from tests.wheels import make_wheel, offline_index

PIPELINE = """
from azureml.core import Environment, Workspace
from azureml.core.conda_dependencies import CondaDependencies
from azureml.core.runconfig import RunConfiguration
from azureml.pipeline.core import Pipeline
from azureml.pipeline.steps import PythonScriptStep

ws = Workspace.from_config()


def config(name, pip=None, conda=None, **options):
    rc = RunConfiguration()
    rc.environment = Environment(name)
    rc.environment.python.conda_dependencies = CondaDependencies.create(
        pip_packages=pip, conda_packages=conda, **options
    )
    return rc


{steps}
pipeline = Pipeline(ws, steps)
"""

USES_TINY = """
import sys
import lp_tiny
from azureml.core import Run
print("lp_tiny", lp_tiny.VERSION, "python", sys.executable)
Run.get_context().log("tiny_version", lp_tiny.VERSION)
"""


@pytest.fixture(scope="module")
def wheels(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("wheels")
    make_wheel(folder, "lp-tiny", "1.0", "VERSION = 1\n")
    make_wheel(folder, "lp-tiny", "2.0", "VERSION = 2\n")
    make_wheel(folder, "lp-other", "1.0", "VERSION = 1\n")
    make_wheel(folder, "lp-needs-old", "1.0", "", requires=["lp-tiny==1.0"])
    make_wheel(folder, "lp-single", "1.0", "VERSION = 1\n", single_file=True)
    return folder


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    """A machine cache of this test's own, so that every build here is a first build."""
    folder = tmp_path / "cache"
    monkeypatch.setenv("LOCALPIPE_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def submit(localpipe, wheels, cache):
    def run(*args, env=None, timeout=180):
        return localpipe("submit", *args, env={**offline_index(wheels), **(env or {})}, timeout=timeout)

    return run


def one_step(runconfig: str, script: str = "uses.py") -> str:
    """The steps of a pipeline of one step "s" running ``script`` with the run configuration ``runconfig``."""
    return f'steps = [PythonScriptStep("{script}", source_directory="src", name="s", runconfig={runconfig})]'


def built(cache: Path) -> list[dict]:
    """The metadata of each environment in the cache."""
    folder = cache / "envs"
    return [
        json.loads((entry / "localpipe-env.json").read_text())
        for entry in sorted(folder.iterdir())
        if not entry.name.startswith(".")
    ]


def counting_uv(tmp_path: Path) -> tuple[Path, Path]:
    """A uv that records each `uv venv` it is asked for, then runs the real uv."""
    from localpipe.envs.build import find_uv

    counter = tmp_path / "venvs.log"
    wrapper = tmp_path / "uv"
    wrapper.write_text(f'#!/bin/sh\n[ "$1" = venv ] && echo $$ >> {counter}\nexec {find_uv()} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper, counter


def test_a_step_runs_in_its_environment_and_another_step_does_not_see_its_packages(ws, project, submit, cache):
    """The package lp-tiny exists only in the environment built for "tiny"; the step without that
    environment runs on localpipe's interpreter, where importing it fails."""
    project("src/uses.py", USES_TINY)
    steps = """
steps = [
    PythonScriptStep("uses.py", source_directory="src", name="inside", runconfig=config("tiny", pip=["lp-tiny==1.0"])),
    PythonScriptStep("uses.py", source_directory="src", name="outside"),
]
"""
    project("pipe.py", PIPELINE.format(steps=steps))
    # FORCE_COLOR, as a Jupyter kernel has it: uv's freeze must still give plain package names.
    proc = submit("pipe.py", "--continue-on-step-failure", env={"FORCE_COLOR": "1"})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rows = step_rows(ws.root, 1)
    assert rows["inside"][0] == "Completed", rows
    assert rows["outside"][0] == "Failed", rows
    inside = (ws.root / ".localpipe/runs/1/inside/stdout.log").read_text()
    environment = built(cache)[0]
    assert f"lp_tiny 1 python {environment['path']}/bin/python" in inside
    assert "lp-tiny==1.0" in environment["packages"]
    assert "No module named 'lp_tiny'" in (ws.root / ".localpipe/runs/1/outside/stderr.log").read_text()
    # Run.get_context() in the built environment logged its metric
    assert query(ws.root, "SELECT value FROM metric WHERE name = 'tiny_version'") == [("1",)]
    # history.db keeps what the build installed, and which step ran in it
    assert query(ws.root, "SELECT id, digest, packages FROM environment_build") == [
        (1, environment["digest"], json.dumps(environment["packages"]))
    ]
    assert query(ws.root, "SELECT environment FROM step_run WHERE name = 'inside'") == [(1,)]
    shown = subprocess.run(
        [sys.executable, "-m", "localpipe", "show", "1"], cwd=ws.root, capture_output=True, text=True
    ).stdout
    assert f'environment "tiny" {environment["digest"][:12]} (Python' in shown
    assert f"{environment['path']}/localpipe-build.log" in shown


def test_the_same_definition_under_two_names_is_built_once(ws, project, submit, cache, tmp_path):
    wrapper, counter = counting_uv(tmp_path)
    project("src/uses.py", USES_TINY)
    steps = """
steps = [
    PythonScriptStep("uses.py", source_directory="src", name="one", runconfig=config("first", pip=["lp-tiny"])),
    PythonScriptStep("uses.py", source_directory="src", name="two", runconfig=config("second", pip=["lp-tiny"]),
                     arguments=["two"]),
]
"""
    project("pipe.py", PIPELINE.format(steps=steps))
    proc = submit("pipe.py", env={"LOCALPIPE_UV": str(wrapper)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert len(built(cache)) == 1
    assert len(counter.read_text().split()) == 1
    # A second pipeline of another workspace file, same definition: nothing built.
    project("pipe2.py", PIPELINE.format(steps=steps.replace('"two"]', '"three"]')))
    proc = submit("pipe2.py", env={"LOCALPIPE_UV": str(wrapper)})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "building" not in proc.stdout
    assert len(counter.read_text().split()) == 1


@pytest.mark.timeout(300)
def test_eight_concurrent_submitters_needing_one_new_environment_build_it_once(ws, project, wheels, cache, tmp_path):
    """Eight different pipelines (so that none reuses another's step) need the same new
    environment at once: one process builds it, the others wait for that build and use it."""
    wrapper, counter = counting_uv(tmp_path)
    project("src/uses.py", USES_TINY)
    for i in range(8):
        steps = f"""
steps = [PythonScriptStep("uses.py", source_directory="src", name="s{i}", arguments=["{i}"],
                          runconfig=config("tiny", pip=["lp-tiny==2.0"]))]
"""
        project(f"pipe{i}.py", PIPELINE.format(steps=steps))
    env = {**offline_index(wheels), "LOCALPIPE_UV": str(wrapper)}
    procs = [popen_localpipe(ws.root, "submit", f"pipe{i}.py", env=env) for i in range(8)]
    outs = [proc.communicate(timeout=240) for proc in procs]
    assert [p.returncode for p in procs] == [0] * 8, outs
    assert len(counter.read_text().split()) == 1, counter.read_text()
    assert len(built(cache)) == 1
    assert query(ws.root, "SELECT COUNT(*) FROM step_run WHERE status = 'Completed'") == [(8,)]
    logs = [(ws.root / f".localpipe/runs/{n}").glob("*/stdout.log") for n in range(1, 9)]
    assert all("lp_tiny 2" in next(found).read_text() for found in logs)


@pytest.mark.timeout(300)
def test_a_build_killed_at_any_moment_is_never_reused_half_made(ws, project, wheels, cache, tmp_path):
    """SIGKILL to the submitting process at random moments of a build (and once while the
    installer runs for good): afterwards the environment is either absent or whole, and the next
    submission runs the step in a working one."""
    project("src/uses.py", USES_TINY)
    steps = one_step('config("t", pip=["lp-tiny"])')
    project("pipe.py", PIPELINE.format(steps=steps))
    slow = tmp_path / "slow-uv"
    from localpipe.envs.build import find_uv

    slow.write_text(f'#!/bin/sh\n[ "$2" = install ] && exec sleep 600\nexec {find_uv()} "$@"\n')
    slow.chmod(0o755)
    env = offline_index(wheels)
    rng = random.Random(13)
    for attempt, uv in enumerate([slow, None, None, None]):
        extra = {"LOCALPIPE_UV": str(uv)} if uv else {}
        proc = popen_localpipe(ws.root, "submit", "pipe.py", env={**env, **extra}, start_new_session=True)
        if uv:
            wait_for(lambda: list((cache / "envs" / ".building").glob("*-*")), timeout=30, what="the build to start")
            time.sleep(0.5)
        else:
            time.sleep(rng.uniform(0.0, 0.6))
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        for environment in built(cache):
            python = Path(environment["path"]) / "bin" / "python"
            assert subprocess.run([python, "-c", "import lp_tiny"]).returncode == 0, attempt
        if built(cache):
            break
    proc = popen_localpipe(ws.root, "submit", "pipe.py", env=env)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    assert len(built(cache)) == 1
    last = query(ws.root, "SELECT MAX(id) FROM pipeline_run")[0][0]
    assert step_rows(ws.root, last)["s"][0] in ("Completed", "Reused")
    assert not [p for p in (cache / "envs" / ".building").glob("*-*") if p.is_dir()]


def test_changing_a_package_reruns_the_steps_of_that_environment_only(ws, project, submit):
    project("src/uses.py", USES_TINY)
    project("src/plain.py", "print('plain')\n")
    steps = """
steps = [
    PythonScriptStep("uses.py", source_directory="src", name="tiny", runconfig=config("t", pip=["lp-tiny==1.0"])),
    PythonScriptStep("plain.py", source_directory="src", name="plain"),
]
"""
    project("pipe.py", PIPELINE.format(steps=steps))
    assert submit("pipe.py").returncode == 0
    project("pipe.py", PIPELINE.format(steps=steps.replace("lp-tiny==1.0", "lp-tiny==2.0")))
    proc = submit("pipe.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rows = step_rows(ws.root, 2)
    assert rows["tiny"] == ("Completed", "runs: environment changed"), rows
    assert rows["plain"][0] == "Reused", rows
    assert "lp_tiny 2" in (ws.root / ".localpipe/runs/2/tiny/stdout.log").read_text()
    # the name is not part of the definition: renaming the environment reuses
    project("pipe.py", PIPELINE.format(steps=steps.replace("lp-tiny==1.0", "lp-tiny==2.0").replace('"t"', '"u"')))
    assert submit("pipe.py").returncode == 0
    assert step_rows(ws.root, 3)["tiny"][0] == "Reused"


@pytest.mark.parametrize(
    "packages, culprit",
    [(["lp-missing-package==9"], "lp-missing-package"), (["lp-needs-old", "lp-tiny==2.0"], "lp-tiny")],
    ids=["unknown-package", "version-conflict"],
)
def test_a_failed_build_fails_its_steps_with_the_installer_error_and_keeps_its_log(
    ws, project, submit, cache, packages, culprit
):
    project("src/uses.py", USES_TINY)
    project("src/after.py", "print('after')\n")
    steps = """
from azureml.pipeline.core import PipelineData
data = PipelineData("data")
first = PythonScriptStep("uses.py", source_directory="src", name="first", outputs=[data], arguments=[data],
                         runconfig=config("broken", pip={packages}))
then = PythonScriptStep("after.py", source_directory="src", name="then", inputs=[data])
steps = [first, then]
""".replace("{packages}", repr(packages))
    project("pipe.py", PIPELINE.format(steps=steps))
    proc = submit("pipe.py")
    assert proc.returncode == 1
    rows = step_rows(ws.root, 1)
    status, reason = rows["first"]
    assert status == "Failed"
    assert reason.startswith('environment "broken" could not be built: ')
    assert culprit in reason
    assert rows["then"][0] == "Canceled", rows
    assert built(cache) == []
    logs = list((cache / "envs" / ".failed").glob("*.log"))
    assert len(logs) == 1 and str(logs[0]) in reason
    assert culprit in logs[0].read_text()


@pytest.mark.parametrize(
    "options, culprit",
    [
        ('conda=["cudatoolkit=11.0"]', 'conda package "cudatoolkit" has no PyPI equivalent'),
        ('python_version="2.5"', "Python 2.5 is not on this machine (found: "),
        ('python_version="three"', 'python version "three" is not a version'),
    ],
)
def test_a_definition_this_machine_cannot_build_is_refused_before_anything_runs(ws, project, submit, options, culprit):
    project("src/uses.py", USES_TINY)
    steps = (
        f'steps = [PythonScriptStep("uses.py", source_directory="src", name="s", runconfig=config("odd", {options}))]'
    )
    project("pipe.py", PIPELINE.format(steps=steps))
    proc = submit("pipe.py")
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and culprit in lines[0], proc.stderr
    assert 'environment "odd"' in lines[0]
    assert query(ws.root, "SELECT COUNT(*) FROM pipeline_run") == [(0,)]


def test_a_missing_python_version_takes_the_closest_when_asked(ws, project, submit, cache):
    project("src/version.py", "import sys\nprint('python', sys.version_info[:2])\n")
    steps = one_step('config("old", python_version="2.5")', "version.py")
    project("pipe.py", PIPELINE.format(steps=steps))
    proc = submit("pipe.py", env={"LOCALPIPE_PYTHON_FALLBACK": "closest"})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert built(cache)[0]["python"].startswith(("2.", "3."))


def test_conda_packages_install_from_pypi_with_their_versions(ws, project, submit, cache):
    project("src/uses.py", USES_TINY)
    steps = one_step('config("c", conda=["lp-tiny=1"])')
    project("pipe.py", PIPELINE.format(steps=steps))
    proc = submit("pipe.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "lp-tiny==1.0" in built(cache)[0]["packages"]


def test_environments_from_a_requirements_file_and_a_conda_specification(ws, project, submit, cache):
    project("src/uses.py", USES_TINY)
    project("requirements.txt", "# pinned\nlp-tiny==2.0\nlp-other\n")
    project("env.yml", "name: x\ndependencies:\n  - python=3\n  - pip:\n    - lp-tiny==1.0\n    - azureml-defaults\n")
    steps = """
from azureml.core import Environment
pip_env, conda_env = RunConfiguration(), RunConfiguration()
pip_env.environment = Environment.from_pip_requirements("from-pip", "requirements.txt")
conda_env.environment = Environment.from_conda_specification("from-conda", "env.yml")
steps = [
    PythonScriptStep("uses.py", source_directory="src", name="pip", runconfig=pip_env),
    PythonScriptStep("uses.py", source_directory="src", name="conda", runconfig=conda_env),
]
"""
    project("pipe.py", PIPELINE.format(steps=steps))
    proc = submit("pipe.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "lp_tiny 2" in (ws.root / ".localpipe/runs/1/pip/stdout.log").read_text()
    assert "lp_tiny 1" in (ws.root / ".localpipe/runs/1/conda/stdout.log").read_text()
    by_name = {b["name"]: b for b in built(cache)}
    assert by_name["from-conda"]["dropped"] == ["azureml-defaults (localpipe provides it)"]
    assert (
        "left out: azureml-defaults (localpipe provides it)"
        in Path(by_name["from-conda"]["path"], "localpipe-build.log").read_text()
    )


def test_envs_lists_the_builds_and_gc_envs_removes_the_unused_ones(ws, project, submit, localpipe, cache):
    project("src/uses.py", USES_TINY)
    steps = one_step('config("t", pip=["lp-tiny"])')
    project("pipe.py", PIPELINE.format(steps=steps))
    assert submit("pipe.py").returncode == 0
    listed = json.loads(localpipe("envs", "--json", check=True).stdout)
    assert [(e["name"], e["python"]) for e in listed] == [("t", built(cache)[0]["python"])]
    assert listed[0]["last_used"] is not None
    text = localpipe("envs", check=True).stdout
    assert listed[0]["digest"][:12] in text and " t " in text
    kept = localpipe("gc", "--envs", "--older-than", "1d", check=True).stdout
    assert "freed 0 B: 0 environments" in kept and len(built(cache)) == 1
    dry = localpipe("gc", "--envs", "--older-than", "0s", "--dry-run", check=True).stdout
    assert 'would remove environment "t"' in dry and len(built(cache)) == 1
    assert "1 environments" in localpipe("gc", "--envs", "--older-than", "0s", check=True).stdout
    assert built(cache) == []
    proc = submit("pipe.py")  # the step is reused: nothing needs the environment
    assert proc.returncode == 0 and "building" not in proc.stdout


def test_curated_environments_resolve_and_an_unknown_curated_name_lists_them(ws, project, submit, cache):
    project("src/plain.py", "import sys\nprint(sys.prefix)\n")
    steps = """
from azureml.core import Environment
rc = RunConfiguration()
rc.environment = Environment.get(ws, "AzureML-Minimal")
assert "AzureML-Tutorial" in Environment.list(ws)
assert Environment.get(ws, "azureml-sklearn-1.5").name == "AzureML-sklearn-1.5"  # any case, as on Azure
steps = [PythonScriptStep("plain.py", source_directory="src", name="s", runconfig=rc)]
"""
    project("pipe.py", PIPELINE.format(steps=steps))
    proc = submit("pipe.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # AzureML-Minimal installs only what localpipe provides: the step runs on localpipe's interpreter
    assert not (cache / "envs").exists() or built(cache) == []
    assert sys.prefix in (ws.root / ".localpipe/runs/1/s/stdout.log").read_text()
    project("pipe.py", PIPELINE.format(steps=steps.replace("AzureML-Minimal", "AzureML-Nope")))
    proc = submit("pipe.py")
    assert proc.returncode == 2
    assert (
        'curated environment "AzureML-Nope" does not exist: use one of AzureML-Minimal, AzureML-Tutorial' in proc.stderr
    )


def test_build_without_uv_uses_venv_and_pip(ws, project, submit, cache):
    project("src/uses.py", USES_TINY)
    steps = one_step('config("t", pip=["lp-tiny==2.0"])')
    project("pipe.py", PIPELINE.format(steps=steps))
    proc = submit("pipe.py", env={"LOCALPIPE_UV": "none"}, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "lp_tiny 2" in (ws.root / ".localpipe/runs/1/s/stdout.log").read_text()
    assert "-m pip install" in Path(built(cache)[0]["path"], "localpipe-build.log").read_text()


def test_environment_variables_are_set_for_the_step_and_part_of_its_key(ws, project, submit):
    project("src/env.py", "import os\nprint('vars', os.environ['GREETING'], os.environ['OTHER'])\n")
    steps = """
from azureml.core import Environment
rc = RunConfiguration()
rc.environment = Environment("plain")
rc.environment.environment_variables = {"GREETING": "hello"}
rc.environment_variables = {"OTHER": "there"}
steps = [PythonScriptStep("env.py", source_directory="src", name="s", runconfig=rc)]
"""
    project("pipe.py", PIPELINE.format(steps=steps))
    assert submit("pipe.py").returncode == 0
    assert "vars hello there" in (ws.root / ".localpipe/runs/1/s/stdout.log").read_text()
    project("pipe.py", PIPELINE.format(steps=steps.replace('"there"', '"you"')))
    assert submit("pipe.py").returncode == 0
    assert step_rows(ws.root, 2)["s"] == ("Completed", "runs: environment changed")
    assert "vars hello you" in (ws.root / ".localpipe/runs/2/s/stdout.log").read_text()


# -- what a hostile review of the first version found ---------------------------------------------


def test_the_sdks_workspace_calls_work_in_a_built_environment(ws, project, submit):
    """run.experiment.workspace, run.parent and Dataset.get_by_name reach history.db, whose
    library (peewee) the built environment does not have: localpipe's own comes after its packages."""
    project(
        "src/sdk.py",
        "from azureml.core import Dataset, Run\n"
        "import lp_tiny\n"
        "run = Run.get_context()\n"
        "ws = run.experiment.workspace\n"
        "print('parent', run.parent.id, 'workspace', ws.name)\n"
        "try:\n"
        "    Dataset.get_by_name(ws, 'nothing-registered')\n"
        "except Exception as exc:\n"
        "    print('lookup', type(exc).__name__)\n",
    )
    project("pipe.py", PIPELINE.format(steps=one_step('config("t", pip=["lp-tiny"])', "sdk.py")))
    proc = submit("pipe.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = (ws.root / ".localpipe/runs/1/s/stdout.log").read_text()
    assert f"parent 1 workspace {ws.root.name}" in out and "lookup NotFoundError" in out, out


def test_a_pythonpath_variable_keeps_localpipes_runtime_first(ws, project, submit):
    project("src/path.py", "import os\nfrom azureml.core import Run\nprint(os.environ['PYTHONPATH'])\n")
    steps = """
rc = config("t", pip=["lp-tiny"])
rc.environment_variables = {"PYTHONPATH": "/opt/mine", "PATH": "/opt/bin"}
steps = [PythonScriptStep("path.py", source_directory="src", name="s", runconfig=rc)]
"""
    project("pipe.py", PIPELINE.format(steps=steps))
    proc = submit("pipe.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (ws.root / ".localpipe/runs/1/s/stdout.log").read_text().strip().endswith(":/opt/mine")


def test_a_step_that_changes_its_environment_gets_it_rebuilt_before_the_next_use(ws, project, submit, cache):
    """A step that installs into the shared environment (here: drops a module into site-packages,
    as pip install would) does not leave that change to later runs."""
    project(
        "src/inject.py",
        "import site, pathlib\npathlib.Path(site.getsitepackages()[0], 'injected.py').write_text('X = 1')\n",
    )
    project(
        "src/check.py", "import importlib.util\nprint('injected', importlib.util.find_spec('injected') is not None)\n"
    )
    project("one.py", PIPELINE.format(steps=one_step('config("t", pip=["lp-tiny"])', "inject.py")))
    project("two.py", PIPELINE.format(steps=one_step('config("t", pip=["lp-tiny"])', "check.py")))
    assert submit("one.py").returncode == 0
    proc = submit("two.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "building" in proc.stdout  # rebuilt
    assert "injected False" in (ws.root / ".localpipe/runs/2/s/stdout.log").read_text()
    assert len(built(cache)) == 1


def test_a_step_importing_a_module_of_site_packages_itself_does_not_change_its_environment(ws, project, submit, cache):
    """Importing a module that is a file of site-packages (six, threadpoolctl, which scikit-learn
    imports) makes Python write site-packages/__pycache__: that was taken for a package installed
    by the step, and the environment was rebuilt before every next use."""
    project("src/single.py", "import lp_single\nprint('single', lp_single.VERSION)\n")
    project("pipe.py", PIPELINE.format(steps=one_step('config("t", pip=["lp-single"])', "single.py")))
    writes = {"PYTHONDONTWRITEBYTECODE": ""}  # as Python runs by default
    for attempt in range(3):
        proc = submit("pipe.py", "--regenerate-outputs", env=writes)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert ("building" in proc.stdout) == (attempt == 0), (attempt, proc.stdout)
    assert "single 1" in (ws.root / ".localpipe/runs/3/s/stdout.log").read_text()


def test_gc_envs_keeps_an_environment_a_run_uses(ws, project, wheels, cache, localpipe):
    gate = ws.root / "gate"
    project("src/wait.py", f"import os, time\nwhile not os.path.exists({str(gate)!r}):\n    time.sleep(0.05)\n")
    project("pipe.py", PIPELINE.format(steps=one_step('config("t", pip=["lp-tiny"])', "wait.py")))
    run = popen_localpipe(ws.root, "submit", "pipe.py", env=offline_index(wheels))
    try:
        wait_for(lambda: query(ws.root, "SELECT status FROM step_run") == [("Running",)], timeout=60)
        swept = localpipe("gc", "--envs", "--older-than", "0s", check=True).stdout
        assert 'kept environment "t"' in swept and "freed 0 B: 0 environments" in swept, swept
        assert len(built(cache)) == 1
    finally:
        gate.write_text("go")
        out, err = run.communicate(timeout=60)
    assert run.returncode == 0, out + err
    assert "1 environments" in localpipe("gc", "--envs", "--older-than", "0s", check=True).stdout


def test_a_moved_cache_is_used_where_it_now_is(ws, project, submit, cache, monkeypatch, tmp_path):
    project("src/uses.py", USES_TINY)
    project("one.py", PIPELINE.format(steps=one_step('config("t", pip=["lp-tiny"])')))
    assert submit("one.py").returncode == 0
    moved = tmp_path / "moved"
    os.rename(cache, moved)
    monkeypatch.setenv("LOCALPIPE_CACHE_DIR", str(moved))
    project(
        "two.py", PIPELINE.format(steps=one_step('config("t", pip=["lp-tiny"])').replace('"s"', '"t", arguments=["2"]'))
    )
    proc = submit("two.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "building" not in proc.stdout
    assert f"python {moved}/envs/" in (ws.root / ".localpipe/runs/2/t/stdout.log").read_text()


@pytest.mark.parametrize("metadata", ["{not json", "[]", "packages: null", "size: text"])
def test_a_damaged_environment_folder_is_built_again(ws, project, submit, cache, localpipe, metadata):
    """Metadata that is JSON of another shape (a list, a field null) was a traceback of submit (its
    run Failed), `localpipe envs` and `gc --envs`, where unreadable metadata is a damaged folder."""
    project("src/uses.py", USES_TINY)
    project("pipe.py", PIPELINE.format(steps=one_step('config("t", pip=["lp-tiny"])')))
    assert submit("pipe.py").returncode == 0
    (folder,) = [p for p in (cache / "envs").iterdir() if not p.name.startswith(".")]
    if ": " in metadata:  # one field of the real metadata changed
        field, value = metadata.split(": ")
        fields = json.loads((folder / "localpipe-env.json").read_text())
        metadata = json.dumps({**fields, field: json.loads(value) if value == "null" else value})
    (folder / "localpipe-env.json").write_text(metadata)
    listed = localpipe("envs")
    assert listed.returncode == 0 and "no environment built yet" in listed.stdout, listed.stdout + listed.stderr
    project("src/uses.py", USES_TINY + "# changed\n")
    proc = submit("pipe.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "building" in proc.stdout and len(built(cache)) == 1
    (folder / "localpipe-env.json").write_text(metadata)
    swept = localpipe("gc", "--envs", "--older-than", "0s")
    assert swept.returncode == 0 and "removed damaged environment folder" in swept.stdout, swept.stdout + swept.stderr


def test_show_names_the_build_a_step_ran_in_after_a_rebuild(ws, project, localpipe, cache, tmp_path):
    """Rebuilt (gc, then a new version in the index), a definition with an unpinned package installs
    another version: each run keeps the build it ran in."""
    index = tmp_path / "index"
    make_wheel(index, "lp-tiny", "1.0", "VERSION = 1\n")
    env = offline_index(index)
    project("src/uses.py", USES_TINY)
    steps = one_step('config("t", pip=["lp-tiny"])').replace("runconfig=", "allow_reuse=False, runconfig=")
    project("pipe.py", PIPELINE.format(steps=steps))
    localpipe("submit", "pipe.py", env=env, check=True)
    localpipe("gc", "--envs", "--older-than", "0s", check=True)
    make_wheel(index, "lp-tiny", "2.0", "VERSION = 2\n")
    localpipe("submit", "pipe.py", env=env, check=True)
    first, second = (
        json.loads(localpipe("show", run, "--json", check=True).stdout)["steps"][0]["environment_build"]
        for run in (1, 2)
    )
    assert "lp-tiny==1.0" in first["packages"] and "lp-tiny==2.0" in second["packages"]
    assert first["digest"] == second["digest"] and first["built_at"] < second["built_at"]


def test_a_killed_installer_is_the_reason_and_waiters_of_a_failed_build_do_not_repeat_it(
    ws, project, wheels, cache, tmp_path
):
    from localpipe.envs.build import find_uv

    killer = tmp_path / "uv"
    counter = tmp_path / "venvs.log"
    gate = tmp_path / "gate"  # the installer is killed once every submitter waits for its build
    killer.write_text(
        f'#!/bin/sh\n[ "$1" = venv ] && echo $$ >> {counter}\n'
        f'[ "$2" = install ] && while [ ! -e {gate} ]; do sleep 0.05; done && kill -9 $$\n'
        f'exec {find_uv()} "$@"\n'
    )
    killer.chmod(0o755)
    project("src/uses.py", USES_TINY)
    for i in range(4):
        steps = one_step('config("t", pip=["lp-tiny"])').replace('name="s"', f'name="s{i}"')
        project(f"pipe{i}.py", PIPELINE.format(steps=steps))
    env = {**offline_index(wheels), "LOCALPIPE_UV": str(killer)}
    procs = [popen_localpipe(ws.root, "submit", f"pipe{i}.py", env=env) for i in range(4)]
    wait_for(
        lambda: query(ws.root, "SELECT COUNT(*) FROM step_run WHERE status = 'Preparing'") == [(4,)],
        timeout=60,
        what="every submitter to wait for the build",
    )
    gate.write_text("go")
    for proc in procs:
        proc.communicate(timeout=120)
    assert [p.returncode for p in procs] == [1] * 4
    reasons = [reason for (reason,) in query(ws.root, "SELECT reason FROM step_run")]
    assert all(r.startswith('environment "t" could not be built: ') for r in reasons), reasons
    assert any("was killed by SIGKILL" in r for r in reasons), reasons
    assert len(counter.read_text().split()) == 1  # one build tried; the three waiters reported it


# -- issue 14, item 7: the SDK's other ways to declare an environment, each run for real ----------

SHOWS = """
import importlib, os, sys
for name in sys.argv[1:]:
    print(name, importlib.import_module(name).VERSION)
print("GREETING", os.environ.get("GREETING"))
"""


def test_the_sdks_environment_forms_run_with_what_they_declare(ws, project, submit, cache, tmp_path):
    """A CondaDependencies built as the showcasing-dataset sample builds it, a saved run
    configuration loaded back, an environment folder, and a private wheel added to the workspace:
    each step imports what its environment declared."""
    from localpipe.sdk.conda import CondaDependencies
    from localpipe.sdk.environment import Environment
    from localpipe.sdk.runconfig import RunConfiguration

    project("src/show.py", SHOWS)
    make_wheel(ws.root / "dist", "lp-private", "1.0", "VERSION = 'private'\n")  # in no index
    saved = RunConfiguration(conda_dependencies=CondaDependencies.create(pip_packages=["lp-tiny==1.0"]))
    saved.environment_variables = {"GREETING": "saved"}
    saved.save(str(ws.root), "tiny.runconfig")
    folder_env = Environment("from-folder")
    folder_env.python.conda_dependencies.add_pip_package("lp-other")
    folder_env.save_to_directory(str(ws.root / "env_dir"))
    steps = """
from azureml.core import Environment
conda_dep = CondaDependencies()
conda_dep.add_pip_package("lp-tiny==2.0")
run_config = RunConfiguration(conda_dependencies=conda_dep)
loaded = RunConfiguration.load(".", "tiny.runconfig")
from_folder = RunConfiguration()
from_folder.environment = Environment.load_from_directory("env_dir")
private = RunConfiguration()
wheel = Environment.add_private_pip_wheel(ws, "dist/lp_private-1.0-py3-none-any.whl", exist_ok=True)
private.environment.python.conda_dependencies.add_pip_package(wheel)
steps = [
    PythonScriptStep("show.py", source_directory="src", name=name, runconfig=rc, arguments=[module])
    for name, rc, module in [
        ("sample", run_config, "lp_tiny"),
        ("loaded", loaded, "lp_tiny"),
        ("folder", from_folder, "lp_other"),
        ("private", private, "lp_private"),
    ]
]
"""
    project("pipe.py", PIPELINE.format(steps=steps))
    proc = submit("pipe.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    logs = {
        name: (ws.root / f".localpipe/runs/1/{name}/stdout.log").read_text()
        for name in ("sample", "loaded", "folder", "private")
    }
    assert "lp_tiny 2" in logs["sample"] and "GREETING None" in logs["sample"]
    assert "lp_tiny 1" in logs["loaded"] and "GREETING saved" in logs["loaded"]
    assert "lp_other 1" in logs["folder"]
    assert "lp_private private" in logs["private"]
    assert (ws.root / ".localpipe/private-packages/lp_private-1.0-py3-none-any.whl").is_file()


def test_add_private_pip_wheel_refuses_a_second_wheel_of_the_same_name(ws, tmp_path):
    from localpipe.errors import UserErrorException
    from localpipe.sdk.environment import Environment

    wheel = make_wheel(tmp_path / "a", "lp-private", "1.0", "VERSION = 1\n")
    kept = Environment.add_private_pip_wheel(ws, str(wheel))
    assert kept == str(ws.root / ".localpipe/private-packages/lp_private-1.0-py3-none-any.whl")
    other = make_wheel(tmp_path / "b", "lp-private", "1.0", "VERSION = 2\n")
    with pytest.raises(
        UserErrorException, match="A wheel with the name lp_private-1.0-py3-none-any.whl already exists"
    ):
        Environment.add_private_pip_wheel(ws, str(other))
    assert Environment.add_private_pip_wheel(ws, str(other), exist_ok=True) == kept  # the one there
    with pytest.raises(UserErrorException, match="Please make sure the wheel file exists at: nope.whl"):
        Environment.add_private_pip_wheel(ws, "nope.whl")


def test_max_run_duration_seconds_is_the_steps_time_limit(ws, project, submit):
    project("src/slow.py", "import time\ntime.sleep(60)\n")
    steps = """
rc = RunConfiguration()
rc.max_run_duration_seconds = 1
steps = [PythonScriptStep("slow.py", source_directory="src", name="slow", runconfig=rc)]
"""
    project("pipe.py", PIPELINE.format(steps=steps))
    started = time.monotonic()
    proc = submit("pipe.py")
    assert proc.returncode == 1 and time.monotonic() - started < 45
    assert step_rows(ws.root, 1)["slow"] == ("Failed", "timed out after 1s")


def test_build_local_builds_the_environment_its_steps_then_use(ws, project, submit, wheels, cache, monkeypatch, capsys):
    from localpipe.sdk.conda import CondaDependencies
    from localpipe.sdk.environment import Environment

    for name, value in offline_index(wheels).items():
        monkeypatch.setenv(name, value)
    env = Environment("prebuilt")
    env.python.conda_dependencies = CondaDependencies.create(pip_packages=["lp-tiny==2.0"])
    env.register(ws).build_local(ws)  # the SDK's documented use: register, then build_local
    assert 'environment "prebuilt" (' in capsys.readouterr().out
    assert [b["name"] for b in built(cache)] == ["prebuilt"]
    Environment("plain").build_local(ws)
    assert "nothing to install, its steps run on" in capsys.readouterr().out

    project("src/uses.py", USES_TINY)
    steps = """
rc = RunConfiguration()
rc.environment = Environment.get(ws, "prebuilt")
steps = [PythonScriptStep("uses.py", source_directory="src", name="s", runconfig=rc)]
"""
    project("pipe.py", PIPELINE.format(steps=steps))
    proc = submit("pipe.py")
    assert proc.returncode == 0 and "building" not in proc.stdout, proc.stdout + proc.stderr
    assert "lp_tiny 2" in (ws.root / ".localpipe/runs/1/s/stdout.log").read_text()
    assert len(built(cache)) == 1


def test_the_build_error_is_read_from_a_log_uv_wrote_in_colour(tmp_path):
    """In a Jupyter kernel (FORCE_COLOR) uv colours its log: the reason is still its error and causes."""
    from localpipe.envs.build import last_error_line

    log = tmp_path / "build.log"
    log.write_text(
        "\x1b[1m\x1b[31merror\x1b[39m\x1b[0m\x1b[1m:\x1b[0m Failed to build `scikit-learn==0.22.1`\n"
        "  \x1b[1m\x1b[31mcause\x1b[39m\x1b[0m\x1b[1m:\x1b[0m The build backend returned an error\n"
        "\x1b[36m\x1b[1mhint\x1b[39m\x1b[1m:\x1b[0m add pkg_resources\n"
        "or `\x1b[32muv pip install pkg_resources\x1b[39m` into the environment\n"
    )
    assert last_error_line(log) == "Failed to build `scikit-learn==0.22.1`: The build backend returned an error"


def test_a_requirements_file_with_pip_compiles_hashes_builds(ws, project, submit, cache, wheels):
    """pip-compile --generate-hashes writes each pin with its hashes on continuation lines: they
    stay options of that requirement (they were glued onto its version: `lp-tiny==1.0--hash=...`)."""
    import hashlib

    tiny, other = (
        hashlib.sha256((wheels / f"{n}-1.0-py3-none-any.whl").read_bytes()).hexdigest() for n in ("lp_tiny", "lp_other")
    )
    project("src/uses.py", USES_TINY)
    project(
        "requirements.txt",
        f"lp-tiny==1.0 \\\n    --hash=sha256:{'0' * 64} \\\n    --hash=sha256:{tiny}\n    # via -r requirements.in\n"
        f"lp-other==1.0 ; python_version >= '3' \\\n    --hash=sha256:{other}\n",
    )
    steps = """
hashed = RunConfiguration()
hashed.environment = Environment.from_pip_requirements("hashed", "requirements.txt")
steps = [PythonScriptStep("uses.py", source_directory="src", name="s", runconfig=hashed)]
"""
    project("pipe.py", PIPELINE.format(steps=steps))
    proc = submit("pipe.py")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "lp_tiny 1" in (ws.root / ".localpipe/runs/1/s/stdout.log").read_text()
    project("requirements.txt", f"lp-tiny==1.0 --hash=sha256:{'0' * 64}\n")  # a hash that matches no file
    proc = submit("pipe.py")
    assert proc.returncode == 1 and "hash mismatch" in proc.stdout.lower(), proc.stdout + proc.stderr


def test_gc_envs_leaves_a_build_under_way_alone_and_removes_what_a_killed_one_left(
    ws, project, wheels, cache, localpipe, tmp_path
):
    """gc --envs --older-than removed the log and requirement list of a build older than that, which
    then failed ("the cache cannot be written"); the folder a killed build left stayed for good unless
    the same definition was built again."""
    from localpipe.envs.build import find_uv

    gate = tmp_path / "gate"
    slow = tmp_path / "slow-uv"  # installs once the gate is open
    slow.write_text(f'#!/bin/sh\nwhile [ ! -e {gate} ]; do sleep 0.05; done\nexec {find_uv()} "$@"\n')
    slow.chmod(0o755)
    project("src/uses.py", USES_TINY)
    project("pipe.py", PIPELINE.format(steps=one_step('config("t", pip=["lp-tiny"])')))
    building = cache / "envs" / ".building"
    abandoned = building / "0123456789abcdef0123456789abcdef-999999999-1"  # no such process
    (abandoned / "lib").mkdir(parents=True)
    (abandoned / "lib" / "big.so").write_bytes(b"x" * 1000)
    old = time.time() - 3600
    os.utime(abandoned, (old, old))
    run = popen_localpipe(ws.root, "submit", "pipe.py", env={**offline_index(wheels), "LOCALPIPE_UV": str(slow)})
    try:
        wait_for(lambda: len(list(building.glob("*.log"))) == 1, timeout=60, what="the build to start")
        time.sleep(1.2)
        swept = localpipe("gc", "--envs", "--older-than", "1s", check=True).stdout
    finally:
        gate.write_text("go")
        out, err = run.communicate(timeout=60)
    assert run.returncode == 0, out + err + swept
    assert not abandoned.exists(), swept
    assert "1 old build leftover" in swept, swept


def test_an_environment_in_a_read_only_cache_is_used(ws, project, submit, cache, wheels):
    """A cache this user cannot write to (one shared read-only, prepared by another): holding an
    environment in use opened its lock file for writing, a traceback of submit (its run Failed)."""
    project("src/uses.py", USES_TINY)
    project("pipe.py", PIPELINE.format(steps=one_step('config("t", pip=["lp-tiny"])')))
    assert submit("pipe.py").returncode == 0
    project("src/uses.py", USES_TINY + "# changed\n")
    if subprocess.run(["unshare", "-m", "true"], capture_output=True).returncode != 0:
        pytest.skip("no mount namespace here (unshare -m) to make the cache read-only in")
    command = f"mount --bind -o ro {cache} {cache} && exec {sys.executable} -m localpipe submit pipe.py"
    proc = subprocess.run(
        ["unshare", "-m", "sh", "-c", command],
        cwd=ws.root,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **offline_index(wheels)},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "building" not in proc.stdout and str(cache) in (ws.root / ".localpipe/runs/2/s/stdout.log").read_text()


def test_a_build_that_failed_is_not_tried_again_by_a_later_step_of_the_same_run(ws, project, submit, tmp_path):
    """A step that needs a definition whose build failed earlier in the run (here after another
    step, with --continue-on-step-failure) repeated the whole failing build."""
    wrapper, counter = counting_uv(tmp_path)
    project("src/uses.py", USES_TINY)
    project("src/slow.py", "import time\ntime.sleep(1.5)\n")
    steps = """
bad = config("bad", pip=["lp-missing-package"])
first = PythonScriptStep("uses.py", source_directory="src", name="first", runconfig=bad)
slow = PythonScriptStep("slow.py", source_directory="src", name="slow")
later = PythonScriptStep("uses.py", source_directory="src", name="later", runconfig=bad, arguments=["later"])
later.run_after(slow)
steps = [first, slow, later]
"""
    project("pipe.py", PIPELINE.format(steps=steps))
    proc = submit("pipe.py", "--continue-on-step-failure", env={"LOCALPIPE_UV": str(wrapper)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rows = step_rows(ws.root, 1)
    assert rows["first"][0] == rows["later"][0] == "Failed" and rows["slow"][0] == "Completed", rows
    assert "lp-missing-package" in rows["later"][1], rows
    assert len(counter.read_text().split()) == 1, proc.stdout
    assert proc.stdout.count(") building: log") == 1 and proc.stdout.count('environment "bad" (') == 3, proc.stdout
