"""Reuse decisions: for each step whose inputs are known, its key and whether its outputs can be reused.

Lookups are batched: one query answers a whole wave of steps, so a fully reused pipeline of
a thousand steps costs a few dozen queries, not thousands.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from localpipe.plan.graph import StepSpec
from localpipe.content.hashing import TreeDigest
from localpipe.plan.keys import cache_key, canonical_json, key_components, what_changed
from localpipe.state import models as m
from localpipe.state.store import ObjectStore
from localpipe.status import RunStatus


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


def decide(steps: list[StepSpec], sources: dict[str, TreeDigest | None],
           inputs: dict[str, dict[str, str]], store: ObjectStore, experiment_id: int | None,
           regenerate: bool = False) -> list[Decision]:
    """Decisions for ``steps``; ``inputs[step]`` maps input names to content digests."""
    planned = []
    for step in steps:
        source = sources.get(step.name)
        components = key_components(step, source.digest if source else None, inputs[step.name])
        text = canonical_json(components)
        planned.append((step, components, text, cache_key(components, text)))
    entries = _cache_entries([key for *_, key in planned])
    decisions = []
    for step, components, text, key in planned:
        decision = Decision(step.name, False, "", key, components, text)
        entry = entries.get(key)
        if not step.allow_reuse:
            decision.reason = "runs: allow_reuse=False"
        elif regenerate:
            decision.reason = "runs: regenerate_outputs=True"
        elif entry and all(store.has(d) for d in entry[2].values()):
            decision.reuse = True
            decision.reused_from, decision.outputs = entry[0], entry[2]
            decision.reason = f'reused from run {entry[1]} (step "{entry[3]}")'
        elif entry:
            decision.reason = (f'runs: outputs of run {entry[1]} (step "{entry[3]}") are missing '
                               "from the store")
        else:
            decision.reason = _rerun_reason(step, components, key, sources.get(step.name), experiment_id)
        decisions.append(decision)
    return decisions


def _cache_entries(keys: list[str]) -> dict[str, tuple[int, int, dict[str, str], str]]:
    """key -> (step run id, pipeline run id, outputs, step name) for the keys that have an entry.

    Plain SQL through the models' database: this runs once per wave of a thousand-step run.
    """
    db = m.CacheEntry._meta.database
    found: dict[str, tuple[int, int, dict[str, str], str]] = {}
    by_step_run: dict[int, tuple[int, int, dict[str, str], str]] = {}
    for start in range(0, len(keys), 500):  # SQLite caps the number of bound variables
        chunk = keys[start:start + 500]
        rows = db.execute_sql(
            'SELECT c."key", s."id", s."run_id", s."name", o."name", o."digest" FROM "cache_entry" c '
            'JOIN "step_run" s ON s."id" = c."step_run_id" '
            'LEFT JOIN "step_output" o ON o."step_run_id" = s."id" '
            f'WHERE c."key" IN ({", ".join("?" * len(chunk))})', chunk)
        for key, step_run, run, name, output, digest in rows:
            entry = by_step_run.setdefault(step_run, (step_run, run, {}, name))
            found[key] = entry
            if output is not None:
                entry[2][output] = digest
    return found


def _rerun_reason(step: StepSpec, components: dict, key: str, source: TreeDigest | None,
                  experiment_id: int | None) -> str:
    query = (m.StepRun.select(m.StepRun.id, m.StepRun.run, m.StepRun.status, m.StepRun.cache_key,
                              m.CacheKey.components)
             .join(m.PipelineRun).switch(m.StepRun)
             .join(m.CacheKey, on=(m.CacheKey.key == m.StepRun.cache_key))
             .where(m.StepRun.name == step.name)
             .order_by(m.StepRun.id.desc()))
    previous = None
    if experiment_id is not None:
        previous = query.where(m.PipelineRun.experiment == experiment_id).first()
    previous = previous or query.first()
    if previous is None:
        return "runs: no earlier run"
    if previous.cache_key == key:
        return f"runs: the earlier run with the same inputs (run {previous.run_id}) {previous.status.lower()}"
    changed: list[str] = []
    before = previous.cachekey.components
    if source is not None and before.get("source") and before["source"] != components["source"]:
        snapshot = m.Snapshot.get_or_none(m.Snapshot.digest == before["source"])
        if snapshot is not None:
            changed = source.changed_files(snapshot.files)
    return "runs: " + what_changed(components, before, changed)


def known_keys(db, keys: list[str]) -> set[str]:
    """Which of ``keys`` the cache_key table holds already."""
    found: set[str] = set()
    for start in range(0, len(keys), 500):
        chunk = keys[start:start + 500]
        found.update(k for (k,) in db.execute_sql(
            f'SELECT "key" FROM "cache_key" WHERE "key" IN ({", ".join("?" * len(chunk))})', chunk))
    return found


def step_outputs(step_run_id: int) -> dict[str, str]:
    """Output name -> digest of a step run."""
    return {o.name: o.digest for o in m.StepOutput.select().where(m.StepOutput.step_run == step_run_id)}


def intact_entry(key: str, store: ObjectStore) -> tuple[m.StepRun, dict[str, str]] | None:
    """The step run holding the cache entry of ``key`` and its outputs, if they are all in the store."""
    entry = m.CacheEntry.get_or_none(m.CacheEntry.key == key)
    if entry is None:
        return None
    outputs = step_outputs(entry.step_run_id)
    if not all(store.has(d) for d in outputs.values()):
        return None
    return m.StepRun.get_by_id(entry.step_run_id), outputs


def computing_twin(key: str, run_id: int) -> m.StepRun | None:
    """The earliest step of another running run that is computing ``key`` now, if any."""
    active = [RunStatus.QUEUED.value, RunStatus.RUNNING.value, RunStatus.FINALIZING.value]
    return (m.StepRun.select().join(m.PipelineRun)
            .where(m.StepRun.cache_key == key, m.StepRun.status.in_(active),
                   m.StepRun.run != run_id, m.PipelineRun.status == RunStatus.RUNNING.value)
            .order_by(m.StepRun.id).first())
