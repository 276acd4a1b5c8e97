"""Pipeline: the set of steps to run, with the producers of their inputs pulled in."""

from __future__ import annotations

import os

from localpipe.errors import UsageError
from localpipe.sdk.data import PipelineDataInput
from localpipe.sdk.steps import PipelineStep


class Pipeline:
    """Steps to run together; ``steps`` may be nested lists (the seed passes a list in a list)."""

    def __init__(
        self, workspace, steps, description: str | None = None, default_source_directory: str | None = None, **_ignored
    ):
        self.workspace = workspace
        self.description = description
        self.default_source_directory = os.path.abspath(default_source_directory) if default_source_directory else None
        self.steps: list[PipelineStep] = _collect(steps)

    def validate(self, pipeline_parameters: dict | None = None) -> list[str]:
        """Every problem that keeps this pipeline from running, as readable lines; empty when valid."""
        return self.workspace.service.validate(self, pipeline_parameters)

    def __repr__(self) -> str:
        return f"Pipeline({len(self.steps)} steps)"


def _collect(steps) -> list[PipelineStep]:
    """Flatten nested lists and add, transitively, the producers and predecessors of each step."""
    ordered: list[PipelineStep] = []
    seen: set[int] = set()
    pending = list(_flatten(steps))
    while pending:
        step = pending.pop(0)
        if id(step) in seen:
            continue
        seen.add(id(step))
        ordered.append(step)
        for item in step.inputs:
            if isinstance(item, PipelineDataInput):
                pending.extend(item.data.producers)
        pending.extend(step.predecessors)
    return ordered


def _flatten(items):
    if isinstance(items, PipelineStep):
        yield items
        return
    for item in items:
        if isinstance(item, (list, tuple)):
            yield from _flatten(item)
        elif isinstance(item, PipelineStep):
            yield item
        else:
            raise UsageError(
                f"Pipeline(steps=...): {item!r} is a {type(item).__name__}, not a step: pass steps or lists of steps"
            )
