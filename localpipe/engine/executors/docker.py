"""The Docker executor: each launch in a container of its own, through the Docker SDK (the only
``docker`` import of localpipe, docs/docker.md).

A launch for it carries ``Launch.container`` (made by ``engine/workdir.py``'s ``containerize``):
the image (or a Dockerfile to build it from), the host paths to bind at the same paths (so that
every path in the step's argv and environment holds inside), which of them are read-only, the
variables to pass, the user, the limits, the GPUs and the labels. Each launch has a thread that
creates the container, attaches to its streams before starting it (so that nothing is missed,
and the daemon keeps no copy of the logs: its log driver is ``none``), copies them into the
step's logs through the supervisor's ``Log`` (masked and capped as for local steps), waits for
it, reads how it ended and removes it. Exits come back through ``wait`` as the local executor's
do; ``terminate`` stops the container (SIGTERM to the step through the container's init, SIGKILL
after the grace period). Containers carry labels naming the workspace, run and step run, so that
``remove_containers`` (recovery) finds those a killed scheduler left.
"""

from __future__ import annotations

import fcntl
import re
import signal
import tempfile
import threading
from contextlib import contextmanager
from pathlib import Path

import docker
import docker.errors
import docker.utils
from docker.types import DeviceRequest, LogConfig, Mount

from localpipe.cache_dir import cache_root
from localpipe.content.hashing import STATE_FOLDER
from localpipe.engine.executors import RUN_LABEL, TERMINATE_GRACE_SECONDS, WORKSPACE_LABEL, Exit, Inbox, Launch
from localpipe.engine.executors.local import log_limit
from localpipe.engine.executors.supervisor import Log
from localpipe.engine.workdir import PACKAGES_IN_IMAGE
from localpipe.envs.build import BuildFailed, Installer, find_uv, last_error_line
from localpipe.errors import UsageError
from localpipe.plan.environments import build_context_digest

DAEMON_SECONDS = 3  # how long a question to the daemon waits before it is called unanswered
API_SECONDS = 120  # an ordinary call (creating a container, removing one) on a busy daemon
LOG_DRAIN_SECONDS = 5.0  # how long an ended container's streams are read for what they still hold
DOCKERFILE_TAG = "localpipe-dockerfile"  # images built from a Dockerfile: DOCKERFILE_TAG:<its digest>
PACKAGES_TAG = "localpipe-env"  # an image with an environment's packages: PACKAGES_TAG:<their digest>
CONTEXT_TAG = "localpipe-context"  # images built from a build context: CONTEXT_TAG:<digest of its files>

_build_lock = threading.Lock()  # one build at a time in a process (and one per image on the machine: _machine_lock)


def client(timeout: float = API_SECONDS) -> docker.DockerClient:
    return docker.from_env(timeout=timeout)


def daemon_status() -> str:
    """'daemon answers (version X)' or why not, in a few words."""
    try:
        found = client(DAEMON_SECONDS)
        version = found.version().get("Version", "?")
        found.close()
        return f"daemon answers (version {version})"
    except Exception as exc:  # docker raises several unrelated types for "no daemon"
        return f"no daemon answers ({type(exc).__name__})"


def machine_docker() -> dict:
    """What planning asks of this machine's daemon, asked once: ``problem`` when none answers,
    else ``gpus`` (whether it can hand GPUs to containers: the nvidia runtime) and ``image(name)``,
    the id of a local image (None when it is not here). Nothing is pulled: a missing image is the
    user's to provide (docs/docker.md)."""
    try:
        found = client(DAEMON_SECONDS)
        info = found.info()
    except Exception as exc:  # noqa: BLE001  (no daemon: several unrelated types)
        return {"problem": f"no Docker daemon answers ({type(exc).__name__}): start it (sudo dockerd, or "
                           "systemctl start docker)", "gpus": False, "image": lambda name: None}  # fmt: skip
    ids: dict[str, str | None] = {}

    def image(name: str) -> str | None:
        if name not in ids:
            try:
                ids[name] = found.images.get(name).id
            except docker.errors.ImageNotFound:
                ids[name] = None
        return ids[name]

    return {"problem": None, "gpus": "nvidia" in (info.get("Runtimes") or {}), "image": image}


def built_images() -> list[dict] | None:
    """The images localpipe built in this machine's daemon, newest first: ``tag``, ``kind`` (what
    it was built from), ``id``, ``size`` in bytes, ``created`` (the daemon's UTC time, to the
    second); None when no daemon answers."""
    kinds = {DOCKERFILE_TAG: "Dockerfile", CONTEXT_TAG: "build context", PACKAGES_TAG: "packages"}
    try:
        found = client(DAEMON_SECONDS)
        images = found.images.list(filters={"reference": [f"{repository}:*" for repository in kinds]})
    except Exception:  # noqa: BLE001  (no daemon: several unrelated types)
        return None
    listed = [
        {"tag": tag, "kind": kinds[tag.split(":")[0]], "id": image.short_id, "size": image.attrs.get("Size"),
         "created": (image.attrs.get("Created") or "")[:19].replace("T", " ")}
        for image in images for tag in image.tags if tag.split(":")[0] in kinds
    ]  # fmt: skip
    return sorted(listed, key=lambda entry: entry["created"], reverse=True)


def remove_containers(workspace: str, run_id: int) -> int:
    """Remove (killing them first) the containers of run ``run_id`` of ``workspace``: those a
    scheduler killed without a chance to clean up left running. Returns how many; 0 when no daemon
    answers (there is then nothing it could be running)."""
    try:
        found = client(DAEMON_SECONDS)
        containers = found.containers.list(
            all=True, filters={"label": [f"{WORKSPACE_LABEL}={workspace}", f"{RUN_LABEL}={run_id}"]}
        )
    except Exception:  # noqa: BLE001  (no daemon, no containers)
        return 0
    for container in containers:
        try:
            container.remove(force=True)
        except docker.errors.NotFound:
            pass
    return len(containers)


class _Step:
    def __init__(self, launch: Launch):
        self.launch = launch
        self.container = None  # once created
        self.stop_grace: float | None = None  # terminate was asked, with this grace
        self.thread: threading.Thread | None = None


class DockerExecutor:
    """Runs each launch in a container; an ``Executor``. ``wake`` and ``terminate`` may be called
    from any thread; a thread per launch talks to the daemon."""

    def __init__(self):
        self._inbox = Inbox()
        self._steps: dict[str, _Step] = {}
        self._lock = threading.RLock()
        self._client = None
        self._log_limit = log_limit()

    def prepare(self) -> None:
        """Nothing to start ahead: each launch's thread talks to the daemon."""

    def start(self, launch: Launch) -> None:
        step = self._steps[launch.key] = _Step(launch)
        step.thread = threading.Thread(target=self._run, args=(step,), name=f"docker-{launch.key}", daemon=True)
        step.thread.start()

    def wait(self, timeout: float | None) -> list[Exit]:
        exits = self._inbox.take(timeout)
        for found in exits:
            self._steps.pop(found.key, None)
        return exits

    def wake(self) -> None:
        self._inbox.wake()

    def terminate(self, key: str, grace: float = TERMINATE_GRACE_SECONDS) -> None:
        """Stop ``key``'s container: SIGTERM, SIGKILL after ``grace`` seconds. Returns at once."""
        step = self._steps.get(key)
        if step is None:
            return
        with self._lock:
            if step.stop_grace is not None:
                return
            step.stop_grace = grace
            container = step.container
        if container is not None:  # else its thread stops it as soon as it is created
            threading.Thread(target=_stop, args=(container, grace), daemon=True).start()

    def terminate_all(self, grace: float = TERMINATE_GRACE_SECONDS) -> None:
        """Stop every container and return once all have ended (their exits are kept for ``wait``)."""
        steps = list(self._steps.values())
        for step in steps:
            self.terminate(step.launch.key, grace)
        for step in steps:
            step.thread.join()

    def close(self) -> None:
        """Remove the containers still running (none outlives its scheduler), then the descriptors."""
        with self._lock:
            running = [s.container for s in self._steps.values() if s.container is not None]
        threads = [threading.Thread(target=_remove, args=(c,), daemon=True) for c in running]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(API_SECONDS)
        self._inbox.close()

    def fileno(self) -> int:
        return self._inbox.fileno()

    # -- one launch, in its thread -------------------------------------------------------------
    def _run(self, step: _Step) -> None:
        launch = step.launch
        try:
            result = self._contain(step)
        except docker.errors.DockerException as exc:
            result = Exit(launch.key, None, None, None, error=f"Docker: {_said(exc)}")
        except Exception as exc:  # noqa: BLE001  (a bug or an odd value: this step's reason says which)
            result = Exit(launch.key, None, None, None, error=f"the Docker executor could not handle it: {exc!r}")
        self._inbox.put(result)

    def _contain(self, step: _Step) -> Exit:
        launch, spec = step.launch, step.launch.container
        with self._lock:
            if self._client is None:
                self._client = client()
        image = self._image(spec, launch)
        if isinstance(image, Exit):
            return image
        gpus = spec.get("gpus") or []
        container = self._client.containers.create(
            image,
            command=launch.argv,
            working_dir=launch.cwd,
            environment=spec["env"],
            user=spec["user"],
            labels=spec["labels"],
            mounts=[Mount(path, path, type="bind", read_only=ro) for path, ro in spec["mounts"]],
            mem_limit=launch.memory_limit,
            memswap_limit=launch.memory_limit,  # no swap beyond the limit: over it, the step is killed
            nano_cpus=int(spec["cpus"] * 1e9) if spec.get("cpus") else None,
            shm_size=spec.get("shm_size"),
            device_requests=[DeviceRequest(device_ids=gpus, capabilities=[["gpu"]])] if gpus else None,
            init=True,  # the step is not PID 1, which would ignore SIGTERM; its children are reaped
            log_config=LogConfig(type=LogConfig.types.NONE),  # the daemon keeps no unmasked copy
            stdin_open=False,
            tty=False,
            detach=True,
        )
        with self._lock:
            step.container = container
            stop = step.stop_grace
        try:
            if stop is not None:  # terminated before it was created: it never starts
                return Exit(launch.key, None, signal.SIGTERM, None)
            stream = container.attach(stdout=True, stderr=True, stream=True, logs=False, demux=True)
            logs = [Log(-1, path, self._log_limit, launch.masked) for path in (launch.stdout, launch.stderr)]
            copier = threading.Thread(target=_copy, args=(stream, logs), daemon=True)
            copier.start()
            container.start()
            status = container.wait()
            copier.join(LOG_DRAIN_SECONDS)
            for log in logs:
                log.close()
            container.reload()
            state = container.attrs["State"]
            code = status.get("StatusCode", state.get("ExitCode"))
            oom = bool(state.get("OOMKilled"))
            stopped = step.stop_grace is not None and code in (128 + signal.SIGTERM, 128 + signal.SIGKILL)
            if oom:  # the kernel killed it at its memory limit
                code, number = None, signal.SIGKILL
            elif stopped:  # the container's init reports a signal N as 128 + N
                code, number = None, code - 128
            else:
                number = None
            return Exit(
                launch.key, code, number, None, pid=state.get("Pid") or None,
                log_error=next((log.error for log in logs if log.error), None), oom_killed=oom,
            )  # fmt: skip
        finally:
            _remove(container)

    def _image(self, spec: dict, launch: Launch) -> str | Exit:
        """The image to run (``build_image``); its build's output is in the step's ``image-build.log``."""
        try:
            return build_image(self._client, spec, Path(launch.stderr).with_name("image-build.log"))[0]
        except ImageFailed as exc:
            return Exit(launch.key, None, None, None, error=str(exc))


class ImageFailed(Exception):
    """An image could not be built: the daemon's (or uv's) line and the log's path."""


def image_tag(spec: dict) -> str:
    """The tag of the image a planned Docker environment (or a launch's ``container``) runs in."""
    if spec.get("packages"):
        return f"{PACKAGES_TAG}:{spec['packages_digest']}"
    if spec.get("context"):
        return f"{CONTEXT_TAG}:{spec['context_digest']}"
    if spec.get("dockerfile"):
        return f"{DOCKERFILE_TAG}:{spec['dockerfile_digest']}"
    return spec["image"]


def build_image(found: docker.DockerClient, spec: dict, log: Path) -> tuple[str, list[str]]:
    """The image to run, with the tags built now: the named one, or the one built from the
    Dockerfile or the build context, with a layer of the environment's packages when it lists any.
    Each build is tagged only once it succeeded (nothing half-built is kept) and reused while its
    digest is the same; its output goes to ``log``. Raises ``ImageFailed``."""
    built: list[str] = []
    image = spec["image"]
    if spec.get("context"):
        image = f"{CONTEXT_TAG}:{spec['context_digest']}"
        folder, dockerfile = spec["context"], spec["context_dockerfile"]
        failure = _build(found, image, log, built, context=(folder, dockerfile, spec["context_digest"]))
        if failure:
            raise ImageFailed(f"its Docker build context {folder} could not be built: {failure} (log: {log})")
    elif spec.get("dockerfile"):
        image = f"{DOCKERFILE_TAG}:{spec['dockerfile_digest']}"
        failure = _build(found, image, log, built, prepare=lambda folder: spec["dockerfile"])
        if failure:
            raise ImageFailed(f"its Dockerfile could not be built: {failure} (log: {log})")
    if spec.get("packages"):
        base, image = image, f"{PACKAGES_TAG}:{spec['packages_digest']}"
        prepare = lambda folder: _install(found, base, spec["packages"], folder, log)  # noqa: E731
        failure = _build(found, image, log, built, prepare=prepare)
        if failure:
            raise ImageFailed(f"its packages could not be added to image {base}: {failure} (log: {log})")
    return image, built


def _build(found: docker.DockerClient, tag: str, log: Path, built: list[str], prepare=None, context=None) -> str | None:
    """Build ``tag`` unless it exists, from the Dockerfile ``prepare(folder)`` returns (it may put
    files in ``folder``, the build's context) or from ``context`` (a folder, its Dockerfile's path
    in it, and the digest planned of them, checked once the daemon's copy is made); None when it
    succeeded (``tag`` is added to ``built``), else why not."""
    with _build_lock, _machine_lock(tag):
        try:
            found.images.get(tag)
            return None
        except docker.errors.ImageNotFound:
            pass
        log.parent.mkdir(parents=True, exist_ok=True)
        with open(log, "a") as out, tempfile.TemporaryDirectory(prefix="localpipe-image-") as scratch:
            try:
                if context:
                    folder, dockerfile, planned = context
                    try:
                        text = Path(folder, dockerfile).read_text(errors="replace")
                    except OSError as exc:  # it went away since planning
                        return f"{dockerfile} cannot be read ({exc.strerror}): put it back"
                    out.write(f"# {tag}: {dockerfile} of {folder}\n")
                else:
                    folder, dockerfile = scratch, "Dockerfile"
                    text = prepare(folder)
                    Path(folder, dockerfile).write_text(text)
                    out.write(f"# {tag}\n{text}\n")
                out.flush()
                missing = _missing_base(found, text)
                if missing:
                    out.write(missing + "\n")
                    return missing
                # No pull: FROM names an image of this machine (docker pull / docker load it first).
                sent, name = _context_tar(folder, dockerfile)
                if context and _digest_now(folder, dockerfile) != planned:
                    # The image is built when its step starts, maybe long after planning: tagged with
                    # the digest planned, what the folder holds now would later run for that content.
                    out.write("the build context changed since the run was planned\n")
                    return "it changed since the run was planned, before its image was built: submit again"
                chunks = found.api.build(
                    fileobj=sent, custom_context=True, dockerfile=name, tag=tag, rm=True, forcerm=True,
                    decode=True, pull=False,
                )  # fmt: skip
                for chunk in chunks:
                    out.write(chunk.get("stream") or "")
                    if "error" in chunk:
                        out.write(chunk["error"] + "\n")
                        return chunk["error"].strip()
            except BuildFailed as exc:
                out.flush()
                return f"{exc.reason}: {last_error_line(log)}" if last_error_line(log) else exc.reason
            except docker.errors.DockerException as exc:  # the daemon refused, or the base has no python3
                out.write(_said(exc) + "\n")
                return _said(exc)
    built.append(tag)
    return None


def _context_tar(folder: str, dockerfile: str):
    """The build context the daemon is sent, as docker-py makes it (its ``.dockerignore`` applies, a
    Dockerfile out of the folder is added), less a workspace's ``STATE_FOLDER`` anywhere in it:
    which each submission changes, which the context's digest leaves out, and which may hold the
    whole object store. Returns the tar and the Dockerfile's name in it."""
    from docker.api.build import process_dockerfile

    exclude = [STATE_FOLDER, f"**/{STATE_FOLDER}"]
    ignore = Path(folder, ".dockerignore")
    if ignore.is_file():
        lines = (line.strip() for line in ignore.read_text(errors="replace").splitlines())
        exclude += [line for line in lines if line and not line.startswith("#")]
    name, text = process_dockerfile(dockerfile, folder)
    return docker.utils.tar(folder, exclude=exclude, dockerfile=(name, text)), name


def _digest_now(folder: str, dockerfile: str) -> str | None:
    try:
        return build_context_digest(folder, dockerfile)
    except UsageError:
        return None


def tag_file_name(tag: str) -> str:
    """An image's tag as a file name (its build log's, its lock's)."""
    return tag.replace("/", "_").replace(":", "-")


@contextmanager
def _machine_lock(tag: str):
    """The build lock of ``tag`` for every process of the machine (its daemon is theirs too): a
    second submitter building the same image waits, then finds it built."""
    folder = cache_root() / "image-builds" / ".locks"
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{tag_file_name(tag)}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # closing the file releases the lock, also when the process dies


def _missing_base(found: docker.DockerClient, dockerfile: str) -> str | None:
    """What to do when an image a ``FROM`` line names is not on this machine (the daemon would try
    to pull it, and localpipe pulls nothing); None when every one is here."""
    stages = set()
    for match in _FROM.finditer(dockerfile):
        name, stage = match.group(1), match.group(2)
        if name.lower() != "scratch" and name not in stages and "$" not in name:
            try:
                found.images.get(name)
            except docker.errors.ImageNotFound:
                return (
                    f"its FROM image {name} is not on this machine (localpipe pulls nothing): "
                    f"docker pull {name}, or docker load -i FILE.tar"
                )
        if stage:
            stages.add(stage)
    return None


_FROM = re.compile(r"^\s*FROM\s+(?:--platform=\S+\s+)?(\S+)(?:\s+AS\s+(\S+))?", re.IGNORECASE | re.MULTILINE)


def _install(found: docker.DockerClient, base: str, packages: dict, folder: str, log: Path) -> str:
    """Install ``packages`` here, for the Python of image ``base``, into ``folder/packages``
    (uv, for Linux and that Python's version: the image needs no installer and no network),
    and return the Dockerfile that copies them into a layer over ``base``."""
    uv = find_uv()
    if uv is None:
        raise BuildFailed("installing packages for an image needs uv (pip install uv)", log)
    version = (
        found.containers.run(base, ["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"], remove=True)
        .decode()
        .strip()
    )
    requirements = Path(folder, "requirements.txt")
    requirements.write_text("\n".join([*packages["options"], *packages["requirements"]]) + "\n")
    with open(log, "ab") as out:
        installer = Installer(out)
        installer.uv = uv
        installer._run([
            uv, "pip", "install", "--no-progress", "--target", str(Path(folder, "packages")),
            "--python-version", version, "--python-platform", "linux", "-r", str(requirements),
        ])  # fmt: skip
    return f"FROM {base}\nCOPY packages {PACKAGES_IN_IMAGE}\n"


def _copy(stream, logs: list[Log]) -> None:
    """Copy a demultiplexed attach stream into the step's two logs as it comes."""
    try:
        for out, err in stream:
            if out:
                logs[0].feed(out)
            if err:
                logs[1].feed(err)
    except Exception:  # noqa: BLE001  (the connection closed as the container was removed: its end)
        pass


def _stop(container, grace: float) -> None:
    try:
        container.stop(timeout=max(1, round(grace)))
    except docker.errors.DockerException:
        pass  # gone already


def _remove(container) -> None:
    try:
        container.remove(force=True)
    except docker.errors.DockerException:
        pass  # gone already


def _said(exc: Exception) -> str:
    """The first line of what the daemon said."""
    text = str(getattr(exc, "explanation", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


EXECUTOR = DockerExecutor
