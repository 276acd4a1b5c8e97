"""What a review found a forked step (executors/zygote.py) did differently from a new interpreter:
each test compares a run with ``LOCALPIPE_STEP_START=exec`` and one with the default (forked)."""

import shutil
import sqlite3
from pathlib import Path

import pytest

PIPELINE = """
from localpipe import Pipeline, PythonScriptStep, RunConfiguration, Workspace
envs = {envs!r}
steps = []
for name in {names!r}:
    config = RunConfiguration()
    config.environment_variables = envs.get(name, {{}})
    steps.append(
        PythonScriptStep(f"{{name}}.py", name=name, source_directory="src", allow_reuse=False, runconfig=config)
    )
pipeline = Pipeline(Workspace.from_config(), steps)
"""


def _compare(ws, project, localpipe, scripts: dict, envs: dict) -> dict:
    """Each step's (exit code, stdout, stderr) with exec and with fork: {name: (exec's, fork's)}."""
    for name, text in scripts.items():
        project(f"src/{name}.py", text)
    project("p.py", PIPELINE.format(names=list(scripts), envs=envs))
    return _submitted(ws, localpipe, scripts)


def _submitted(ws, localpipe, scripts) -> dict:
    seen = {}
    for start in ("exec", "fork"):
        proc = localpipe("submit", "p.py", "--continue-on-step-failure", env={"LOCALPIPE_STEP_START": start})
        db = sqlite3.connect(ws.root / ".localpipe" / "history.db")
        run = db.execute("SELECT max(id) FROM pipeline_run").fetchone()[0]
        codes = dict(db.execute("SELECT name, exit_code FROM step_run WHERE run_id = ?", (run,)))
        assert set(codes) == set(scripts), proc.stdout + proc.stderr
        folder = ws.root / ".localpipe" / "runs" / str(run)
        for name in scripts:
            logs = [folder / name / f"{s}.log" for s in ("stdout", "stderr")]
            text = [log.read_text().replace(str(folder), "RUN") if log.exists() else "" for log in logs]
            seen.setdefault(name, []).append((codes[name], *text))
    return seen


def test_pythonpath_with_an_empty_entry_and_pythonsafepath_give_the_path_a_new_interpreter_has(ws, project, localpipe):
    """An empty PYTHONPATH entry (``export PYTHONPATH=$PYTHONPATH:/x`` with none before) is the
    working directory, and PYTHONSAFEPATH leaves the script's folder out of sys.path."""
    probe = "import sys\nprint(sys.path[:4])\n"
    scripts = {"empty_entry": probe, "safe_path": probe}
    envs = {"empty_entry": {"PYTHONPATH": ":/tmp"}, "safe_path": {"PYTHONSAFEPATH": "1"}}
    for name, (fresh, forked) in _compare(ws, project, localpipe, scripts, envs).items():
        assert forked == fresh, name


def test_a_step_setting_ld_library_path_loads_its_libraries_from_there(ws, project, localpipe):
    """The dynamic loader reads LD_LIBRARY_PATH (and LD_PRELOAD, glibc's tunables) once, as the
    process starts: a zygote started without the step's value could not find its libraries."""
    libz = next(p for p in map(Path, ("/lib/x86_64-linux-gnu/libz.so.1", "/usr/lib/libz.so.1")) if p.exists())
    (ws.root / "lib").mkdir()
    shutil.copy(libz, ws.root / "lib" / "libmine.so")
    scripts = {"loads": "import ctypes\nctypes.CDLL('libmine.so')\nprint('loaded')\n"}
    envs = {"loads": {"LD_LIBRARY_PATH": str(ws.root / "lib")}}
    fresh, forked = _compare(ws, project, localpipe, scripts, envs)["loads"]
    assert fresh == (0, "loaded\n", "")
    assert forked == fresh


def test_main_s_attributes_and_a_script_with_a_null_byte_are_as_a_new_interpreter_has_them(ws, project, localpipe):
    """__main__ has __annotations__ (an empty dict) before the script's first line; a null byte in
    the source is Python's reader's to report (3.11 on) or stop at (before)."""
    scripts = {
        "attributes": "import __main__\nprint(sorted(vars(__main__)))\n",
        "null_byte": "print('before')\0\n",
    }
    for name, (fresh, forked) in _compare(ws, project, localpipe, scripts, {}).items():
        assert forked == fresh, name


PYENV = Path("/root/.pyenv/versions")


@pytest.mark.skipif(not list(PYENV.glob("3.8*")) or not list(PYENV.glob("3.13*")), reason="needs pyenv's 3.8 and 3.13")
def test_steps_on_python_3_8_and_3_13_see_what_their_new_interpreters_see(ws, project, localpipe):
    """On 3.8 __file__ (and the traceback's file names) is the script as given, not absolute; on
    3.13 ``python -c`` (the zygote) imports linecache, which a script's new interpreter does not."""
    probe = "import sys\nprint(__file__, sorted(sys.modules))\nraise ValueError\n"
    interpreters = {"py38": next(PYENV.glob("3.8*")), "py313": next(PYENV.glob("3.13*"))}
    project("src/linecache.py", "")  # the step's own module, shadowed by the zygote's linecache
    scripts = {name: probe for name in interpreters}
    project(
        "p.py",
        PIPELINE.format(names=list(scripts), envs={})
        + "from localpipe import Environment\n"
        + "".join(
            f"e = Environment({name!r}); e.python.user_managed_dependencies = True\n"
            f"e.python.interpreter_path = {str(path / 'bin' / 'python')!r}\n"
            f"steps[{i}].runconfig.environment = e\n"
            for i, (name, path) in enumerate(interpreters.items())
        ),
    )
    for name in scripts:
        project(f"src/{name}.py", probe)
    seen = _submitted(ws, localpipe, scripts)
    for name, (fresh, forked) in seen.items():
        assert fresh[0] == 1 and forked == fresh, name


def test_a_script_python_cannot_read_and_a_step_reporting_python_s_start_are_as_with_a_new_interpreter(
    ws, project, localpipe
):
    """Text that is not UTF-8 with no encoding declared is Python's reader's to report (in its
    words, not compile()'s); PYTHONVERBOSE and PYTHONPROFILEIMPORTTIME report the step's own start
    (not a zygote's end)."""
    project("src/latin.py", "")
    (ws.root / "src" / "latin.py").write_bytes(b"print('caf\xe9')\n")
    scripts = {"verbose": "print('hi')\n", "importtime": "print('hi')\n"}
    envs = {"verbose": {"PYTHONVERBOSE": "1"}, "importtime": {"PYTHONPROFILEIMPORTTIME": "1"}}
    project("p.py", PIPELINE.format(names=["latin", *scripts], envs=envs))
    for name, text in scripts.items():
        project(f"src/{name}.py", text)
    seen = _submitted(ws, localpipe, ["latin", *scripts])
    fresh, forked = seen["latin"]
    assert "Non-UTF-8 code starting with '\\xe9'" in fresh[2] and forked == fresh
    for name in scripts:
        imported = [  # the modules, without addresses and times
            [line.rsplit("|", 1)[-1].split(" #")[0].strip() for line in err.splitlines() if line.startswith("import")]
            for _, _, err in seen[name]
        ]
        assert "zipimport" in str(imported[0]) and imported[1] == imported[0], name


def test_a_script_named_with_dot_segments_has_the_file_name_a_new_interpreter_gives_it(ws, project, localpipe):
    """``script_name="./train.py"``: Python joins it to the working directory without normalizing it."""
    project("src/train.py", "import sys\nprint(__file__, sys.argv[0])\nraise ValueError\n")
    project("src/sub/other.py", "import sys\nprint(__file__, sys.argv[0])\n")
    project(
        "p.py",
        """
        from localpipe import Pipeline, PythonScriptStep, Workspace
        steps = [PythonScriptStep(script, name=name, source_directory="src", allow_reuse=False)
                 for name, script in (("dot", "./train.py"), ("up", "sub/../sub/other.py"))]
        pipeline = Pipeline(Workspace.from_config(), steps)
        """,
    )
    seen = _submitted(ws, localpipe, ["dot", "up"])
    assert seen["dot"][0][1].startswith("RUN/dot/snapshot/./train.py ./train.py")
    for name, (fresh, forked) in seen.items():
        assert forked == fresh, name


@pytest.mark.timeout(90)
def test_a_step_whose_zygote_cannot_take_it_is_spawned_and_its_end_and_memory_limit_are_seen(ws, project, localpipe):
    """A job too large for the zygote's socket (here an environment of 300 kB, which exec takes),
    or a zygote that cannot run (an interpreter without what zygote.py needs): the step is spawned
    instead. It was then still taken for the zygote's: its end never seen (the run hung) and its
    memory limit never set."""
    project("src/big.py", "import os\nprint(len(os.environ['BIG1']))\nblock = bytearray(600 * 2**20)\n")
    project(
        "p.py",
        """
        from localpipe import ComputeTarget, LocalCompute, Pipeline, PythonScriptStep, RunConfiguration, Workspace
        ws = Workspace.from_config()
        small = ComputeTarget.create(ws, "small", LocalCompute.provisioning_configuration(memory_per_step=256 * 2**20))
        config = RunConfiguration()
        config.environment_variables = {f"BIG{i}": "x" * 100_000 for i in range(3)}
        step = PythonScriptStep("big.py", name="big", source_directory="src", allow_reuse=False,
                                runconfig=config, compute_target=small)
        pipeline = Pipeline(ws, [step])
        """,
    )
    proc = localpipe("submit", "p.py", timeout=60)
    db = sqlite3.connect(ws.root / ".localpipe" / "history.db")
    row = db.execute("SELECT status, reason FROM step_run").fetchone()
    assert row == ("Failed", "exit code 1: it ran out of its memory limit (256 MiB, memory_per_step)"), (
        proc.stdout + proc.stderr
    )


def test_what_python_prints_as_it_starts_is_in_the_step_s_log_not_on_the_submitter_s_terminal(ws, project, localpipe):
    """An invalid PYTHONWARNINGS entry makes Python print a warning as it starts: a new interpreter
    prints it to the step's log, where a zygote printed it on the terminal of ``localpipe submit``."""
    scripts = {"typo": "print('hi')\n"}
    (fresh, forked) = _compare(ws, project, localpipe, scripts, {"typo": {"PYTHONWARNINGS": "bogus"}})["typo"]
    assert "Invalid -W option ignored" in fresh[2] and forked == fresh
    proc = localpipe("submit", "p.py")
    assert "Invalid -W option" not in proc.stdout + proc.stderr


@pytest.mark.timeout(120)
def test_zygotes_of_kinds_no_step_asks_for_again_do_not_pile_up(ws, project, localpipe):
    """Twelve steps, each with a PYTHONHASHSEED of its own, each needing a zygote of its own: a
    step after them finds at most IDLE_ZYGOTES idle zygotes (all twelve were kept, 13 MB each)."""
    project("src/s.py", "")
    project(
        "src/count.py",
        "import os, psutil\n"
        "supervisor = psutil.Process(os.getppid()).parent()\n"
        "print(sum('zygote.py' in ' '.join(p.cmdline()) for p in supervisor.children()))\n",
    )
    project(
        "p.py",
        """
        from localpipe import Pipeline, PythonScriptStep, RunConfiguration, Workspace
        steps = []
        for i in range(12):
            config = RunConfiguration()
            config.environment_variables = {"PYTHONHASHSEED": str(i)}
            steps.append(PythonScriptStep("s.py", name=f"s{i}", source_directory="src", allow_reuse=False,
                                          runconfig=config))
        count = PythonScriptStep("count.py", name="count", source_directory="src", allow_reuse=False)
        for step in steps:
            count.run_after(step)
        pipeline = Pipeline(Workspace.from_config(), steps + [count])
        """,
    )
    localpipe("submit", "p.py", check=True)
    zygotes = int((ws.root / ".localpipe" / "runs" / "1" / "count" / "stdout.log").read_text())
    assert zygotes <= 5  # the counting step's own, and at most 4 idle


def test_a_sitecustomize_on_the_step_s_pythonpath_runs_as_the_step_starts(ws, project, localpipe):
    """``site`` imports a sitecustomize found on PYTHONPATH as Python starts (opentelemetry-instrument
    and ddtrace-run work so); a zygote, started without the step's PYTHONPATH, never ran it."""
    project("custom/sitecustomize.py", "import sys\nsys.CUSTOMIZED = True\nprint('customized', file=sys.stderr)\n")
    scripts = {"instrumented": "import sys\nprint(getattr(sys, 'CUSTOMIZED', False))\n"}
    envs = {"instrumented": {"PYTHONPATH": str(ws.root / "custom")}}
    fresh, forked = _compare(ws, project, localpipe, scripts, envs)["instrumented"]
    assert fresh == (0, "True\n", "customized\n") and forked == fresh
