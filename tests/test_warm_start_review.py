"""What a review found a forked step (executors/zygote.py) did differently from a new interpreter:
each test compares a run with ``LOCALPIPE_STEP_START=exec`` and one with the default (forked)."""

import shutil
import sqlite3
from pathlib import Path

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
