"""The machine-wide cache of built environments: ``<cache>/envs/<digest>/``, one virtual
environment per definition digest, shared by every workspace.

A build happens under the digest's lock (``.locks/<digest>.lock``, so that submitters needing
the same new environment wait for one build), in a folder of its own under ``.building/``,
renamed into place only once complete: an interrupted build never looks built. A failed build
leaves nothing in place but its log, ``.failed/<digest>.log``.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from localpipe.envs.build import BuildFailed, Installer, last_error_line

METADATA = "localpipe-env.json"
BUILD_LOG = "localpipe-build.log"
LAST_USED = ".last-used"
LOCK_POLL_SECONDS = 0.1


@dataclass
class BuiltEnvironment:
    """A built environment, as its metadata file records it."""

    digest: str
    name: str
    path: str
    python: str  # the interpreter's version
    packages: list[str]  # what is installed, as name==version
    dropped: list[str]  # requirements left out because localpipe provides them (azureml-*)
    built_at: float
    build_seconds: float
    size: int  # bytes

    @property
    def interpreter(self) -> str:
        return os.path.join(self.path, "bin", "python")

    @property
    def log(self) -> str:
        return os.path.join(self.path, BUILD_LOG)


class EnvironmentCache:
    """The built environments under ``root`` (``<cache>/envs``)."""

    def __init__(self, root: Path):
        self.root = Path(root)

    def find(self, digest: str) -> BuiltEnvironment | None:
        """The environment built for ``digest``, or None."""
        try:
            with open(self.root / digest / METADATA, encoding="utf-8") as f:
                return BuiltEnvironment(**json.load(f))
        except (OSError, ValueError, TypeError):
            return None

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
        """Where the build of ``digest`` in progress writes (only the lock's holder builds)."""
        return self.root / ".building" / f"{digest}.log"

    def failed_log(self, digest: str) -> Path:
        return self.root / ".failed" / f"{digest}.log"

    def all(self) -> list[BuiltEnvironment]:
        if not self.root.is_dir():
            return []
        found = (self.find(entry.name) for entry in os.scandir(self.root) if not entry.name.startswith("."))
        return sorted((b for b in found if b is not None), key=lambda b: b.built_at)

    def build(
        self,
        definition: dict,
        cancel: threading.Event | None = None,
        started: Callable | None = None,
    ) -> BuiltEnvironment:
        """The environment for ``definition`` (a step's ``environment`` from the plan), built
        now unless it was already (or another process built it while this one waited)."""
        digest = definition["digest"]
        cancel = cancel or threading.Event()
        with self._locked(digest, cancel):
            built = self.find(digest)
            if built is not None:
                return built
            return self._build(definition, cancel, started)

    def unused_for(self, seconds: float, now: float) -> list[BuiltEnvironment]:
        """The built environments no step has used in the last ``seconds``."""
        return [b for b in self.all() if (self.last_used(b.digest) or b.built_at) < now - seconds]

    def remove(self, digest: str) -> bool:
        """Delete a built environment unless it is being built or used to build; False when locked."""
        lock = self._lock_path(digest)
        with open(lock, "a") as f:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False
            trash = self.root / ".building" / f"{digest}-removed-{os.getpid()}"
            try:
                os.rename(self.root / digest, trash)  # gone at once for readers, then deleted
            except FileNotFoundError:
                return True
            shutil.rmtree(trash, ignore_errors=True)
            return True

    # -- building -----------------------------------------------------------------------------------
    def _build(self, definition: dict, cancel: threading.Event, started) -> BuiltEnvironment:
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
                log.write(f"left out, provided by localpipe: {', '.join(definition['dropped'])}\n".encode())
            installer = Installer(log, cancel, started)
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
                raise BuildFailed(last_error_line(failed) or exc.reason, failed) from None
        requirements.unlink(missing_ok=True)
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
        os.replace(log_path, target / BUILD_LOG)
        with open(target / METADATA, "w", encoding="utf-8") as f:
            json.dump(asdict(built), f, indent=1)
        os.rename(target, self.root / digest)  # the one step that makes it built
        self.touch(digest)
        return built

    def _clear_abandoned(self, building: Path, digest: str) -> None:
        """Remove what builds of ``digest`` killed half-way left (their process is gone: this one
        holds the lock)."""
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

    def _lock_path(self, digest: str) -> Path:
        locks = self.root / ".locks"
        locks.mkdir(parents=True, exist_ok=True)
        return locks / f"{digest}.lock"

    @contextmanager
    def _locked(self, digest: str, cancel: threading.Event) -> Iterator[None]:
        with open(self._lock_path(digest), "a") as f:
            while True:
                try:
                    fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if cancel.wait(LOCK_POLL_SECONDS):
                        raise BuildFailed("the build was canceled", None) from None
            yield  # closing the file releases the lock, also when the process dies


def _size(path: Path) -> int:
    total = 0
    for folder, _, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(folder, name)).st_size
            except OSError:
                pass
    return total
