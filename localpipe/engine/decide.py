"""Reuse decisions: for each step whose inputs are known, its key and whether its outputs can be reused.

``decide`` asks a ``Lookups`` (the workspace's ``history.cache``, or a fake in unit tests) for
the cache entries of a whole wave of steps at once, so a fully reused pipeline of a thousand
steps costs a few queries, not thousands; ``rerun_reason`` says in words why a step runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from localpipe.content.hashing import TreeDigest
from localpipe.plan.graph import StepSpec
from localpipe.plan.keys import cache_key, canonical_json, key_components, what_changed
from localpipe.state.cache import CacheHit, EarlierRun


class Lookups(Protocol):
    """What deciding needs to know of earlier runs (``state.cache.CacheRecords`` has it)."""

    def entries(self, keys: list[str]) -> dict[str, CacheHit]: ...

    def earlier_run(self, step: str, experiment_id: int | None) -> EarlierRun | None: ...

    def snapshot_files(self, digest: str) -> dict[str, str] | None: ...


class Store(Protocol):
    def has(self, digest: str) -> bool: ...

    def intact(self, digest: str, size: int | None, files: int | None) -> bool: ...


@dataclass
class Decision:
    """Run or reuse one step, and why."""

    step: str
    reuse: bool
    reason: str
    key: str
    components: dict
    components_json: str = ""  # ``components`` as the canonical JSON the key was computed from
    reused_from: int | None = None  # the StepRun id whose outputs are reused
    outputs: dict[str, str] = field(default_factory=dict)  # output name -> digest, when reused
    stats: dict[str, tuple[int, int | None]] = field(default_factory=dict)  # their bytes and file counts

    def reuse_hit(self, hit: CacheHit) -> None:
        """Reuse the outputs of ``hit``."""
        self.reuse, self.reused_from, self.outputs, self.stats = True, hit.step_run_id, hit.outputs, hit.stats
        self.reason = f'reused from run {hit.run_id} (step "{hit.step}")'


def decide(
    steps: list[StepSpec],
    sources: dict[str, TreeDigest | None],
    inputs: dict[str, dict[str, str]],
    lookups: Lookups,
    store: Store,
    experiment_id: int | None,
    regenerate: bool = False,
) -> list[Decision]:
    """Decisions for ``steps``; ``inputs[step]`` maps input names to content digests."""
    planned = []
    for step in steps:
        source = sources.get(step.name)
        components = key_components(step, source.digest if source else None, inputs[step.name])
        text = canonical_json(components)
        planned.append((step, components, text, cache_key(components, text)))
    entries = lookups.entries([key for *_, key in planned])
    decisions = []
    for step, components, text, key in planned:
        decision = Decision(step.name, False, "", key, components, text)
        hit = entries.get(key)
        if not step.allow_reuse:
            decision.reason = "runs: allow_reuse=False"
        elif regenerate:
            decision.reason = "runs: regenerate_outputs=True"
        elif hit and intact(hit, store):
            decision.reuse_hit(hit)
        elif hit:
            lost = "missing from" if not all(store.has(d) for d in hit.outputs.values()) else "damaged in"
            decision.reason = f'runs: outputs of run {hit.run_id} (step "{hit.step}") are {lost} the store'
        else:
            source = sources.get(step.name)
            earlier = lookups.earlier_run(step.name, experiment_id)
            files = None
            if (
                earlier is not None
                and source is not None
                and earlier.components.get("source") not in (None, components["source"])
            ):
                files = lookups.snapshot_files(earlier.components["source"])
            decision.reason = rerun_reason(components, key, source, earlier, files)
        decisions.append(decision)
    return decisions


def intact(hit: CacheHit, store: Store) -> bool:
    """Whether every output of ``hit`` is in the store with the files and bytes it was committed with."""
    return all(store.intact(digest, *hit.stats[name]) for name, digest in hit.outputs.items())


def rerun_reason(
    components: dict,
    key: str,
    source: TreeDigest | None,
    earlier: EarlierRun | None,
    earlier_files: dict[str, str] | None,
) -> str:
    """Why a step with no reusable entry runs: compared with its latest earlier run, whose source
    snapshot listed ``earlier_files`` (None when unknown)."""
    if earlier is None:
        return "runs: no earlier run"
    if earlier.key == key:
        return f"runs: the earlier run with the same inputs (run {earlier.run_id}) {earlier.status.lower()}"
    changed = source.changed_files(earlier_files) if source is not None and earlier_files is not None else []
    return "runs: " + what_changed(components, earlier.components, changed)
