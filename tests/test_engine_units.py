"""The engine's pure parts, without a database or a process: resource fitting, reuse decisions
and their reasons, the step life cycle, and the executor router."""

from __future__ import annotations

import pytest

from localpipe.content.hashing import TreeDigest
from localpipe.engine.decide import decide, rerun_reason
from localpipe.engine.executors import Exit, Launch
from localpipe.engine.executors.router import Router
from localpipe.engine.progress import Progress, run_outcome
from localpipe.engine.resources import Capacity, ClaimRequest, fit
from localpipe.plan.graph import InputSpec, StepSpec
from localpipe.plan.keys import cache_key, key_components
from localpipe.state.cache import CacheHit, EarlierRun
from localpipe.state.claims import HeldClaim
from localpipe.status import RunStatus


# -- fit -------------------------------------------------------------------------------------------
def request(
    key: str,
    cpus: int = 1,
    gpus: int = 0,
    memory: int | None = None,
    target: str = "local",
    max_concurrent: int | None = None,
) -> ClaimRequest:
    return ClaimRequest(
        key, 0, target, {"cpus": cpus, "gpus": gpus, "memory": memory, "max_concurrent": max_concurrent}
    )


def held(cpus: int = 1, gpus: tuple[int, ...] = (), memory: int | None = None, target: str = "local") -> HeldClaim:
    return HeldClaim(0, target, cpus, memory, gpus, 1, 1.0, 1)


def granted(requests, claims, capacity) -> dict[str, list[int]]:
    return {r.key: gpus for r, gpus in fit(requests, claims, capacity)}


def test_fit_grants_in_order_and_backfills_what_still_fits():
    capacity = Capacity(cpus=4, memory=100)
    found = granted([request("big", cpus=3), request("huge", cpus=2), request("small", cpus=1)], [], capacity)
    assert found == {"big": [], "small": []}


def test_fit_counts_what_others_hold():
    capacity = Capacity(cpus=4, memory=100, gpus=(0, 1, 2))
    claims = [held(cpus=2, gpus=(0, 2), memory=60)]
    assert granted([request("g", gpus=1)], claims, capacity) == {"g": [1]}
    assert granted([request("g", gpus=2)], claims, capacity) == {}
    assert granted([request("m", memory=50)], claims, capacity) == {}
    assert granted([request("m", memory=40), request("c", cpus=2)], claims, capacity) == {"m": []}


def test_fit_gives_distinct_gpus_and_honours_a_targets_cap():
    capacity = Capacity(cpus=8, memory=100, gpus=(0, 1))
    assert granted([request(f"g{i}", gpus=1) for i in range(3)], [], capacity) == {"g0": [0], "g1": [1]}
    capped = [request(f"s{i}", target="serial", max_concurrent=1) for i in range(3)]
    assert granted(capped, [held(target="serial")], capacity) == {}
    assert list(granted(capped, [], capacity)) == ["s0"]


def test_fit_stops_reading_once_the_cpus_are_taken():
    looked_at = []

    def requests():
        for i in range(1000):
            looked_at.append(i)
            yield request(f"r{i}")

    assert len(granted(requests(), [held()], Capacity(cpus=3, memory=1))) == 2
    assert looked_at == [0, 1, 2]  # the third is read, finds no CPU, and nothing after it is


# -- decide and rerun_reason -----------------------------------------------------------------------
def spec(name: str = "train", allow_reuse: bool = True, argv=("--lr", "0.1")) -> StepSpec:
    return StepSpec(
        name=name,
        kind="python",
        script="train.py",
        source_dir="/src",
        argv=list(argv),
        inputs={"data": InputSpec(mode="mount", step="prep", output="data")},
        outputs={"model": True},
        params={},
        pipeline_params={},
        environment={"kind": "python"},
        compute_target="local",
        allow_reuse=allow_reuse,
        version=None,
    )


class FakeLookups:
    """The look-ups of ``state.cache.CacheRecords``, from dictionaries."""

    def __init__(self, entries=None, earlier=None, snapshots=None):
        self._entries, self._earlier, self._snapshots = entries or {}, earlier, snapshots or {}
        self.asked: list[list[str]] = []

    def entries(self, keys):
        self.asked.append(keys)
        return {k: v for k, v in self._entries.items() if k in keys}

    def earlier_run(self, step, experiment_id):
        return self._earlier

    def snapshot_files(self, digest):
        return self._snapshots.get(digest)


class FakeStore:
    """Objects by digest, each with its (bytes, files) as they are now."""

    def __init__(self, present=(), stats=None):
        self.present = set(present)
        self.stats = stats or {}

    def has(self, digest):
        return digest in self.present

    def intact(self, digest, size, files):
        return self.has(digest) and self.stats.get(digest, (size, files)) == (size, files)


SOURCE = TreeDigest("src-2", {"train.py": "a", "util.py": "b2"}, 10)


def key_of(step: StepSpec, source: TreeDigest = SOURCE, data: str = "d1") -> tuple[dict, str]:
    components = key_components(step, source.digest, {"data": data})
    return components, cache_key(components)


def test_decide_reuses_an_entry_whose_outputs_are_stored_and_asks_once_for_the_whole_wave():
    steps = [spec("a"), spec("b", argv=["--lr", "0.2"])]
    _, key_a = key_of(steps[0])
    lookups = FakeLookups(entries={key_a: CacheHit(7, 3, "a", {"model": "m1"}, {"model": (10, 1)})})
    decisions = decide(
        steps,
        {"a": SOURCE, "b": SOURCE},
        {"a": {"data": "d1"}, "b": {"data": "d1"}},
        lookups,
        FakeStore({"m1"}),
        experiment_id=1,
    )
    assert [(d.step, d.reuse, d.reason) for d in decisions] == [
        ("a", True, 'reused from run 3 (step "a")'),
        ("b", False, "runs: no earlier run"),
    ]
    assert decisions[0].reused_from == 7 and decisions[0].outputs == {"model": "m1"}
    assert len(lookups.asked) == 1 and len(lookups.asked[0]) == 2


def test_decide_runs_when_the_outputs_are_gone_or_reuse_is_off():
    step = spec()
    _, key = key_of(step)
    hit = {key: CacheHit(7, 3, "train", {"model": "m1"}, {"model": (10, 1)})}
    args = ([step], {"train": SOURCE}, {"train": {"data": "d1"}})
    assert (
        decide(*args, FakeLookups(hit), FakeStore(), 1)[0].reason
        == 'runs: outputs of run 3 (step "train") are missing from the store'
    )
    truncated = FakeStore({"m1"}, stats={"m1": (4, 1)})
    assert (
        decide(*args, FakeLookups(hit), truncated, 1)[0].reason
        == 'runs: outputs of run 3 (step "train") are damaged in the store'
    )
    assert (
        decide(*args, FakeLookups(hit), FakeStore({"m1"}), 1, regenerate=True)[0].reason
        == "runs: regenerate_outputs=True"
    )
    assert (
        decide([spec(allow_reuse=False)], *args[1:], FakeLookups(hit), FakeStore({"m1"}), 1)[0].reason
        == "runs: allow_reuse=False"
    )


def test_rerun_reason_names_the_source_files_that_changed():
    step = spec()
    components, key = key_of(step)
    before = dict(components, source="src-1")
    earlier = EarlierRun(5, 2, "Completed", "old-key", before)
    assert (
        rerun_reason(components, key, SOURCE, earlier, {"train.py": "a", "util.py": "b1", "gone.py": "c"})
        == "runs: source changed (gone.py, util.py)"
    )
    assert rerun_reason(components, key, SOURCE, earlier, None) == "runs: source changed"
    lookups = FakeLookups(earlier=earlier, snapshots={"src-1": {"train.py": "a0", "util.py": "b2"}})
    decision = decide([step], {"train": SOURCE}, {"train": {"data": "d1"}}, lookups, FakeStore(), 1)[0]
    assert decision.reason == "runs: source changed (train.py)"


def test_rerun_reason_for_inputs_parameters_and_an_earlier_failure():
    step = spec()
    components, key = key_of(step)
    other_data, _ = key_of(step, data="d0")
    assert (
        rerun_reason(components, key, SOURCE, EarlierRun(5, 2, "Completed", "k0", other_data), None)
        == 'runs: input "data" changed'
    )
    other_args, _ = key_of(spec(argv=["--lr", "0.3"]))
    assert (
        rerun_reason(components, key, SOURCE, EarlierRun(5, 2, "Completed", "k0", other_args), None)
        == "runs: arguments changed"
    )
    assert (
        rerun_reason(components, key, SOURCE, EarlierRun(5, 2, "Failed", key, components), None)
        == "runs: the earlier run with the same inputs (run 2) failed"
    )
    assert rerun_reason(components, key, SOURCE, None, None) == "runs: no earlier run"


# -- Progress --------------------------------------------------------------------------------------
def diamond() -> Progress:
    return Progress({"a": set(), "b": {"a"}, "c": {"a"}, "d": {"b", "c"}})


def test_progress_makes_a_step_decidable_once_every_upstream_step_succeeded():
    progress = diamond()
    assert progress.take_decidable() == ["a"]
    progress.move("a", RunStatus.REUSED)
    assert sorted(progress.take_decidable()) == ["b", "c"]
    for name in ("b", "c"):
        progress.move(name, RunStatus.QUEUED)
        progress.move(name, RunStatus.RUNNING)
    progress.move("b", RunStatus.FINALIZING)
    progress.move("b", RunStatus.COMPLETED)
    assert progress.take_decidable() == []
    progress.move("c", RunStatus.FINALIZING)
    progress.move("c", RunStatus.COMPLETED)
    assert progress.take_decidable() == ["d"]


def test_progress_runs_a_step_that_settles_for_its_trials_ending_however_they_ended():
    # "tune" needs "prep"'s data, and only needs its trials t1 and t2 to have ended (a policy cancels some)
    progress = Progress({"prep": set(), "t1": {"prep"}, "t2": {"prep"}, "tune": {"prep", "t1", "t2"}},
                        {"tune": {"t1", "t2"}})  # fmt: skip
    progress.take_decidable()
    progress.move("prep", RunStatus.REUSED)
    assert sorted(progress.take_decidable()) == ["t1", "t2"]
    progress.move("t1", RunStatus.CANCELED)
    assert progress.blocked() == [] and progress.take_decidable() == []
    progress.move("t2", RunStatus.REUSED)
    assert progress.take_decidable() == ["tune"]

    failed_data = Progress({"prep": set(), "t1": {"prep"}, "tune": {"prep", "t1"}}, {"tune": {"t1"}})
    failed_data.take_decidable()
    failed_data.move("prep", RunStatus.QUEUED)
    failed_data.move("prep", RunStatus.FAILED)
    assert [name for name, _ in failed_data.blocked()] == ["t1", "tune"]  # its data's producer still counts


def test_progress_refuses_a_transition_the_life_cycle_does_not_allow():
    progress = diamond()
    with pytest.raises(RuntimeError, match=r'step "a": NotStarted -> Completed is not a valid transition'):
        progress.move("a", RunStatus.COMPLETED)
    progress.move("a", RunStatus.CANCELED)
    with pytest.raises(RuntimeError, match="Canceled -> Queued"):
        progress.move("a", RunStatus.QUEUED)


def test_a_run_is_completed_only_when_every_step_succeeded():
    assert run_outcome([RunStatus.COMPLETED, RunStatus.REUSED]) is RunStatus.COMPLETED
    assert run_outcome([RunStatus.COMPLETED, RunStatus.CANCELED]) is RunStatus.CANCELED
    assert run_outcome([RunStatus.CANCELED, RunStatus.FAILED, RunStatus.REUSED]) is RunStatus.FAILED


def test_progress_blocks_what_follows_a_failed_step_with_the_reason():
    progress = diamond()
    progress.move("a", RunStatus.QUEUED)
    progress.move("a", RunStatus.RUNNING)
    progress.move("a", RunStatus.FAILED)
    assert progress.blocked() == [
        ("b", 'not run: upstream step "a" failed'),
        ("c", 'not run: upstream step "a" failed'),
        ("d", 'not run: upstream step "b" did not run'),
    ]
    assert progress.blocked() == []  # said once
    assert progress.outcome() is RunStatus.FAILED


# -- Router ----------------------------------------------------------------------------------------
class FakeExecutor:
    """An executor whose launches end when told to, with a real descriptor to wait on."""

    def __init__(self, name: str):
        import os

        self.name, self.started, self.ended, self.terminated = name, [], [], []
        self.prepared = 0
        self._read, self._write = os.pipe()

    def prepare(self, python: tuple[str, dict[str, str]] | None = None) -> None:
        self.prepared += 1

    def start(self, launch: Launch) -> int:
        self.started.append(launch.key)
        return 100 + len(self.started)

    def end(self, key: str) -> None:
        import os

        self.ended.append(Exit(key, 0, None, None))
        os.write(self._write, b"x")

    def wait(self, timeout):
        import os
        import select

        if not self.ended and select.select([self._read], [], [], timeout)[0] == []:
            return []
        os.read(self._read, 1024)
        found, self.ended = self.ended, []
        return found

    def wake(self) -> None:
        import os

        os.write(self._write, b"w")

    def terminate(self, key, grace=5.0):
        self.terminated.append(key)

    def terminate_all(self, grace=5.0):
        self.terminated.append("*")

    def close(self):
        pass

    def fileno(self):
        return self._read


def launch(key: str, executor: str) -> Launch:
    return Launch(key, ["true"], "/", {}, "/dev/null", "/dev/null", executor=executor)


def test_router_hands_each_launch_to_the_executor_it_names_and_collects_from_all():
    made: dict[str, FakeExecutor] = {}

    def make(kind):
        made[kind] = FakeExecutor(kind)
        return made[kind]

    router = Router(make)
    assert list(made) == ["local"]  # made at once: there is always one to wait on
    assert router.wait(0.01) == []
    router.start(launch("a", "local"))
    router.start(launch("b", "docker"))
    assert made["local"].started == ["a"] and made["docker"].started == ["b"]
    made["docker"].end("b")
    assert [e.key for e in router.wait(5)] == ["b"]
    router.terminate("a")
    router.terminate("b")  # ended: nobody to tell
    assert made["local"].terminated == ["a"] and made["docker"].terminated == []
    router.terminate_all()
    assert made["local"].terminated[-1] == made["docker"].terminated[-1] == "*"


def test_router_prepares_the_executor_of_a_kind_making_it_once():
    made: dict[str, FakeExecutor] = {}

    def make(kind):
        made[kind] = FakeExecutor(kind)
        return made[kind]

    router = Router(make)
    router.prepare("ray")
    first = made["ray"]
    router.prepare("ray")
    router.start(launch("a", "ray"))
    assert made["ray"] is first and first.prepared == 2 and first.started == ["a"]
    assert made["local"].prepared == 0


def test_a_supervisor_started_ahead_gives_each_step_exactly_its_environment(tmp_path, monkeypatch):
    """``prepare`` starts the supervisor with this process's environment; a launch then sends what
    differs from it, removals included, and that one supervisor runs every launch."""
    import os

    from localpipe.engine.executors.local import LocalExecutor

    monkeypatch.setenv("LOCALPIPE_TEST_DROPPED", "1")
    executor = LocalExecutor()
    try:
        executor.prepare()
        supervisor = executor._supervisor
        assert supervisor is not None and supervisor.poll() is None
        executor.prepare()
        env = {k: v for k, v in os.environ.items() if k != "LOCALPIPE_TEST_DROPPED"} | {"LOCALPIPE_TEST_ADDED": "2"}
        out = tmp_path / "env.txt"
        executor.start(Launch("a", ["/usr/bin/env", "-0"], str(tmp_path), env, str(out), os.devnull))
        exits = []
        while not exits:
            exits = executor.wait(10)
        assert exits[0].key == "a" and exits[0].exit_code == 0, exits
        seen = dict(item.split("=", 1) for item in out.read_text().split("\0") if item)
        assert seen.pop("LOCALPIPE_LAUNCH").startswith(f"{supervisor.pid}.")  # its tag on what the step starts
        assert seen == env
        assert executor._supervisor is supervisor
    finally:
        executor.close()


def test_a_supervisor_that_cannot_be_started_ahead_is_started_by_the_launch(tmp_path, monkeypatch):
    """``prepare`` runs while decisions are recorded: out of processes, it leaves the start (and
    its error, if it lasts) to the first launch, and keeps no descriptor."""
    import errno
    import os
    import subprocess

    import localpipe.engine.executors.local as local

    real = subprocess.Popen
    refused = []

    def popen_once_refused(*args, **kwargs):
        if not refused:
            refused.append(args)
            raise OSError(errno.EAGAIN, "Resource temporarily unavailable")
        return real(*args, **kwargs)

    monkeypatch.setattr(local.subprocess, "Popen", popen_once_refused)
    executor = local.LocalExecutor()
    try:
        descriptors = len(os.listdir("/proc/self/fd"))
        executor.prepare()
        assert refused and executor._supervisor is None
        assert len(os.listdir("/proc/self/fd")) == descriptors
        executor.start(Launch("a", ["/bin/true"], str(tmp_path), dict(os.environ), os.devnull, os.devnull))
        exits = []
        while not exits:
            exits = executor.wait(10)
        assert exits[0].exit_code == 0, exits
    finally:
        executor.close()


def test_a_build_that_stops_on_an_unexpected_error_is_reported_not_waited_for(tmp_path):
    """Whatever ends a build's thread (here a bug in the cache's build), the scheduler hears of it as
    a failed build; a thread that died silently left its steps Preparing for good."""
    import threading

    from localpipe.engine.environments import Environments
    from localpipe.envs.cache import EnvironmentCache

    class BrokenCache(EnvironmentCache):
        def build(self, definition):
            raise ValueError("a bug in the build")

    woken = threading.Event()
    environments = Environments(BrokenCache(tmp_path / "envs"))
    environments.wake = woken.set
    assert environments.get({"digest": "d" * 32}) is None
    assert woken.wait(10)
    (ended,) = environments.finished()
    assert ended.environment is None and str(ended.failure) == "the build stopped: ValueError: a bug in the build"
