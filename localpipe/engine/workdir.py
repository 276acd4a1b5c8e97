"""A step run's folder: snapshot of its source, inputs in place, empty outputs; its argv and environment.

Everything a step may write lies under ``.localpipe/runs/<run>/<step>/``.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
from pathlib import Path

from localpipe.compat.runtime import DEPENDENCIES_FOLDER
from localpipe.content.hashing import TreeDigest, copy_tree
from localpipe.engine.executors import Launch
from localpipe.engine.outcomes import REASON_FILE
from localpipe.engine.resources import Placement
from localpipe.errors import OutputError
from localpipe.faults import fault_point
from localpipe.plan.graph import StepSpec
from localpipe.state.history import MACHINE_ENV, machine_id
from localpipe.state.store import ObjectStore, kind_of, remove_tree


class StepFolder:
    """The paths of one step run's folder."""

    def __init__(self, root: Path):
        self.root = root
        self.snapshot = root / "snapshot"
        self.inputs = root / "inputs"
        self.outputs = root / "outputs"
        self.stdout = root / "stdout.log"
        self.stderr = root / "stderr.log"
        self.metrics = root / "metrics.jsonl"
        self.files = root / "files"  # the run's files (Run.get_file_names): ./outputs, ./logs, uploads

    def reset(self) -> None:
        """Empty the folder for a new attempt, keeping nothing from the last one but logs."""
        if os.path.islink(self.root):  # the last attempt's step put it there: it goes, not what it leads to
            os.unlink(self.root)
        try:
            self.root.mkdir(parents=True)
        except FileExistsError:  # a retry, or a run resumed: only then is there anything to remove
            kept = {path.name for path in (self.stdout, self.stderr, self.metrics)}
            for entry in os.scandir(self.root):
                if entry.name in kept:
                    continue
                if entry.is_dir(follow_symlinks=False):
                    remove_tree(entry.path)
                else:
                    os.unlink(entry.path)

    def output_path(self, name: str, is_directory: bool) -> Path:
        folder = self.outputs / name
        return folder if is_directory else folder / name


def prepare_step(
    step: StepSpec,
    folder: StepFolder,
    source: TreeDigest | None,
    upstream_outputs: dict[str, dict[str, str]],
    upstream_is_dir: dict[str, dict[str, bool]],
    store: ObjectStore,
    env: dict[str, str],
    interpreter: str | None = None,
) -> tuple[Launch, TreeDigest | None, dict[str, tuple]]:
    """Make the step's folder ready for a new attempt: its launch, the snapshot its source was copied
    to, and the inputs it reads straight from the store (see ``store_mounts``). ``interpreter``
    is a built environment's, when the step runs in one."""
    folder.reset()
    snapshot = snapshot_source(step, source, folder)
    inputs = {i: input_path(step, i, upstream_outputs, upstream_is_dir, store, folder) for i in step.inputs}
    launch = build_launch(step, folder, inputs, env, key=step.name, interpreter=interpreter)
    return launch, snapshot, store_mounts(step, inputs, store)


def step_environment(
    base: dict[str, str],
    workspace_root: Path,
    run_id: int,
    experiment: str,
    step_run_id: int,
    name: str,
    placement: Placement,
    variables: dict[str, str] | None = None,
    runtime_path: str | None = None,
    venv: str | None = None,
) -> dict[str, str]:
    """The environment of a step: the scheduler's, with what tells the step who and where it is,
    the variables its environment sets, localpipe's own modules (``runtime_path``, so that
    ``from azureml.core import Run`` works in any interpreter) and, in a built environment
    (``venv``), that environment first on PATH, as its activation would."""
    env = {**base, **(variables or {})}  # the environment's own PATH or PYTHONPATH come after what follows
    if venv is not None:
        env["VIRTUAL_ENV"] = venv
        env["PATH"] = os.pathsep.join(filter(None, [os.path.join(venv, "bin"), env.get("PATH")]))
        env.pop("PYTHONHOME", None)
    if runtime_path is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [runtime_path, env.get("PYTHONPATH")]))
        env["LOCALPIPE_DEPENDENCIES"] = os.path.join(runtime_path, DEPENDENCIES_FOLDER)
    gpus = placement.gpus
    env.update(
        {
            "LOCALPIPE_WORKSPACE": str(workspace_root),
            "LOCALPIPE_RUN_ID": str(run_id),
            "LOCALPIPE_STEP_RUN_ID": str(step_run_id),
            "LOCALPIPE_STEP_NAME": name,
            "LOCALPIPE_EXPERIMENT": experiment,
            # UUIDs, not indices: CUDA numbers devices fastest-first unless told otherwise, NVML by
            # PCI bus, so an index can name another GPU; a UUID names the same one for both.
            "CUDA_VISIBLE_DEVICES": ",".join(g.uuid for g in gpus),
            "NVIDIA_VISIBLE_DEVICES": ",".join(g.uuid for g in gpus) or "void",
            "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
            "LOCALPIPE_GPU_INDICES": ",".join(str(g.index) for g in gpus),
            "LOCALPIPE_STEP_CPUS": str(placement.cpus),  # what a ParallelRunStep divides among its workers
            "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", str(placement.cpus)),
        }
    )
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


PYTHON_KINDS = ("python", "parallel")  # steps whose argv is [python, script or -m module, *args]


def step_interpreter(step: StepSpec, built: str | None = None) -> str:
    """The Python a step runs on: its built environment's, the one it names, or localpipe's own."""
    return built or step.environment.get("interpreter") or sys.executable


# What the scheduler reads and writes in a step's folder once the step has ended, parents first.
_AFTER_EXIT = (
    "outputs",
    "snapshot",
    "files",
    "files/outputs",
    "files/logs",
    "stdout.log",
    "stderr.log",
    "stdout.log.tail",  # where a long log's tail is kept while the step runs (executors/supervisor.py)
    "stderr.log.tail",
    "metrics.jsonl",
    REASON_FILE,
)


def unlink_replaced(folder: StepFolder) -> str | None:
    """Remove what a step that has ended left in place of its folder, or of what the scheduler reads
    and writes in it (``_AFTER_EXIT``), that is neither a file nor a folder: why the step fails for
    it, or None.

    The scheduler follows no link there: a container's step sees only its folder, yet a link it
    makes there names any path of this machine (the commit would move what it points to into the
    store, the run files' collection would write there, a retry would empty it, its log tail would
    be read into history.db). It opens no FIFO there either, which would wait for ever for a writer.
    The link goes, never what it points to.
    """
    if os.path.islink(folder.root) or not folder.root.is_dir():
        remove_tree(folder.root)
        folder.root.mkdir(parents=True)
        return _replaced(["its folder by a link"])
    replaced = []
    for rel in _AFTER_EXIT:  # one at a time: a link removed, what was below it is no longer looked at
        try:
            mode = os.lstat(folder.root / rel).st_mode
        except (FileNotFoundError, NotADirectoryError):
            continue
        if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
            os.unlink(folder.root / rel)
            replaced.append(f"{rel} by a {kind_of(mode)}")
    return _replaced(replaced) if replaced else None


def _replaced(what: list[str]) -> str:
    return (
        f"the step replaced {', '.join(what)}: localpipe follows no link and opens no FIFO, socket or device "
        "of a step's folder: write files there"
    )


def commit_outputs(step: StepSpec, folder: StepFolder, store: ObjectStore) -> tuple[dict[str, TreeDigest], str | None]:
    """Move a succeeded step's outputs into the object store: what was committed, and why the
    step must fail instead when one cannot be (None when all were)."""
    committed: dict[str, TreeDigest] = {}
    for output, is_dir in step.outputs.items():
        path = folder.output_path(output, is_dir)
        if not path.exists():
            return committed, f'output "{output}" was not written to {path}'
        if committed:
            fault_point("mid-commit")
        try:
            committed[output] = store.commit(folder.outputs / output)
        except OutputError as exc:
            return committed, f'output "{output}": {exc}'
    return committed, None


# The folders of a step's working directory that are the run's files, as Azure ML uploads them.
RUN_FILE_FOLDERS = ("outputs", "logs")


def collect_run_files(step: StepSpec, folder: StepFolder) -> None:
    """Move what the step wrote to ``./outputs`` and ``./logs`` of its working directory into its
    run files (``files/outputs``, ``files/logs``), beside what it uploaded (Run.upload_file).

    A container's links there that lead out of its folder are not kept: on this machine they lead
    to what the container never saw (a secret of the machine's, which ``download_file`` or
    ``register_model`` would then read)."""
    contained = step.environment.get("kind") == "docker"
    cwd = working_dir(step, folder)
    for name in RUN_FILE_FOLDERS:
        if cwd == folder.root and name == "outputs":
            continue  # a step without a source directory: ./outputs is where its named outputs are
        source = os.path.join(cwd, name)  # a plain string: asked twice for every step, most have neither
        if not os.path.isdir(source) or os.path.islink(source):
            continue
        target = folder.files / name
        target.mkdir(parents=True, exist_ok=True)
        for entry in os.scandir(source):
            destination = target / entry.name
            if destination.is_dir() and not destination.is_symlink():
                remove_tree(destination)  # written at the end wins over uploaded before, as in Azure ML
            elif destination.exists() or destination.is_symlink():
                destination.unlink()
            shutil.move(entry.path, destination)
        os.rmdir(source)
        if contained:
            _unlink_leading_out(target, str(folder.root))


def _unlink_leading_out(tree: Path, root: str) -> None:
    """Remove the links below ``tree`` whose target (resolved) is not in the folder ``root``."""
    for path, folders, files in os.walk(tree):  # links to folders are among folders, not followed
        for name in (*folders, *files):
            link = os.path.join(path, name)
            if os.path.islink(link) and not os.path.realpath(link).startswith(root + os.sep):
                os.unlink(link)


def snapshot_source(step: StepSpec, source: TreeDigest | None, folder: StepFolder) -> TreeDigest | None:
    """Copy exactly the hashed source files into the step's folder; the copy's digest is returned."""
    if step.source_dir is None:
        return None
    if source is None:
        folder.snapshot.mkdir(parents=True, exist_ok=True)
        return None
    return copy_tree(step.source_dir, list(source.files), folder.snapshot)


def working_dir(step: StepSpec, folder: StepFolder) -> Path:
    """The snapshot of the step's source; a step without a source directory runs in its folder itself."""
    return folder.snapshot if step.source_dir is not None else folder.root


def input_path(
    step: StepSpec,
    name: str,
    upstream_outputs: dict[str, dict[str, str]],
    upstream_is_dir: dict[str, dict[str, bool]],
    store: ObjectStore,
    folder: StepFolder,
) -> str:
    """Place input ``name`` for the step (mount: a path into the store or the data; download: a copy)."""
    spec = step.inputs[name]
    if spec.step is not None:
        digest = upstream_outputs[spec.step][spec.output]
        source = store.path(digest)
        is_dir = upstream_is_dir[spec.step][spec.output]
        sources = [source] if is_dir else [source / spec.output]
    else:
        sources = [Path(p) for p in spec.paths]
        if spec.root is not None:  # a pick of files: each at its place below the root
            return _place_pick(spec, name, sources, folder)
    if spec.mode == "download":
        dest = folder.inputs / (spec.path_on_compute or name)
        _ensure_inside(dest, folder.root, name)
        for src in sources:
            target = dest if src.is_dir() and len(sources) == 1 else dest / src.name
            if src.is_dir():
                shutil.copytree(src, target, dirs_exist_ok=True)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, target)
        return str(dest / sources[0].name if len(sources) == 1 and sources[0].is_file() else dest)
    if len(sources) == 1:
        return str(sources[0])
    dest = folder.inputs / name  # several paths mounted together: a folder of links, no copy
    dest.mkdir(parents=True, exist_ok=True)
    for src in sources:
        os.symlink(src, dest / src.name)
    return str(dest)


def _place_pick(spec, name: str, sources: list[Path], folder: StepFolder) -> str:
    """A folder holding each file at its path below the pick's root: links (mount, direct) or copies."""
    dest = folder.inputs / (spec.path_on_compute if spec.mode == "download" and spec.path_on_compute else name)
    _ensure_inside(dest, folder.root, name)
    dest.mkdir(parents=True, exist_ok=True)
    for src in sources:
        target = dest / os.path.relpath(src, spec.root)
        target.parent.mkdir(parents=True, exist_ok=True)
        if spec.mode == "download":
            shutil.copyfile(src, target)
        else:
            os.symlink(src, target)
    return str(dest)


def _ensure_inside(path: Path, root: Path, name: str) -> None:
    # Checked when planning; checked again here, where the copy is made.
    if not path.resolve().is_relative_to(root.resolve()):
        raise ValueError(f'input "{name}": path_on_compute leaves the step folder: use a relative path')


def build_launch(
    step: StepSpec,
    folder: StepFolder,
    input_paths: dict[str, str],
    env: dict[str, str],
    key: str,
    interpreter: str | None = None,
) -> Launch:
    """The argv and environment of one attempt, with data references replaced by paths."""
    output_paths = {}
    if step.outputs:
        folder.outputs.mkdir(exist_ok=True)
    for name, is_dir in step.outputs.items():
        path = folder.output_path(name, is_dir)
        (path if is_dir else path.parent).mkdir(exist_ok=True)
        output_paths[name] = str(path)
    args = [_resolve(token, input_paths, output_paths) for token in step.argv]
    python = step_interpreter(step, interpreter)
    env = dict(env)
    if step.kind == "python":
        argv = [python, step.script, *args]
    elif step.kind == "parallel":  # the driver, which runs step.script's run() in its workers
        argv = [python, "-m", "localpipe.parallel.driver", *args]
        env["LOCALPIPE_ENVIRONMENT"] = json.dumps(step.environment, sort_keys=True)
    else:
        argv = args
    env.update({f"AML_PARAMETER_{k}": v for k, v in step.params.items()})
    env["LOCALPIPE_INPUTS"] = json.dumps(input_paths)
    env["LOCALPIPE_INPUT_TABLES"] = json.dumps({n: i.tabular for n, i in step.inputs.items() if i.tabular})
    # Consumed by as_named_input alone ("direct"): the step's input_datasets give the dataset.
    env["LOCALPIPE_INPUT_DATASETS"] = json.dumps(
        [n for n, i in step.inputs.items() if i.mode == "direct" and not i.tabular]
    )
    env["LOCALPIPE_STEP_DIR"] = str(folder.root)
    env["LOCALPIPE_OUTPUTS"] = json.dumps(output_paths)
    env["LOCALPIPE_METRICS_FILE"] = str(folder.metrics)
    secrets = [env[name] for name in step.secret_env if env.get(name)]
    return Launch(
        key=key,
        argv=argv,
        cwd=str(working_dir(step, folder)),
        env=env,
        stdout=str(folder.stdout),
        stderr=str(folder.stderr),
        memory_limit=step.resources.get("memory"),
        masked=secrets,
        runs_python=step.kind in PYTHON_KINDS,
    )


def _resolve(token, inputs: dict[str, str], outputs: dict[str, str]) -> str:
    if isinstance(token, dict):
        return inputs[token["input"]] if "input" in token else outputs[token["output"]]
    return token


def fingerprint(path: str) -> tuple[int, int, int]:
    """(files, bytes, newest mtime_ns) of a tree: any write into it changes one of them."""
    if os.path.isfile(path):
        st = os.stat(path)
        return 1, st.st_size, st.st_mtime_ns
    files = size = newest = 0
    for folder, _, names in os.walk(path):
        for name in names:
            st = os.lstat(os.path.join(folder, name))
            files, size, newest = files + 1, size + st.st_size, max(newest, st.st_mtime_ns)
    return files, size, newest


def store_mounts(step: StepSpec, input_paths: dict[str, str], store: ObjectStore) -> dict[str, tuple]:
    """The inputs mounted straight from the object store, with their fingerprints.

    Read-only permissions keep an ordinary user's step from writing there; root ignores them,
    so the scheduler also compares these fingerprints when the step ends.
    """
    root = str(store.root) + os.sep
    return {
        name: (path, fingerprint(path))
        for name, path in input_paths.items()
        if step.inputs[name].mode in ("mount", "direct") and path.startswith(root)
    }


PACKAGES_IN_IMAGE = "/opt/localpipe/packages"  # where an image's layer of packages puts them
# What of the scheduler's environment a container does not get: it has its own programs and home.
_HOST_ONLY = ("PATH", "HOME", "VIRTUAL_ENV", "PYTHONHOME", "LD_LIBRARY_PATH", "TMPDIR")


def containerize(
    launch: Launch,
    step: StepSpec,
    folder: StepFolder,
    placement: Placement,
    runtime_path: str | None,
    base_env: dict[str, str],
    labels: dict[str, str],
) -> None:
    """Make ``launch`` one for the Docker executor (docs/docker.md). Every path keeps its place: the
    step's folder is bound read-write at its own path (its snapshot is the working folder, its
    outputs are there), each input outside it read-only (and what a folder of links there leads
    to), localpipe's runtime folder read-only; nothing else of the workspace. The container gets
    the variables localpipe sets for the step (parameters, inputs, outputs, the environment's
    variables, ``secret_env``), not the scheduler's own."""
    environment = step.environment
    env = {k: v for k, v in launch.env.items() if base_env.get(k) != v or k in step.secret_env}
    for name in _HOST_ONLY:
        env.pop(name, None)
    env.update(HOME="/tmp", PYTHONUNBUFFERED="1")  # the submitting user has no home in the image
    mounts = {str(folder.root): False}
    if "LOCALPIPE_PARALLEL_CACHE" in env:  # a ParallelRunStep writes each batch's result there
        os.makedirs(env["LOCALPIPE_PARALLEL_CACHE"], exist_ok=True)
        mounts[env["LOCALPIPE_PARALLEL_CACHE"]] = False
    if runtime_path is not None:
        env["LOCALPIPE_DEPENDENCIES"] = os.path.join(runtime_path, DEPENDENCIES_FOLDER)
        mounts[runtime_path] = True
        for target in _link_targets(runtime_path):
            mounts.setdefault(target, True)
    inside = str(folder.root) + os.sep
    for path in json.loads(launch.env.get("LOCALPIPE_INPUTS", "{}")).values():
        if not path.startswith(inside):
            mounts.setdefault(path, True)
    if folder.inputs.is_dir():  # several paths mounted together, a pick of files: folders of links
        for target in _link_targets(str(folder.inputs)):
            mounts.setdefault(target, True)
    if environment.get("packages"):  # the image's layer of the environment's packages (docker.py)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [env.get("PYTHONPATH"), PACKAGES_IN_IMAGE]))
    launch.executor = "docker"
    launch.container = {
        "image": environment.get("image"),
        "dockerfile": environment.get("dockerfile"),
        "dockerfile_digest": environment.get("dockerfile_digest"),
        "context": environment.get("context"),
        "context_dockerfile": environment.get("context_dockerfile"),
        "context_digest": environment.get("context_digest"),
        "packages": environment.get("packages"),
        "packages_digest": environment.get("packages_digest"),
        "env": env,
        "mounts": sorted(mounts.items()),
        "user": f"{os.getuid()}:{os.getgid()}",  # what the step writes belongs to the submitting user
        "labels": labels,
        "cpus": placement.cpus,
        "shm_size": environment.get("shm_size"),
        "gpus": [g.uuid for g in placement.gpus],
    }


def to_ray(launch: Launch, step: StepSpec) -> None:
    """Make ``launch`` one for the Ray executor (docs/scale-out.md): the same argv, folder and
    environment (with the target's ``runtime_env`` variables), what its task asks Ray for, and the
    step's timeout."""
    asked = step.resources["ray"]
    launch.env.update((asked.get("runtime_env") or {}).get("env_vars") or {})
    launch.env[MACHINE_ENV] = machine_id()  # on another machine, history.db is refused, not shared
    launch.executor = "ray"
    # Started anew on the node, the child of its worker's step supervisor: zygotes kept there
    # between tasks would be processes (and memory) that Ray does not know of.
    launch.runs_python = False
    launch.ray = {**asked, "cpus": step.resources["cpus"], "gpus": step.resources["gpus"]}
    launch.ray["timeout"] = step.timeout_seconds  # counted by the task, from its start on a node


def _link_targets(root: str) -> list[str]:
    """The real paths the symbolic links below ``root`` lead to (links are not followed further)."""
    found = []
    for folder, names, files in os.walk(root):
        for name in names + files:
            path = os.path.join(folder, name)
            if os.path.islink(path):
                found.append(os.path.realpath(path))
    return found
