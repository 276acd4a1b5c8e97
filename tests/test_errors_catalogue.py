"""The bad-input catalogue (docs/errors.md): the cases not already tested elsewhere.

Each case runs the real `localpipe` command and checks the contract of docs/errors.md: the
documented exit code, stderr exactly one line starting with "error: " (no traceback unless
--debug), a message that names the culprit and the fix, and nothing written (no run in
history.db, nothing in .localpipe/objects or .localpipe/runs).

The cases already tested in test_validation.py, test_cli_errors.py,
test_state.py, test_resources.py and test_gc.py are listed in docs/errors.md, not repeated here.

The read-only workspace and the full disk need a tmpfs; they are skipped, with the reason,
where `mount` is not permitted (not root, or no CAP_SYS_ADMIN).
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import textwrap
from pathlib import Path

import pytest

from localpipe.state.history import close_all

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "errors.md"

SCRIPT = 'print("hello")\n'

PIPELINE = """
    from localpipe import Pipeline, PythonScriptStep, Workspace

    pipeline = Pipeline(Workspace.from_config(), [PythonScriptStep("a.py", name="hello", source_directory="src")])
"""

WRITES_OUTPUT = """
    from localpipe import Pipeline, PipelineData, PythonScriptStep, Workspace

    model = PipelineData("model")
    pipeline = Pipeline(Workspace.from_config(),
                        [PythonScriptStep("w.py", name="train", source_directory="train", arguments=[model])])
"""

WRITE_SCRIPT = """
    import os, sys

    with open(os.path.join(sys.argv[1], "weights.txt"), "w") as f:
        f.write("w")
"""

# -- helpers ---------------------------------------------------------------------------------


def one_error_line(stderr: str) -> str:
    """The single line of ``stderr``, which must start with "error: " and hold no traceback."""
    assert "Traceback" not in stderr, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: "), stderr
    return lines[0]


def counts(root: Path) -> dict[str, int]:
    """Rows of the run tables of the workspace at ``root``, read with plain sqlite3 (read-only)."""
    path = root / ".localpipe" / "history.db"
    try:
        return _counts(sqlite3.connect(f"file:{path}?mode=ro", uri=True))
    except sqlite3.OperationalError:
        # On a read-only filesystem a WAL database opens only as immutable (nothing can change it).
        return _counts(sqlite3.connect(f"file:{path}?mode=ro&immutable=1", uri=True))


def _counts(conn: sqlite3.Connection) -> dict[str, int]:
    try:
        return {
            table: conn.execute(f'SELECT COUNT(*) FROM "{table}"').fetchone()[0]
            for table in ("pipeline_run", "step_run", "step_output", "cache_entry")
        }
    finally:
        conn.close()


def assert_store_untouched(root: Path) -> None:
    """Nothing in .localpipe/objects or .localpipe/runs."""
    for sub in ("objects", "runs"):
        assert list((root / ".localpipe" / sub).iterdir()) == [], sub


def assert_nothing_written(root: Path) -> None:
    """No run recorded in history.db, nothing in the object store or the run folders."""
    assert counts(root) == {"pipeline_run": 0, "step_run": 0, "step_output": 0, "cache_entry": 0}
    assert_store_untouched(root)


def refused(proc, code: int = 2) -> str:
    """The one error line of a refused command, after checking its exit code."""
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    return one_error_line(proc.stderr)


@pytest.fixture
def hello(project):
    """A valid one-step pipeline file, pipe.py (its step "hello" runs src/a.py)."""
    project("src/a.py", SCRIPT)
    return project("pipe.py", PIPELINE)


@pytest.fixture
def completed_run(ws, project, localpipe) -> str:
    """The id of a completed run whose step "train" wrote output "model"."""
    project("train/w.py", WRITE_SCRIPT)
    project("out.py", WRITES_OUTPUT)
    localpipe("submit", "out.py", check=True)
    return "1"


@pytest.fixture
def tmpfs(tmp_path):
    """``mount(name, size)`` mounts a fresh tmpfs at tmp_path/name; every mount is undone after the test."""
    mounted: list[Path] = []

    def mount(name: str, size: str = "8m") -> Path:
        folder = tmp_path / name
        folder.mkdir()
        try:
            proc = subprocess.run(
                ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                capture_output=True,
                text=True,
                check=False,
            )
        except FileNotFoundError:
            pytest.skip("no `mount` command on this machine: cannot make a small or read-only filesystem")
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here (needs root with CAP_SYS_ADMIN): {proc.stderr.strip()}")
        mounted.append(folder)
        return folder

    try:
        yield mount
    finally:
        close_all()  # no history.db of this process may stay open on a mount being undone
        for folder in reversed(mounted):
            if subprocess.run(["umount", str(folder)], capture_output=True, check=False).returncode != 0:
                subprocess.run(["umount", "-l", str(folder)], capture_output=True, check=False)


def remount_read_only(folder: Path) -> None:
    proc = subprocess.run(["mount", "-o", "remount,ro", str(folder)], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot remount a tmpfs read-only here: {proc.stderr.strip()}")


def workspace_in(folder: Path) -> Path:
    """A workspace in ``folder`` holding pipe.py and src/a.py; its history.db is closed after."""
    from localpipe import Workspace

    Workspace.create(folder)
    (folder / "src").mkdir()
    (folder / "src" / "a.py").write_text(SCRIPT)
    (folder / "pipe.py").write_text(PIPELINE.replace("\n    ", "\n").lstrip())
    close_all()
    return folder


# -- pipeline files --------------------------------------------------------------------------


def test_pipeline_file_that_calls_bare_exit(ws, project, localpipe):
    # test_cli_errors.py tests sys.exit(3) in-process; this is the builtin exit() in a real process.
    project("exits.py", "from localpipe import Workspace\nws = Workspace.from_config()\nexit()\n")
    line = refused(localpipe("submit", "exits.py"))
    assert "pipeline file exits.py called exit(None) while loading" in line
    assert "guard its submitting code with if __name__ == '__main__'" in line
    assert_nothing_written(ws.root)


def test_pipeline_with_no_steps(ws, project, localpipe):
    project("empty.py", "from localpipe import Pipeline, Workspace\npipeline = Pipeline(Workspace.from_config(), [])\n")
    line = refused(localpipe("submit", "empty.py"))
    assert line == "error: the pipeline is invalid: the pipeline has no steps: pass steps=[...] to Pipeline"
    assert_nothing_written(ws.root)


def test_arguments_given_as_one_string(ws, project, localpipe):
    """list("--x 1") made each character an argument: the script's argv was ['-', '-', 'x', ' ', '1']."""
    project("src/a.py", SCRIPT)
    project(
        "pipe.py",
        """
        from localpipe import Pipeline, PythonScriptStep, Workspace

        step = PythonScriptStep("a.py", name="train", source_directory="src", arguments="--x 1")
        pipeline = Pipeline(Workspace.from_config(), [step])
    """,
    )
    line = refused(localpipe("submit", "pipe.py"))
    assert line == "error: step \"train\": arguments must be a list: ['--x', '1'], not '--x 1'"
    assert_nothing_written(ws.root)


def test_one_step_with_two_outputs_of_the_same_name(ws, project, localpipe):
    project("src/a.py", SCRIPT)
    project(
        "pipe.py",
        """
        from localpipe import Pipeline, PipelineData, PythonScriptStep, Workspace

        pipeline = Pipeline(Workspace.from_config(), [PythonScriptStep(
            "a.py", name="train", source_directory="src", outputs=[PipelineData("m"), PipelineData("m")])])
    """,
    )
    line = refused(localpipe("submit", "pipe.py"))
    assert line == 'error: the pipeline is invalid: step "train": two outputs are named "m": rename one'
    assert_nothing_written(ws.root)


def test_boolean_param_that_is_not_a_boolean(ws, project, localpipe):
    # Integers: test_cli_errors.py::test_param_of_wrong_type_or_unknown_name
    project("src/a.py", SCRIPT)
    project(
        "pipe.py",
        """
        from localpipe import Pipeline, PipelineParameter, PythonScriptStep, Workspace

        flag = PipelineParameter("flag", True)
        pipeline = Pipeline(Workspace.from_config(), [PythonScriptStep(
            "a.py", name="train", source_directory="src", arguments=["--flag", flag])])
    """,
    )
    line = refused(localpipe("submit", "pipe.py", "--param", "flag=maybe"))
    assert line == 'error: the pipeline is invalid: parameter "flag": "maybe" is not a boolean: pass true or false'
    assert_nothing_written(ws.root)


# -- compute targets and the machine ---------------------------------------------------------


def test_unknown_compute_target_is_one_line(ws, project, localpipe):
    project("src/a.py", SCRIPT)
    project(
        "pipe.py",
        """
        from localpipe import Pipeline, PythonScriptStep, Workspace

        pipeline = Pipeline(Workspace.from_config(), [PythonScriptStep(
            "a.py", name="train", source_directory="src", compute_target="gpu-cluster")])
    """,
    )
    line = refused(localpipe("submit", "pipe.py"))
    assert line == (
        'error: the pipeline is invalid: step "train": compute target "gpu-cluster" does not exist: '
        'create it with ComputeTarget.create(...) or use "local"'
    )
    assert_nothing_written(ws.root)


GPU_PIPELINE = """
    from localpipe import ComputeTarget, LocalCompute, Pipeline, PythonScriptStep, Workspace

    ws = Workspace.from_config()
    gpu = ComputeTarget.create(ws, "gpu", LocalCompute.provisioning_configuration(gpus_per_step=1))
    pipeline = Pipeline(ws, [PythonScriptStep("a.py", name="train", source_directory="src", compute_target=gpu)])
"""


@pytest.mark.parametrize(
    "fake, why",
    [
        ("nodriver", "no NVIDIA driver found"),
        ("none", "NVIDIA driver found but no GPU devices"),
    ],
)
def test_gpu_requested_on_a_machine_without_one(ws, project, localpipe, fake, why):
    project("src/a.py", SCRIPT)
    project("gpu.py", GPU_PIPELINE)
    line = refused(localpipe("submit", "gpu.py", env={"LOCALPIPE_FAKE_GPUS": fake}))
    assert line.startswith(
        f'error: the pipeline is invalid: step "train" needs 1 GPU but this machine cannot give them ({why}'
    )
    assert line.endswith(
        'lower it on compute target "gpu" or use another target; compute target "gpu" was not kept '
        "(this refused submission created it): fix the pipeline and run it again to create it anew"
    )
    assert_nothing_written(ws.root)
    assert target_names(ws.root) == []  # the pipeline file's own ComputeTarget.create was taken back


def test_more_memory_than_the_machine_has(ws, project, localpipe):
    project("src/a.py", SCRIPT)
    project("mem.py", GPU_PIPELINE.replace('"gpu"', '"bigmem"').replace("gpus_per_step=1", "memory_per_step=2**50"))
    line = refused(localpipe("submit", "mem.py"))
    assert 'step "train" needs 1048576.0 GiB of memory but this machine has' in line
    assert 'lower it on compute target "bigmem" or use another target; compute target "bigmem" was not kept' in line
    assert_nothing_written(ws.root)
    assert target_names(ws.root) == []


def target_names(root: Path) -> list[str]:
    """The compute targets recorded in the workspace at ``root`` (read-only)."""
    conn = sqlite3.connect(f"file:{root / '.localpipe' / 'history.db'}?mode=ro", uri=True)
    try:
        return [name for (name,) in conn.execute('SELECT "name" FROM "compute_target"')]
    finally:
        conn.close()


def test_localpipe_cpus_that_is_not_a_number(ws, hello, localpipe):
    line = refused(localpipe("submit", "pipe.py", env={"LOCALPIPE_CPUS": "abc"}))
    assert line == 'error: LOCALPIPE_CPUS="abc" is not a positive integer: set it to a CPU count or unset it'
    assert_nothing_written(ws.root)


def test_bad_settings_are_one_line(ws, hello, localpipe):
    line = refused(localpipe("submit", "pipe.py", env={"LOCALPIPE_MAX_LOG_BYTES": "lots"}))
    assert line == (
        'error: LOCALPIPE_MAX_LOG_BYTES="lots" is not a number of bytes of at least 1024: set one like 67108864, '
        "or unset it"
    )
    assert_nothing_written(ws.root)
    line = refused(localpipe("watch", "pipe.py", env={"LOCALPIPE_LOAD_TIMEOUT": "x"}))
    assert line == 'error: LOCALPIPE_LOAD_TIMEOUT="x" is not a positive number of seconds: set one like 60'
    assert_nothing_written(ws.root)
    line = refused(localpipe("submit", "pipe.py", env={"LOCALPIPE_PYTHON_FALLBACK": "nearest"}))
    assert line == 'error: LOCALPIPE_PYTHON_FALLBACK="nearest" is not "closest": set it to closest, or unset it'
    assert_nothing_written(ws.root)


def test_localpipe_fake_gpus_that_is_not_understood(ws, project, localpipe):
    project("src/a.py", SCRIPT)
    project("gpu.py", GPU_PIPELINE)
    line = refused(localpipe("submit", "gpu.py", env={"LOCALPIPE_FAKE_GPUS": "lots"}))
    assert line.startswith("error: LOCALPIPE_FAKE_GPUS='lots' is not understood; use \"4\"")
    assert_nothing_written(ws.root)


# -- source directories: names and links (the rule: docs/errors.md, plan/hashing.py) ------------


def test_file_name_that_is_not_utf8_in_a_source_directory(ws, hello, localpipe):
    os.close(os.open(os.path.join(os.fsencode(ws.root / "src"), b"bad\xff.txt"), os.O_CREAT | os.O_WRONLY))
    line = refused(localpipe("submit", "pipe.py"))
    assert line == f"error: file name b'bad\\xff.txt' in {ws.root / 'src'} is not UTF-8: rename it"
    assert_nothing_written(ws.root)


def test_symlink_pointing_outside_the_source_directory(ws, hello, localpipe, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("s")
    os.symlink(secret, ws.root / "src" / "escape.txt")
    line = refused(localpipe("submit", "pipe.py"))
    assert line == (
        f"error: symlink {ws.root / 'src' / 'escape.txt'} points outside its folder ({secret}): "
        "copy the data in, or pass it as a dataset"
    )
    assert_nothing_written(ws.root)


def test_symlink_to_a_folder_outside_the_source_directory(ws, hello, localpipe, tmp_path):
    os.symlink(tmp_path, ws.root / "src" / "elsewhere")
    line = refused(localpipe("submit", "pipe.py"))
    assert f"symlink {ws.root / 'src' / 'elsewhere'} points outside its folder" in line
    assert_nothing_written(ws.root)


def test_symlink_loop_through_a_folder(ws, hello, localpipe):
    (ws.root / "src" / "sub").mkdir()
    os.symlink("..", ws.root / "src" / "sub" / "up")
    line = refused(localpipe("submit", "pipe.py"))
    assert line == f"error: symlink {ws.root / 'src' / 'sub' / 'up'} makes a loop: remove it"
    assert_nothing_written(ws.root)


def test_symlinks_pointing_at_each_other(ws, hello, localpipe):
    os.symlink("b", ws.root / "src" / "a")
    os.symlink("a", ws.root / "src" / "b")
    line = refused(localpipe("submit", "pipe.py"))
    assert f"symlink {ws.root / 'src'}" in line
    assert "loop" in line and "remove it" in line
    assert_nothing_written(ws.root)


def test_symlink_pointing_to_nothing(ws, hello, localpipe):
    os.symlink("nowhere.txt", ws.root / "src" / "dangling.txt")
    line = refused(localpipe("submit", "pipe.py"))
    assert line == (
        f"error: symlink {ws.root / 'src' / 'dangling.txt'} is a loop or points to nothing: remove it or fix its target"
    )
    assert_nothing_written(ws.root)


# -- datastores and datasets -----------------------------------------------------------------


def test_output_destination_leaving_its_datastore(ws, project, localpipe):
    project("src/a.py", SCRIPT)
    project(
        "dest.py",
        """
        from localpipe import OutputFileDatasetConfig, Pipeline, PythonScriptStep, Workspace

        ws = Workspace.from_config()
        out = OutputFileDatasetConfig("prepped", destination=(ws.get_default_datastore(), "../../escaped/{run-id}"))
        pipeline = Pipeline(ws, [PythonScriptStep("a.py", name="prep", source_directory="src", arguments=[out])])
    """,
    )
    line = refused(localpipe("submit", "dest.py"))
    assert line == (
        'error: the pipeline is invalid: step "prep": destination "../../escaped/{run-id}" of output '
        '"prepped" leaves datastore "workspaceblobstore": use a relative path inside it'
    )
    assert not (ws.state_dir / "escaped").exists()
    assert_nothing_written(ws.root)


def test_upload_target_leaving_its_datastore(ws, project, localpipe, tmp_path):
    project("src/a.py", SCRIPT)
    project("data/x.csv", "a,b\n1,2\n")
    project(
        "up.py",
        """
        from localpipe import Pipeline, PythonScriptStep, Workspace

        ws = Workspace.from_config()
        ws.get_default_datastore().upload("data", target_path="../../../../escaped")
        pipeline = Pipeline(ws, [PythonScriptStep("a.py", name="prep", source_directory="src")])
    """,
    )
    line = refused(localpipe("submit", "up.py"))
    assert line == (
        'error: upload to datastore "workspaceblobstore": target_path "../../../../escaped" leaves the '
        "datastore: use a relative path inside it"
    )
    assert not (tmp_path / "escaped").exists()
    assert list((ws.state_dir / "datastores" / "workspaceblobstore").iterdir()) == []
    assert_nothing_written(ws.root)


def test_get_by_name_of_an_unknown_dataset(ws, project, localpipe):
    project("src/a.py", SCRIPT)
    project(
        "ds.py",
        """
        from localpipe import Dataset, Pipeline, PythonScriptStep, Workspace

        ws = Workspace.from_config()
        raw = Dataset.get_by_name(ws, "iris_raw")
        pipeline = Pipeline(ws, [PythonScriptStep("a.py", name="train", source_directory="src",
                                                  inputs=[raw.as_named_input("raw")])])
    """,
    )
    line = refused(localpipe("submit", "ds.py"))
    assert line == (
        'error: pipeline file ds.py raised NotFoundError: dataset "iris_raw" is not registered: '
        'register it with dataset.register(ws, "iris_raw") (line 4): fix the file, '
        "or use --debug for the traceback"
    )
    assert_nothing_written(ws.root)


def test_get_by_name_with_a_version_that_is_not_a_number(ws, project, localpipe):
    project(
        "ds.py",
        """
        from localpipe import Dataset, Workspace

        Dataset.get_by_name(Workspace.from_config(), "iris_raw", version="two")
    """,
    )
    line = refused(localpipe("submit", "ds.py"))
    assert line == 'error: dataset version "two" is not a number or "latest"'
    assert_nothing_written(ws.root)


def test_datasets_command_with_an_unknown_name(ws, localpipe):
    line = refused(localpipe("datasets", "iris_raw"))
    assert line == 'error: dataset "iris_raw" is not registered: see `localpipe datasets`'


# -- history.db and the workspace's disk -----------------------------------------------------

COMMANDS = [pytest.param(["submit", "pipe.py"], id="submit"), pytest.param(["runs"], id="runs")]


@pytest.mark.parametrize("args", COMMANDS)
def test_history_db_written_by_a_newer_localpipe(ws, hello, localpipe, args):
    from localpipe.state.schema import SCHEMA_VERSION

    close_all()
    history = ws.state_dir / "history.db"
    conn = sqlite3.connect(history)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.commit()
    conn.close()

    line = refused(localpipe(*args), code=1)
    assert line == (
        f"error: {history} was written by a newer localpipe (schema {SCHEMA_VERSION + 5}, "
        f"this one knows {SCHEMA_VERSION}): upgrade localpipe"
    )
    conn = sqlite3.connect(history)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION + 5  # not "migrated" down
    conn.close()
    assert_nothing_written(ws.root)


@pytest.mark.parametrize("args", COMMANDS)
def test_history_db_that_is_not_a_database(ws, hello, localpipe, args):
    close_all()
    history = ws.state_dir / "history.db"
    garbage = b"this is not sqlite" * 100
    history.write_bytes(garbage)
    for suffix in ("-wal", "-shm"):
        (ws.state_dir / f"history.db{suffix}").unlink(missing_ok=True)

    line = refused(localpipe(*args), code=1)
    assert line == (
        f"error: {history} is not a localpipe history database (file is not a database): "
        "move it away and run `localpipe init` to start a new one"
    )
    assert history.read_bytes() == garbage
    assert not (ws.state_dir / "history.db-wal").exists()
    assert_store_untouched(ws.root)


def test_read_only_workspace(tmpfs, localpipe):
    root = workspace_in(tmpfs("ro", "4m"))
    remount_read_only(root)

    line = refused(localpipe("submit", "pipe.py", cwd=root), code=1)
    assert "read-only" in line and str(root) in line
    assert "writable" in line  # the fix: make it writable (or work in another workspace)
    assert "move it away" not in line
    assert_nothing_written(root)


BIG_STEP = """
import os, sys

with open(os.path.join(sys.argv[1], "big.bin"), "wb") as f:
    for _ in range(64):
        f.write(b"x" * (1 << 20))   # 64 MiB: more than the 8 MiB filesystem holds
"""

BIG_PIPELINE = """
from localpipe import Pipeline, PipelineData, PythonScriptStep, Workspace

big = PipelineData("big")
pipeline = Pipeline(Workspace.from_config(), [PythonScriptStep("big.py", name="big", source_directory="big",
                                                               arguments=[big])])
"""


def test_a_full_disk_is_one_error_line_and_readers_still_read(tmpfs, localpipe):
    from localpipe import Workspace

    root = tmpfs("full", "8m")
    Workspace.create(root)
    (root / "big").mkdir()
    (root / "big" / "big.py").write_text("print('small')\n")
    (root / "pipe.py").write_text(BIG_PIPELINE.replace("arguments=[big]", "arguments=[]"))
    close_all()
    assert localpipe("submit", "pipe.py", cwd=root).returncode == 0
    (root / "filler").write_bytes(b"")
    # Unbuffered, to the last byte: a buffered file would raise again at close for what it still holds.
    with open(root / "filler", "wb", buffering=0) as filler:
        try:
            while True:
                filler.write(b"\0" * 65536)
        except OSError:
            pass
    (root / "big" / "big.py").write_text("print('other')\n")  # a new key: the run must be recorded

    proc = localpipe("submit", "pipe.py", cwd=root)
    assert proc.returncode == 1
    assert one_error_line(proc.stderr).startswith(
        "error: the disk is full (history.db: database or disk is full): free space (localpipe gc, localpipe du)"
    )
    for reader in (["runs"], ["show", "1"], ["logs", "1"]):
        done = localpipe(*reader, cwd=root)
        assert done.returncode == 0 and "Traceback" not in done.stderr, (reader, done.stdout, done.stderr)
    other = localpipe("init", str(root / "other"), cwd=root)
    assert other.returncode == 1
    assert one_error_line(other.stderr) == (
        f"error: {root}/other/.localpipe/history.db could not be written: the disk "
        "is full: free space (localpipe gc, localpipe du) and try again"
    )


def test_a_write_lock_held_elsewhere_is_one_error_line_and_readers_still_read(ws, localpipe):
    """Another process (a database tool with a transaction open) holds history.db's write lock past
    its busy timeout (10 s): a command that must write says so in one line, not a traceback."""
    (ws.root / "src").mkdir()
    (ws.root / "src" / "a.py").write_text(SCRIPT)
    (ws.root / "p.py").write_text(textwrap.dedent(PIPELINE))
    assert localpipe("submit", "p.py").returncode == 0
    holder = sqlite3.connect(ws.root / ".localpipe" / "history.db", isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        proc = localpipe("submit", "p.py")
        assert proc.returncode == 1
        assert one_error_line(proc.stderr) == (
            "error: history.db could not be written (database is locked): another process held its write lock "
            "for more than 10 s (an open transaction in a database tool?): end it and try again"
        )
        for reader in (["runs"], ["show", "1"]):
            done = localpipe(*reader)
            assert done.returncode == 0 and "Traceback" not in done.stderr, (reader, done.stdout, done.stderr)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_full_disk_while_a_step_writes_its_outputs(tmpfs, localpipe):
    from localpipe import Workspace

    root = tmpfs("full", "8m")
    Workspace.create(root)
    (root / "big").mkdir()
    (root / "big" / "big.py").write_text(BIG_STEP)
    (root / "pipe.py").write_text(BIG_PIPELINE)
    close_all()

    proc = localpipe("submit", "pipe.py", cwd=root)

    assert proc.returncode == 1, (proc.stdout, proc.stderr)  # a step failed
    assert "Traceback" not in proc.stderr, proc.stderr
    full = (
        f"exit code 1: the disk holding {root}/.localpipe/runs/1/big is full: free space (localpipe gc, localpipe du)"
    )
    assert re.search(rf"Failed\s+big\s+{re.escape(full)}", proc.stdout), proc.stdout  # the step's readable reason
    assert re.search(r"^run 1 Failed in ", proc.stdout, re.MULTILINE), proc.stdout
    conn = sqlite3.connect(f"file:{root / '.localpipe' / 'history.db'}?mode=ro", uri=True)
    try:
        assert conn.execute("SELECT status, reason FROM step_run").fetchall() == [
            ("Failed", full + " and submit again")
        ]
        assert conn.execute("SELECT status FROM pipeline_run").fetchall() == [("Failed",)]
    finally:
        conn.close()
    assert counts(root)["cache_entry"] == 0
    assert counts(root)["step_output"] == 0
    assert list((root / ".localpipe" / "objects").iterdir()) == []  # no half object
    assert not list((root / ".localpipe").rglob("big.bin"))  # the failed step's outputs are gone


# -- run ids, cancel, download ---------------------------------------------------------------


@pytest.mark.parametrize(
    "args", [["cancel", "99999"], ["outputs", "99999"], ["download", "99999", "train", "model", "dest"]]
)
def test_unknown_run_id_for_cancel_outputs_and_download(ws, localpipe, args):
    # show, logs and metrics: test_cli_errors.py::test_unknown_run_id
    line = refused(localpipe(*args))
    assert line == f"error: run 99999 does not exist in {ws.root}: see `localpipe runs` for the run ids"
    assert not (ws.root / "dest").exists()
    assert_nothing_written(ws.root)


def test_cancel_of_a_finished_run(ws, completed_run, localpipe):
    line = refused(localpipe("cancel", completed_run))
    assert line == f"error: run {completed_run} is already Completed: there is nothing to cancel"
    conn = sqlite3.connect(ws.state_dir / "history.db")
    assert conn.execute("SELECT status FROM pipeline_run").fetchall() == [("Completed",)]
    conn.close()


def test_fail_of_a_finished_run(ws, completed_run):
    from localpipe import Experiment
    from localpipe.client.runs import PipelineRun
    from localpipe.errors import UsageError

    run = PipelineRun(Experiment(ws, "ws"), completed_run)
    with pytest.raises(UsageError) as refusal:
        run.fail("too late")
    assert str(refusal.value) == f"run {completed_run} is already Completed: there is nothing to fail"
    assert run.get_status() == "Completed"


def test_a_damaged_history_db_is_one_line_naming_it_and_the_way_out(ws, completed_run, localpipe):
    """A history.db whose pages were damaged (a disk error, a copy cut short) made `localpipe show`
    print peewee's traceback; every command that reads it now says so in one line."""
    history = ws.root / ".localpipe" / "history.db"
    with sqlite3.connect(history) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    with open(history, "r+b") as handle:  # every page but the first (the header and the schema)
        handle.seek(4096)
        handle.write(b"\xff" * (history.stat().st_size - 4096))
    for command in (["show", completed_run], ["runs"], ["logs", completed_run]):
        line = refused(localpipe(*command), 1)
        assert line == (
            f"error: {history} is damaged (database disk image is malformed): save what SQLite can still read "
            f"(sqlite3 {history} .recover), then move it away and run `localpipe init` to start a new one"
        ), command


def test_a_run_is_looked_up_within_the_experiment_it_is_named_with(ws, completed_run):
    """As Azure's run history answers per experiment, Run(Experiment(ws, "b"), id) of a run of
    experiment "ws" is not found; it answered as if the run were one of "b"'s."""
    from localpipe import Experiment, Run
    from localpipe.client.runs import PipelineRun
    from localpipe.errors import NotFoundError

    for kind in (Run, PipelineRun):
        with pytest.raises(NotFoundError) as refusal:
            kind(Experiment(ws, "b"), completed_run).get_status()
        assert str(refusal.value) == (
            f'run {completed_run} is not one of experiment "b"\'s but of "ws"\'s: Run.get(ws, "{completed_run}")'
            " finds a run by its id alone"
        )
    assert Run(Experiment(ws, "ws"), completed_run).get_status() == "Completed"


@pytest.mark.parametrize("output", ["weights", "../model", "model/../../x"])
def test_download_of_an_unknown_output_writes_nothing(ws, completed_run, localpipe, tmp_path, output):
    # DEST/OUTPUT cannot leave DEST: OUTPUT must be the name of a committed output, and output
    # names never hold "/" or ".." (test_validation.py::test_output_name_with_slash_or_dot_dot).
    dest = tmp_path / "dl" / "deeper"
    line = refused(localpipe("download", completed_run, "train", output, dest))
    assert line == f'error: step "train" of run {completed_run} has no output "{output}" (its outputs: model)'
    assert not (tmp_path / "dl").exists()


def test_download_of_an_unknown_step(ws, completed_run, localpipe, tmp_path):
    line = refused(localpipe("download", completed_run, "nostep", "model", tmp_path / "dl"))
    assert line == f'error: run {completed_run} has no step "nostep" (its steps: train)'
    assert not (tmp_path / "dl").exists()


def test_download_onto_an_existing_output(ws, completed_run, localpipe, tmp_path):
    (tmp_path / "dl" / "model").mkdir(parents=True)
    (tmp_path / "dl" / "model" / "mine.txt").write_text("keep me")
    line = refused(localpipe("download", completed_run, "train", "model", tmp_path / "dl"))
    assert f"{tmp_path / 'dl' / 'model'} already exists" in line
    assert "--overwrite" in line
    assert [p.name for p in (tmp_path / "dl" / "model").iterdir()] == ["mine.txt"]


# -- click's own usage errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    "args, culprit",
    [
        pytest.param(["watch", "pipe.py", "--debounce", "-5"], "--debounce", id="negative-debounce"),
        pytest.param(["submit", "src"], "src", id="pipeline-file-is-a-folder"),
        pytest.param(["download", "1", "train", "model", "pipe.py"], "pipe.py", id="download-dest-is-a-file"),
        pytest.param(["sumbit", "pipe.py"], "sumbit", id="unknown-command"),
    ],
)
def test_click_usage_errors_are_one_error_line(ws, hello, localpipe, args, culprit):
    line = refused(localpipe(*args))
    assert culprit in line
    assert "--help" in line  # the fix: where to read the right usage
    assert_nothing_written(ws.root)


def test_an_option_of_localpipe_after_the_command_says_where_it_goes(ws, hello, localpipe):
    """`localpipe runs -w ../proj` said only "No such option '-w'" (found by the new user review)."""
    line = refused(localpipe("runs", "-w", str(ws.root)))
    assert "-w is an option of localpipe itself: put it before the command, `localpipe -w DIR runs ...`" in line
    line = refused(localpipe("show", "1", "--debug"))
    assert "put it before the command, `localpipe --debug show ...`" in line


# -- the catalogue itself --------------------------------------------------------------------


def test_every_test_named_in_the_catalogue_exists():
    text = DOC.read_text()
    rows = [line for line in text.splitlines() if re.match(r"\|\s*\d+\s*\|", line)]
    assert len(rows) >= 30, len(rows)
    named = re.findall(r"`(tests/[\w/]+\.py)::(\w+)(?:\[[^\]]*\])?`", text)
    assert named
    for path, name in named:
        source = (REPO / path).read_text()
        assert re.search(rf"^def {name}\(", source, re.MULTILINE), (
            f"{path}::{name} named in docs/errors.md does not exist"
        )
    # `...[case]` is short for a case of tests/test_bad_values.py (the line under the table says so)
    from tests.test_bad_values import CASES

    assert "The rows marked `...[case]` are `tests/test_bad_values.py::" in text
    for case in set(re.findall(r"`\.\.\.\[([\w-]+)\]`", text)) - {"case"}:
        assert case in CASES, f"case {case} named in docs/errors.md is not in tests/test_bad_values.py"
    for row in rows:
        assert "tests/" in row or "`...[" in row or row.rstrip(" |").endswith("same"), (
            f"a catalogue row names no test: {row}"
        )
