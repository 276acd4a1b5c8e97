"""The process of a ParallelRunStep: ``python -m localpipe.parallel.driver`` with Azure's driver
arguments (sdk/parallel_run.py), in the step's environment and folder.

It cuts the input into mini-batches (``batches.py``), takes the results of batches already done
from the cache (``cache.py``), forks the workers (``worker.py``; each with its own GPU where the
step has GPUs; they hash the files of the batches not keyed yet), hands them batches, replaces a
worker that dies or overruns ``run_invocation_timeout`` and tries its batch again, up to
``run_max_try`` times, stops when a threshold is crossed, and writes the output: ``append_row``'s
rows batch by batch in input order.

Files it writes in the step's folder (docs/parallel-run.md): ``parallel_run/progress.json`` (batches
done, failed and left, items per second, time left; rewritten as it goes), ``parallel_run/batches.jsonl``
(one line per batch: its first item, items, worker, tries, seconds, outcome), and ``reason.txt``
when the step fails.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import selectors
import signal
import socket
import sys
import time
import traceback
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import localpipe.parallel.batches as cutting
from localpipe.content.statcache import StatCache
from localpipe.parallel.cache import (
    BatchCache,
    digests_file,
    family_key,
    load_digests,
    save_digests,
    stat_cache_file,
    write_record,
)
from localpipe.parallel.worker import Channel, serve
from localpipe.parallel_files import FOLDER, PROGRESS, TIMINGS

INPUT_OPTION = re.compile(r"^--input_(fds|ds)_(\d+)$")
PROGRESS_EVERY = 0.5  # seconds between rewrites of progress.json
# Batches sent to a worker at once: the one running and the next, so that it never waits for the
# driver; more while its batches take under FAST_BATCH_SECONDS, which it would finish before the
# driver had handled the last result, as long as QUEUED_WHILE_FAST a worker are left to send: the
# batches left may turn slow (a script skipping what it did before, then working), and those queued
# to one worker cannot be taken back to keep the others busy.
QUEUED_PER_WORKER, QUEUED_WHILE_FAST, FAST_BATCH_SECONDS = 2, 8, 0.005
ENDING_SECONDS = 1.0  # how long a worker whose connection closed is given to end before it is killed
REASON_FILE = "reason.txt"  # read by the scheduler as the step's own reason (engine/outcomes.py)


def parse(argv: list[str]) -> tuple[argparse.Namespace, list[tuple[str, str]]]:
    """The driver's options and the inputs' ``(kind, name)``; the user's own arguments are left to
    the entry script (it reads ``sys.argv``, as on Azure)."""
    parser = argparse.ArgumentParser(prog="localpipe.parallel.driver", allow_abbrev=False)
    parser.add_argument("--scoring_module_name", required=True)
    parser.add_argument("--error_threshold", type=int, default=-1)
    parser.add_argument("--allowed_failed_count", type=int)
    parser.add_argument("--allowed_failed_percent", type=float)
    parser.add_argument("--output_action", default="append_row")
    parser.add_argument("--append_row_file_name", default="parallel_run_step.txt")
    parser.add_argument("--logging_level", default="INFO")
    parser.add_argument("--run_invocation_timeout", type=float, default=60)
    parser.add_argument("--run_max_try", type=int, default=3)
    # Azure's own limit on how long a job may go without starting a mini-batch: here each worker's
    # init() must return within it (a hung init() held the step for ever).
    parser.add_argument("--first_task_creation_timeout", type=_seconds, default=600)
    parser.add_argument("--node_count", type=int, default=1)
    # files, or bytes of a table: ParallelRunConfig made it a number, a PipelineParameter's may be "1MB"
    parser.add_argument("--mini_batch_size", type=_size)
    parser.add_argument("--process_count_per_node", type=int)
    parser.add_argument("--partition_keys")
    parser.add_argument("--partition_format")  # a FileDataset's, which names its partition keys
    parser.add_argument("--output")
    options, _ = parser.parse_known_args(argv)
    inputs = []
    for index, token in enumerate(argv[:-1]):
        found = INPUT_OPTION.match(token)
        if found:
            inputs.append((int(found.group(2)), "file" if found.group(1) == "fds" else "tabular", argv[index + 1]))
    return options, [(kind, name) for _, kind, name in sorted(inputs)]


def _seconds(text: str) -> float:
    seconds = float(text)
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"{text} is not a number of seconds above 0")
    return seconds


def _size(text: str) -> int:
    """``--mini_batch_size``: files ("10") or bytes ("1024", "512KB", "1MB", "1GB")."""
    unit = {"kb": 1 << 10, "mb": 1 << 20, "gb": 1 << 30}.get(text[-2:].lower())
    return int(text[:-2]) * unit if unit else int(text)


class Batches:
    """The step's batches, what became of each, and the counts the thresholds are checked on."""

    def __init__(self, batches: list[dict], options):
        self.all = batches
        self.options = options
        self.tries = [0] * len(batches)
        self.results: dict[int, dict] = {}  # index -> {"returned", "rows"}
        self.failed: dict[int, str] = {}  # index -> the last try's error
        self.first_error: str | None = None
        self.failed_items = 0
        self.items_done = 0

    def items(self, index: int) -> int:
        return self.all[index]["count"] or 0

    def succeeded(self, index: int, returned: int, rows) -> None:
        self.results[index] = {"returned": returned, "rows": rows}
        count = self.items(index)
        self.items_done += count
        if returned < count:  # items run() returned nothing for count as failed
            self.failed_items += count - returned
            self.note(index, f"run() returned {returned} items for the {count} of its mini-batch")

    def failed_for_good(self, index: int, error: str) -> None:
        self.failed[index] = error
        self.failed_items += self.items(index)
        self.items_done += self.items(index)
        self.note(index, error)

    def note(self, index: int, error: str) -> None:
        """Keep the first failure, for the step's reason."""
        if self.first_error is None:
            self.first_error = f"mini-batch {index} (first item {self.all[index]['first']}): {error}"

    def crossed(self) -> list[str]:
        """The thresholds the failures so far cross, each named with its value."""
        options, crossed = self.options, []
        if options.error_threshold != -1 and self.failed_items > options.error_threshold:
            crossed.append(f"error_threshold {options.error_threshold} ({self.failed_items} items failed)")
        failed = len(self.failed)
        count = options.allowed_failed_count
        if count is not None and count != -1 and failed > count:
            crossed.append(f"allowed_failed_count {count} ({failed} mini-batches failed)")
        percent = options.allowed_failed_percent
        if percent is not None and self.all and failed * 100 / len(self.all) > percent:
            crossed.append(
                f"allowed_failed_percent {percent:g} ({failed * 100 / len(self.all):.1f}% of mini-batches failed)"
            )
        return crossed


class Worker:
    """One worker process, forked from the driver, its end of their socket pair, and the batches
    sent to it: the first is running (since ``started``), the others wait in the socket so that the
    worker never idles while the driver handles a result.

    The driver never blocks writing to a worker: what the socket does not take stays in
    ``outgoing`` until it is writable. A worker reads its next batch only once it has sent the last
    result, so a driver blocked on a full socket (batches of tens of kilobytes, a few queued) while
    the worker was blocked sending it a result waited for ever, past run_invocation_timeout."""

    def __init__(self, number: int, config: dict, env: dict, others: list[Worker], prepare: Callable[[int], object]):
        mine, theirs = socket.socketpair()
        self.number = number
        self.queue: deque[int] = deque()
        self.started = 0.0
        self.forked = time.monotonic()  # init() has until forked + first_task_creation_timeout
        self.last_seconds: float | None = None  # how long its last batch kept it, hashing its files included
        self.ready = False
        self.code: int | None = None
        self.outgoing = bytearray()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()  # else the child would print again what the driver has not written yet
        # SIGTERM waits until the child has its own handler: the driver's would end the child
        # through the driver's code (its clean-up kills the workers).
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
        try:
            self.pid = os.fork()
            if self.pid == 0:
                # Each worker holds only its own end: it sees the end of its stream when the driver goes.
                _child(theirs, [mine, *(other.connection for other in others)], number, config, env, prepare)
        finally:  # the driver's (the child never returns)
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        theirs.close()
        self.connection = Channel(mine)

    @property
    def running(self) -> int | None:
        """The batch ``run()`` is working on, if any."""
        return self.queue[0] if self.queue else None

    def wants(self, plenty: bool) -> bool:
        """Whether it should be sent another batch now; ``plenty``: whether many are left to send."""
        fast = plenty and self.last_seconds is not None and self.last_seconds < FAST_BATCH_SECONDS
        return self.ready and len(self.queue) < (QUEUED_WHILE_FAST if fast else QUEUED_PER_WORKER)

    def send(self, index: int, mini_batch, partition: dict | None) -> None:
        if not self.queue:
            self.started = time.monotonic()
        self.queue.append(index)
        self.outgoing += Channel.frame((index, mini_batch, partition))
        self.flush()

    def flush(self) -> None:
        """Write what the socket takes now of ``outgoing``; OSError once the worker is gone."""
        while self.outgoing:
            try:
                sent = self.connection.end.send(self.outgoing, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            del self.outgoing[:sent]

    def finished(self) -> int:
        """The running batch ended: the next one sent starts now."""
        now = time.monotonic()
        self.last_seconds, self.started = now - self.started, now
        return self.queue.popleft()

    def kill(self) -> None:
        if self.code is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self.wait()
        self.connection.close()

    def wait(self) -> int:
        """The process's exit code (minus the signal that killed it), once it ended."""
        if self.code is None:
            _, status = os.waitpid(self.pid, 0)
            self.code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        return self.code

    def ended(self) -> str:
        """How the process ended, once its end of the pair closed. One that goes on without it (its
        script closed every descriptor) is killed after ENDING_SECONDS: waiting for its end held up
        the driver, past run_invocation_timeout, for as long as it ran (for ever)."""
        deadline = time.monotonic() + ENDING_SECONDS
        while self.code is None:
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                self.code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            elif time.monotonic() > deadline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(self.pid, signal.SIGKILL)
                self.wait()
                return (
                    f"worker{self.number} closed its connection to the driver (its descriptors closed) and was killed"
                )
            else:
                time.sleep(0.01)
        code = self.code
        return (
            f"worker{self.number} died (killed by signal {-code})"
            if code < 0
            else f"worker{self.number} exited with code {code}"
        )


def _child(
    end: socket.socket, others: list, number: int, config: dict, env: dict, prepare: Callable[[int], object]
) -> NoReturn:
    """The forked worker: it closes the driver's ends (``others``), serves, then exits with the code
    ``sys.exit`` in the script gave, if any, never returning into the driver's code (nor flushing
    the driver's files it holds copies of)."""
    code = 1
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM})
        for other in others:
            other.close()
        os.environ.update(env)
        serve(Channel(end), {**config, "agent_name": f"worker{number}"}, prepare)
        code = 0
    except SystemExit as exc:  # as Python itself: an int is the exit code, anything else is printed
        code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        if exc.code is not None and not isinstance(exc.code, int):
            print(exc.code, file=sys.stderr)
    except BaseException:
        traceback.print_exc()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()
        os._exit(code)


class Driver:
    def __init__(self, argv: list[str]):
        self.argv = argv
        self.options, self.inputs = parse(argv)
        self.step_dir = Path(os.environ.get("LOCALPIPE_STEP_DIR", os.getcwd()))
        self.folder = self.step_dir / FOLDER
        self.folder.mkdir(parents=True, exist_ok=True)
        self.timings = open(self.folder / TIMINGS, "a")
        self.started = time.monotonic()
        self.last_progress = 0.0
        self.reused = 0
        self.items_reused = 0
        workspace_cache = os.environ.get("LOCALPIPE_PARALLEL_CACHE")
        self.cache_root = workspace_cache or str(self.folder / "cache")
        self.digests_path = digests_file(self.cache_root, os.environ.get("LOCALPIPE_STEP_NAME", ""))
        stat_cache = StatCache(stat_cache_file(workspace_cache)) if workspace_cache else None
        self.digests = cutting.Digests(load_digests(self.digests_path), stat_cache)

    # -- the batches ---------------------------------------------------------------------------
    def cut(self, cache: BatchCache) -> list[dict]:
        paths = json.loads(os.environ.get("LOCALPIPE_INPUTS", "{}"))
        tables = json.loads(os.environ.get("LOCALPIPE_INPUT_TABLES", "{}"))
        previous = cache.partition()
        digests = self.digests
        files, names = [], {}
        self.names = names
        for _, name in self.inputs:
            root = os.path.normpath(paths[name])
            for path in cutting.list_files(root):
                files.append(path)
                # The file's name below its input (list_files's paths start with root and a separator).
                names[path] = f"{name}/{path[len(root) + 1 :] if path != root else os.path.basename(path)}"
        keys = self.options.partition_keys.split(",") if self.options.partition_keys else None
        kind = self.inputs[0][0]
        if kind == "tabular":
            name = self.inputs[0][1]
            options, root = tables.get(name) or {}, paths[name]
            root = root if os.path.isdir(root) else os.path.dirname(root)
            self.reader = cutting.TableReader(root, options)
            if keys:
                found = cutting.table_partitions(files, root, keys, options, digests)
            else:
                found = cutting.table_batches(files, self.options.mini_batch_size, options, digests, root)
        elif keys:
            items = cutting.item_keys(files, names, digests)
            found = cutting.file_partitions(files, names, items, keys, self.options.partition_format)
        elif not cache.found and not previous:
            found = cutting.file_chunks(files, self.options.mini_batch_size)
        else:
            items = cutting.item_keys(files, names, digests)
            found = cutting.file_batches(files, items, self.options.mini_batch_size, previous)
        return found

    def payload(self, batch: dict):
        """What ``run()`` is given: the batch's file paths, or its rows (then counted)."""
        if self.inputs[0][0] != "tabular":
            return batch["files"]
        rows = self.reader.rows_of(batch)
        batch["count"] = len(rows)
        return rows

    # -- running -------------------------------------------------------------------------------
    def settings(self) -> dict:
        """What results depend on besides each batch's content and the source (``family_key``)."""
        paths = json.loads(os.environ.get("LOCALPIPE_INPUTS", "{}"))
        by_path = {path: name for name, path in paths.items()}
        main_inputs = {name for _, name in self.inputs}
        sides = {name: cutting.tree_items(p, self.digests) for name, p in paths.items() if name not in main_inputs}
        driver_options = {"--output", "--run_invocation_timeout", "--run_max_try", "--process_count_per_node",
                          "--logging_level", "--error_threshold", "--allowed_failed_count", "--allowed_failed_percent",
                          "--node_count", "--first_task_creation_timeout"}  # fmt: skip
        kept, skip = [], False
        for token in self.argv:
            if skip:
                skip = False
                continue
            if token in driver_options:
                skip = True
                continue
            kept.append(by_path.get(token, token))
        return {
            "arguments": kept,
            "side_inputs": sides,
            "tables": json.loads(os.environ.get("LOCALPIPE_INPUT_TABLES", "{}")),
        }

    def worker_count(self) -> int:
        """``process_count_per_node`` x ``node_count``; by default, one per GPU or CPU the step claimed."""
        per_node = self.options.process_count_per_node
        if per_node is not None:
            return per_node * max(1, self.options.node_count)
        gpus = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g]
        return len(gpus) or int(os.environ.get("LOCALPIPE_STEP_CPUS", "0") or 0) or os.cpu_count() or 1

    def run(self) -> int:
        family = family_key(os.getcwd(), self.settings())
        write_record(self.folder, family, self.digests_path, None)
        cache = BatchCache(os.path.join(self.cache_root, family))
        try:
            found = self.cut(cache)
        except ValueError as exc:  # partition keys the data does not have
            return self.fail(str(exc))
        state = Batches(found, self.options)
        pending = deque()
        for index, batch in enumerate(found):
            cached = cache.get(batch["key"]) if batch["key"] else None
            if cached is None or cached["returned"] < cached["items"]:  # failed items (an earlier version kept them)
                pending.append(index)
                continue
            batch["count"] = cached["items"]
            state.succeeded(index, cached["returned"], cached["rows"])
            self.reused += 1
            self.items_reused += batch["count"]
        workers_text = f" on {min(self.worker_count(), len(pending))} workers" if pending else ""
        print(
            f"parallel run: {len(found)} mini-batches, {self.reused} reused from earlier runs, "
            f"{len(pending)} to run{workers_text}"
        )
        self.progress(state, force=True)
        workers: list[Worker] = []
        try:
            failure = self.work(state, pending, cache, workers) if pending else None
        finally:
            for worker in workers:
                worker.kill()
            cache.close()
            self.progress(state, force=True, final=True)
        # The next run cuts unchanged files into the same batches, and hashes only the files that changed.
        cache.save_partition([cutting.keyed(b, self.names, self.digests) for b in found])
        save_digests(self.digests_path, self.digests.own)
        write_record(self.folder, family, self.digests_path, [b["key"] for b in found if b["key"] in cache.found])
        if failure is not None:
            return self.fail(failure)
        self.write_output(state)
        print(
            f"parallel run: {len(state.results)} mini-batches succeeded, {len(state.failed)} failed, "
            f"{state.failed_items} items failed"
        )
        return 0

    def fail(self, reason: str) -> int:
        """Say why the step fails, to the scheduler (reason.txt) and in the log; the exit code."""
        (self.step_dir / REASON_FILE).write_text(reason + "\n")
        print(f"parallel run failed: {reason}", file=sys.stderr)
        return 1

    def start(self, number: int, count: int, workers: list[Worker], state: Batches) -> Worker:
        """Worker ``number`` of ``count`` (``workers`` the others running): its share of the step's
        CPUs and, where the step has GPUs, one of them; it hashes the files of the batches of
        ``state`` that have no key yet."""
        options = self.options
        config = {
            "script": os.path.join(os.getcwd(), options.scoring_module_name),
            "argv": self.argv,
            "log_dir": os.path.join(os.getcwd(), "logs", "user", "entry_script_log"),
            "output_dir": options.output or os.getcwd(),
            "logging_level": options.logging_level,
            "output_action": options.output_action,
        }
        cpus = int(os.environ.get("LOCALPIPE_STEP_CPUS", "0") or 0) or os.cpu_count() or 1
        env = {"OMP_NUM_THREADS": str(max(1, cpus // count))}
        gpus = [g for g in os.environ.get("CUDA_VISIBLE_DEVICES", "").split(",") if g]
        indices = [g for g in os.environ.get("LOCALPIPE_GPU_INDICES", "").split(",") if g]
        if gpus:  # one GPU each, in turn
            env["CUDA_VISIBLE_DEVICES"] = env["NVIDIA_VISIBLE_DEVICES"] = gpus[number % len(gpus)]
            if indices:
                env["LOCALPIPE_GPU_INDICES"] = indices[number % len(indices)]
        return Worker(number, config, env, workers, lambda index: self.keys_of(state.all[index]))

    def keys_of(self, batch: dict) -> tuple[str, list[str], dict] | None:
        """In a worker: the key and items' keys of a batch that has none yet, with the digests
        hashed for them (the driver keeps them for the next run)."""
        if batch["key"] is not None:
            return None
        cutting.keyed(batch, self.names, self.digests)
        return (
            batch["key"],
            batch["items"],
            {path: self.digests.own[path] for path in batch["files"] if path in self.digests.own},
        )

    def work(self, state: Batches, pending: deque, cache: BatchCache, workers: list[Worker]) -> str | None:
        """Run the ``pending`` batches on workers it starts (into ``workers``, which the caller
        ends); the reason the step fails, or None."""
        options = self.options
        count = min(self.worker_count(), len(pending))
        for number in range(count):
            workers.append(self.start(number, count, workers, state))

        ready = selectors.DefaultSelector()  # kept across passes: wait() would build one per pass
        for worker in workers:
            ready.register(worker.connection, selectors.EVENT_READ, worker)

        def replace(worker: Worker, error: str) -> None:
            """End ``worker`` (its running batch's try failed with ``error``); start another in its place."""
            ready.unregister(worker.connection)
            worker.kill()
            if worker.running is not None:
                index = worker.queue.popleft()
                self.try_failed(worker, index, error, state, pending, time.monotonic() - worker.started)
            for index in worker.queue:  # sent but not started: no try spent
                state.tries[index] -= 1
            pending.extendleft(reversed(worker.queue))
            workers[workers.index(worker)] = new = self.start(worker.number, count, workers, state)
            ready.register(new.connection, selectors.EVENT_READ, new)

        timeout, init_timeout = options.run_invocation_timeout, options.first_task_creation_timeout
        while pending or any(w.queue for w in workers):
            for worker in workers:
                while pending and worker.wants(len(pending) >= QUEUED_WHILE_FAST * len(workers)):
                    index = pending.popleft()
                    state.tries[index] += 1
                    batch = state.all[index]
                    try:
                        worker.send(index, self.payload(batch), batch.get("partition"))
                    except OSError:  # it died since its last message (BrokenPipeError)
                        replace(worker, worker.ended())
                        break
            now = time.monotonic()
            deadlines = [w.started + timeout - now for w in workers if w.queue]
            deadlines += [w.forked + init_timeout - now for w in workers if not w.ready]
            wait_for = min([PROGRESS_EVERY, *deadlines])
            for worker in workers:  # written to when its socket takes more
                events = selectors.EVENT_READ | (selectors.EVENT_WRITE if worker.outgoing else 0)
                if ready.get_key(worker.connection).events != events:
                    ready.modify(worker.connection, events, worker)
            for found, events in ready.select(timeout=max(0.0, wait_for)):
                worker = found.data
                if worker not in workers:  # replaced a moment ago (it died)
                    continue
                try:
                    if events & selectors.EVENT_WRITE:
                        worker.flush()
                    messages = worker.connection.received() if events & selectors.EVENT_READ else []
                except (EOFError, OSError):
                    if not worker.ready:
                        return f"init() of the entry script failed: {worker.ended()} before it was ready"
                    replace(worker, worker.ended())
                    continue
                for message in messages:
                    if message[0] == "init_failed":
                        print(message[1], file=sys.stderr)  # the whole traceback, for the step's log
                        return f"init() of the entry script failed in worker{worker.number}: {_last_line(message[1])}"
                    self.handle(worker, message, state, pending, cache)
            cache.flush()
            now = time.monotonic()
            for worker in list(workers):
                if not worker.ready and now - worker.forked > init_timeout:
                    return (
                        f"init() of the entry script did not return within {init_timeout:g} seconds in worker"
                        f"{worker.number} (first_task_creation_timeout: give it more with"
                        " '--first_task_creation_timeout', 'SECONDS' in the step's arguments)"
                    )
                if worker.queue and now - worker.started > timeout:
                    replace(worker, f"run() timed out after {timeout:g} seconds (run_invocation_timeout)")
            crossed = state.crossed()
            if crossed:
                return f"crossed {', '.join(crossed)}; first failure: {state.first_error}"
            self.progress(state)
        return None

    def handle(self, worker: Worker, message: tuple, state: Batches, pending: deque, cache: BatchCache) -> None:
        if message[0] == "ready":
            worker.ready = True
            return
        index = worker.finished()
        batch, seconds = state.all[index], message[-1]
        if message[0] == "done":
            _, _, returned, rows, keys, _ = message
            if not cache.writes_output and self.output_has_files():
                cache.mark_writes_output()
                print(
                    "parallel run: the entry script writes files to the output folder, which no mini-batch's "
                    "result holds: every mini-batch runs again on each run of this script"
                )
            state.succeeded(index, returned, rows)
            if keys is not None:
                batch["key"], batch["items"], hashed = keys
                self.digests.own.update(hashed)
            if returned >= batch["count"]:  # one with failed items runs again next time, as a failed batch does
                cache.put(batch["key"], {"items": batch["count"], "returned": returned, "rows": rows})
            self.record(batch, index, worker, state, seconds, "succeeded")
        else:
            self.try_failed(worker, index, message[2], state, pending, seconds)

    def try_failed(
        self, worker: Worker, index: int, error: str, state: Batches, pending: deque, seconds: float
    ) -> None:
        print(
            f"mini-batch {index} failed on try {state.tries[index]} in worker{worker.number}: {error.rstrip()}",
            file=sys.stderr,
        )
        if state.tries[index] < self.options.run_max_try:
            pending.append(index)
            outcome = "retried"
        else:
            state.failed_for_good(index, _last_line(error))
            outcome = "failed"
        self.record(state.all[index], index, worker, state, seconds, outcome)

    def record(self, batch: dict, index: int, worker: Worker, state: Batches, seconds: float, outcome: str) -> None:
        line = {
            "batch": index,
            "first": batch["first"],
            "items": batch["count"],
            "worker": f"worker{worker.number}",
            "try": state.tries[index],
            "seconds": round(seconds, 6),
            "outcome": outcome,
        }
        self.timings.write(json.dumps(line) + "\n")

    def progress(self, state: Batches, force: bool = False, final: bool = False) -> None:
        """Rewrite progress.json (at most every PROGRESS_EVERY seconds unless ``force``); ``final``:
        the driver runs nothing more (the batches left, if a threshold stopped it, have no time left)."""
        now = time.monotonic()
        if not force and now - self.last_progress < PROGRESS_EVERY:
            return
        self.last_progress = now
        self.timings.flush()
        elapsed = now - self.started
        rate = (state.items_done - self.items_reused) / elapsed if elapsed > 0 else 0.0
        done_batches = len(state.results) - self.reused
        per_batch = elapsed / done_batches if done_batches else None
        left = len(state.all) - len(state.results) - len(state.failed)
        data = {
            "total": len(state.all),
            "done": len(state.results),
            "failed": len(state.failed),
            "left": left,
            "reused": self.reused,
            "items_per_second": round(rate, 2),
            "eta_seconds": round(per_batch * left, 1) if per_batch is not None and not final else None,
            "elapsed_seconds": round(elapsed, 3),
        }
        temporary = self.folder / ".progress.json"
        temporary.write_text(json.dumps(data))
        os.replace(temporary, self.folder / PROGRESS)

    def output_has_files(self) -> bool:
        """Whether the output folder holds anything but append_row's file (which the driver writes last)."""
        if self.options.output is None:  # EntryScript().output_dir is then the step's folder
            return False
        try:
            with os.scandir(self.options.output) as entries:
                return any(entry.name != self.options.append_row_file_name for entry in entries)
        except OSError:
            return False

    def write_output(self, state: Batches) -> None:
        """``append_row``'s file: each batch's lines, batches in input order (by their first item)."""
        if self.options.output is None:
            return
        os.makedirs(self.options.output, exist_ok=True)
        if self.options.output_action != "append_row":
            return
        with open(os.path.join(self.options.output, self.options.append_row_file_name), "w") as out:
            for index in sorted(state.results):
                rows = state.results[index]["rows"]
                if rows:
                    out.write("\n".join(rows) + "\n")


def _last_line(error: str) -> str:
    """A traceback's last line: the exception and its message."""
    lines = error.strip().splitlines()
    return lines[-1] if lines else error


def main() -> None:
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # the workers are ended on the way out
    sys.exit(Driver(sys.argv[1:]).run())


if __name__ == "__main__":
    main()
