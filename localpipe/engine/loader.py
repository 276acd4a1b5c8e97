"""Loading a pipeline file: run it as a module and find the Pipeline it builds (a ``.yml`` or
``.yaml`` file is a pipeline YAML, read by ``Pipeline.load_yaml`` in its own folder).

The file runs with ``__name__ == "__localpipe__"`` (so an ``if __name__ == "__main__":`` block
that submits is skipped); a file that submits at its top level, as Azure's samples do
(``Experiment(ws, name).submit(pipeline)``), stops there, and the command takes the pipeline it
submits with that experiment's name and options. The file runs with its own folder as the
current directory (so relative paths in it mean the same wherever the command is run), and with
``Workspace.from_config()`` answering the workspace the command uses. ``exit()``, ``sys.exit()``
and ``os._exit()`` while loading are refused, not obeyed; a time limit (the watcher's) ends a
file that never finishes loading. From the first load on, ``import azureml...`` in this process
means localpipe (docs/azureml-imports.md).
"""

from __future__ import annotations

import contextlib
import functools
import os
import runpy
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from localpipe.compat import SHIM_DIR
from localpipe.errors import LoadTimedOut, LocalpipeError, PipelineFileError, SubmittedWhileLoading, UsageError
from localpipe.sdk.pipeline import Pipeline
from localpipe.sdk.workspace import current_workspace, file_loading

YAML_SUFFIXES = (".yml", ".yaml")  # a pipeline YAML (Pipeline.load_yaml), not a Python file


@dataclass
class LoadedFile:
    """A loaded pipeline file: its Pipeline and, when the file submitted it, how."""

    pipeline: Pipeline
    experiment: str | None = None  # the name the file's Experiment.submit gave
    parameters: dict = field(default_factory=dict)
    options: dict = field(default_factory=dict)  # regenerate_outputs, continue_on_step_failure


def load_pipeline(path: str | os.PathLike, ws, time_limit: float | None = None) -> Pipeline:
    """The Pipeline built (or submitted) by the file at ``path``."""
    return load_file(path, ws, time_limit).pipeline


def load_file(path: str | os.PathLike, ws, time_limit: float | None = None) -> LoadedFile:
    """The Pipeline the file at ``path`` submits, or else the one it names ``pipeline``, or else
    the only one it builds.

    With ``time_limit`` (seconds; honoured in the main thread), a file still loading then is
    stopped with a PipelineFileError.
    """
    file = Path(path).resolve()
    if not file.is_file():
        raise PipelineFileError(f"pipeline file {path} does not exist: pass the path of a .py or .yml file")
    if file.suffix in YAML_SUFFIXES:
        return LoadedFile(_in_folder(_load_yaml(file, ws), file.parent))
    if SHIM_DIR not in sys.path:  # for the process's life: the file's objects may import azureml later
        sys.path.insert(0, SHIM_DIR)
    token = current_workspace.set(ws)
    old_cwd, old_path, real_exit = os.getcwd(), list(sys.path), os._exit
    handlers = _signal_handlers()
    os.chdir(file.parent)
    sys.path.insert(0, str(file.parent))
    # A file that ended the process would leave the command exiting 0, its work undone; a process it
    # forks (a multiprocessing worker) keeps the real os._exit.
    os._exit = functools.partial(_refuse_exit, os.getpid(), real_exit)
    file_loading.active, file_loading.submitted = True, []
    try:
        with _limited(time_limit):
            namespace = runpy.run_path(str(file), run_name="__localpipe__")
    except SubmittedWhileLoading:
        pass  # the first submission is taken below
    except LoadTimedOut:
        raise PipelineFileError(
            f"pipeline file {path} timed out: still loading after {time_limit:g}s (LOCALPIPE_LOAD_TIMEOUT): make it "
            "finish, or raise the limit"
        ) from None
    except SystemExit as exc:
        raise PipelineFileError(
            f"pipeline file {path} called exit({exc.code}) while loading: "
            "guard its submitting code with if __name__ == '__main__'"
        ) from None
    except UsageError:
        raise
    except SyntaxError as exc:
        raise PipelineFileError(
            f"pipeline file {path} has a syntax error at line {exc.lineno}: {exc.msg}: fix the file"
        ) from exc
    except Exception as exc:
        raise PipelineFileError(
            f"pipeline file {path} raised {type(exc).__name__}: {exc} "
            f"(line {_line(exc, file)}): fix the file, or use --debug for the traceback"
        ) from exc
    finally:
        file_loading.active = False
        os._exit = real_exit
        for number, handler in handlers.items():  # what the file set (SIGTERM ignored, say) is undone
            signal.signal(number, handler)
        os.chdir(old_cwd)
        sys.path[:] = old_path
        current_workspace.reset(token)
    if file_loading.submitted:  # from the file itself, or from a thread it started
        first = file_loading.submitted[0]
        return LoadedFile(_in_folder(first.pipeline, file.parent), first.experiment, first.parameters, first.options)
    return LoadedFile(_in_folder(_pick(namespace, path), file.parent))


def _in_folder(pipeline: Pipeline, folder: Path) -> Pipeline:
    """``pipeline``, its steps without a source_directory taking the file's folder (the current
    directory while it loaded), not the command's current directory when it is planned."""
    if pipeline.default_source_directory is None:
        pipeline.default_source_directory = str(folder)
    return pipeline


def _load_yaml(file: Path, ws) -> Pipeline:
    """The Pipeline of a pipeline YAML (``Pipeline.load_yaml``), its relative paths taken from its
    own folder, as a .py file's are."""
    old_cwd = os.getcwd()
    os.chdir(file.parent)
    try:
        return Pipeline.load_yaml(ws, str(file))
    except LocalpipeError:
        raise
    except Exception as exc:  # a value the SDK's classes refuse (a ValueError, a missing runconfig file)
        raise PipelineFileError(f"pipeline file {file}: {type(exc).__name__}: {exc}: fix the file") from exc
    finally:
        os.chdir(old_cwd)


@contextlib.contextmanager
def naming_yaml(path: str | os.PathLike) -> Iterator[None]:
    """A pipeline YAML's graph refused by the planner (a cycle, a missing script) names the file, as
    its reading errors do; a .py file's errors name the steps its code made."""
    file = Path(path).resolve()
    try:
        yield
    except UsageError as exc:
        if file.suffix in YAML_SUFFIXES and str(file) not in str(exc):
            exc.args = (f"pipeline file {file}: {exc}", *exc.args[1:])
        raise


def _refuse_exit(loader: int, real_exit, code: int) -> None:
    if os.getpid() != loader:
        real_exit(code)
    raise SystemExit(code)


def _signal_handlers() -> dict[int, object]:
    """The handlers of the signals a pipeline file might change, as they are now (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    numbers = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGALRM, signal.SIGCHLD, signal.SIGPIPE)
    return {number: signal.getsignal(number) for number in numbers}


@contextlib.contextmanager
def _limited(seconds: float | None) -> Iterator[None]:
    """Raise LoadTimedOut in the loading code once ``seconds`` have passed, and again every second
    after, should the file catch it (a SIGALRM timer, so the main thread only; elsewhere, and with
    None, no limit)."""
    if not seconds or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expired(signum, frame):
        raise LoadTimedOut

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds, 1.0)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _pick(namespace: dict, path) -> Pipeline:
    if isinstance(namespace.get("pipeline"), Pipeline):
        return namespace["pipeline"]
    found = {name: value for name, value in namespace.items() if isinstance(value, Pipeline)}
    if len(found) == 1:
        return next(iter(found.values()))
    if not found:
        raise PipelineFileError(
            f"pipeline file {path} defines no Pipeline: build one with Pipeline(workspace=ws, steps=[...])"
        )
    names = ", ".join(sorted(found))
    raise PipelineFileError(
        f"pipeline file {path} defines {len(found)} Pipelines ({names}): name the one to run `pipeline`"
    )


def _line(exc: BaseException, file: Path) -> str:
    tb = exc.__traceback__
    line = "?"
    while tb is not None:
        if Path(tb.tb_frame.f_code.co_filename).resolve() == file:
            line = str(tb.tb_lineno)
        tb = tb.tb_next
    return line
