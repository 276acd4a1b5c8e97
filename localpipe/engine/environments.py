"""The scheduler's environments part: which built environment a step runs in, and builds of the
missing ones in the background, so that the other steps go on while one builds."""

from __future__ import annotations

import os
import queue
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass

from localpipe.envs import cache_root
from localpipe.envs.build import BuildFailed
from localpipe.envs.cache import BuiltEnvironment, EnvironmentCache


@dataclass
class Built:
    """A build that ended: ``environment`` when it succeeded, ``failure`` when not."""

    digest: str
    environment: BuiltEnvironment | None = None
    failure: BuildFailed | None = None


class Environments:
    """Built environments for one scheduler. ``wake`` is called (from a build's thread) when a
    build ends; the scheduler then collects it with ``finished()``."""

    def __init__(self, cache: EnvironmentCache | None = None):
        self.cache = cache or EnvironmentCache(cache_root() / "envs")
        self.wake: Callable[[], None] = lambda: None
        self._built: dict[str, BuiltEnvironment] = {}
        self._building: dict[str, threading.Thread] = {}
        self._done: queue.SimpleQueue[Built] = queue.SimpleQueue()
        self._cancel = threading.Event()
        self._processes: set = set()

    def get(self, definition: dict) -> BuiltEnvironment | None:
        """The environment built for ``definition``; None while it is not, its build started."""
        digest = definition["digest"]
        if digest in self._built:
            return self._built[digest]
        built = self.cache.find(digest)
        if built is not None:
            self.cache.touch(digest)
            self._built[digest] = built
            return built
        if digest not in self._building:
            thread = threading.Thread(target=self._build, args=(definition,), name=f"build-{digest}", daemon=True)
            self._building[digest] = thread
            thread.start()
        return None

    def finished(self) -> list[Built]:
        """The builds that ended since the last call."""
        ended = []
        while not self._done.empty():
            result = self._done.get()
            self._building.pop(result.digest, None)
            if result.environment is not None:
                self._built[result.digest] = result.environment
            ended.append(result)
        return ended

    @property
    def building(self) -> bool:
        return bool(self._building)

    def close(self) -> None:
        """End the builds in progress (their installers as process groups); nothing half-built stays."""
        self._cancel.set()
        for proc in list(self._processes):
            if proc.poll() is not None:
                continue
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for thread in list(self._building.values()):
            thread.join(timeout=5)

    def _build(self, definition: dict) -> None:
        try:
            built = self.cache.build(definition, self._cancel, self._started)
            self._done.put(Built(definition["digest"], environment=built))
        except BuildFailed as exc:
            self._done.put(Built(definition["digest"], failure=exc))
        except OSError as exc:
            failure = BuildFailed(f"the cache cannot be written: {exc}", None)
            self._done.put(Built(definition["digest"], failure=failure))
        finally:
            self.wake()

    def _started(self, proc) -> None:
        self._processes.add(proc)
