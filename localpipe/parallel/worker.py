"""One worker process of a ParallelRunStep: imports the entry script, calls ``init()`` once, then
``run(mini_batch)`` for each batch the driver sends, and sends back what it returned.

The driver forks it (the driver already runs in the step's environment, so a fork is that
interpreter without starting it again) and calls ``serve`` with one end of a socket pair carrying
pickled messages (the script's own prints go to the step's log, not through it):

- to the driver: ``("ready",)`` after ``init()``, ``("init_failed", error)``, and for each batch
  ``("done", index, returned, rows, keys, seconds)`` or ``("failed", index, error, seconds)``,
  ``keys`` what ``prepare(index)`` gave before ``run()`` (the driver has its new batches' files
  hashed there: in a worker, hashing runs beside the other workers instead of holding up the driver);
- from the driver: ``(index, mini_batch, partition)``, ``partition`` the partition keys' values of
  the batch (``partition_keys``) or None; the end of the stream ends the worker.

``EntryScript`` (``from azureml_user.parallel_run import EntryScript``, as Azure's scripts import
it) gives the script its logger and folders.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import pickle
import socket
import sys
import time
import traceback
import types
from collections.abc import Callable


class Channel:
    """Pickled messages over one end of a socket pair, each after its length (8 bytes). What one
    read brings is kept: the messages that came in together cost one system call, not two each."""

    def __init__(self, end: socket.socket):
        self.end = end
        self._buffer = bytearray()

    def fileno(self) -> int:
        return self.end.fileno()

    @staticmethod
    def frame(message) -> bytes:
        """``message`` as ``send`` writes it."""
        data = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
        return len(data).to_bytes(8, "little") + data

    def send(self, message) -> None:
        data = pickle.dumps(message, pickle.HIGHEST_PROTOCOL)
        if len(data) < 1 << 16:  # one write; a large table's rows are not copied for it
            self.end.sendall(len(data).to_bytes(8, "little") + data)
        else:
            self.end.sendall(len(data).to_bytes(8, "little"))
            self.end.sendall(data)

    def received(self) -> list:
        """Every whole message there is, waiting for one if there is none; EOFError at the end."""
        while True:
            found = self._whole()
            if found:
                return found
            chunk = self.end.recv(1 << 16)
            if not chunk:
                raise EOFError
            self._buffer += chunk

    def _whole(self) -> list:
        found, start, buffer = [], 0, self._buffer
        while len(buffer) - start >= 8:
            end = start + 8 + int.from_bytes(buffer[start : start + 8], "little")
            if end > len(buffer):
                break
            found.append(pickle.loads(buffer[start + 8 : end]))
            start = end
        del buffer[:start]
        return found

    def close(self) -> None:
        self.end.close()


class EntryScript:
    """What an entry script may ask of its worker: ``logger``, ``log_dir``, ``output_dir``, ``agent_name``."""

    _context: dict = {}

    def __init__(self, logging_level=None):
        """``logging_level`` (a ``logging`` level, as Azure's takes) sets the level of ``logger``."""
        if logging_level is not None:
            self.logger.setLevel(logging_level)

    @property
    def agent_name(self) -> str:
        """This worker's name (``worker0``, ``worker1``...)."""
        return self._context.get("agent_name", "worker0")

    @property
    def log_dir(self) -> str:
        """A folder of this worker's own below the step's ``logs/user/`` (kept in the run's files)."""
        return self._context.get("log_dir", os.getcwd())

    @property
    def output_dir(self) -> str:
        """The step's output folder, where the script may write files of its own."""
        return self._context.get("output_dir", os.getcwd())

    @property
    def working_dir(self) -> str:
        return os.getcwd()

    @property
    def logger(self) -> logging.Logger:
        """A logger writing to ``log_dir``/``agent_name``.log and to the step's log."""
        return logging.getLogger(f"parallel_run.{self.agent_name}")


class MiniBatchContext:
    """The second argument of ``run(mini_batch, mini_batch_context)`` where the entry script takes
    one (Azure gives it with ``partition_keys``): the batch's ``minibatch_index`` (its number in
    input order), ``partition_key_value`` and, for a FileDataset, the ``dataset`` of its files (None
    for a table: the rows are the mini-batch)."""

    def __init__(self, partition: dict | None, mini_batch, index: int = 0):
        self.minibatch_index = index
        self.partition_key_value = dict(partition or {})
        self._files = mini_batch if isinstance(mini_batch, list) else None

    @property
    def dataset(self):
        if self._files is None:
            return None
        from localpipe.sdk.data import Dataset

        return Dataset.File.from_files(self._files)


def _positional(function) -> int:
    """How many positional parameters ``function`` takes (2 for ``run(mini_batch, mini_batch_context)``)."""
    import inspect

    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(p.kind in kinds for p in inspect.signature(function).parameters.values())


def _install_azureml_user() -> None:
    """Make ``azureml_user.parallel_run`` importable, with ``EntryScript`` in it, as on Azure."""
    package = types.ModuleType("azureml_user")
    package.__path__ = []
    module = types.ModuleType("azureml_user.parallel_run")
    module.EntryScript = EntryScript
    package.parallel_run = module
    sys.modules.setdefault("azureml_user", package)
    sys.modules.setdefault("azureml_user.parallel_run", module)


def _set_up_logging(config: dict) -> None:
    os.makedirs(config["log_dir"], exist_ok=True)
    logger = logging.getLogger(f"parallel_run.{config['agent_name']}")
    logger.setLevel(config["logging_level"].upper())
    handler = logging.FileHandler(os.path.join(config["log_dir"], f"{config['agent_name']}.log"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    logger.addHandler(logging.StreamHandler(sys.stderr))


def _load(path: str):
    name = os.path.splitext(os.path.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    for function in ("init", "run"):
        if not callable(getattr(module, function, None)):
            raise AttributeError(f"entry script {os.path.basename(path)} has no {function}() function: define it")
    return module


def rows_of(result, append: bool) -> tuple[int | None, list[str] | None, str | None]:
    """(items returned, the lines to append, the error) of what ``run()`` returned."""
    if isinstance(result, (list, tuple)):
        return len(result), [str(item) for item in result] if append else None, None
    if type(result).__name__ == "DataFrame" and hasattr(result, "to_csv"):
        lines = result.to_csv(sep=" ", header=False, index=False).splitlines() if append else None
        return len(result), lines, None
    return None, None, f"run() returned a {type(result).__name__}: return a list or a pandas DataFrame"


def serve(connection: Channel, config: dict, prepare: Callable[[int], object]) -> None:
    """The worker's life: ``init()``, then ``prepare(index)`` and ``run()`` on each batch received,
    until the driver ends the stream."""
    EntryScript._context = config
    _install_azureml_user()
    _set_up_logging(config)
    sys.argv = [config["script"], *config["argv"]]
    sys.path.insert(0, os.getcwd())
    try:
        module = _load(config["script"])
        module.init()
    except BaseException:
        connection.send(("init_failed", _short(traceback.format_exc())))
        return
    connection.send(("ready",))
    takes_context = _positional(module.run) >= 2
    append = config["output_action"] == "append_row"
    waiting: list = []
    while True:
        if not waiting:
            try:
                waiting = connection.received()
            except EOFError:
                return
        index, mini_batch, partition = waiting.pop(0)
        started = time.perf_counter()
        try:
            keys = prepare(index)
            started = time.perf_counter()
            if takes_context:
                result = module.run(mini_batch, MiniBatchContext(partition, mini_batch, index))
            else:
                result = module.run(mini_batch)
            returned, lines, error = rows_of(result, append)
        except Exception:
            returned, lines, error = None, None, _short(traceback.format_exc())
        seconds = time.perf_counter() - started
        if error is None:
            connection.send(("done", index, returned, lines, keys, seconds))
        else:
            connection.send(("failed", index, error, seconds))


def _short(text: str, limit: int = 4000) -> str:
    """A traceback's end, where its error is."""
    return text if len(text) <= limit else "..." + text[-limit:]
