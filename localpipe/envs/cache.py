"""The machine-wide cache of built environments: ``<cache>/envs/<digest>/``, one virtual
environment per definition digest, shared by every workspace.

A build happens under the digest's build lock (``.locks/<digest>.lock``, so that submitters
needing the same new environment wait for one build), in a folder of its own under
``.building/``, renamed into place only once complete: an interrupted build never looks built. A
failed build leaves nothing in place but its log, ``.failed/<digest>.log``, which submitters that
waited for that build report instead of building again. Schedulers hold ``.locks/<digest>.use``
shared while they use an environment, and removing one takes it exclusively, so that ``gc``
never removes an environment a run uses. An environment whose packages changed since its build
(a step ran ``pip install`` in it) is rebuilt before its next use, when no run uses it.
"""

from __future__ import annotations

import fcntl
import glob
import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from localpipe.envs.build import BuildFailed, Installer, last_error_line

METADATA = "localpipe-env.json"
BUILD_LOG = "localpipe-build.log"
LAST_USED = ".last-used"


@dataclass
class BuiltEnvironment:
    """A built environment, as its metadata file records it."""

    digest: str
    name: str
    path: str  # where it is now (the cache may have moved since the build)
    python: str  # the interpreter's version
    packages: list[str]  # what is installed, as name==version
    dropped: list[str]  # requirements left out, with why
    built_at: float
    build_seconds: float
    size: int  # bytes
    installed: str = ""  # the state of its package folders when built (see ``installed_state``)

    @property
    def interpreter(self) -> str:
        return os.path.join(self.path, "bin", "python")

    @property
    def log(self) -> str:
        return os.path.join(self.path, BUILD_LOG)


def installed_state(path: str | os.PathLike) -> str:
    """When the package folders of the environment at ``path`` last changed: installing or
    removing a package changes the entries of site-packages and bin (editing a file in place
    does not, nor does Python writing bytecode into the ``__pycache__`` a build makes)."""
    folders = sorted(glob.glob(os.path.join(path, "lib", "python*", "site-packages"))) + [os.path.join(path, "bin")]
    stamps = []
    for folder in folders:
        try:
            stamps.append(str(os.stat(folder).st_mtime_ns))
        except OSError:
            stamps.append("-")
    return ",".join(stamps)


class EnvironmentCache:
    """The built environments under ``root`` (``<cache>/envs``)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def find(self, digest: str) -> BuiltEnvironment | None:
        """The environment built for ``digest``, or None (also when its metadata is unreadable, or
        JSON of another shape: a copy gone wrong, an edit by hand)."""
        try:
            with open(self.root / digest / METADATA, encoding="utf-8") as f:
                fields = json.load(f)
            known = {name: value for name, value in fields.items() if name in BuiltEnvironment.__dataclass_fields__}
            built = BuiltEnvironment(**{**known, "path": str(self.root / digest)})
        except (OSError, ValueError, TypeError, AttributeError):
            return None
        return built if _well_formed(built) else None

    def changed(self, built: BuiltEnvironment) -> bool:
        """Whether packages were installed into or removed from ``built`` since its build."""
        return bool(built.installed) and installed_state(built.path) != built.installed

    def touch(self, digest: str) -> None:
        """Say that ``digest`` was used now (``localpipe gc --envs`` removes long-unused ones); a
        cache this user cannot write to (one shared read-only) is used all the same."""
        try:
            with open(self.root / digest / LAST_USED, "a"):
                pass
            os.utime(self.root / digest / LAST_USED)
        except OSError:
            pass

    def last_used(self, digest: str) -> float | None:
        try:
            return os.stat(self.root / digest / LAST_USED).st_mtime
        except OSError:
            return None

    def building_log(self, digest: str) -> Path:
        """Where the build of ``digest`` in progress writes (only the build lock's holder builds)."""
        return self.root / ".building" / f"{digest}.log"

    def failed_log(self, digest: str) -> Path:
        return self.root / ".failed" / f"{digest}.log"

    def all(self) -> list[BuiltEnvironment]:
        found = (self.find(name) for name in self._folders())
        return sorted((b for b in found if b is not None), key=lambda b: b.built_at)

    def damaged(self) -> list[str]:
        """The digests whose folder is there without readable metadata (a copy gone wrong, say)."""
        return [name for name in self._folders() if self.find(name) is None]

    def _folders(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return [entry.name for entry in os.scandir(self.root) if entry.is_dir() and not entry.name.startswith(".")]

    # -- using --------------------------------------------------------------------------------------
    def use(self, digest: str) -> int | None:
        """A shared hold on ``digest`` (a file descriptor to close when done), so that nothing
        removes it meanwhile; None when it is being removed or rebuilt. In a cache this user cannot
        write to (one shared read-only), where nothing removes it, the lock file is read."""
        try:
            fd = os.open(self._lock_path(digest, "use"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError:
            try:
                fd = os.open(self.root / ".locks" / f"{digest}.use", os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                fd = os.open(self.root, os.O_RDONLY | os.O_CLOEXEC)  # no lock file: a hold of nothing
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        return fd

    # -- building -----------------------------------------------------------------------------------
    def build(self, definition: dict) -> BuiltEnvironment:
        """The environment for ``definition`` (a step's ``environment`` from the plan), built
        now unless it was already (or another process built it while this one waited). A build
        that failed in another process while this one waited for it is reported, not repeated."""
        digest = definition["digest"]
        waiting_since = time.time()
        with self._locked(digest, wait=True):
            built = self.find(digest)
            if built is not None and not self.changed(built):
                return built
            failed = self.failed_log(digest)
            if built is None and failed.exists() and failed.stat().st_mtime >= waiting_since:
                raise BuildFailed(last_error_line(failed) or "the build failed", failed)
            if built is not None and not self._remove_unused(digest):
                return built  # changed, but another run uses it as it is: rebuilt when it is free
            return self._build(definition)

    def remove(self, digest: str) -> bool:
        """Delete a built environment unless a run uses it or builds it; False then."""
        try:
            with self._locked(digest, wait=False):
                return self._remove_unused(digest)
        except BuildFailed:  # another process holds the build lock
            return False

    def unused_for(self, seconds: float, now: float) -> list[BuiltEnvironment]:
        """The built environments no step has used in the last ``seconds``."""
        return [b for b in self.all() if (self.last_used(b.digest) or b.built_at) < now - seconds]

    def leftovers(self, seconds: float, now: float, remove: bool = False) -> list[Path]:
        """What no build needs, older than ``seconds``: the logs and requirement lists of builds
        killed half-way, the folders they left (a build of the same definition removes them, but
        none may come), the logs of failed builds; removed with ``remove``, each under its
        definition's build lock, so that what a build under way uses is never touched. (Lock files
        stay: they are empty, and removing one that a process holds would let a second builder in.)"""
        found = []
        for folder, pattern in ((".building", "*"), (".failed", "*.log")):
            for path in (self.root / folder).glob(pattern):
                try:
                    with self._locked(path.name[:32], wait=False):
                        if os.lstat(path).st_mtime >= now - seconds:
                            continue
                        if remove and path.is_dir() and not path.is_symlink():
                            shutil.rmtree(path, ignore_errors=True)
                        elif remove:
                            path.unlink(missing_ok=True)
                except BuildFailed:  # its definition is being built: what is there is that build's
                    continue
                except OSError:
                    continue
                found.append(path)
        return found

    def _remove_unused(self, digest: str) -> bool:
        """With the build lock held: remove ``digest`` unless a run holds it in use."""
        fd = os.open(self._lock_path(digest, "use"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            self._discard(self.root / digest)
            return True
        finally:
            os.close(fd)

    def _discard(self, folder: Path) -> None:
        """Move ``folder`` aside (gone at once for readers), then delete it."""
        trash = self.root / ".building" / f"{folder.name}-removed-{os.getpid()}-{threading.get_ident()}"
        trash.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.rename(folder, trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    def _build(self, definition: dict) -> BuiltEnvironment:
        digest = definition["digest"]
        building = self.root / ".building"
        self._clear_abandoned(building, digest)
        target = building / f"{digest}-{os.getpid()}-{threading.get_ident()}"
        log_path = self.building_log(digest)
        requirements = building / f"{digest}.txt"
        begun = time.time()
        with open(log_path, "wb") as log:
            log.write(f"environment {definition['name']} ({digest}), Python {definition['python']}\n".encode())
            if definition.get("dropped"):
                log.write(f"left out: {', '.join(definition['dropped'])}\n".encode())
            installer = Installer(log)
            try:
                installer.create(definition["base"], target)
                lines = [*definition.get("options", []), *definition["requirements"]]
                if definition["requirements"]:
                    requirements.write_text("".join(f"{line}\n" for line in lines))
                    installer.install(target, requirements)
                packages = installer.freeze(target)
            except BuildFailed as exc:
                shutil.rmtree(target, ignore_errors=True)
                requirements.unlink(missing_ok=True)
                log.close()
                failed = self.failed_log(digest)
                failed.parent.mkdir(parents=True, exist_ok=True)
                os.replace(log_path, failed)
                os.utime(failed)  # when it failed: what submitters waiting since before then report
                # A killed installer leaves no error in the log: say how it ended instead.
                reason = exc.reason if exc.signal else (last_error_line(failed) or exc.reason)
                raise BuildFailed(reason, failed) from None
        requirements.unlink(missing_ok=True)
        os.replace(log_path, target / BUILD_LOG)
        built = BuiltEnvironment(
            digest=digest,
            name=definition["name"],
            path=str(self.root / digest),
            python=definition["python"],
            packages=packages,
            dropped=list(definition.get("dropped", [])),
            built_at=time.time(),
            build_seconds=round(time.time() - begun, 3),
            size=_size(target),
        )
        self._discard(self.root / digest)  # what is there has no readable metadata: damaged
        for site_packages in glob.glob(os.path.join(target, "lib", "python*", "site-packages")):
            # There before its first use: Python writing a module's bytecode there on import would
            # otherwise make site-packages itself change, as an installed package does.
            os.makedirs(os.path.join(site_packages, "__pycache__"), exist_ok=True)
        built.installed = installed_state(target)
        with open(target / METADATA, "w", encoding="utf-8") as f:
            json.dump(asdict(built), f, indent=1)
        os.rename(target, self.root / digest)  # the one step that makes it built
        self.touch(digest)
        return built

    def _clear_abandoned(self, building: Path, digest: str) -> None:
        """Remove what builds of ``digest`` killed half-way left (their process is gone: this one
        holds the lock)."""
        import psutil  # here: every submission imports this module, few build

        building.mkdir(parents=True, exist_ok=True)
        for entry in building.glob(f"{digest}-*"):
            parts = entry.name.split("-")
            pid = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
            if pid is not None and pid != os.getpid() and psutil.pid_exists(pid):
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)

    def _lock_path(self, digest: str, kind: str = "lock") -> Path:
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        return locks / f"{digest}.{kind}"

    @contextmanager
    def _locked(self, digest: str, wait: bool) -> Iterator[None]:
        """The build lock of ``digest``; with ``wait`` False, BuildFailed at once when another holds it."""
        with open(self._lock_path(digest), "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise BuildFailed("another process builds it", None) from None
            yield  # closing the file releases the lock, also when the process dies


def _well_formed(built: BuiltEnvironment) -> bool:
    """Whether each field of ``built`` has its type (the metadata may be JSON of another shape)."""
    texts = (built.digest, built.name, built.python, built.installed)
    numbers = (built.built_at, built.build_seconds, built.size)
    lists = (built.packages, built.dropped)
    return (
        all(isinstance(value, str) for value in texts)
        and all(isinstance(value, (int, float)) and not isinstance(value, bool) for value in numbers)
        and all(isinstance(value, list) and all(isinstance(item, str) for item in value) for value in lists)
    )


def _size(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total
