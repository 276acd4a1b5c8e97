"""Cache keys and the readable reasons behind every run and reuse decision.

A key covers everything that can change a step's outputs (SPEC §2): the program, the source
tree's content, resolved arguments and params, the content of every input, the environment,
the output names and the version. The step's display name is deliberately not part of it.
"""

from __future__ import annotations

import json
from typing import Any

from localpipe.content.hashing import hash_bytes
from localpipe.plan.graph import StepSpec

KEY_VERSION = 2  # 2: a dataset input's digest names its files as the step sees them, not by where they are
# A build context's folder neither: its digest covers what the daemon is sent (a moved workspace's
# context is the same image).
_NOT_KEYED = ("interpreter", "name", "dropped", "context")


def key_components(step: StepSpec, source_digest: str | None, input_digests: dict[str, str]) -> dict[str, Any]:
    """The parts of ``step``'s cache key, kept in history.db so that later runs can say what changed."""
    return {
        "key_version": KEY_VERSION,
        "kind": step.kind,
        "script": step.script,
        "source": source_digest,
        "arguments": step.argv,
        "params": step.params,
        "pipeline_params": step.pipeline_params,
        "inputs": dict(sorted(input_digests.items())),
        # A download is a writable copy in the step's folder, a mount a read-only path: a script may tell.
        "input_modes": {name: spec.mode for name, spec in sorted(step.inputs.items())},
        **_input_tables(step),
        # How the interpreter was spelled is not part of the key, nor what the environment is
        # named; what it is, is.
        "environment": {k: v for k, v in step.environment.items() if k not in _NOT_KEYED},
        "outputs": sorted(step.outputs),
        "version": step.version,
        "secret_env": step.secret_env,  # which secrets the step gets, never their values
    }


def _input_tables(step: StepSpec) -> dict[str, Any]:
    """How each input read as a table is read (a TabularDataset's separator, header, take, skip,
    ...), which its files' digest does not say; not where its files are (``root``). Left out of a
    key whose step reads no table, which stays as it was before tables were keyed."""
    tables = {
        name: {option: value for option, value in spec.tabular.items() if option != "root"}
        for name, spec in sorted(step.inputs.items())
        if spec.tabular is not None
    }
    return {"input_tables": tables} if tables else {}


def canonical_json(components: dict[str, Any]) -> str:
    """The one text of ``components`` that the key is a digest of."""
    return json.dumps(components, sort_keys=True, separators=(",", ":"))


def cache_key(components: dict[str, Any], text: str | None = None) -> str:
    """The key: a digest of the canonical JSON of ``components`` (``text``, when already made)."""
    return hash_bytes((text or canonical_json(components)).encode())


def what_changed(current: dict[str, Any], previous: dict[str, Any], changed_files: list[str]) -> str:
    """Why ``current`` differs from ``previous``, most telling difference first."""
    reasons: list[str] = []
    if current.get("script") != previous.get("script") or current.get("kind") != previous.get("kind"):
        reasons.append("script changed")
    if current.get("source") != previous.get("source"):
        reasons.append(f"source changed ({_listing(changed_files)})" if changed_files else "source changed")
    pipeline_params = _changed_keys(current.get("pipeline_params", {}), previous.get("pipeline_params", {}))
    reasons += [f'parameter "{name}" changed' for name in pipeline_params]
    if not pipeline_params:  # a changed pipeline parameter explains its params and arguments
        reasons += [
            f'parameter "{name}" changed'
            for name in _changed_keys(current.get("params", {}), previous.get("params", {}))
        ]
        if current.get("arguments") != previous.get("arguments"):
            reasons.append("arguments changed")
    for name in _changed_keys(current.get("inputs", {}), previous.get("inputs", {})):
        reasons.append(f'input "{name}" changed')
    tables, tables_before = current.get("input_tables", {}), previous.get("input_tables", {})
    for name in _changed_keys(tables, tables_before):
        if name in tables_before and name in tables:
            reasons.append(f'input "{name}" is read otherwise (take, skip, separator, columns, ...)')
        elif name in tables:  # or its key was made before localpipe kept how tables are read
            reasons.append(f'input "{name}" is read as a table')
    for name in _changed_keys(current.get("input_modes", {}), previous.get("input_modes", {})):
        if name in current.get("input_modes", {}):
            reasons.append(f'input "{name}" is now consumed by {current["input_modes"][name]}')
    if current.get("environment") != previous.get("environment"):
        reasons.append("environment changed")
    if current.get("outputs") != previous.get("outputs"):
        reasons.append("outputs changed")
    if current.get("version") != previous.get("version"):
        reasons.append("version changed")
    if current.get("key_version") != previous.get("key_version"):
        reasons.append("localpipe's cache format changed")
    return ", ".join(reasons) or "inputs changed"


def _changed_keys(current: dict, previous: dict) -> list[str]:
    return sorted(k for k in current.keys() | previous.keys() if current.get(k) != previous.get(k))


def _listing(paths: list[str], limit: int = 5) -> str:
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")
