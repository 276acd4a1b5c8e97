"""The scheduler: decides, launches and records every step of one pipeline run.

It owns every state transition of the run and of its step runs (checked by ``Progress``) and
records them through the workspace's ``History``. Steps whose inputs are known are decided in
waves (reuse or run); steps to run wait for a claim on the ``ResourcePool``, run through an
``Executor`` (a ``Router`` hands each launch to the one it names), and are committed to the
``ObjectStore`` only when they succeed. Those four parts are given to it (``scheduler_for`` makes
the usual ones), so each can be replaced or faked.
"""

from __future__ import annotations

import copy
import gc
import json
import os
import queue
import signal as signals
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from localpipe.content.hashing import TreeDigest, dataset_digest
from localpipe.content.statcache import StatCache
from localpipe.engine.decide import Decision, decide, intact
from localpipe.engine.deliver import deliver
from localpipe.engine.environments import Environments
from localpipe.engine.executors import RUN_LABEL, STEP_LABEL, STEP_RUN_LABEL, WORKSPACE_LABEL, Exit
from localpipe.engine.executors.router import Router
from localpipe.engine.metrics import MetricsIngester
from localpipe.engine.outcomes import describe_exit, disk_full_note, log_tail, own_reason
from localpipe.engine.progress import Progress, run_outcome
from localpipe.engine.recovery import recover_abandoned_runs, requested_end
from localpipe.engine.resources import (
    ALIVE_CHECK_SECONDS,
    ClaimRequest,
    Placement,
    ResourcePool,
    process_alive,
    process_start,
    ray_placement,
)
from localpipe.engine.sweep import SweepWatch
from localpipe.engine.workdir import (
    PYTHON_KINDS,
    StepFolder,
    collect_run_files,
    commit_outputs,
    containerize,
    fingerprint,
    prepare_step,
    step_environment,
    step_interpreter,
    to_ray,
    unlink_replaced,
)
from localpipe.envs.cache import BuiltEnvironment
from localpipe.errors import StateError, UsageError
from localpipe.faults import fault_point
from localpipe.plan.graph import Graph, StepSpec
from localpipe.plan.keys import cache_key, canonical_json
from localpipe.plan.sweep import proposal_waits, trial_arguments
from localpipe.state.db import WriteFailed, write_failure
from localpipe.state.history import History
from localpipe.state.runs import ScheduledRun
from localpipe.state.store import ObjectStore, remove_tree
from localpipe.status import RunStatus

RESOURCE_POLL_SECONDS = 0.05  # how soon a step waiting for resources held by another run looks again
METRICS_SECONDS = 1.0
LONGEST_WAIT_SECONDS = 1.0  # the loop looks around at least this often, whatever it waits for
SLOW_COMMIT_BYTES = 64 << 20  # file outputs above this take a while to hash: Finalizing is recorded


class Reporter:
    """Receives the scheduler's events; the CLI and ``wait_for_completion`` print them. Its methods
    never raise: one whose output is gone sets ``closed`` and the run is canceled with that reason."""

    closed: str | None = None

    def step_changed(self, step: str, status: RunStatus, reason: str | None, placement: dict | None = None) -> None:
        """A step changed status (``reason`` says why, when there is one; ``placement`` when it starts)."""

    def run_finished(self, status: RunStatus) -> None:
        """The run reached its final status."""

    def environment_changed(self, name: str, digest: str, state: str, detail: str) -> None:
        """An environment started building (``state`` "building", ``detail`` its log), was built
        ("built", how long it took) or could not be ("failed", why)."""


@dataclass
class _Running:
    spec: StepSpec
    folder: StepFolder
    snapshot: TreeDigest | None
    started: float
    deadline: float | None
    placement: Placement
    mounts: dict[str, tuple]  # input name -> (path in the store, fingerprint at launch)
    secrets: list[str]  # values masked in its logs and in what it logs
    timed_out: bool = False
    canceled: str | None = None  # why it is being canceled, when it is


@dataclass
class _Step:
    """What the scheduler keeps of a step besides its status (which ``Progress`` holds)."""

    attempt: int = 1
    outputs: dict[str, str] = field(default_factory=dict)
    key: str | None = None  # the cache key it was decided with
    components: dict = field(default_factory=dict)  # what that key was computed from


@dataclass
class _Wave:
    """The writes of one wave of decisions, made together at its end."""

    changes: list[tuple[int, dict]] = field(default_factory=list)
    outputs: list[tuple[int, str, str, int]] = field(default_factory=list)
    keys: dict[str, str] = field(default_factory=dict)  # cache key -> what it was computed from (JSON)


@dataclass
class _CancelSteps:
    names: list[str]
    reason: str


class Scheduler:
    """Runs one recorded pipeline run to its end."""

    def __init__(
        self,
        run: ScheduledRun,
        graph: Graph,
        sources: dict[str, TreeDigest | None],
        history: History,
        store: ObjectStore,
        pool: ResourcePool,
        executor: Router,
        reporter: Reporter | None = None,
        now: Callable[[], float] = time.time,
        environments: Environments | None = None,
        runtime_path: str | None = None,
    ):
        self.run = run
        # Bayesian sampling's proposals change the sweep and its trials' arguments: in this run's copy alone.
        self.graph = replace(graph, steps=dict(graph.steps), sweeps=copy.deepcopy(graph.sweeps))
        self.sources = sources
        self.history = history
        self.store = store
        self.pool = pool
        self.executor = executor
        self.environments = environments or Environments()
        self.environments.wake = executor.wake
        self.runtime_path = runtime_path  # on the steps' PYTHONPATH: localpipe and its azureml names
        self.reporter = reporter or Reporter()
        self.now = now
        self.step_ids = run.step_ids
        settle = {sweep["step"]: set(sweep["trials"]) for sweep in graph.sweeps if sweep.get("step")}
        for sweep in graph.sweeps:  # a proposed trial waits for earlier ones to end, however they end
            settle.update((trial, set(earlier)) for trial, earlier in proposal_waits(sweep).items())
        self.progress = Progress({name: spec.upstream for name, spec in graph.steps.items()}, settle)
        self.steps = {name: _Step() for name in graph.steps}
        self.running: dict[str, _Running] = {}
        self.ready: dict[str, None] = {}  # steps waiting for resources, in order (a dict: removed from anywhere)
        self.waiting: dict[str, int] = {}  # step -> the step run of another run computing the same key
        self.preparing: dict[str, str] = {}  # step -> the digest of the environment being built for it
        self.built: dict[str, BuiltEnvironment] = {}  # step -> the built environment it runs in
        self._build_ids: dict[str, int] = {}  # digest -> its row in environment_build
        self.halt_reason: str | None = None  # why no further step starts (a step failed, the run is ending)
        self.cancel_reason: str | None = None  # why the whole run must be canceled, at the next safe point
        self.interrupted = False  # the cancel came from SIGINT: re-raise it once the run is recorded
        self.cancels: queue.SimpleQueue[_CancelSteps] = queue.SimpleQueue()  # from other threads
        self.others_hold = False  # whether other runs held resources at the last claim
        self._claim_again = True  # a step became ready or resources were freed since the last claim
        self._next_claim_poll = 0.0
        self._requests: dict[str, ClaimRequest] = {}
        self._claimed: dict[str, Placement] = {}  # claimed in a completion's transaction, not yet launched
        self._unmet: dict[str, str] = {}  # queued steps this machine cannot place now, and why: failed next
        self._wave: _Wave | None = None  # set while a wave of decisions is being made
        self._alive_until: dict[int, float] = {}  # other runs whose scheduler was seen alive, until when
        self._base_env = dict(os.environ)  # read once: decoding os.environ costs more than a step's claim
        self._stat_cache = StatCache(history.layout.statcache)
        self._python_hinted = False  # the executor was told of a Python step to come (its zygote)
        self._dataset_digests: dict[tuple[str, ...], str] = {}
        self.sweeps = SweepWatch(self.graph.sweeps, now())
        names = {step_run_id: name for name, step_run_id in self.step_ids.items()}
        observe = (lambda step_run_id, rows: self.sweeps.observe(names[step_run_id], rows)) if graph.sweeps else None
        self.metrics = MetricsIngester(history, now, observe)
        self._next_metrics = 0.0

    # -- the loop ---------------------------------------------------------------------------
    def execute(self) -> RunStatus:
        """Run every step that can run; returns the run's final status.

        SIGINT and SIGTERM cancel the run: every step's process tree is ended and the run is
        marked Canceled. After a SIGINT, KeyboardInterrupt is raised once the run is recorded.
        """
        previous = _install_signal_handlers(self._on_signal)
        # What exists now (modules, the plan, the models) lives as long as the run: set aside from
        # the collector, so that its full passes while steps run trace only what the run adds
        # (given back when the run ends: a watcher runs one scheduler after another). The collector
        # runs while steps run even where the submission paused it to plan (`localpipe submit`).
        gc.freeze()
        collecting = gc.isenabled()
        gc.enable()
        self.history.runs.mark_running(self.run.id, os.getpid(), process_start(), self.now())
        recover_abandoned_runs(self.history)  # a run killed just before must not hold steps this one waits for
        fault_point("run-started")
        try:
            try:
                self._loop()
            except KeyboardInterrupt:
                self.cancel_reason, self.interrupted = "interrupted (Ctrl-C)", True
            except WriteFailed as exc:
                self.cancel_reason = f"history.db could not be written ({exc})"
                self._cancel_quietly()
                raise StateError(f"{self.history.layout.state_dir}: {write_failure(exc)}") from None
            except Exception as exc:  # a defect: the run is recorded Failed, saying why, not left to recovery's guess
                self._cancel_quietly()
                with suppress(Exception):
                    self.history.runs.mark_abandoned(self.run.id, f"the scheduler failed: {type(exc).__name__}: {exc}")
                raise
            finally:
                self._stat_cache.save()
                _restore_signal_handlers(previous)
                gc.unfreeze()
                if not collecting:
                    gc.disable()
            if self.cancel_reason is not None:
                self._cancel_everything(self.cancel_reason)
                asked = requested_end(self.history.layout, self.run.id)  # Run.fail asks for Failed
                status, reason = asked or (RunStatus.CANCELED, self.cancel_reason)
                self._finish_run(status, reason)
                if self.interrupted:
                    raise KeyboardInterrupt
                return status
            return self._finish_run(None, None)
        finally:
            self.environments.close()
            self.executor.close()  # last: closing ends whatever still runs, without a grace period

    def _loop(self) -> None:
        while self.cancel_reason is None:
            if self.reporter.closed:
                self.cancel_reason = self.reporter.closed
                return
            self._check_twins()
            self._decide_ready()
            self._launch_ready()
            if not self.running and not self.ready and not self.waiting and not self.preparing:
                return
            self._ingest_running_metrics()
            self._end_sweep_trials()
            exits = self.executor.wait(self._wait_timeout())
            while not self.cancels.empty():
                cancel = self.cancels.get()
                for name in cancel.names:
                    self._cancel_step(name, cancel.reason)
            for event in exits:
                self._finished(event)
            for build in self.environments.finished():
                self._environment_built(build)
            self._enforce_timeouts()

    def request_stop(self, reason: str) -> None:
        """Cancel the whole run (from another thread): every step's process tree is ended."""
        self.cancel_reason = reason
        self.executor.wake()

    def cancel_steps(self, names: list[str], reason: str) -> None:
        """Cancel these steps (from another thread); the rest of the run goes on without them."""
        self.cancels.put(_CancelSteps(list(names), reason))
        self.executor.wake()

    def _on_signal(self, signum, frame) -> None:
        self.interrupted = signum == signals.SIGINT
        self.cancel_reason = "interrupted (Ctrl-C)" if self.interrupted else "canceled"
        self.executor.wake()  # the wait in progress resumes after this handler: end it

    def _ingest_running_metrics(self) -> None:
        """Metrics of running steps are visible while they run: picked up about once a second."""
        if not self.running or time.monotonic() < self._next_metrics:
            return
        self._next_metrics = time.monotonic() + METRICS_SECONDS
        for name, running in self.running.items():
            self.metrics.ingest(str(running.folder.metrics), self.step_ids[name], running.secrets)

    def _end_sweep_trials(self) -> None:
        """End the trials a sweep's policy (or its duration) ends: recorded Canceled with the reason,
        and not counted against the run's outcome."""
        if not self.graph.sweeps:
            return
        for name, reason in self.sweeps.to_stop(list(self.running), self.progress.unfinished(), self.now()).items():
            self._cancel_step(name, reason)

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

        One write transaction covers the whole cascade: deciding to compute a key and looking
        for another run computing it must be one step for every scheduler, and a thousand
        reused steps cost one commit, not forty.
        """
        if self.halt_reason or not self.progress.has_decidable:
            return
        with self.history.write():
            self._decide_in_transaction()
        fault_point("after-reuse-wave")

    def _decide_in_transaction(self) -> None:
        """``_decide_ready``'s work, in the caller's write transaction (a completion's, which
        decides what it made decidable in the same commit)."""
        if self.halt_reason or not self.progress.has_decidable:
            return
        self._wave = _Wave()
        try:
            while not self.halt_reason:
                self._cancel_blocked()
                wave = [self._with_values(name) for name in self.progress.take_decidable()]
                if not wave:
                    break
                inputs = self._readable_inputs(wave)
                wave = [spec for spec in wave if spec.name in inputs]
                for decision in decide(
                    wave,
                    self.sources,
                    inputs,
                    self.history.cache,
                    self.store,
                    self.run.experiment_id,
                    regenerate=self.run.regenerate_outputs,
                ):
                    self._apply(decision)
            self.history.steps.change(self._wave.changes)
            self.history.steps.add_outputs(self._wave.outputs)
            self.history.cache.add_keys(self._wave.keys)
            fault_point("in-reuse-wave")
        finally:
            self._wave = None

    def _with_values(self, name: str) -> StepSpec:
        """``name``'s spec; a trial Bayesian sampling proposes gets its values now (its arguments and
        its step run's ``hyperparameters`` property), from the trials it waited for."""
        if not self.sweeps.needs_proposal(name):
            return self.graph.steps[name]
        values = self.sweeps.propose(name, self.history)
        spec = self.graph.steps[name]
        spec = self.graph.steps[name] = replace(spec, argv=[*spec.argv, *trial_arguments(values)])
        self._wave.changes.append((self.step_ids[name], {"properties": {"hyperparameters": json.dumps(values)}}))
        return spec

    def _apply(self, decision: Decision) -> None:
        name = decision.step
        step = self.steps[name]
        step.key, step.components = decision.key, decision.components
        self._wave.keys[decision.key] = decision.components_json
        datasets = [i.dataset for i in self.graph.steps[name].inputs.values() if i.dataset and i.dataset["name"]]
        if datasets:
            self.history.datasets.add_uses(self.step_ids[name], datasets)
        if decision.reuse:
            self.sweeps.reused(name, decision.reused_from)
            step.outputs = decision.outputs
            self._deliver(name)
            self._transition(
                name,
                RunStatus.REUSED,
                decision.reason,
                reused_from=decision.reused_from,
                ended_at=self.now(),
                cache_key=decision.key,
            )
            self._wave.outputs += [
                (self.step_ids[name], out, digest, *decision.stats[out]) for out, digest in decision.outputs.items()
            ]
            return
        # No entry committed since the wave looked them up: both are in this write transaction.
        if self.graph.steps[name].allow_reuse and not self.run.regenerate_outputs:
            twin = self.history.cache.computing_twin(decision.key, self.run.id)
            if twin is not None:
                self.waiting[name] = twin.step_run_id
                reason = f'waits for run {twin.run_id} (step "{twin.step}"), which computes the same outputs'
                self._transition(name, RunStatus.QUEUED, reason, queued_at=self.now(), cache_key=decision.key)
                return
        self._transition(
            name,
            RunStatus.QUEUED,
            decision.reason,
            queued_at=self.now(),
            cache_key=decision.key,
            ran_because=decision.reason,
        )
        self._make_ready(name)

    def _check_twins(self) -> None:
        """Reuse what a twin step finished computing (or reused itself), or compute it here if the
        twin did not succeed; a twin whose scheduler is gone is recovered first, not waited for."""
        for name, twin_id in list(self.waiting.items()):
            twin = self.history.steps.state(twin_id)
            if not RunStatus(twin.status).is_final:
                if self._run_alive(twin.run_id):
                    continue
                recover_abandoned_runs(self.history)
                twin = self.history.steps.state(twin_id)
                if not RunStatus(twin.status).is_final:
                    continue  # it was not abandoned after all (its scheduler had not started yet)
            del self.waiting[name]
            origin = twin
            if twin.status == RunStatus.REUSED.value and twin.reused_from is not None:
                origin = self.history.steps.state(twin.reused_from)
            hit = self.history.cache.outputs_of(origin.id)
            if RunStatus(twin.status).succeeded and intact(hit, self.store):
                self.sweeps.reused(name, origin.id)
                self.steps[name].outputs = hit.outputs
                with self.history.write():
                    reason = f'reused from run {origin.run_id} (step "{origin.name}")'
                    self._transition(name, RunStatus.REUSED, reason, reused_from=origin.id, ended_at=self.now())
                    self.history.steps.add_outputs(
                        [(self.step_ids[name], o, d, *hit.stats[o]) for o, d in hit.outputs.items()]
                    )
            else:
                why = f" ({twin.reason})" if twin.reason else ""
                reason = f"runs: run {twin.run_id}'s identical step {twin.status.lower()}{why}"
                self._transition(name, RunStatus.QUEUED, reason, ran_because=reason)
                self._make_ready(name)

    def _run_alive(self, run_id: int) -> bool:
        """Whether the scheduler of another run is alive; believed for a second once seen alive."""
        if self._alive_until.get(run_id, 0.0) > time.monotonic():
            return True
        run = self.history.runs.get(run_id)
        if not process_alive(run["scheduler_pid"], run["scheduler_started"]):
            return False
        self._alive_until[run_id] = time.monotonic() + ALIVE_CHECK_SECONDS
        return True

    def _readable_inputs(self, wave: list[StepSpec]) -> dict[str, dict[str, str]]:
        """The input digests of each step of ``wave`` whose inputs can be read now; a step whose
        dataset went away since the run was planned (an earlier step deleted it) fails, saying so."""
        inputs = {}
        for spec in wave:
            try:
                inputs[spec.name] = self._input_digests(spec)
            except (UsageError, OSError) as exc:
                self._transition(spec.name, RunStatus.QUEUED, None)
                self._fail(spec.name, f"an input could not be read: {exc}", retry=False)
        return inputs

    def _input_digests(self, spec: StepSpec) -> dict[str, str]:
        digests = {}
        for name, source in spec.inputs.items():
            if source.step is not None:
                digests[name] = self.steps[source.step].outputs[source.output]
            else:
                seen = (tuple(source.paths), source.root)
                if seen not in self._dataset_digests:
                    self._dataset_digests[seen] = dataset_digest(source.paths, self._stat_cache, source.root)
                digests[name] = self._dataset_digests[seen]
        return digests

    def _cancel_blocked(self) -> None:
        """Mark Canceled the steps that can no longer run because an upstream step did not succeed."""
        for name, reason in self.progress.blocked():
            self._transition(name, RunStatus.CANCELED, reason)

    # -- launching --------------------------------------------------------------------------
    def _launch_ready(self) -> None:
        """Start the steps claimed when a step completed, then every ready step whose resources
        can be claimed now, in order (later ones may backfill)."""
        claimed, self._claimed = self._claimed, {}
        unmet, self._unmet = self._unmet, {}
        for name, why in unmet.items():
            if name in self.ready and not self.halt_reason:
                del self.ready[name]
                self._fail(name, why, retry=False)
        if self.halt_reason:
            for placement in claimed.values():
                self._release(placement)
            return
        for name, placement in {**claimed, **self._claim_ready()}.items():
            self._launch(name, placement)

    def _claim_ready(self) -> dict[str, Placement]:
        """Claim what fits now for the ready steps, which then leave ``ready``."""
        if self.halt_reason or not self.ready:
            return {}
        if not self._claim_again and not (self.others_hold and time.monotonic() >= self._next_claim_poll):
            return {}  # nothing was freed here, and nobody else holds anything that could be
        self._claim_again = False
        self._next_claim_poll = time.monotonic() + RESOURCE_POLL_SECONDS
        candidates = (
            self.sweeps.within_cap(self.ready, {*self.running, *self._claimed}) if self.graph.sweeps else self.ready
        )
        placements, self.others_hold = self.pool.claim(map(self._claim_request, candidates))
        for name in placements:
            del self.ready[name]
        return placements

    def _claim_request(self, name: str) -> ClaimRequest:
        """Made once per step: a scheduler asks again for every waiting step each time a slot frees."""
        if name not in self._requests:
            spec = self.graph.steps[name]
            self._requests[name] = ClaimRequest(name, self.step_ids[name], spec.compute_target, spec.resources)
        return self._requests[name]

    def _make_ready(self, name: str) -> None:
        """Queue ``name`` for resources once its environment is built (building it first if not)."""
        environment = self.graph.steps[name].environment
        if environment["kind"] == "venv" and name not in self.built:
            built = self.environments.get(environment)
            if built is None:
                self._prepare(name, environment)
                return
            self._use(name, built)
        self._queue(name)

    def _queue(self, name: str) -> None:
        """Queue ``name`` for resources: this machine's, or a Ray cluster's (which queues it there:
        it is launched at once, with nothing claimed here)."""
        need = self.graph.steps[name].resources
        if need.get("ray"):
            self._claimed[name] = ray_placement(need)
            return
        if self.graph.steps[name].environment["kind"] != "docker":
            # Its supervisor (and, for the run's first Python step, a zygote) starts while this thread goes on.
            self.executor.prepare("local", self._python_to_come(name))
        self.ready[name] = None
        self._claim_again = True
        why = self.pool.unmet(need)
        if why:  # it would wait for ever: it fails at the next launch, outside any transaction under way
            self._unmet[name] = why

    def _python_to_come(self, name: str) -> tuple[str, dict[str, str]] | None:
        """The interpreter and environment of ``name``, the run's first Python step queued here."""
        spec = self.graph.steps[name]
        if spec.kind not in PYTHON_KINDS or self._python_hinted:
            return None
        self._python_hinted = True
        built = self.built.get(name)
        # Where it will run changes nothing Python reads at its start.
        stand_in = Placement(None, spec.resources["cpus"], None)
        return step_interpreter(spec, built.interpreter if built else None), self._environment(name, stand_in)

    def _environment(self, name: str, placement: Placement) -> dict[str, str]:
        built = self.built.get(name)
        return step_environment(
            self._base_env,
            self.history.layout.root,
            self.run.id,
            self.run.experiment,
            self.step_ids[name],
            name,
            placement,
            self.graph.steps[name].environment.get("variables", {}),
            self.runtime_path,
            built.path if built else None,
        )

    def _use(self, name: str, built: BuiltEnvironment) -> None:
        """``name`` runs in ``built``, which history.db keeps (once) with what it installed."""
        if built.digest not in self._build_ids:
            environment = self.graph.steps[name].environment
            self._build_ids[built.digest] = self.history.environments.record(asdict(built), environment["name"])
        self.built[name] = built

    def _prepare(self, name: str, environment: dict) -> None:
        digest = environment["digest"]
        if digest not in self.preparing.values() and not self.environments.failed(digest):
            log = self.environments.cache.building_log(digest)
            self.reporter.environment_changed(environment["name"], digest, "building", f"log: {log}")
        self.preparing[name] = digest
        self._transition(name, RunStatus.PREPARING, None)

    def _environment_built(self, build) -> None:
        names = [name for name, digest in self.preparing.items() if digest == build.digest]
        for name in names:
            del self.preparing[name]
        environment = self.graph.steps[names[0]].environment if names else None
        if build.environment is not None:
            if environment is not None:
                seconds = f"{build.environment.build_seconds:.1f}s"
                self.reporter.environment_changed(environment["name"], build.digest, "built", seconds)
            for name in names:
                self._use(name, build.environment)
                self._queue(name)
            return
        failure = build.failure
        where = f" (log: {failure.log})" if failure.log else ""
        if environment is not None:
            self.reporter.environment_changed(environment["name"], build.digest, "failed", failure.reason + where)
        for name in names:
            reason = f'environment "{environment["name"]}" could not be built: {failure.reason}{where}'
            self._fail(name, reason, retry=False)

    def _release(self, placement: Placement) -> None:
        self.pool.release(placement)
        self._claim_again = True

    def _deliver(self, name: str) -> None:
        destinations = self.graph.steps[name].destinations
        if destinations:
            deliver(self.history, self.store, self.run.id, self.step_ids[name], destinations, self.steps[name].outputs)

    def _launch(self, name: str, placement: Placement) -> None:
        spec = self.graph.steps[name]
        folder = StepFolder(self.history.layout.step_dir(self.run.id, name))
        built = self.built.get(name)
        env = self._environment(name, placement)
        if spec.kind == "parallel":
            env["LOCALPIPE_PARALLEL_CACHE"] = str(self.history.layout.parallel_cache)
            self._stat_cache.save()  # the digests made for its key, which its driver looks up there
        try:
            launch, snapshot, mounts = prepare_step(
                spec,
                folder,
                self.sources.get(name),
                self._upstream_outputs(spec),
                {u: self.graph.steps[u].outputs for u in spec.upstream},
                self.store,
                env,
                built.interpreter if built else None,
            )
            if spec.environment["kind"] == "docker":
                labels = {WORKSPACE_LABEL: str(self.history.layout.root), RUN_LABEL: str(self.run.id),
                          STEP_RUN_LABEL: str(self.step_ids[name]), STEP_LABEL: name}  # fmt: skip
                containerize(launch, spec, folder, placement, self.runtime_path, self._base_env, labels)
            if placement.ray:
                to_ray(launch, spec)
        except (OSError, ValueError) as exc:
            self._release(placement)
            self._fail(name, f"could not prepare the step folder: {exc}")
            return
        started = self.now()
        # A Ray step's task counts its timeout from its start on a node, not from its wait in Ray's queue.
        deadline = started + spec.timeout_seconds if spec.timeout_seconds and not placement.ray else None
        self.running[name] = _Running(spec, folder, snapshot, started, deadline, placement, mounts, launch.masked)
        fault_point("before-step-start")
        self.executor.start(launch)
        fault_point("step-started")
        with self.history.write():  # one transaction: the snapshot a later run names changes against, and Running
            if snapshot:
                self.history.cache.add_snapshot(snapshot.digest, snapshot.files, snapshot.size)
            self._transition(
                name,
                RunStatus.RUNNING,
                None,
                started_at=started,
                attempt=self.steps[name].attempt,
                arguments=launch.argv,
                placement=placement.describe(),
                snapshot=snapshot.digest if snapshot else None,
                environment=self._build_ids[built.digest] if built else None,
            )
        fault_point("step-running")

    def _upstream_outputs(self, spec: StepSpec) -> dict[str, dict[str, str]]:
        """The outputs of ``spec``'s upstream steps: step -> output name -> digest."""
        return {u: self.steps[u].outputs for u in spec.upstream}

    # -- cancelling a step ------------------------------------------------------------------
    def _cancel_step(self, name: str, reason: str) -> None:
        status = self.progress.status[name]
        if name in self.running:
            self.running[name].canceled = reason
            self.executor.terminate(name)
        elif status in (RunStatus.NOT_STARTED, RunStatus.QUEUED, RunStatus.PREPARING):
            self.ready.pop(name, None)
            self.waiting.pop(name, None)
            self.preparing.pop(name, None)
            self._transition(name, RunStatus.CANCELED, reason, ended_at=self.now())

    # -- finishing a step -------------------------------------------------------------------
    def _finished(self, event: Exit) -> None:
        running = self.running.pop(event.key, None)
        if running is None:
            return  # told twice (a supervisor that failed while handling it): the first was recorded
        name = event.key
        replaced = unlink_replaced(running.folder)  # first: nothing below may follow a link the step made
        self._collect_files(running)
        # First: the steps this one makes decidable may need what it logged (a Bayesian sweep's proposals).
        self.metrics.ingest(str(running.folder.metrics), self.step_ids[name], running.secrets)
        running.timed_out = running.timed_out or event.timed_out
        exited_well = event.exit_code == 0 and not (running.canceled or running.timed_out or event.error)
        written = [i for i, (path, before) in running.mounts.items() if fingerprint(path) != before]
        if exited_well and not written and not replaced:
            self._complete(name, running, event)  # releases the claim in its closing transaction
        else:
            full = disk_full_note(running.folder, event)  # looked at before what follows frees space
            remove_tree(running.folder.outputs)  # first: on a full disk, this is what frees it
            self._release(running.placement)
            if running.canceled:
                self._transition(
                    name,
                    RunStatus.CANCELED,
                    running.canceled,
                    ended_at=self.now(),
                    exit_code=event.exit_code,
                    pid=event.pid,
                    signal=event.signal,
                    peak_memory=event.peak_memory,
                )
            elif event.error:
                self._fail(name, event.error, peak_memory=event.peak_memory)
            elif running.timed_out:
                self._fail(name, f"timed out after {running.spec.timeout_seconds:g}s", exit_event=event)
            elif written:
                for input_name in written:  # the object no longer matches its digest: nobody may reuse it
                    self.store.remove(Path(running.mounts[input_name][0]).relative_to(self.store.root).parts[1])
                self._fail(
                    name,
                    f'the step wrote into its read-only input "{written[0]}": use as_download() for a writable copy',
                    exit_event=event,
                )
            elif replaced:
                self._fail(name, replaced, exit_event=event)
            else:
                reason = describe_exit(event, running.spec.resources.get("memory"), log_tail(running.folder))
                self._fail(name, reason + own_reason(running.folder) + full, exit_event=event)
        self.history.runs.end_children(self.step_ids[name])  # child runs the step left open end as it did

    def _collect_files(self, running: _Running) -> None:
        try:
            collect_run_files(running.spec, running.folder)
        except OSError:
            pass  # the run's files are a record, not an output: a full disk must not fail the step for them

    def _complete(self, name: str, running: _Running, event: Exit) -> None:
        spec = running.spec
        self._transition(name, RunStatus.FINALIZING, None, record=_slow_to_commit(spec, running.folder))
        fault_point("before-commit")
        committed, problem = commit_outputs(spec, running.folder, self.store)
        if problem is not None:
            self._release(running.placement)
            self._fail(name, problem, exit_event=event)
            return
        step = self.steps[name]
        key, rekeyed = step.key, {}
        if running.snapshot and running.snapshot.digest != step.components.get("source"):
            # The source changed between hashing and copying: key the run by what it really ran.
            components = dict(step.components, source=running.snapshot.digest)
            key = cache_key(components)
            rekeyed = {"cache_key": key}
        step.outputs = {o: t.digest for o, t in committed.items()}
        try:
            self._deliver(name)
        except OSError as exc:
            self._release(running.placement)
            self._fail(name, f"could not write an output to its destination: {exc}", exit_event=event)
            return
        # The cache entry and the Completed status are one transaction: an entry exists only for
        # a step that completed, and only once all its outputs are in the store. The steps it made
        # decidable are decided, and the claim it frees goes to the next ready steps, in the same
        # transaction (they start after it): one commit, where there were three.
        fault_point("before-cache-entry")
        with self.history.write():
            self.history.steps.add_outputs(
                [(self.step_ids[name], o, t.digest, t.size, len(t.files)) for o, t in committed.items()]
            )
            if rekeyed:  # the decided key was recorded with the decision
                self.history.cache.add_keys({key: canonical_json(components)})
            self.history.cache.add_entry(key, self.step_ids[name], self.now())
            self._transition(
                name,
                RunStatus.COMPLETED,
                None,
                ended_at=self.now(),
                exit_code=0,
                pid=event.pid,
                peak_memory=event.peak_memory,
                **rekeyed,
            )
            self._release(running.placement)
            undecided = None
            try:
                with self.history.savepoint():  # what a later step's decision raises must not undo this completion
                    self._decide_in_transaction()
                    self._claimed.update(self._claim_ready())
            except Exception as exc:  # noqa: BLE001  (raised again once the completion is committed)
                undecided = exc
            fault_point("in-cache-entry")
        fault_point("after-completed")
        if undecided is not None:
            raise undecided

    def _fail(
        self, name: str, reason: str, exit_event: Exit | None = None, peak_memory: int | None = None, retry: bool = True
    ) -> None:
        spec = self.graph.steps[name]
        step = self.steps[name]
        folder = StepFolder(self.history.layout.step_dir(self.run.id, name))
        fields = {"ended_at": self.now(), "log_tail": log_tail(folder)}
        if exit_event is not None:
            fields.update(
                exit_code=exit_event.exit_code,
                signal=exit_event.signal,
                peak_memory=exit_event.peak_memory,
                pid=exit_event.pid,
            )
        remove_tree(folder.outputs)  # nothing of a failed attempt may be mistaken for output
        if retry and step.attempt <= spec.max_retries and not self.halt_reason:
            step.attempt += 1
            self._transition(
                name, RunStatus.QUEUED, f"retry {step.attempt - 1} of {spec.max_retries} after: {reason}", **fields
            )
            self._make_ready(name)
            return
        self._transition(name, RunStatus.FAILED, reason, **fields)
        if not self.run.continue_on_step_failure and not self.halt_reason:
            self.halt_reason = f'step "{name}" failed'
            for queued in [*self.ready, *self.preparing]:
                self._transition(queued, RunStatus.CANCELED, f"not run: {self.halt_reason}")
            self.ready.clear()
            self.preparing.clear()

    def _enforce_timeouts(self) -> None:
        for name, running in self.running.items():
            if running.deadline and not running.timed_out and self.now() >= running.deadline:
                running.timed_out = True
                self.executor.terminate(name)

    # -- cancel and finish ------------------------------------------------------------------
    def _cancel_everything(self, why: str) -> None:
        self.halt_reason = why
        self.executor.terminate_all()
        for placement in self._claimed.values():
            self._release(placement)
        self._claimed.clear()
        for name in list(self.running):
            self._release(self.running.pop(name).placement)
            self._transition(name, RunStatus.CANCELED, why, ended_at=self.now())
        for name in self.progress.unfinished():
            self._transition(name, RunStatus.CANCELED, why, ended_at=self.now())

    def _cancel_quietly(self) -> None:
        """End every step's process tree without recording anything (history.db cannot be written)."""
        self.executor.terminate_all()
        for running in self.running.values():
            remove_tree(running.folder.outputs)

    def _finish_run(self, status: RunStatus | None, error: str | None) -> RunStatus:
        self._cancel_blocked()
        for name in self.progress.unfinished():
            self._transition(name, RunStatus.CANCELED, f"not run: {self.halt_reason or 'run ended'}")
        if status is None:
            status = run_outcome(s for n, s in self.progress.status.items() if n not in self.sweeps.stopped)
            if status is not RunStatus.COMPLETED:
                error = self.halt_reason or f"a step {'failed' if status is RunStatus.FAILED else 'was canceled'}"
        self.history.runs.finish(self.run.id, status, error, self.now())
        self.reporter.run_finished(status)
        return status

    def _transition(self, name: str, status: RunStatus, reason: str | None, record: bool = True, **fields) -> None:
        """Move a step to ``status`` (checked against the life cycle), write it and tell the reporter,
        unless ``record`` is False (a passing state that the next change supersedes at once)."""
        self.progress.move(name, status)
        if not record:
            return
        values = {"status": status.value, **fields}
        if reason is not None:
            values["reason"] = reason
        if self._wave is not None:
            self._wave.changes.append((self.step_ids[name], values))
        else:
            self.history.steps.change([(self.step_ids[name], values)])
        self.reporter.step_changed(name, status, reason, fields.get("placement"))


def _slow_to_commit(spec: StepSpec, folder: StepFolder) -> bool:
    """Whether Finalizing is worth a write of its own: outputs to deliver, a folder output (its size
    unknown without a walk), or file outputs big enough to take a while to hash. A small file
    output goes from Running to Completed in one step, a write saved on every step of a DAG."""
    if spec.destinations:
        return True
    size = 0
    for output, is_dir in spec.outputs.items():
        if is_dir:
            return True
        try:
            size += os.stat(folder.output_path(output, is_dir)).st_size
        except OSError:
            return False  # not written: the step fails, and Finalizing is not worth recording
    return size > SLOW_COMMIT_BYTES


def _install_signal_handlers(handler) -> dict:
    if threading.current_thread() is not threading.main_thread():
        return {}
    return {sig: signals.signal(sig, handler) for sig in (signals.SIGINT, signals.SIGTERM)}


def _restore_signal_handlers(previous: dict) -> None:
    for sig, handler in previous.items():
        signals.signal(sig, handler)
