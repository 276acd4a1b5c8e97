"""The scheduler's environments part: which built environment a step runs in, and builds of the
missing ones in the background, so that the other steps go on while one builds."""

from __future__ import annotations

import os
import queue
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
    build ends; the scheduler then collects it with ``finished()``. Each environment handed out is
    held in use (``EnvironmentCache.use``) until ``close()``, so that nothing removes it meanwhile."""

    def __init__(self, cache: EnvironmentCache | None = None):
        self.cache = cache or EnvironmentCache(cache_root() / "envs")
        self.wake: Callable[[], None] = lambda: None
        self._built: dict[str, BuiltEnvironment] = {}
        self._held: dict[str, int] = {}  # digest -> the descriptor holding it in use
        self._building: dict[str, threading.Thread] = {}
        self._failed: dict[str, BuildFailed] = {}  # digest -> how its build failed in this run
        self._done: queue.SimpleQueue[Built] = queue.SimpleQueue()

    def get(self, definition: dict) -> BuiltEnvironment | None:
        """The environment built for ``definition``; None while it is not, its build started (also
        when a step changed its packages since: it is rebuilt, if no other run uses it). A build
        that failed in this run is not started again: ``finished()`` gives its failure again."""
        digest = definition["digest"]
        if digest in self._built:
            return self._built[digest]
        if digest in self._failed:  # not tried again in this run: its failure, as a build that ended
            self._done.put(Built(digest, failure=self._failed[digest]))
            self.wake()
            return None
        if digest not in self._building:
            built = self._hold(digest)
            if built is not None:
                return built
            thread = threading.Thread(target=self._build, args=(definition,), name=f"build-{digest}", daemon=True)
            self._building[digest] = thread
            thread.start()
        return None

    def failed(self, digest: str) -> bool:
        """Whether the build of ``digest`` failed in this run (it is not started again)."""
        return digest in self._failed

    def finished(self) -> list[Built]:
        """The builds that ended since the last call."""
        ended = []
        while not self._done.empty():
            result = self._done.get()
            self._building.pop(result.digest, None)
            if result.environment is not None:
                self._built[result.digest] = result.environment
            elif result.failure is not None:
                self._failed[result.digest] = result.failure
            ended.append(result)
        return ended

    def close(self) -> None:
        """Let go of the environments held in use. A build under way goes on in its thread: a
        watcher's next run waits for it rather than starting it again, and the installer dies with
        this process (its parent-death signal) if the process ends first."""
        self.wake = lambda: None
        for fd in self._held.values():
            os.close(fd)
        self._held.clear()

    def _hold(self, digest: str) -> BuiltEnvironment | None:
        """``digest``'s environment, held in use, if it is built and as it was built."""
        fd = self.cache.use(digest)
        if fd is None:
            return None
        built = self.cache.find(digest)
        if built is None or self.cache.changed(built):
            os.close(fd)
            return None
        self._held[digest] = fd
        self._built[digest] = built
        self.cache.touch(digest)
        return built

    def _build(self, definition: dict) -> None:
        digest = definition["digest"]
        try:
            self.cache.build(definition)
            built = self._hold(digest) or self.cache.find(digest)  # a rebuild another run blocks: as it is
            if built is None:
                raise BuildFailed("it was removed (localpipe gc --envs) as soon as it was built", None)
            self._done.put(Built(digest, environment=built))
        except BuildFailed as exc:
            self._done.put(Built(digest, failure=exc))
        except OSError as exc:
            self._done.put(Built(digest, failure=BuildFailed(f"the cache cannot be written: {exc}", None)))
        except Exception as exc:  # whatever else ends the build, its steps must hear of it, not wait for good
            self._done.put(Built(digest, failure=BuildFailed(f"the build stopped: {type(exc).__name__}: {exc}", None)))
        finally:
            self.wake()
