"""`localpipe watch`: rerun what a save affects. The only module that imports watchdog.

The watcher runs the pipeline, then watches every step's source directory, every local input
dataset and the pipeline file. A burst of changes (an editor's save: a temporary file, a rename
over the original, a backup) is gathered until the tree has been quiet for the debounce time,
then handled once:

- the changed files are marked in a TreeCache, so only they are hashed again;
- the steps of the current run that the changes affect (the step whose source or dataset
  changed, and everything downstream) are canceled if they run, while the others go on;
- a new run is submitted at once: it reuses what did not change, waits for steps the earlier
  run is still computing, and reruns the rest, its reasons naming the changed files.

A pipeline file that no longer loads or validates is reported and watched until it does.
"""

from __future__ import annotations

import contextlib
import fnmatch
import os
import queue
import signal
import stat
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer
from watchdog.observers.api import ObservedWatch

from localpipe.client.workspace import history_of
from localpipe.content.hashing import TreeDigest, ignore_spec
from localpipe.content.statcache import StatCache
from localpipe.content.trees import TreeCache
from localpipe.errors import LocalpipeError, UsageError

DEFAULT_DEBOUNCE_SECONDS = 0.2
# A pipeline file that loops for ever would hold the watcher: each load gets this long.
DEFAULT_LOAD_TIMEOUT_SECONDS = 60.0
LOAD_TIMEOUT_ENV = "LOCALPIPE_LOAD_TIMEOUT"
# Files editors write beside the one being saved; never a reason to rerun.
EDITOR_FILES = (
    "*.swp",
    "*.swx",
    "*.swo",
    "*~",
    ".#*",
    "#*#",
    "4913",
    "*.tmp",
    "*.kate-swp",
    "*___jb_tmp___",
    "*___jb_old___",
    ".goutputstream-*",
    "*.crswap",
)
EVENT_TYPES = ("created", "modified", "deleted", "moved")
# A run's summary line counts its steps by status: the first three always, the others when any.
SUMMED_UP = {
    "Completed": "completed",
    "Reused": "reused",
    "Failed": "failed",
    "Canceled": "canceled",
    "NotStarted": "not started",
}
ALWAYS = ("completed", "reused", "failed")


def load_timeout() -> float:
    """Seconds a pipeline file may take to load (``LOCALPIPE_LOAD_TIMEOUT``, default 60)."""
    text = os.environ.get(LOAD_TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_LOAD_TIMEOUT_SECONDS
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds < float("inf"):
        raise UsageError(f'{LOAD_TIMEOUT_ENV}="{text}" is not a positive number of seconds: set one like 60')
    return seconds


def is_editor_file(path: str) -> bool:
    name = os.path.basename(path)
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in EDITOR_FILES)


class _Events(FileSystemEventHandler):
    """Puts every relevant path of every event on a queue (the observer's thread). A folder watched
    through a symlink is watched where it really is (``real``); its paths are put as the link's
    (``shown``), the path the steps name."""

    def __init__(self, changes: queue.Queue, real: str = "", shown: str = ""):
        self.changes = changes
        self.real, self.shown = real, shown

    def on_any_event(self, event: FileSystemEvent) -> None:
        if event.event_type not in EVENT_TYPES or (event.is_directory and event.event_type == "modified"):
            return  # a folder's "modified" only says that something in it changed: that has its own event
        for path in (event.src_path, getattr(event, "dest_path", "")):
            if path:
                path = os.fsdecode(path)
                if self.real != self.shown and (path == self.real or path.startswith(self.real + os.sep)):
                    path = self.shown + path[len(self.real) :]
                self.changes.put(path)


class _WatchedTrees(TreeCache):
    """The watcher's trees: a folder is watched before it is walked, so that no save falls
    between its hashing and its watch."""

    def __init__(self, stat_cache: StatCache, watch: Callable[[str, bool], None]):
        super().__init__(stat_cache)
        self._watch = watch

    def tree(self, root: str) -> TreeDigest:
        self._watch(os.path.abspath(root), True)
        return super().tree(root)


@dataclass
class _Watched:
    """A folder's watch: whether it takes in the subfolders, and which folder it is (device, inode)."""

    watch: ObservedWatch
    recursive: bool
    identity: tuple[int, int]


def _identity(folder: str) -> tuple[int, int] | None:
    """The folder at ``folder`` now, through symlinks (device, inode); None if there is none."""
    try:
        st = os.stat(folder)
    except OSError:
        return None
    return (st.st_dev, st.st_ino) if stat.S_ISDIR(st.st_mode) else None


@dataclass
class _Active:
    """A run the watcher started: its scheduler runs in a thread of this process."""

    run_id: int
    scheduler: object
    thread: threading.Thread
    steps: dict = field(default_factory=dict)


class Watcher:
    """Runs a pipeline file and reruns it on every relevant save, until ``stop()`` or Ctrl-C."""

    def __init__(
        self,
        ws,
        pipeline_file: str,
        experiment: str | None,
        parameters: dict | None = None,
        debounce: float = DEFAULT_DEBOUNCE_SECONDS,
        echo: Callable[[str], None] = print,
        reporter_factory: Callable | None = None,
    ):
        self.ws = ws
        self.history = history_of(ws)
        self.pipeline_file = os.path.abspath(pipeline_file)
        self.experiment = experiment  # None: the one the file submits to, else the file's folder name
        self.parameters = parameters or {}  # over those the file submits with
        self.debounce = debounce
        self.echo = echo
        self.reporter_factory = reporter_factory
        self.trees = _WatchedTrees(StatCache(self.history.layout.statcache), self._watch)
        self.changes: queue.Queue[str] = queue.Queue()
        self.observer = Observer()
        self.watched: dict[str, _Watched] = {}
        self.pipeline = None
        self.loaded = None  # the LoadedFile self.pipeline came from: what the file submits it with
        self.declared_in = {self.pipeline_file}  # with a pipeline YAML's runconfig files, once loaded
        self.graph = None
        self.active: list[_Active] = []
        self.started: list[int] = []  # every run it started, for `localpipe cancel` (_on_sigterm)
        self.load_timeout = load_timeout()
        self._stop = threading.Event()
        self._loading = False  # the pipeline file is being run: it may never hand control back
        self.cause = "first run"  # what triggered the next run, for its summary line

    # -- the loop ---------------------------------------------------------------------------
    def run(self) -> None:
        """Run, then rerun on changes until stopped; every run is canceled on the way out.

        In the main thread, SIGTERM stops it like ``stop()`` (SIGINT raises KeyboardInterrupt), and
        ends the loading of a pipeline file that is under way by raising KeyboardInterrupt in it;
        a SIGTERM from `localpipe cancel RUN` cancels that run alone.
        """
        previous = None
        if threading.current_thread() is threading.main_thread():
            previous = signal.signal(signal.SIGTERM, self._on_sigterm)
        self.observer.start()
        try:
            self._watch(os.path.dirname(self.pipeline_file), recursive=False)
            self._load_and_submit([])
            while not self._stop.is_set():
                batch = self._next_batch()
                if batch:
                    self._handle(batch)
        finally:
            for active in self.active:
                active.scheduler.request_stop("watch stopped")
            for active in self.active:
                active.thread.join()
            self.observer.stop()
            self.observer.join()
            self.trees.stat_cache.save()
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)

    def stop(self) -> None:
        self._stop.set()
        self.changes.put("")  # wake the loop

    def _on_sigterm(self, signum, frame) -> None:
        asked = [run_id for run_id in self.started if _taken(self.history.layout, run_id)]
        if asked:  # `localpipe cancel RUN` of a run it started: that run alone ends, the watcher goes on
            for active in list(self.active):
                if active.run_id in asked:
                    active.scheduler.request_stop("canceled")
            return
        self.stop()
        if self._loading:
            raise KeyboardInterrupt

    def _next_batch(self) -> list[str]:
        """Relevant changed paths, once none has arrived for the debounce time."""
        batch = self._gather() + self._rewatch()  # after the events: what a new folder holds is hashed after its watch
        state = str(self.ws.state_dir) + os.sep
        paths = {path for path in batch if path and not path.startswith(state)}
        for path in paths:  # every change is noted, even one that runs nothing: the trees stay true
            self.trees.changed(path)
        return sorted(path for path in paths if self._relevant(path))

    def _gather(self) -> list[str]:
        """Changed paths: those of half a second, or from the first relevant one on, until none
        relevant has come for the debounce time (a log written all the time in an ignored file
        holds no save back); at once when stopped."""
        self._forget_finished()
        batch: list[str] = []
        deadline = time.monotonic() + 0.5
        while (left := deadline - time.monotonic()) > 0 and not self._stop.is_set():
            try:
                path = self.changes.get(timeout=left)
            except queue.Empty:
                break
            batch.append(path)
            if path and self._relevant(path):
                deadline = time.monotonic() + self.debounce
        return batch

    # -- what a change means ----------------------------------------------------------------
    def _relevant(self, path: str) -> bool:
        if path in self.declared_in:
            return True
        if is_editor_file(path):
            return False
        for root in self._source_roots():
            if path == root or path.startswith(root + os.sep):
                rel = os.path.relpath(path, root)
                if rel == ".":
                    return True
                spec = ignore_spec(root)  # a rule for folders ("build/") matches a folder's path with its slash
                return not (spec.match_file(rel) or (os.path.isdir(path) and spec.match_file(rel + "/")))
        return any(path == p or path.startswith(p + os.sep) for p in self._dataset_paths())

    def _handle(self, paths: list[str]) -> None:
        # A path gone by now that no step ever read is an editor's temporary file (whatever its
        # name): not a change. A deleted source file was hashed, and so is still listed. After a
        # failure, any change may be the fix (a broken symlink removed).
        if self.pipeline is not None:
            paths = [p for p in paths if os.path.lexists(p) or self._was_input(p)]
        if not paths:
            return
        shown = ", ".join(os.path.relpath(p, self.ws.root) for p in paths[:5])
        self.cause = f"changed: {shown}{' and more' if len(paths) > 5 else ''}"
        self.echo(self.cause)
        affected = self._affected_steps(paths)
        for active in self.active:
            running = [s for s in affected if s in active.steps]
            if running and active.thread.is_alive():
                active.scheduler.cancel_steps(running, "canceled: what it depends on changed while it ran")
        self._load_and_submit(paths)

    def _was_input(self, path: str) -> bool:
        """Whether ``path`` was the pipeline file, a file of a step's source as last hashed, or
        in a dataset the steps read (whose files are not known here one by one)."""
        return (
            path in self.declared_in
            or self.trees.knows(path)
            or any(path == p or path.startswith(p + os.sep) for p in self._dataset_paths())
        )

    def _affected_steps(self, paths: list[str]) -> set[str]:
        if self.graph is None:
            return set()
        hit = set()
        for name, spec in self.graph.steps.items():
            roots = ([spec.source_dir] if spec.source_dir else []) + [
                p for i in spec.inputs.values() for p in (i.paths or [])
            ]
            if any(path == root or path.startswith(root + os.sep) for path in paths for root in roots):
                hit.add(name)
        downstream = set(hit)
        for name, spec in self.graph.steps.items():  # steps are in topological order
            if spec.upstream & downstream:
                downstream.add(name)
        return downstream

    # -- submitting -------------------------------------------------------------------------
    def _load_and_submit(self, paths: list[str]) -> None:
        from localpipe.engine.loader import load_file
        from localpipe.engine.submit import prepare_run, scheduler_for

        try:
            if self.pipeline is None or self.declared_in.intersection(paths):
                self._loading = True
                try:
                    self.loaded = load_file(self.pipeline_file, self.ws, time_limit=self.load_timeout)
                    self.pipeline = self.loaded.pipeline
                finally:
                    self._loading = False
                self.declared_in = {self.pipeline_file, *getattr(self.pipeline, "_yaml_files", ())}
                for file in self.declared_in:
                    self._watch(os.path.dirname(file), recursive=False)
            prepared = prepare_run(
                self.history,
                self.pipeline,
                self.experiment or self.loaded.experiment or os.path.basename(os.path.dirname(self.pipeline_file)),
                {**self.loaded.parameters, **self.parameters},
                pipeline_file=self.pipeline_file,
                trees=self.trees,
            )
        except LocalpipeError as exc:
            self.pipeline = None
            self.echo(f"error: {exc}")
            self.echo("watching for a fix...")
            return
        self.graph = prepared.graph
        self._watch_inputs()
        reporter = self.reporter_factory(prepared) if self.reporter_factory else None
        scheduler = scheduler_for(self.history, prepared.run_id, prepared.graph, prepared.sources, reporter)
        thread = threading.Thread(
            target=self._execute,
            args=(scheduler, prepared.run_id, self.cause),
            name=f"run-{prepared.run_id}",
            daemon=True,
        )
        self.active.append(_Active(prepared.run_id, scheduler, thread, scheduler.graph.steps))
        self.started.append(prepared.run_id)
        self.echo(f"run {prepared.run_id}: {len(prepared.graph.steps)} steps")
        thread.start()

    def _execute(self, scheduler, run_id: int, cause: str) -> None:
        """Run the run, then sum it up in one line: what it ended as, how long it took, what
        triggered it, and how many steps ran, were reused and failed."""
        started = time.monotonic()
        try:
            status = scheduler.execute()
            counts = Counter(row["status"] for row in self.history.runs.steps(run_id))
        finally:
            self.history.close()  # this thread's connection: each run has a thread of its own
        ended = [f"{counts[status]} {word}" for status, word in SUMMED_UP.items() if counts[status] or word in ALWAYS]
        self.echo(f"run {run_id} {status.value} in {time.monotonic() - started:.1f}s ({cause}): {', '.join(ended)}")

    def _forget_finished(self) -> None:
        self.active = [a for a in self.active if a.thread.is_alive()]

    def _source_roots(self) -> list[str]:
        if self.graph is None:
            return []
        return sorted({spec.source_dir for spec in self.graph.steps.values() if spec.source_dir}, key=len, reverse=True)

    def _dataset_paths(self) -> list[str]:
        if self.graph is None:
            return []
        return [p for spec in self.graph.steps.values() for i in spec.inputs.values() for p in (i.paths or [])]

    def _watch_inputs(self) -> None:
        for root in self._source_roots():
            self._watch(root, recursive=True)
        for path in self._dataset_paths():
            self._watch(path if os.path.isdir(path) else os.path.dirname(path), recursive=True)

    def _watch(self, folder: str, recursive: bool) -> None:
        known = self.watched.get(folder)
        identity = _identity(folder)
        if (known and (known.recursive or not recursive)) or identity is None:
            return
        real = os.path.realpath(folder)
        watch = self.observer.schedule(_Events(self.changes, real, folder), real, recursive=recursive)
        if known:  # the pipeline file's folder, watched alone until now, is a source directory too
            self.observer.unschedule(known.watch)  # after the new watch is made: no event falls between
        self.watched[folder] = _Watched(watch, recursive, identity)

    def _rewatch(self) -> list[str]:
        """Watch anew each folder that is another one now: deleted and made again (its watch
        ended with it; the new one may have its inode), replaced by a symlink, moved away and
        replaced (a watch follows the folder it was made on). Returns those folders and what
        the watcher reads directly in them, as changed."""
        alive = {emitter.watch for emitter in list(self.observer.emitters) if emitter.is_alive()}
        found = []
        for folder, known in list(self.watched.items()):
            identity = _identity(folder)
            if identity is None or (identity == known.identity and known.watch in alive):
                continue
            self.observer.unschedule(known.watch)
            del self.watched[folder]
            self._watch(folder, known.recursive)
            inputs = (*self.declared_in, *self._dataset_paths())
            found += [folder, *(path for path in inputs if os.path.dirname(path) == folder)]
        return found


class ScheduleLoop:
    """Runs a ScheduleRunner (client/schedules.py) until ``stop()``: `localpipe schedules run`, and
    `localpipe serve` in a thread. A datastore schedule's folder is watched with watchdog (not its
    sub-folders); a change scans that schedule at once, and its ``polling_interval`` scans it anyway
    (a folder whose events are lost, on a network file system say). Schedules created or enabled
    while it runs are picked up within a second."""

    def __init__(self, runner, echo: Callable[[str], None] = print, wait: float = 1.0):
        self.runner = runner
        self.echo = echo
        self.wait = wait
        self.changes: queue.Queue[str] = queue.Queue()
        self.observer = Observer()
        self.watched: set[str] = set()
        # Each watched folder's watch and identity (device, inode): a folder deleted, or another moved
        # into its place, is watched again (the watch stays on the old one); one gone is not made again
        # until it is back (a folder moved into its place would land in it).
        self._watches: dict[str, tuple] = {}
        self._lost: set[str] = set()
        self._stop = threading.Event()

    def run(self) -> None:
        self.observer.start()
        try:
            for record in self._datastore_schedules():  # watched before the first scan: no file falls between
                self._watch(record)
            self._report(self.runner.start)
            while not self._stop.is_set():
                changed = self._changed_folders()
                for record in self._datastore_schedules():
                    if self._watch(record) in changed:
                        self._report(lambda r=record: self.runner.scan(r["schedule_id"]))
                self._report(self.runner.tick)
        finally:
            self.observer.stop()
            self.observer.join()

    def stop(self) -> None:
        self._stop.set()

    def _changed_folders(self) -> set[str]:
        """The folders with a change, waiting up to ``wait`` seconds for the first."""
        found = set()
        try:
            found.add(os.path.dirname(self.changes.get(timeout=self.wait)))
            while True:
                found.add(os.path.dirname(self.changes.get_nowait()))
        except queue.Empty:
            return {os.path.normpath(f) for f in found}

    def _datastore_schedules(self) -> list[dict]:
        return [r for r in self.runner.history.publishing.schedules() if r["datastore"]]

    def _watch(self, record: dict) -> str | None:
        """Watch the folder of the datastore schedule ``record`` (once); the folder (None: it has none,
        its datastore unregistered, which is said once, the others going on)."""
        try:
            folder = os.path.normpath(self.runner.watched_folder(record))
        except LocalpipeError as exc:
            line = f'schedule "{record["name"]}" cannot be fired: {exc}'  # as the runner's tick says it
            if self.runner.report_once(line):
                self.echo(line)
            return None
        if folder in self.watched:
            if _identity(folder) == self._watches[folder][1]:
                return folder
            with contextlib.suppress(KeyError):  # deleted, or replaced: the watch is on the old one
                self.observer.unschedule(self._watches.pop(folder)[0])
            self.watched.discard(folder)
            self._lost.add(folder)
        if folder in self._lost:
            if _identity(folder) is None:
                return folder
            self._lost.discard(folder)
            self.changes.put(os.path.join(folder, ""))  # back: scanned, for the files that came with it
        try:
            os.makedirs(folder, exist_ok=True)
            watch = self.observer.schedule(_Events(self.changes), folder, recursive=False)
        except OSError as exc:  # a file where the folder should be, say: the other schedules go on
            line = f"cannot watch {folder} ({exc.strerror or exc}): its schedule is not fired"
            if self.runner.report_once(line):
                self.echo(line)
            return folder
        self._watches[folder] = (watch, _identity(folder))
        self.watched.add(folder)
        return folder

    def _report(self, action: Callable[[], None]) -> None:
        """Run ``action``; echo the runs it started and the fires that could not start."""
        before, errors = len(self.runner.started_runs), len(self.runner.errors)
        try:
            action()
        except Exception as exc:  # noqa: BLE001  (a bug or a broken schedule: the loop goes on, saying so)
            self.runner.report_once(f"schedules: {exc!r}")
        for run_id in self.runner.started_runs[before:]:
            self.echo(f"started run {run_id}")
        for line in self.runner.errors[errors:]:
            self.echo(line)


def _identity(folder: str) -> tuple[int, int] | None:
    """The folder's device and inode; None when it is not a folder (any more)."""
    try:
        found = os.stat(folder)
    except OSError:
        return None
    return (found.st_dev, found.st_ino) if stat.S_ISDIR(found.st_mode) else None


def _taken(layout, run_id: int) -> bool:
    """Whether ``run_id``'s cancel request was there: it is taken (renamed, where its scheduler still
    reads how to end the run, and a later SIGTERM is not this request again)."""
    try:
        os.replace(layout.cancel_request(run_id), layout.cancel_taken(run_id))
    except FileNotFoundError:
        return False
    return True
