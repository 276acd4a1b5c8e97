"""What the bench scripts share: the `localpipe` command, temp workspaces, timing, generated pipelines.

The bench scripts print figures; they are never timed tests. Everything they write lies under
temporary folders (``localpipe-bench-*`` in the system temp dir: a workspace's, and the byte-code
shared by a bench run), removed at the end unless ``--keep`` is given (the byte-code always is).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import select
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

# The console script installed next to this interpreter. Resolving it here skips a version
# manager's shim (pyenv's adds ~100 ms a call here), which is not localpipe's time to account for.
_SCRIPT_DIR = Path(sys.executable).parent


def localpipe_argv() -> list[str]:
    """The argv prefix that starts the installed `localpipe` command."""
    found = shutil.which("localpipe", path=str(_SCRIPT_DIR)) or shutil.which("localpipe")
    if found is None:
        sys.exit("bench: no `localpipe` command found: run `pip install -e .` first")
    return [found]


def script_interpreter(script: str) -> str:
    """The interpreter named in ``script``'s shebang line (``sys.executable`` when it has none).

    Wrapping the command (cProfile, -X importtime) must use this very path: localpipe keys a
    step's cache entry by the interpreter path, so ``python`` for ``python3.11`` reruns every step.
    """
    with open(script, "rb") as handle:
        first = handle.readline().decode(errors="replace").strip()
    return first[2:].split()[0] if first.startswith("#!") else sys.executable


def machine() -> str:
    """One line naming the machine the figures come from, with its load when the line is made."""
    cores = len(os.sched_getaffinity(0))
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{cores} CPU cores, Python {sys.version.split()[0]}, {sys.platform}, load average {load}"


def file_creation(folder: Path, count: int = 100) -> str:
    """How long creating an empty file takes in ``folder`` now (median of ``count``), in words.

    Some file systems make this cost depend on what was deleted in the last minutes (ext4
    without a journal, as on the VM the figures in docs/ come from, looks past the inodes freed
    nearby in the last few minutes): a figure taken soon after a mass deletion shows it. The
    files stay until the temp folder goes, so that the probe deletes nothing itself.
    """
    probe = folder / "file-creation-probe"
    probe.mkdir()
    samples = []
    for index in range(count):
        start = time.perf_counter()
        os.close(os.open(probe / str(index), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
        samples.append(time.perf_counter() - start)
    return f"creating a file here takes {1e6 * statistics.median(samples):.0f} us"


def base_parser(description: str) -> argparse.ArgumentParser:
    """The options every bench script takes."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--keep", action="store_true", help="Keep the temp folder and print its path.")
    return parser


# -- temp workspaces -------------------------------------------------------------------------------
# The environment of every command the bench starts. Byte-code caching is turned back on
# (a user's install has it; PYTHONDONTWRITEBYTECODE=1 would make each process compile
# localpipe's modules again, ~20 ms), with the caches kept in one temp folder for the whole bench
# (PYTHONPYCACHEPREFIX) so that nothing is written into the repository. One folder, not one per
# workspace: a workspace of its own for each cold repeat had every repeat's submission compile all
# it imports, some 0.7 s of CPU that a user's install pays once (see ``warm_up``).
_child_env: dict[str, str] = dict(os.environ)
_bytecode: Path | None = None


def set_child_env(name: str, value: str | None) -> None:
    """Set (or, with None, unset) ``name`` for the commands run from now on."""
    if value is None:
        _child_env.pop(name, None)
    else:
        _child_env[name] = value


def _use_pycache() -> str:
    """The bench's byte-code folder, made on first use and removed when the bench ends."""
    global _bytecode
    if _bytecode is None:
        _bytecode = Path(tempfile.mkdtemp(prefix="localpipe-bench-pycache-"))
        atexit.register(shutil.rmtree, _bytecode, True)
    _child_env.pop("PYTHONDONTWRITEBYTECODE", None)
    _child_env["PYTHONPYCACHEPREFIX"] = str(_bytecode)
    return str(_bytecode)


@contextmanager
def temp_workspace(label: str, keep: bool = False) -> Iterator[Path]:
    """A new workspace made by `localpipe init` in a fresh temp folder; yields the workspace root."""
    folder = Path(tempfile.mkdtemp(prefix=f"localpipe-bench-{label}-"))
    root = folder / "ws"
    _use_pycache()
    try:
        run([*localpipe_argv(), "init", str(root)], cwd=folder)
        yield root
    finally:
        if keep:
            print(f"kept: {folder}")
        else:
            _remove(folder)


def _remove(folder: Path) -> None:
    # The object store makes its trees read-only; give write access back before deleting.
    for dirpath, _, _ in os.walk(folder):
        os.chmod(dirpath, 0o700)
    shutil.rmtree(folder, ignore_errors=True)


# -- running and timing commands -------------------------------------------------------------------
def run(
    argv: Sequence[str], cwd: str | os.PathLike, check: bool = True, stdin: bytes | None = None
) -> subprocess.CompletedProcess:
    """Run ``argv`` (never through a shell) and capture its output; exit with its stderr if it fails."""
    proc = subprocess.run(list(argv), cwd=cwd, input=stdin, capture_output=True, env=_child_env)
    if check and proc.returncode != 0:
        sys.stderr.write(proc.stdout.decode(errors="replace")[-4000:])
        sys.stderr.write(proc.stderr.decode(errors="replace")[-4000:])
        sys.exit(f"bench: {' '.join(map(str, argv))} exited with {proc.returncode}")
    return proc


@dataclass
class Timing:
    """The wall-clock seconds of each repeat of one command, and the last process's result."""

    label: str
    samples: list[float]
    last: subprocess.CompletedProcess | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def best(self) -> float:
        return min(self.samples)


def time_once(
    argv: Sequence[str], cwd: str | os.PathLike, check: bool = True, stdin: bytes | None = None
) -> tuple[float, subprocess.CompletedProcess]:
    """Wall-clock seconds of one run of ``argv``, from before the fork to after the exit."""
    start = time.perf_counter()
    proc = run(argv, cwd, check=check, stdin=stdin)
    return time.perf_counter() - start, proc


POLL_SECONDS = 0.1  # how often run_submit reads the CPU times of a running submission


@dataclass
class Sample:
    wall: float  # seconds, from before the fork to the exit
    cpu: float  # user+system seconds of the submit process and its step supervisor (steps excluded)
    readings: list[tuple[float, float, float]]  # (seconds since the fork, CPU seconds so far, the supervisor's)
    completed: int
    proc: subprocess.CompletedProcess
    forked_at: float  # time.time() just before the fork, on history.db's clock
    exited_at: float  # time.time() once it has exited


def run_submit(argv: list[str], cwd: Path, env: dict[str, str]) -> Sample:
    """Run `localpipe submit`, polling its own CPU times until it exits; the last reading is its zombie's."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        forked_at = time.time()
        start = time.perf_counter()
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        me = psutil.Process(proc.pid)
        exit_fd = os.pidfd_open(proc.pid)  # readable the moment it exits: the wall time is not rounded to a poll
        readings: list[tuple[float, float, float]] = []  # (seconds since start, cpu seconds, supervisor's)
        seen: dict[int, float] = {}  # the supervisor's and its zygotes' CPU at their last readings, by pid
        while True:
            exited = bool(select.select([exit_fd], [], [], 0)[0])
            if exited:
                wall = time.perf_counter() - start
            try:
                times = me.cpu_times()  # of the zombie once it has exited: nothing has reaped it yet
                helpers = supervisor_cpu(me, seen)
                readings.append((time.perf_counter() - start, times.user + times.system + helpers, helpers))
            except psutil.Error:
                pass
            if exited:
                break
            select.select([exit_fd], [], [], POLL_SECONDS)
        os.close(exit_fd)
        proc.wait()
        exited_at = forked_at + wall
        out.seek(0)
        err.seek(0)
        completed = subprocess.CompletedProcess(argv, proc.returncode, out.read(), err.read())
    if completed.returncode != 0:
        sys.stderr.write(completed.stdout.decode(errors="replace")[-4000:])
        sys.stderr.write(completed.stderr.decode(errors="replace")[-4000:])
        sys.exit(f"bench: {' '.join(argv)} exited with {completed.returncode}")
    return Sample(
        wall,
        readings[-1][1],
        readings,
        summary_counts(completed.stdout).get("completed", 0),
        completed,
        forked_at,
        exited_at,
    )


def supervisor_cpu(submit: psutil.Process, seen: dict[int, float]) -> float:
    """User+system seconds so far of the submit process's step supervisor and of the zygotes below it
    (the warm interpreters that fork Python steps: their own CPU, not their steps'); ``seen`` keeps
    each one's last reading, by pid, once it has exited."""
    for child in submit.children():
        try:
            if any(part.endswith("supervisor.py") for part in child.cmdline()):
                for process in [child, *child.children()]:
                    if process is child or any(part.endswith("zygote.py") for part in process.cmdline()):
                        times = process.cpu_times()
                        seen[process.pid] = times.user + times.system
        except psutil.Error:
            continue
    return sum(seen.values())


def time_command(
    label: str, argv: Sequence[str], cwd: str | os.PathLike, repeats: int, warmup: int = 0, check=None
) -> Timing:
    """Run ``argv`` ``warmup`` times untimed, then ``repeats`` times timed.

    ``check``, when given, is called with each timed process and may raise or exit when the
    run did not do what the figure claims (so that a fast failure is never reported as a result).
    """
    for _ in range(warmup):
        run(argv, cwd)
    timing = Timing(label, [])
    for _ in range(repeats):
        seconds, proc = time_once(argv, cwd)
        if check is not None:
            check(proc)
        timing.samples.append(seconds)
        timing.last = proc
    return timing


def report(timing: Timing, target: float | None = None) -> str:
    """Print one line: median and min of ``timing`` (and its target, met or not); returns the line."""
    line = f"{timing.label}: median {timing.median:.3f} s, min {timing.best:.3f} s over {len(timing.samples)} runs"
    if target is not None:
        line += f"  (target < {target:g} s: {'met' if timing.median < target else 'MISSED'})"
    print(line)
    print("    samples: " + ", ".join(f"{s:.3f}" for s in timing.samples))
    return line


def last_run_steps(workspace: Path) -> dict[str, int]:
    """Step counts by status of the newest run, as history.db has them (`localpipe runs --json`)."""
    proc = run([*localpipe_argv(), "runs", "-n", "1", "--json"], cwd=workspace)
    runs = json.loads(proc.stdout)
    return runs[0]["steps"] if runs else {}


def summary_counts(stdout: bytes) -> dict[str, int]:
    """The counts in the last line of `localpipe submit`: ``run 3 Completed in 0.4s: 1000 reused``."""
    last = stdout.decode(errors="replace").strip().splitlines()[-1]
    counts: dict[str, int] = {}
    for part in last.rpartition(": ")[2].split(", "):
        number, _, word = part.partition(" ")
        if number.isdigit():
            counts[word] = int(number)
    return counts


def print_profile(stats_file: str | os.PathLike, top: int = 15) -> None:
    """Print the ``top`` functions of a cProfile stats file by cumulative time, then by own time.

    The first list is everything (imports and click's wrappers included); the second keeps
    localpipe's own functions; the third is where the time is actually spent (own time).
    """
    import pstats

    table = pstats.Stats(str(stats_file)).stats  # (file, line, name) -> (cc, calls, own, cumulative, callers)
    total = max(row[3] for row in table.values())
    rows = [(_where(key), calls, own, cumulative) for key, (_, calls, own, cumulative, _) in table.items()]
    print(f"    total {total:.3f} s")
    sections = [
        (f"top {top} by cumulative time", lambda r: True, 3),
        (f"top {top} localpipe functions by cumulative time", lambda r: r[0].startswith("localpipe/"), 3),
        (f"top {top} by own time", lambda r: True, 2),
    ]
    for title, keep, column in sections:
        print(f"  {title}:")
        print(f"    {'cumulative':>10} {'own':>8} {'calls':>8}  function")
        for where, calls, own, cumulative in sorted(filter(keep, rows), key=lambda r: -r[column])[:top]:
            print(f"    {cumulative:10.3f} {own:8.3f} {calls:8d}  {where}")


def _where(key: tuple[str, int, str]) -> str:
    file, line, name = key
    if file == "~":
        return name  # a built-in
    for marker in ("/site-packages/", "/lib/python3."):
        if marker in file:
            file = file.split(marker, 1)[1]
            file = file.split("/", 1)[1] if marker == "/lib/python3." else file
            break
    else:
        repo = str(Path(__file__).resolve().parent.parent) + "/"
        file = file.removeprefix(repo)
    return f"{file}:{line}({name})"


# -- generated pipelines ---------------------------------------------------------------------------
def write_script(folder: Path, name: str, body: str) -> None:
    """Write the step script ``name`` into its own source folder ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(textwrap.dedent(body).lstrip())


LAYERED_STEP = '''
    """Step {name}: copy what its inputs hold, plus its own name, into one small output file."""
    import os
    import sys

    out, inputs = sys.argv[1], sys.argv[2:]
    parts = ["{name}"]
    for folder in inputs:
        with open(os.path.join(folder, "data.txt")) as handle:
            parts.append(handle.read()[:64])
    with open(os.path.join(out, "data.txt"), "w") as handle:
        handle.write("|".join(parts))
'''

LAYERED_PIPELINE = '''
    """Generated by bench/_common.py: {levels} levels of {width} steps, each its own source folder.

    Step i of level k > 0 reads the output of step i of level k-1 and, for even i, also that of
    step i+1 (so every step has one or two inputs and every output is read).
    """
    from localpipe import Pipeline, PipelineData, PythonScriptStep, Workspace

    LEVELS, WIDTH = {levels}, {width}

    ws = Workspace.from_config()
    store = ws.get_default_datastore()
    outputs = {{}}
    steps = []
    for k in range(LEVELS):
        for i in range(WIDTH):
            name = f"s{{k:02d}}_{{i:02d}}"
            out = PipelineData(f"d{{k:02d}}_{{i:02d}}", datastore=store)
            ups = [] if k == 0 else [outputs[k - 1, i]] + ([outputs[k - 1, (i + 1) % WIDTH]] if i % 2 == 0 else [])
            steps.append(PythonScriptStep(
                name=name, script_name="step.py", source_directory=f"steps/{{name}}",
                arguments=[out, *[u.as_input() for u in ups]], allow_reuse={allow_reuse}))
            outputs[k, i] = out

    pipeline = Pipeline(workspace=ws, steps=steps, description="bench: {levels}x{width} layered")
'''


def generate_layered(folder: Path, levels: int, width: int, allow_reuse: bool = True) -> Path:
    """Write a ``levels`` x ``width`` layered pipeline under ``folder``; returns its pipeline file."""
    for k in range(levels):
        for i in range(width):
            name = f"s{k:02d}_{i:02d}"
            write_script(folder / "steps" / name, "step.py", LAYERED_STEP.format(name=name))
    pipeline = folder / "pipeline.py"
    pipeline.write_text(
        textwrap.dedent(LAYERED_PIPELINE.format(levels=levels, width=width, allow_reuse=allow_reuse)).lstrip()
    )
    return pipeline


def warm_up() -> None:
    """Submit a small pipeline whose steps pass data in a throwaway workspace, untimed: the modules a
    submission, its step supervisor and a step's interpreter import are then in the bench's
    byte-code folder, as they are in a user's install after its first use."""
    with temp_workspace("warm-up") as ws:
        pipeline = generate_layered(ws / "gen", 2, 2)
        run([*localpipe_argv(), "submit", str(pipeline.relative_to(ws))], cwd=ws)


INDEPENDENT_STEP = '''
    """Step {name}: does nothing (the cost measured is starting and recording it)."""
'''

INDEPENDENT_PIPELINE = '''
    """Generated by bench/_common.py: {count} independent steps that do nothing, each its own folder."""
    from localpipe import Pipeline, PythonScriptStep, Workspace

    ws = Workspace.from_config()
    steps = [PythonScriptStep(name=f"n{{i:03d}}", script_name="step.py", source_directory=f"steps/n{{i:03d}}",
                              allow_reuse={allow_reuse})
             for i in range({count})]
    pipeline = Pipeline(workspace=ws, steps=steps, description="bench: {count} independent steps")
'''


def generate_independent(folder: Path, count: int, allow_reuse: bool = False) -> tuple[Path, list[Path]]:
    """Write ``count`` independent do-nothing steps under ``folder``; returns the pipeline and the scripts."""
    scripts = []
    for i in range(count):
        name = f"n{i:03d}"
        write_script(folder / "steps" / name, "step.py", INDEPENDENT_STEP.format(name=name))
        scripts.append(folder / "steps" / name / "step.py")
    pipeline = folder / "pipeline.py"
    pipeline.write_text(textwrap.dedent(INDEPENDENT_PIPELINE.format(count=count, allow_reuse=allow_reuse)).lstrip())
    return pipeline, scripts


# -- in-process figures (hash_speed, recheck, watch_latency) ----------------------------------------
# These scripts call localpipe's functions in this process rather than timing a `localpipe` command.
@contextmanager
def temp_folder(label: str, keep: bool = False) -> Iterator[Path]:
    """A fresh ``localpipe-bench-<label>-*`` temp folder (no workspace made in it), removed afterwards
    unless ``keep``. Processes this one starts (steps run by an in-process scheduler) get byte-code
    caching as a user's install has it (see ``_use_pycache``)."""
    folder = Path(tempfile.mkdtemp(prefix=f"localpipe-bench-{label}-"))
    bytecode = _use_pycache()
    saved = {name: os.environ.get(name) for name in ("PYTHONDONTWRITEBYTECODE", "PYTHONPYCACHEPREFIX")}
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    os.environ["PYTHONPYCACHEPREFIX"] = bytecode
    try:
        yield folder
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        if keep:
            print(f"kept: {folder}")
        else:
            _remove(folder)


def report_ms(label: str, seconds: Sequence[float], target_ms: float | None = None) -> str:
    """Print one line: median, min and max of ``seconds`` in milliseconds (and the target on the
    median, met or not), then the samples; returns the line."""
    median = statistics.median(seconds) * 1000
    line = (
        f"{label}: median {median:.1f} ms, min {min(seconds) * 1000:.1f} ms, "
        f"max {max(seconds) * 1000:.1f} ms over {len(seconds)}"
    )
    if target_ms is not None:
        line += f"  (target < {target_ms:g} ms: {'met' if median < target_ms else 'MISSED'})"
    print(line)
    print("    samples (ms): " + ", ".join(f"{s * 1000:.1f}" for s in seconds))
    return line


# -- reading back what a run recorded (data_bench) --------------------------------------------------
def last_run(workspace: Path) -> dict:
    """The newest run as `localpipe runs -n 1 --json` lists it (id, status, steps, times)."""
    proc = run([*localpipe_argv(), "runs", "-n", "1", "--json"], cwd=workspace)
    runs = json.loads(proc.stdout)
    if not runs:
        sys.exit("bench: the workspace has no run")
    return runs[0]


def run_details(workspace: Path, run_id: int) -> dict:
    """What `localpipe show RUN --json` says of run ``run_id``: its times and each step's."""
    return json.loads(run([*localpipe_argv(), "show", str(run_id), "--json"], cwd=workspace).stdout)
