"""The scheduler: decides, launches and records every step of one pipeline run.

It owns every state transition of the run and of its step runs and is the only writer of
their rows in history.db. Steps whose inputs are known are decided in waves (reuse or run);
steps to run wait for a free slot, run through an executor, and are committed to the object
store only when they succeed.
"""

from __future__ import annotations

import gc
import os
import queue
import signal as signals
import threading
from pathlib import Path
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil
from peewee import OperationalError

from localpipe.engine.decide import (
    Decision, computing_twin, decide, intact_entry, known_keys, step_outputs,
)
from localpipe.engine.executors import Exit
from localpipe.engine.deliver import deliver
from localpipe.errors import StateError
from localpipe.faults import fault_point
from localpipe.engine.executors.local import LocalExecutor
from localpipe.engine.metrics import MetricsIngester
from localpipe.engine.outcomes import describe_exit, log_tail
from localpipe.engine.resources import ClaimRequest, Placement, ResourcePool
from localpipe.hw.gpus import detect_gpus
from localpipe.hw.host import detect_host
from localpipe.engine.workdir import (
    StepFolder, build_launch, fingerprint, input_path, snapshot_source, store_mounts,
)
from localpipe.plan.graph import Graph, StepSpec
from localpipe.content.hashing import TreeDigest, dataset_digest
from localpipe.content.trees import TreeCache, source_trees
from localpipe.plan.keys import cache_key, canonical_json
from localpipe.state import models as m
from localpipe.state.datasets import record_uses
from localpipe.state.db import insert_rows, open_history, update_rows
from localpipe.state.layout import objects_dir, step_dir
from localpipe.content.statcache import StatCache
from localpipe.state.store import ObjectStore, remove_tree
from localpipe.status import STEP_TRANSITIONS, RunStatus

RESOURCE_POLL_SECONDS = 0.05  # how soon a step waiting for resources held by another run looks again
METRICS_SECONDS = 1.0
LONGEST_WAIT_SECONDS = 1.0  # the loop looks around at least this often, whatever it waits for


class Reporter:
    """Receives the scheduler's events; the CLI and ``wait_for_completion`` print them."""

    def step_changed(self, step: str, status: RunStatus, reason: str | None, placement: dict | None = None) -> None:
        """A step changed status (``reason`` says why, when there is one; ``placement`` when it starts)."""

    def run_finished(self, status: RunStatus) -> None:
        """The run reached its final status."""


@dataclass
class _Running:
    spec: StepSpec
    folder: StepFolder
    snapshot: TreeDigest | None
    started: float
    deadline: float | None
    placement: Placement
    mounts: dict[str, tuple]  # input name -> (path in the store, fingerprint at launch)
    timed_out: bool = False
    canceled: str | None = None  # why it is being canceled, when it is


@dataclass
class _State:
    status: RunStatus = RunStatus.NOT_STARTED
    attempt: int = 1
    outputs: dict[str, str] = field(default_factory=dict)
    key: str | None = None  # the cache key it was decided with
    components: dict = field(default_factory=dict)  # what that key was computed from


@dataclass
class _CancelSteps:
    names: list[str]
    reason: str


class Scheduler:
    """Runs pipeline run ``run_id`` of workspace ``ws`` to its end."""

    def __init__(self, ws, run_id: int, reporter: Reporter | None = None, slots: int | None = None,
                 sources: dict[str, TreeDigest | None] | None = None, graph: Graph | None = None,
                 now: Callable[[], float] = time.time):
        """``graph`` and ``sources`` save reading back what the submitting process already holds."""
        self.ws = ws
        self.db = open_history(ws)
        self.run = m.PipelineRun.get_by_id(run_id)
        self.graph = graph or Graph.from_dict(self.run.pipeline.graph)
        self.step_ids: dict[str, int] = dict(m.StepRun.select(m.StepRun.name, m.StepRun.id)
                                             .where(m.StepRun.run == run_id).tuples())
        self.state = {name: _State() for name in self.graph.steps}
        self.reporter = reporter or Reporter()
        self.pool = _resource_pool(self.db, run_id, self.graph, slots)
        self.store = ObjectStore(objects_dir(ws))
        self.executor = LocalExecutor()
        self.cancels: queue.SimpleQueue[_CancelSteps] = queue.SimpleQueue()  # from other threads
        self.running: dict[str, _Running] = {}
        self.ready: dict[str, None] = {}  # steps waiting for resources, in order (a dict: removed from anywhere)
        self.stopping: str | None = None  # why no further step starts
        self.stop: str | None = None  # why the run must stop now (a signal, a watcher), at the next safe point
        self.interrupted = False  # the stop came from SIGINT: re-raise it once the run is recorded
        self.waiting: dict[str, int] = {}  # step -> the step run of another run computing the same key
        self.others_hold = False  # whether other runs held resources at the last claim
        self._claim_again = True  # a step became ready or resources were freed since the last claim
        self._base_env = dict(os.environ)  # read once: decoding os.environ costs more than a step's claim
        self._requests: dict[str, ClaimRequest] = {}
        self._claimed: dict[str, Placement] = {}  # claimed in a completion's transaction, not yet launched
        self._next_claim_poll = 0.0
        self.now = now
        self._sources = sources
        self._deferred: list[tuple[int, dict]] | None = None  # status changes written together (a wave)
        self._deferred_outputs: list[dict] = []
        self._deferred_keys: list[dict] = []
        self.upstream = {name: spec.upstream for name, spec in self.graph.steps.items()}
        self.consumers: dict[str, list[str]] = {name: [] for name in self.graph.steps}
        for name, upstream in self.upstream.items():
            for before in upstream:
                self.consumers[before].append(name)
        # Steps whose upstream all succeeded, not yet decided; and how many upstream steps each awaits.
        self.decidable = [name for name, upstream in self.upstream.items() if not upstream]
        self.awaiting = {name: len(upstream) for name, upstream in self.upstream.items()}
        self._blocked_dirty = False  # a step failed or was canceled: its dependants must be canceled
        self._stat_cache = StatCache(ws.state_dir / "statcache.bin")
        self.metrics = MetricsIngester(self.db, now)
        self._next_metrics = 0.0
        self._dataset_digests: dict[tuple[str, ...], str] = {}

    # -- the loop ---------------------------------------------------------------------------
    def execute(self) -> RunStatus:
        """Run every step that can run; returns the run's final status.

        SIGINT and SIGTERM cancel the run: every step's process tree is ended and the run is
        marked Canceled. After a SIGINT, KeyboardInterrupt is raised once the run is recorded.
        """
        previous = _install_signal_handlers(self._on_signal)
        # What exists now (modules, the plan, the models) lives as long as the run: set aside from
        # the collector, so that its full passes while steps run trace only what the run adds
        # (given back when the run ends: a watcher runs one scheduler after another).
        gc.freeze()
        self._start_run()
        fault_point("run-started")
        try:
            self.sources = self._sources
            if self.sources is None:
                self.sources = source_trees(self.graph, TreeCache(self._stat_cache))
            while self.stop is None:
                self._check_twins()
                self._decide_ready()
                self._launch_ready()
                if not self.running and not self.ready and not self.waiting:
                    break
                self._ingest_running_metrics()
                exits = self.executor.wait(self._wait_timeout())
                while not self.cancels.empty():
                    cancel = self.cancels.get()
                    for name in cancel.names:
                        self._cancel_step(name, cancel.reason)
                for event in exits:
                    self._finished(event)
                self._enforce_timeouts()
        except KeyboardInterrupt:
            self.stop, self.interrupted = "interrupted (Ctrl-C)", True
        except OperationalError as exc:
            self.stop = f"history.db could not be written ({exc})"
            self._cancel_quietly()
            raise StateError(f"{self.ws.state_dir}: history.db could not be written ({exc}): free disk space "
                             "(localpipe gc, localpipe du) and submit again") from None
        finally:
            self._stat_cache.save()
            _restore_signal_handlers(previous)
            self.executor.close()
            gc.unfreeze()
        if self.stop is not None:
            self._cancel_everything(self.stop)
            self._finish_run(RunStatus.CANCELED, self.stop)
            if self.interrupted:
                raise KeyboardInterrupt
            return RunStatus.CANCELED
        return self._finish_run(None, None)

    def request_stop(self, reason: str) -> None:
        """Cancel the whole run (from another thread): every step's process tree is ended."""
        self.stop = reason
        self.executor.wake()

    def cancel_steps(self, names: list[str], reason: str) -> None:
        """Cancel these steps (from another thread); the rest of the run goes on without them."""
        self.cancels.put(_CancelSteps(list(names), reason))
        self.executor.wake()

    def _ingest_running_metrics(self) -> None:
        """Metrics of running steps are visible while they run: picked up about once a second."""
        if not self.running or time.monotonic() < self._next_metrics:
            return
        self._next_metrics = time.monotonic() + METRICS_SECONDS
        for name, running in self.running.items():
            self.metrics.ingest(str(running.folder.metrics), self.step_ids[name])

    def _on_signal(self, signum, frame) -> None:
        self.interrupted = signum == signals.SIGINT
        self.stop = "interrupted (Ctrl-C)" if self.interrupted else "canceled"
        self.executor.wake()  # the wait in progress resumes after this handler: end it

    def _start_run(self) -> None:
        me = psutil.Process()
        m.PipelineRun.update(status=RunStatus.RUNNING.value, started_at=self.now(), scheduler_pid=me.pid,
                             scheduler_started=me.create_time()).where(m.PipelineRun.id == self.run.id).execute()

    def _wait_timeout(self) -> float:
        """How long to wait for a step to end: until the next step timeout or metrics pick-up, and
        briefly when steps wait for resources another run may free."""
        waits = [LONGEST_WAIT_SECONDS]
        if (self.ready and self.others_hold) or self.waiting:
            waits.append(RESOURCE_POLL_SECONDS)
        if self.running:
            waits.append(self._next_metrics - time.monotonic())
        waits += [r.deadline - self.now() for r in self.running.values() if r.deadline and not r.timed_out]
        return max(0.0, min(waits))

    # -- deciding ---------------------------------------------------------------------------
    def _decide_ready(self) -> None:
        """Decide every step whose upstream steps are done; reuse cascades within this call.

        One IMMEDIATE transaction covers the whole cascade: deciding to compute a key and
        looking for another run computing it must be one step for every scheduler, and a
        thousand reused steps cost one commit, not forty.
        """
        if self.stopping or not (self.decidable or self._blocked_dirty):
            return
        with self.db.atomic("IMMEDIATE"):
            self._deferred, self._deferred_outputs, self._deferred_keys = [], [], []
            try:
                while not self.stopping:
                    self._cancel_blocked()
                    wave = [self.graph.steps[name] for name in self.decidable
                            if self.state[name].status is RunStatus.NOT_STARTED]
                    self.decidable = []
                    if not wave:
                        break
                    inputs = {spec.name: self._input_digests(spec) for spec in wave}
                    for decision in decide(wave, self.sources, inputs, self.store, self.run.experiment_id,
                                           regenerate=self.run.regenerate_outputs):
                        self._apply(decision)
                self._write_deferred()
                fault_point("in-reuse-wave")
            finally:
                self._deferred = None
        fault_point("after-reuse-wave")

    def _apply(self, decision: Decision) -> None:
        name = decision.step
        self.state[name].key, self.state[name].components = decision.key, decision.components
        self._deferred_keys.append({"key": decision.key, "components": m.EncodedJSON(decision.components_json)})
        fields = {"cache_key": decision.key}
        datasets = [i.dataset for i in self.graph.steps[name].inputs.values() if i.dataset]
        if datasets:
            record_uses(self.step_ids[name], datasets)
        if decision.reuse:
            self.state[name].outputs = decision.outputs
            self._deliver(name)
            self._transition(name, RunStatus.REUSED, decision.reason, reused_from=decision.reused_from,
                             ended_at=self.now(), **fields)
            self._deferred_outputs += [{"step_run": self.step_ids[name], "name": out, "digest": digest, "size": 0}
                                       for out, digest in decision.outputs.items()]
        else:
            may_reuse = self.graph.steps[name].allow_reuse and not self.run.regenerate_outputs
            if may_reuse and self._reuse_late_entry(decision):
                return
            twin = computing_twin(decision.key, self.run.id) if may_reuse else None
            if twin is not None:
                self.waiting[name] = twin.id
                reason = f'waits for run {twin.run_id} (step "{twin.name}"), which computes the same outputs'
                self._transition(name, RunStatus.QUEUED, reason, queued_at=self.now(), **fields)
                return
            self._transition(name, RunStatus.QUEUED, decision.reason, queued_at=self.now(), **fields)
            self._make_ready(name)

    def _reuse_late_entry(self, decision: Decision) -> bool:
        """Reuse an entry for this key that another run committed since the decision was made."""
        found = intact_entry(decision.key, self.store)
        if found is None:
            return False
        source, outputs = found
        decision.reuse, decision.reused_from, decision.outputs = True, source.id, outputs
        decision.reason = f'reused from run {source.run_id} (step "{source.name}")'
        self._apply(decision)
        return True

    def _check_twins(self) -> None:
        """Reuse what a twin step finished computing, or compute it here if the twin did not succeed."""
        for name, twin_id in list(self.waiting.items()):
            twin = m.StepRun.get_by_id(twin_id)
            if not RunStatus(twin.status).is_final:
                continue
            del self.waiting[name]
            outputs = step_outputs(twin_id)
            if twin.status == RunStatus.COMPLETED.value and all(self.store.has(d) for d in outputs.values()):
                self.state[name].outputs = outputs
                with self.db.atomic():
                    self._transition(name, RunStatus.REUSED, f'reused from run {twin.run_id} (step "{twin.name}")',
                                     reused_from=twin_id, ended_at=self.now())
                    insert_rows(m.StepOutput, [{"step_run": self.step_ids[name], "name": o, "digest": d, "size": 0}
                                               for o, d in outputs.items()])
            else:
                self._transition(name, RunStatus.QUEUED, f"runs: run {twin.run_id}'s identical step {twin.status.lower()}")
                self._make_ready(name)

    def _input_digests(self, spec: StepSpec) -> dict[str, str]:
        digests = {}
        for name, source in spec.inputs.items():
            if source.step is not None:
                digests[name] = self.state[source.step].outputs[source.output]
            else:
                paths = tuple(source.paths)
                if paths not in self._dataset_digests:
                    self._dataset_digests[paths] = dataset_digest(paths, self._stat_cache)
                digests[name] = self._dataset_digests[paths]
        return digests

    def _cancel_blocked(self) -> None:
        """Mark Canceled the steps that can no longer run because an upstream step did not succeed."""
        if not self._blocked_dirty:
            return
        self._blocked_dirty = False
        changed = True
        while changed:
            changed = False
            for name in self.graph.steps:
                if self.state[name].status is not RunStatus.NOT_STARTED:
                    continue
                bad = sorted(u for u in self.upstream[name]
                             if self.state[u].status in (RunStatus.FAILED, RunStatus.CANCELED))
                if bad:
                    verb = "failed" if self.state[bad[0]].status is RunStatus.FAILED else "did not run"
                    self._transition(name, RunStatus.CANCELED, f'not run: upstream step "{bad[0]}" {verb}')
                    changed = True

    # -- launching --------------------------------------------------------------------------
    def _launch_ready(self) -> None:
        """Start the steps claimed when a step completed, then every ready step whose resources
        can be claimed now, in order (later ones may backfill)."""
        claimed, self._claimed = self._claimed, {}
        if self.stopping:
            for placement in claimed.values():
                self._release(placement)
            return
        for name, placement in {**claimed, **self._claim_ready()}.items():
            self._launch(name, placement)

    def _claim_ready(self) -> dict[str, Placement]:
        """Claim what fits now for the ready steps, which then leave ``ready``."""
        if self.stopping or not self.ready:
            return {}
        if not self._claim_again and not (self.others_hold and time.monotonic() >= self._next_claim_poll):
            return {}  # nothing was freed here, and nobody else holds anything that could be
        self._claim_again = False
        self._next_claim_poll = time.monotonic() + RESOURCE_POLL_SECONDS
        placements, self.others_hold = self.pool.claim(map(self._claim_request, self.ready))
        for name in placements:
            del self.ready[name]
        return placements

    def _deliver(self, name: str) -> None:
        destinations = self.graph.steps[name].destinations
        if destinations:
            deliver(self.ws, self.store, self.run.id, self.step_ids[name], destinations, self.state[name].outputs)

    def _claim_request(self, name: str) -> ClaimRequest:
        """Made once per step: a scheduler asks again for every waiting step each time a slot frees."""
        if name not in self._requests:
            spec = self.graph.steps[name]
            self._requests[name] = ClaimRequest(name, self.step_ids[name], spec.compute_target, spec.resources)
        return self._requests[name]

    def _make_ready(self, name: str) -> None:
        self.ready[name] = None
        self._claim_again = True

    def _release(self, placement: Placement) -> None:
        self.pool.release(placement)
        self._claim_again = True

    def _launch(self, name: str, placement: Placement) -> None:
        spec = self.graph.steps[name]
        state = self.state[name]
        folder = StepFolder(step_dir(self.ws, self.run.id, name))
        folder.reset()
        try:
            snapshot = snapshot_source(spec, self.sources.get(name), folder)
            upstream_outputs = {u: self.state[u].outputs for u in spec.upstream}
            upstream_is_dir = {u: self.graph.steps[u].outputs for u in spec.upstream}
            inputs = {i: input_path(spec, i, upstream_outputs, upstream_is_dir, self.store, folder)
                      for i in spec.inputs}
            launch = build_launch(spec, folder, inputs, self._step_env(name, placement), key=name)
            mounts = store_mounts(spec, inputs, self.store)
        except (OSError, ValueError) as exc:
            self._release(placement)
            self._fail(name, f"could not prepare the step folder: {exc}")
            return
        if snapshot:  # recorded now, so that a later run can name the files changed since this one
            m.Snapshot.insert(digest=snapshot.digest, files=snapshot.files,
                              size=snapshot.size).on_conflict_ignore().execute()
        started = self.now()
        deadline = started + spec.timeout_seconds if spec.timeout_seconds else None
        self.running[name] = _Running(spec, folder, snapshot, started, deadline, placement, mounts)
        fault_point("before-step-start")
        pid = self.executor.start(launch)
        self._transition(name, RunStatus.RUNNING, None, started_at=started, pid=pid, attempt=state.attempt,
                         arguments=launch.argv, placement=placement.describe(),
                         snapshot=snapshot.digest if snapshot else None)
        fault_point("step-running")

    def _step_env(self, name: str, placement: Placement) -> dict[str, str]:
        env = dict(self._base_env)
        gpus = placement.gpus
        env.update({
            "LOCALPIPE_WORKSPACE": str(self.ws.root),
            "LOCALPIPE_RUN_ID": str(self.run.id),
            "LOCALPIPE_STEP_RUN_ID": str(self.step_ids[name]),
            "LOCALPIPE_STEP_NAME": name,
            "LOCALPIPE_EXPERIMENT": self.run.experiment.name,
            # UUIDs, not indices: CUDA numbers devices fastest-first unless told otherwise, NVML by
            # PCI bus, so an index can name another GPU; a UUID names the same one for both.
            "CUDA_VISIBLE_DEVICES": ",".join(g.uuid for g in gpus),
            "NVIDIA_VISIBLE_DEVICES": ",".join(g.uuid for g in gpus) or "void",
            "CUDA_DEVICE_ORDER": "PCI_BUS_ID",
            "LOCALPIPE_GPU_INDICES": ",".join(str(g.index) for g in gpus),
            "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", str(placement.cpus)),
        })
        return env

    # -- cancelling a step ------------------------------------------------------------------
    def _cancel_step(self, name: str, reason: str) -> None:
        status = self.state[name].status
        if name in self.running:
            self.running[name].canceled = reason
            threading.Thread(target=self.executor.terminate, args=(name,), daemon=True).start()
        elif status in (RunStatus.NOT_STARTED, RunStatus.QUEUED):
            self.ready.pop(name, None)
            self.waiting.pop(name, None)
            self._transition(name, RunStatus.CANCELED, reason, ended_at=self.now())

    # -- finishing a step -------------------------------------------------------------------
    def _finished(self, event: Exit) -> None:
        running = self.running.pop(event.key)
        name = event.key
        exited_well = event.exit_code == 0 and not (running.canceled or running.timed_out or event.error)
        written = [i for i, (path, before) in running.mounts.items() if fingerprint(path) != before]
        if exited_well and not written:
            self._complete(name, running, event)  # releases the claim in its closing transaction
        else:
            remove_tree(running.folder.outputs)  # first: on a full disk, this is what frees it
            self._release(running.placement)
            if running.canceled:
                self._transition(name, RunStatus.CANCELED, running.canceled, ended_at=self.now(),
                                 exit_code=event.exit_code, signal=event.signal, peak_memory=event.peak_memory)
            elif event.error:
                self._fail(name, event.error, peak_memory=event.peak_memory)
            elif running.timed_out:
                self._fail(name, f"timed out after {running.spec.timeout_seconds:g}s", exit_event=event)
            elif written:
                for input_name in written:  # the object no longer matches its digest: nobody may reuse it
                    self.store.remove(Path(running.mounts[input_name][0]).relative_to(self.store.root).parts[1])
                self._fail(name, f'the step wrote into its read-only input "{written[0]}": use as_download() '
                                 "for a writable copy", exit_event=event)
            else:
                self._fail(name, describe_exit(event, running.spec.resources.get("memory"),
                                               log_tail(running.folder)), exit_event=event)
        self.metrics.ingest(str(running.folder.metrics), self.step_ids[name])

    def _complete(self, name: str, running: _Running, event: Exit) -> None:
        spec = running.spec
        # Finalizing is worth a write only when there is something to commit that takes time.
        self._transition(name, RunStatus.FINALIZING, None, record=bool(spec.outputs or spec.destinations))
        fault_point("before-commit")
        committed: dict[str, TreeDigest] = {}
        for output, is_dir in spec.outputs.items():
            path = running.folder.output_path(output, is_dir)
            if not path.exists():
                self._release(running.placement)
                self._fail(name, f'output "{output}" was not written to {path}', exit_event=event)
                return
            if committed:
                fault_point("mid-commit")
            committed[output] = self.store.commit(running.folder.outputs / output)
        state = self.state[name]
        key, components, rekeyed = state.key, state.components, {}
        if running.snapshot and running.snapshot.digest != components.get("source"):
            # The source changed between hashing and copying: key the run by what it really ran.
            components = dict(components, source=running.snapshot.digest)
            key = cache_key(components)
            rekeyed = {"cache_key": key}
        state.outputs = {o: t.digest for o, t in committed.items()}
        try:
            self._deliver(name)
        except OSError as exc:
            self._release(running.placement)
            self._fail(name, f"could not write an output to its destination: {exc}", exit_event=event)
            return
        # The cache entry and the Completed status are one transaction: an entry exists only for
        # a step that completed, and only once all its outputs are in the store. The claim it
        # frees goes to the next ready steps in the same transaction (they start after it).
        fault_point("before-cache-entry")
        with self.db.atomic("IMMEDIATE"):
            insert_rows(m.StepOutput, [{"step_run": self.step_ids[name], "name": o, "digest": t.digest,
                                        "size": t.size} for o, t in committed.items()])
            if rekeyed:  # the decided key was recorded with the decision
                self.db.execute_sql('INSERT OR IGNORE INTO "cache_key" ("key", "components") VALUES (?, ?)',
                                    (key, canonical_json(components)))
            self.db.execute_sql('INSERT OR REPLACE INTO "cache_entry" ("key", "step_run_id", "created_at") '
                                "VALUES (?, ?, ?)", (key, self.step_ids[name], self.now()))
            self._transition(name, RunStatus.COMPLETED, None, ended_at=self.now(), exit_code=0,
                             peak_memory=event.peak_memory, **rekeyed)
            self._release(running.placement)
            self._claimed.update(self._claim_ready())
            fault_point("in-cache-entry")
        fault_point("after-completed")

    def _fail(self, name: str, reason: str, exit_event: Exit | None = None, peak_memory: int | None = None) -> None:
        spec = self.graph.steps[name]
        state = self.state[name]
        folder = StepFolder(step_dir(self.ws, self.run.id, name))
        fields = {"ended_at": self.now(), "log_tail": log_tail(folder)}
        if exit_event is not None:
            fields.update(exit_code=exit_event.exit_code, signal=exit_event.signal,
                          peak_memory=exit_event.peak_memory)
        remove_tree(folder.outputs)  # nothing of a failed attempt may be mistaken for output
        if state.attempt <= spec.max_retries and not self.stopping:
            state.attempt += 1
            self._transition(name, RunStatus.QUEUED, f"retry {state.attempt - 1} of {spec.max_retries} "
                                                     f"after: {reason}", **fields)
            self._make_ready(name)
            return
        self._transition(name, RunStatus.FAILED, reason, **fields)
        if not self.run.continue_on_step_failure and not self.stopping:
            self.stopping = f'step "{name}" failed'
            for queued in self.ready:
                self._transition(queued, RunStatus.CANCELED, f"not run: {self.stopping}")
            self.ready.clear()

    def _enforce_timeouts(self) -> None:
        for name, running in self.running.items():
            if running.deadline and not running.timed_out and self.now() >= running.deadline:
                running.timed_out = True
                threading.Thread(target=self.executor.terminate, args=(name,), daemon=True).start()

    # -- cancel and finish ------------------------------------------------------------------
    def _cancel_everything(self, why: str) -> None:
        self.stopping = why
        self.executor.terminate_all()
        for placement in self._claimed.values():
            self._release(placement)
        self._claimed.clear()
        for name in list(self.running):
            self._release(self.running.pop(name).placement)
            self._transition(name, RunStatus.CANCELED, why, ended_at=self.now())
        for name, state in self.state.items():
            if not state.status.is_final:
                self._transition(name, RunStatus.CANCELED, why, ended_at=self.now())

    def _cancel_quietly(self) -> None:
        """End every step's process tree without recording anything (history.db cannot be written)."""
        self.executor.terminate_all()
        for running in self.running.values():
            remove_tree(running.folder.outputs)

    def _finish_run(self, status: RunStatus | None, error: str | None) -> RunStatus:
        self._cancel_blocked()
        for name, state in self.state.items():
            if not state.status.is_final:
                self._transition(name, RunStatus.CANCELED, f"not run: {self.stopping or 'run ended'}")
        statuses = [s.status for s in self.state.values()]
        if status is None:
            status = RunStatus.FAILED if RunStatus.FAILED in statuses else RunStatus.COMPLETED
            if status is RunStatus.FAILED:
                error = self.stopping or "a step failed"
        m.PipelineRun.update(status=status.value, ended_at=self.now(), error=error).where(
            m.PipelineRun.id == self.run.id).execute()
        self.reporter.run_finished(status)
        return status

    def _transition(self, name: str, status: RunStatus, reason: str | None, record: bool = True, **fields) -> None:
        """Move a step to ``status`` (checked against the life cycle), write it and tell the reporter,
        unless ``record`` is False (a passing state that the next change supersedes at once)."""
        current = self.state[name].status
        if status not in STEP_TRANSITIONS.get(current, ()):
            raise RuntimeError(f'step "{name}": {current} -> {status} is not a valid transition')
        self.state[name].status = status
        if status.succeeded:
            for consumer in self.consumers[name]:
                self.awaiting[consumer] -= 1
                if self.awaiting[consumer] == 0:
                    self.decidable.append(consumer)
        elif status in (RunStatus.FAILED, RunStatus.CANCELED):
            self._blocked_dirty = True
        values = {"status": status.value, **fields}
        if reason is not None:
            values["reason"] = reason
        if record and self._deferred is not None:
            self._deferred.append((self.step_ids[name], values))
        elif record:
            update_rows(m.StepRun, [(self.step_ids[name], values)])
        if record:
            self.reporter.step_changed(name, status, reason, fields.get("placement"))

    def _write_deferred(self) -> None:
        """Write a wave's status changes as one prepared UPDATE per shape, and its outputs in bulk.

        A thousand reused steps are a thousand rows: one statement each through the ORM would
        cost more than everything else a fully reused run does.
        """
        update_rows(m.StepRun, self._deferred)
        insert_rows(m.StepOutput, self._deferred_outputs)
        known = known_keys(self.db, [row["key"] for row in self._deferred_keys])
        insert_rows(m.CacheKey, list({row["key"]: row for row in self._deferred_keys if row["key"] not in known}.values()))


def _resource_pool(db, run_id: int, graph: Graph, slots: int | None) -> ResourcePool:
    """The pool this scheduler claims from; GPUs are detected only when a step asks for one."""
    host = detect_host()
    gpus = ()
    if any(spec.resources["gpus"] for spec in graph.steps.values()):
        gpus = detect_gpus().gpus
    return ResourcePool(db, run_id, slots or host.cpus, host.memory_total, gpus)


def _install_signal_handlers(handler) -> dict:
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signals.signal(sig, handler) for sig in (signals.SIGINT, signals.SIGTERM)}


def _restore_signal_handlers(previous: dict) -> None:
    for sig, handler in previous.items():
        signals.signal(sig, handler)
