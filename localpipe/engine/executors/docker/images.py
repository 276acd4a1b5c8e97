"""The images localpipe builds in this machine's daemon (docs/docker.md): their tags (from a
Dockerfile, a build context, or an environment's packages layered over an image), building one
(once per tag on the machine, under a lock; tagged only once it succeeded), holding those a step
runs in while it runs and marking when it last did (``in_use``), listing them, and removing those
no step used for a while (``remove_unused_images``, for ``localpipe gc --envs``).

Beside the logs of builds, the machine's cache's ``image-builds/`` holds ``.locks/`` (a build
lock and a use lock per tag) and ``.last-used/`` (a file per tag, touched when a step runs in it).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import tempfile
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import docker
import docker.errors
import docker.utils

from localpipe.cache_dir import cache_root
from localpipe.content.hashing import STATE_FOLDER
from localpipe.engine.workdir import PACKAGES_IN_IMAGE
from localpipe.envs.build import BuildFailed, Installer, find_uv, last_error_line
from localpipe.errors import UsageError
from localpipe.plan.environments import build_context_digest

DAEMON_SECONDS = 3  # how long a question to the daemon waits before it is called unanswered
API_SECONDS = 120  # an ordinary call (creating a container, removing one) on a busy daemon
DOCKERFILE_TAG = "localpipe-dockerfile"  # images built from a Dockerfile: DOCKERFILE_TAG:<its digest>
PACKAGES_TAG = "localpipe-env"  # an image with an environment's packages: PACKAGES_TAG:<their digest>
CONTEXT_TAG = "localpipe-context"  # images built from a build context: CONTEXT_TAG:<digest of its files>
START_DAEMON = "start it (sudo dockerd, or systemctl start docker)"
LAST_USED = ".last-used"  # in the cache's image-builds/: a file per image, touched when a step runs in it

_build_lock = threading.Lock()  # one build at a time in a process (and one per image on the machine: _machine_lock)


def client(timeout: float = API_SECONDS) -> docker.DockerClient:
    return docker.from_env(timeout=timeout)


def built_images() -> list[dict] | None:
    """The images localpipe built in this machine's daemon, newest first: ``tag``, ``kind`` (what
    it was built from), ``id``, ``size`` in bytes, ``created`` (the daemon's UTC time, to the
    second), ``last_used`` (when a step last ran in it, else when it was built: seconds since
    the epoch); None when no daemon answers."""
    try:
        return _built(client(DAEMON_SECONDS))
    except Exception:  # noqa: BLE001  (no daemon: several unrelated types)
        return None


def _built(found: docker.DockerClient) -> list[dict]:
    kinds = {DOCKERFILE_TAG: "Dockerfile", CONTEXT_TAG: "build context", PACKAGES_TAG: "packages"}
    images = found.images.list(filters={"reference": [f"{repository}:*" for repository in kinds]})
    listed = []
    for image in images:
        created = image.attrs.get("Created") or ""
        made = datetime.fromisoformat(created[:19]).replace(tzinfo=UTC).timestamp() if created else 0.0
        for tag in image.tags:
            if tag.split(":")[0] in kinds:
                listed.append({
                    "tag": tag, "kind": kinds[tag.split(":")[0]], "id": image.short_id,
                    "size": image.attrs.get("Size"), "created": created[:19].replace("T", " "),
                    "last_used": _last_used(tag) or made,
                })  # fmt: skip
    return sorted(listed, key=lambda entry: entry["created"], reverse=True)


@dataclass
class ImageSweep:
    """What ``remove_unused_images`` did (for a dry run, would do)."""

    removed: list[tuple[str, int]] = field(default_factory=list)  # (tag, bytes freed)
    kept: list[tuple[str, str]] = field(default_factory=list)  # (tag, why), of those unused long enough
    problem: str | None = None  # why the images were not looked at, or why the sweep stopped


def remove_unused_images(seconds: float, now: float, dry_run: bool = False) -> ImageSweep:
    """Remove the images this machine's cache built that no step used in the last ``seconds``,
    none a run holds (``in_use``) nor a container uses (the daemon refuses), each before the image
    it is built on; with ``dry_run``, say what that would free. The bytes freed are
    those of each image and of its untagged parents the daemon deletes with it: the layers no
    image left shares."""
    sweep = ImageSweep()
    try:
        found = client()
        listed = _built(found)
        layers = _Layers(found)
    except Exception as exc:  # noqa: BLE001  (no daemon: several unrelated types)
        sweep.problem = f"no Docker daemon answers ({type(exc).__name__}): {START_DAEMON}; no image was looked at"
        return sweep
    # Only the images this cache built (each build takes its lock): not another cache's, nor a tag made by hand.
    ours = [e for e in listed if _image_path(e["tag"], ".locks", ".lock").exists()]
    stale = [e["tag"] for e in ours if e["last_used"] < now - seconds]
    for tag in sorted(stale, key=layers.depth, reverse=True):  # an image before the one it is built on
        with _unused(tag) as free:
            if not free:
                sweep.kept.append((tag, "a run uses it"))
                continue
            if (_last_used(tag) or 0.0) >= now - seconds:  # a step ran in it since the listing
                continue
            try:
                freed = layers.remove(tag) if dry_run else layers.freed(found.api.remove_image(tag))
            except docker.errors.ImageNotFound:  # removed by hand meanwhile
                continue
            except docker.errors.APIError as exc:  # the daemon refuses: 409 when a container uses it
                sweep.kept.append((tag, _container_uses(tag) if exc.status_code == 409 else said(exc)))
                continue
            except Exception as exc:  # noqa: BLE001  (the daemon stopped answering: several unrelated types)
                sweep.problem = f"the Docker daemon stopped answering ({type(exc).__name__}): {START_DAEMON}"
                return sweep
            if freed is None:
                sweep.kept.append((tag, _container_uses(tag)))
                continue
            sweep.removed.append((tag, freed))
    if not dry_run:
        removed = {tag_file_name(tag) for tag, _ in sweep.removed}
        _forget({tag_file_name(e["tag"]) for e in listed} - removed, removed, now - seconds)
    return sweep


def _container_uses(tag: str) -> str:
    return (
        f"a container uses it (docker ps -a --filter ancestor={tag} lists it; docker rm it to let gc remove the image)"
    )


@contextlib.contextmanager
def _unused(tag: str):
    """Whether no run holds ``tag`` in use; while it is True, none can begin to (they wait)."""
    with open(_image_file(tag, ".locks", ".use"), "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True


def _forget(present: set[str], removed: set[str], before: float) -> None:
    """Remove the last-use marks and the build logs (of ``Environment.build``) of the images
    ``removed``, and of those not in the daemon (removed by hand, or never built) untouched since
    ``before``; ``present`` names the others (tags as file names). (Lock files stay: a process may
    be waiting on one.)"""
    folder = cache_root() / "image-builds"
    for path in [*(folder / LAST_USED).glob("*"), *folder.glob("*.log")]:
        name = path.name.removesuffix(".log")
        with contextlib.suppress(OSError):
            if name in removed or (name not in present and path.stat().st_mtime < before):
                path.unlink()


class _Layers:
    """The daemon's images (all of them, untagged parents too), as ``docker rmi TAG`` changes them:
    the tag goes; the image goes when that was its last tag and no image is built on it; its
    parents go up the chain while each is untagged and has no other child. An image a container
    uses (running or not) is refused when its last tag would go."""

    def __init__(self, found: docker.DockerClient):
        images = found.api.images(all=True)
        self.parent = {i["Id"]: i.get("ParentId") or None for i in images}
        sizes = {i["Id"]: i.get("Size") or 0 for i in images}
        self.own = {image: size - sizes.get(self.parent[image], 0) for image, size in sizes.items()}
        self.tags = {i["Id"]: set(i.get("RepoTags") or ()) - {"<none>:<none>"} for i in images}
        self.children = Counter(parent for parent in self.parent.values() if parent)
        self.used = {container["ImageID"] for container in found.api.containers(all=True)}

    def depth(self, tag: str) -> int:
        """How many images ``tag``'s is built on."""
        image, found = self._image(tag), -1
        while image in self.parent:
            image, found = self.parent[image], found + 1
        return found

    def _image(self, tag: str) -> str | None:
        return next((image for image, tags in self.tags.items() if tag in tags), None)

    def freed(self, answer: list[dict]) -> int:
        """The bytes of the images the daemon's answer to a removal says it deleted (it names their
        layers too: not images)."""
        return sum(self.own.get(item["Deleted"], 0) for item in answer if "Deleted" in item)

    def remove(self, tag: str) -> int | None:
        """The bytes removing ``tag`` frees, now that the tags removed before it are gone; None
        when the daemon would refuse."""
        image = self._image(tag)
        if image is None:  # removed by hand since it was listed
            raise docker.errors.ImageNotFound(tag)
        if self.tags[image] == {tag} and image in self.used:
            return None
        self.tags[image].discard(tag)
        freed = 0
        while image in self.tags and not self.tags[image] and not self.children[image] and image not in self.used:
            freed += self.own[image]
            del self.tags[image]
            image = self.parent[image]
            self.children[image] -= 1
        return freed


class ImageFailed(Exception):
    """An image could not be built: the daemon's (or uv's) line and the log's path."""


def built_tags(spec: dict) -> list[str]:
    """The tags of the images localpipe builds for a planned Docker environment (or a launch's
    ``container``), the base first: the Dockerfile's or build context's, then the packages' layer
    over it; none for a named image without packages."""
    tags = []
    if spec.get("context"):
        tags.append(f"{CONTEXT_TAG}:{spec['context_digest']}")
    elif spec.get("dockerfile"):
        tags.append(f"{DOCKERFILE_TAG}:{spec['dockerfile_digest']}")
    if spec.get("packages"):
        tags.append(f"{PACKAGES_TAG}:{spec['packages_digest']}")
    return tags


def image_tag(spec: dict) -> str:
    """The tag of the image a planned Docker environment (or a launch's ``container``) runs in."""
    return (built_tags(spec) or [spec["image"]])[-1]


def build_image(found: docker.DockerClient, spec: dict, log: Path) -> tuple[str, list[str]]:
    """The image to run, with the tags built now: the named one, or the one built from the
    Dockerfile or the build context, with a layer of the environment's packages when it lists any.
    Each build is tagged only once it succeeded (nothing half-built is kept) and reused while its
    digest is the same; its output goes to ``log``. The images are held in use meanwhile
    (``in_use``). Raises ``ImageFailed``."""
    built: list[str] = []
    image = spec["image"]
    with in_use(built_tags(spec)):
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
                out.write(said(exc) + "\n")
                return said(exc)
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


def build_log(tag: str) -> Path:
    """Where ``Environment.build`` writes the build of ``tag`` (a step writes its own folder's)."""
    return _image_file(tag, "", ".log")


def tag_file_name(tag: str) -> str:
    """An image's tag as a file name (its build log's, its locks', its last use's)."""
    return tag.replace("/", "_").replace(":", "-")


def _image_path(tag: str, folder: str, suffix: str = "") -> Path:
    """``tag``'s file in ``folder`` of the machine's cache's ``image-builds/``."""
    return cache_root() / "image-builds" / folder / f"{tag_file_name(tag)}{suffix}"


def _image_file(tag: str, folder: str, suffix: str = "") -> Path:
    """``_image_path``, its folder made where missing."""
    path = _image_path(tag, folder, suffix)
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def _machine_lock(tag: str):
    """The build lock of ``tag`` for every process of the machine (its daemon is theirs too): a
    second submitter building the same image waits, then finds it built."""
    with open(_image_file(tag, ".locks", ".lock"), "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield  # closing the file releases the lock, also when the process dies


@contextlib.contextmanager
def in_use(tags: list[str]):
    """Hold the images ``tags`` in use (a shared lock each, for every process of the machine), so
    that ``remove_unused_images`` never removes one meanwhile; each is marked used as the hold
    begins and as it ends (a step's start and end)."""
    with contextlib.ExitStack() as held:
        for tag in tags:
            handle = held.enter_context(open(_image_file(tag, ".locks", ".use"), "a"))
            fcntl.flock(handle, fcntl.LOCK_SH)  # waits while gc removes it: then it is built again
        held.callback(_mark_used, tags)
        _mark_used(tags)
        yield


def _mark_used(tags: list[str]) -> None:
    for tag in tags:
        _image_file(tag, LAST_USED).touch()  # its time, when it is there


def _last_used(tag: str) -> float | None:
    """When a step last ran in ``tag`` (or it was last built), as marked; None when never marked
    (an image built by a localpipe that did not mark them)."""
    try:
        return os.stat(_image_path(tag, LAST_USED)).st_mtime
    except OSError:
        return None


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
    version = _python_version(found, base)
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


def _python_version(found: docker.DockerClient, base: str) -> str:
    """The ``X.Y`` of image ``base``'s ``python3`` (not through its ENTRYPOINT), asked in a container
    that is removed whatever happens: one that could not start (no ``python3``) stays otherwise."""
    command = ["python3", "-c", "import sys; print('%d.%d' % sys.version_info[:2])"]
    probe = found.containers.create(base, command, entrypoint=[], labels={"localpipe.probe": "python-version"})
    try:
        probe.start()
        code = probe.wait()["StatusCode"]
        if code != 0:
            raise docker.errors.ContainerError(probe, code, command, base, probe.logs(stdout=False, stderr=True))
        return probe.logs(stdout=True, stderr=False).decode().strip()
    finally:
        try:
            probe.remove(force=True)
        except docker.errors.DockerException:
            pass  # gone already


def said(exc: Exception) -> str:
    """The first line of what the daemon said."""
    text = str(getattr(exc, "explanation", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
