"""The images localpipe builds in this machine's daemon (docs/docker.md): their tags (from a
Dockerfile, a build context, or an environment's packages layered over an image), building one
(once per tag on the machine, under a lock; tagged only once it succeeded), and listing them.
"""

from __future__ import annotations

import fcntl
import re
import tempfile
import threading
from contextlib import contextmanager
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

_build_lock = threading.Lock()  # one build at a time in a process (and one per image on the machine: _machine_lock)


def client(timeout: float = API_SECONDS) -> docker.DockerClient:
    return docker.from_env(timeout=timeout)


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


def said(exc: Exception) -> str:
    """The first line of what the daemon said."""
    text = str(getattr(exc, "explanation", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
