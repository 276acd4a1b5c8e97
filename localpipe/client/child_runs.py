"""Child runs (``run.child_run()``, ``run.create_children()``): runs inside a run, each with its own
status, metrics, tags, properties and files, as the SDK's.

A child run is a step run of the same pipeline run under its parent step run (``step_run.parent``),
named ``<parent's name>#<number>``: ``train.py#0`` is the first child of step ``train.py``,
``train.py#0#1`` that child's second. Its id is the id of the step run it hangs from, followed by
the same ``#<number>`` (``12#0``: the first child of step run 12; an interactive or script run's
children hang from the step run holding its records), which ``Run.get(ws, "12#0")`` reads back.
Inside a step a child writes through the step's own metrics file (the scheduler records it, as it
records the step's metrics: steps never write history.db); from anywhere else it is recorded at
once. A child still active when its parent ends ends as the parent did (docs/runs.md).

The run classes take their child members from ``ChildMembers`` (``client.runs`` imports this
module, never the other way round).
"""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

from localpipe.client import models
from localpipe.client.run_base import RunBase, StepRecordMembers, _failure, _matches, watch_run
from localpipe.client.run_files import _inside
from localpipe.errors import UsageError, UserErrorException
from localpipe.status import RunStatus

CHILD_MARK = "#"
MAX_CHILDREN = 100  # create_children makes at most this many, as the SDK


class ChildMembers:
    """``child_run``, ``create_children`` and ``get_children`` of runs read through history.db; the
    class using it gives ``_holder`` and ``_step`` (``RunBase``)."""

    def child_run(self, name=None, run_id=None, outputs=None):
        """A new child run of this one, Running: it logs, tags and keeps files of its own, is
        listed by ``get_children`` and `localpipe show`, and ends with ``complete()`` (or ``with``).
        ``run_id`` cannot choose its id (localpipe numbers child runs); ``outputs``: a folder kept
        among its files when it completes."""
        _warn_run_id(run_id)
        record = self._history.runs.add_child(self._holder("child_run")["id"], None, name)
        return ChildRun.of(self, record, outputs)

    def create_children(self, count=None, tag_key=None, tag_values=None) -> list:
        """``count`` child runs (tagged ``azureml.batch_child_number``: 0, 1, ...), or one per value of
        ``tag_values``, tagged ``tag_key``; all Running. At most 100, as in the SDK."""
        tag_key, tag_values = _children_tags(count, tag_key, tag_values)
        holder = self._holder("create_children")["id"]
        made = [self._history.runs.add_child(holder, None, None, {tag_key: value}) for value in tag_values]
        return [ChildRun.of(self, record) for record in made]

    def get_children(self, recursive=False, tags=None, properties=None, type=None, status=None,
                     _rehydrate_runs=True) -> list:  # fmt: skip
        """The run's child runs (with ``recursive`` theirs too), filtered as ``Run.list``."""
        holder = self._step()
        if holder is None:
            return []
        found = []
        for record in self._history.runs.children(holder["id"]):
            child = ChildRun.of(self, record)
            found.append(child)
            if recursive:
                found.extend(child.get_children(recursive=True))
        return [c for c in found if _matches(c, type, tags, properties, status)]


class ChildRun(StepRecordMembers, ChildMembers, RunBase):
    """A child run, read and written through history.db (from a notebook, or a step run's handle)."""

    def __init__(self, parent, key: str, record: dict, outputs=None):
        super().__init__(parent.experiment, record["id"], outputs)
        self._key = key
        self._parent = parent
        self._pipeline_run_id = parent._run_number()
        self._node_id = record["name"]

    @classmethod
    def of(cls, parent, record: dict, outputs=None) -> ChildRun:
        """The handle of ``record``, a child of ``parent``'s step run."""
        from localpipe.state.reader import step_run_id

        holder = parent._step()
        base = parent.id if isinstance(parent, ChildRun) else step_run_id(parent._run_number(), holder["id"])
        return cls(parent, f"{base}{record['name'][len(holder['name']) :]}", record, outputs)

    @classmethod
    def descendant(cls, step_run, suffix: str) -> ChildRun:
        """The child ``suffix`` ("#5#0") of the StepRun handle ``step_run`` (``Run.get``)."""
        found = step_run
        numbers = suffix.strip(CHILD_MARK).split(CHILD_MARK)
        for depth in range(len(numbers)):
            name = step_run._step_name() + CHILD_MARK + CHILD_MARK.join(numbers[: depth + 1])
            found = cls.of(found, found._history.runs.find_step(step_run._run_number(), name))
        return found

    @property
    def id(self) -> str:
        return self._key

    @property
    def parent(self):
        return self._parent

    @property
    def type(self) -> None:
        """None: the SDK records no type for a child run made with ``child_run``."""
        return None

    @property
    def display_name(self) -> str:
        return self._record().get("display_name") or self._node_id

    @display_name.setter
    def display_name(self, display_name: str) -> None:
        raise UsageError(f'child run {self._key}: name it when making it: run.child_run(name="...")')

    @property
    def description(self) -> None:
        return None

    def start(self) -> None:
        """Nothing to do: a child run is Running from the moment it is made."""

    def complete(self, _set_status=True) -> None:
        """Completed; its ``outputs`` folder (if it was given one) is kept among its files first."""
        _keep_outputs(self)
        self._history.runs.set_child_status(self._number, RunStatus.COMPLETED)

    def fail(self, error_details=None, error_code=None, _set_status=True) -> None:
        self._history.runs.set_child_status(self._number, RunStatus.FAILED, _failure(error_details, error_code))

    def cancel(self) -> None:
        self._history.runs.set_child_status(self._number, RunStatus.CANCELED)

    def __exit__(self, exit_type, value, traceback) -> None:
        """Completed, or Failed when the block raised."""
        if exit_type is None:
            self.complete()
        else:
            self.fail(error_details=value)

    def wait_for_completion(self, show_output=False, wait_post_processing=False, raise_on_error=True) -> dict:
        watch_run(self._history, self._pipeline_run_id, show_output, None, raise_on_error, self._node_id)
        return self.get_details()

    register_model = models.register_model

    def __repr__(self) -> str:
        return f"ChildRun(id={self._key!r}, name={self.display_name!r})"


# (metrics file, child suffix) -> the properties this process added: a step's run handles share them.
_PROPERTIES_ADDED: dict[tuple[str, str], dict] = {}


class StepSideWrites:
    """Tags and properties a run inside its step writes: lines of the step's metrics file, which
    the scheduler records. A property never changes, as outside a step: one added again with
    another value is refused here, where the scheduler could only keep the first."""

    def _write_tags(self, tags: dict, removed: list[str]) -> None:
        for key in removed:
            self._emit("untag", key, None)
        for key, value in tags.items():
            self._emit("tag", key, value)

    def _write_properties(self, properties: dict) -> None:
        added = _PROPERTIES_ADDED.setdefault((self._metrics_file, self._suffix), {})
        for key, value in properties.items():
            if key in added and added[key] != value:
                raise UsageError(
                    f'run {self.id}: property "{key}" is already {added[key]!r}: properties cannot change; use a tag'
                )
        for key, value in properties.items():
            if key not in added:
                added[key] = value
                self._emit("property", key, value)


class ChildRunContext(StepSideWrites, RunBase):
    """A child run made in a step (``Run.get_context().child_run()``): what it logs goes into the
    step's metrics file, marked as its own; its files into its own folder. ``parent`` is the step's
    context (``client.runs.StepRunContext``) or another child made in the step."""

    def __init__(self, parent, number: int, name: str | None, tags: dict | None, outputs):
        self._parent_context = parent
        self._workspace_root = parent._workspace_root  # what register_model looks for in a step
        self._experiment_name = parent._experiment_name
        self._metrics_file = parent._metrics_file
        self._root_id, self._root_name = parent._root_id, parent._root_name
        self._suffix = f"{parent._suffix}{CHILD_MARK}{number}"
        self._key = f"{self._root_id}{self._suffix}"
        self._node_id = self._root_name + self._suffix
        self._pipeline_run_id = parent.pipeline_run_id
        self._children_made = 0
        self._outputs = outputs
        self._experiment = None
        self.input_datasets, self.output_datasets = {}, {}
        parent._emit_for(parent._suffix, "child", f"{CHILD_MARK}{number}", {"display_name": name, "tags": tags or {}})

    @property
    def id(self) -> str:
        return self._key

    @property
    def pipeline_run_id(self) -> str:
        return str(self._pipeline_run_id)

    @property
    def experiment(self):
        return self._parent_context.experiment

    @property
    def parent(self):
        return self._parent_context

    @property
    def type(self) -> None:
        return None

    @property
    def display_name(self) -> str:
        return self._node_id

    def child_run(self, name=None, run_id=None, outputs=None):
        return child_run_in_step(self, name, run_id, outputs)

    def create_children(self, count=None, tag_key=None, tag_values=None) -> list:
        return create_children_in_step(self, count, tag_key, tag_values)

    def _emit(self, kind: str, name: str, value: Any) -> None:
        self._emit_for(self._suffix, kind, name, value)

    def _emit_for(self, suffix: str, kind: str, name: str, value: Any, **extra) -> None:
        emit_line(self._metrics_file, suffix, kind, name, value, **extra)

    def _folder(self) -> Path:
        from localpipe.state.layout import Layout

        return Layout(Path(self._workspace_root)).step_dir(self._pipeline_run_id, self._node_id)

    def _file_target(self, name: str) -> Path:
        return _inside(self._folder() / "files", name)

    def _file_roots(self) -> list[Path]:
        return [self._folder() / "files"]

    def _log_paths(self) -> dict[str, Path]:
        return {}

    def _run_number(self) -> int:
        return self._pipeline_run_id

    def _record(self) -> dict:
        return self._history.runs.find_step(self._pipeline_run_id, self._node_id)

    def _step(self) -> dict:
        return self._record()

    def _step_name(self) -> str:
        return self._node_id

    def complete(self, _set_status=True) -> None:
        _keep_outputs(self)
        self._emit_for(self._suffix, "status", "", RunStatus.COMPLETED.value)

    def fail(self, error_details=None, error_code=None, _set_status=True) -> None:
        self._emit_for(self._suffix, "status", "", RunStatus.FAILED.value, error=_failure(error_details, error_code))

    def cancel(self) -> None:
        self._emit_for(self._suffix, "status", "", RunStatus.CANCELED.value)

    def __exit__(self, exit_type, value, traceback) -> None:
        if exit_type is None:
            self.complete()
        else:
            self.fail(error_details=value)

    register_model = models.register_model

    def __repr__(self) -> str:
        return f"ChildRunContext(id={self._key!r})"


def child_run_in_step(parent, name=None, run_id=None, outputs=None) -> ChildRunContext:
    """A child of a step's context (or of a child made in it), numbered in the order made."""
    _warn_run_id(run_id)
    child = ChildRunContext(parent, parent._children_made, name, None, outputs)
    parent._children_made += 1
    return child


def create_children_in_step(parent, count=None, tag_key=None, tag_values=None) -> list[ChildRunContext]:
    tag_key, tag_values = _children_tags(count, tag_key, tag_values)
    made = []
    for value in tag_values:
        made.append(ChildRunContext(parent, parent._children_made, None, {tag_key: value}, None))
        parent._children_made += 1
    return made


def emit_line(metrics_file: str, suffix: str, kind: str, name: str, value: Any, **extra) -> None:
    """One line of a step's metrics file; ``suffix`` names the child run it belongs to ("" the step)."""
    record = {"kind": kind, "name": str(name), "value": value, "time": time.time(), **extra}
    if suffix:
        record["run"] = suffix
    with open(metrics_file, "a", encoding="utf-8") as handle:  # one write of one line: never interleaved
        handle.write(json.dumps(record, default=_plain) + "\n")


def _plain(value: Any):
    """A NumPy scalar or array (``np.float32(0.5)``, what a model's metrics often are) as the Python
    number or list it holds; anything else JSON cannot write is refused, naming its type."""
    if hasattr(value, "item") and getattr(value, "shape", None) == ():
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"a {type(value).__name__} cannot be logged: log a number, a string, or a list of them")


def _keep_outputs(run) -> None:
    if run._outputs and os.path.isdir(run._outputs):
        run.upload_folder(os.path.basename(os.path.normpath(run._outputs)), run._outputs)


def _warn_run_id(run_id) -> None:
    if run_id is not None:
        warnings.warn(
            f"child_run(run_id={run_id!r}): localpipe numbers child runs itself (PARENT#N); the id is not used",
            UserWarning,
            stacklevel=3,
        )


def _children_tags(count, tag_key, tag_values) -> tuple[str, list]:
    """``create_children``'s arguments checked as the SDK checks them: the tag and its values."""
    if tag_key is None and tag_values is None and count is None:
        raise UserErrorException("Either count or tag_key and tag_values must be set")
    if tag_key is not None or tag_values is not None:
        if tag_key is None:
            raise UserErrorException("tag_key must not be null when tag_values is set")
        if tag_values is None:
            raise UserErrorException("tag_values must not be null when tag_key is set")
        if count is not None:
            raise UserErrorException("count can not be set when tag_key and tag_values are set")
        tag_values = list(tag_values)
    else:
        tag_key, tag_values = "azureml.batch_child_number", [str(n) for n in range(count)]
    if len(tag_values) > MAX_CHILDREN:
        raise UserErrorException(f"create_children can not create more than {MAX_CHILDREN} runs")
    return tag_key, tag_values
