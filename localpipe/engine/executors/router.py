"""One executor for the scheduler that hands each launch to the executor it names.

Executors are made on first use, from the module of this package named by ``Launch.executor``
(its class ``EXECUTOR``); the local one is made at once, so that there is always one to wait
on (a scheduler waits for resources and other runs with no step of its own running). While it
is the only one, waiting is its own wait; with several, the router waits on all their
descriptors at once and collects from those that are ready.
"""

from __future__ import annotations

import importlib
import selectors
import threading
from collections.abc import Callable

from localpipe.engine.executors import TERMINATE_GRACE_SECONDS, Executor, Exit, Launch


def load_executor(kind: str) -> Executor:
    """A new executor of module ``localpipe.engine.executors.<kind>``."""
    return importlib.import_module(f"{__package__}.{kind}").EXECUTOR()


class Router:
    """An ``Executor`` over the executors that the launches name."""

    def __init__(self, make: Callable[[str], Executor] = load_executor, first: str = "local"):
        self._make = make
        self._executors: dict[str, Executor] = {first: make(first)}
        self._owners: dict[str, Executor] = {}  # launch key -> the executor running it

    def prepare(self, kind: str, python: tuple[str, dict[str, str]] | None = None) -> None:
        """Get the executor of ``kind`` ready for a launch to come (``Executor.prepare``)."""
        self._executor(kind).prepare(python)

    def start(self, launch: Launch) -> None:
        executor = self._owners[launch.key] = self._executor(launch.executor)
        executor.start(launch)

    def _executor(self, kind: str) -> Executor:
        executor = self._executors.get(kind)
        if executor is None:
            executor = self._executors[kind] = self._make(kind)
        return executor

    def wait(self, timeout: float | None) -> list[Exit]:
        executors = list(self._executors.values())
        if len(executors) == 1:
            exits = executors[0].wait(timeout)
        else:
            with selectors.DefaultSelector() as selector:
                for executor in executors:
                    selector.register(executor.fileno(), selectors.EVENT_READ, executor)
                ready = [key.data for key, _ in selector.select(timeout)]
            exits = [found for executor in ready for found in executor.wait(0)]
        for found in exits:
            self._owners.pop(found.key, None)
        return exits

    def wake(self) -> None:
        for executor in list(self._executors.values()):
            executor.wake()

    def terminate(self, key: str, grace: float = TERMINATE_GRACE_SECONDS) -> None:
        executor = self._owners.get(key)
        if executor is not None:
            executor.terminate(key, grace)

    def terminate_all(self, grace: float = TERMINATE_GRACE_SECONDS) -> None:
        threads = [
            threading.Thread(target=executor.terminate_all, args=(grace,))
            for executor in list(self._executors.values())
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def close(self) -> None:
        for executor in self._executors.values():
            executor.close()

    def fileno(self) -> int:
        raise NotImplementedError("a router is not nested in another router")
