"""What a submission would do, step by step, without running or recording anything."""

from __future__ import annotations

import copy
from dataclasses import replace

from localpipe.content.hashing import dataset_digest
from localpipe.engine.decide import decide
from localpipe.engine.submit import plan
from localpipe.engine.sweep import SweepWatch
from localpipe.plan.sweep import trial_arguments
from localpipe.state.history import History
from localpipe.state.store import ObjectStore


def preview(history: History, pipeline, experiment_name: str, parameters: dict | None = None) -> list[dict]:
    """``[{"step", "action", "reason"}]`` in run order; action is reuse, run or maybe."""
    graph, sources = plan(history, pipeline, parameters)
    store = ObjectStore(history.layout.objects)
    experiment_id = history.registry.experiment_id(experiment_name)
    outputs: dict[str, dict[str, str]] = {}
    rows = []
    # A Bayesian sweep's trial is proposed from the trials before it, as the scheduler would: here
    # only once they are all reused (else it waits on one that runs), from what they logged then.
    sweeps = SweepWatch(copy.deepcopy(graph.sweeps), 0)
    for name, spec in graph.steps.items():
        waiting = sorted(u for u in spec.upstream if u not in outputs)
        if waiting:
            rows.append(
                {
                    "step": name,
                    "action": "maybe",
                    "reason": f'depends on step "{waiting[0]}", which runs: reused if its output is unchanged',
                }
            )
            continue
        if sweeps.needs_proposal(name):
            values = sweeps.propose(name, history)
            spec = replace(spec, argv=[*spec.argv, *trial_arguments(values)])
        inputs = {}
        for input_name, source in spec.inputs.items():
            if source.step:
                inputs[input_name] = outputs[source.step][source.output]
            else:
                inputs[input_name] = dataset_digest(source.paths, root=source.root)
        decision = decide([spec], sources, {name: inputs}, history.cache, store, experiment_id)[0]
        if decision.reuse:
            outputs[name] = decision.outputs
            sweeps.reused(name, decision.reused_from)
        rows.append({"step": name, "action": "reuse" if decision.reuse else "run", "reason": decision.reason})
    return rows
