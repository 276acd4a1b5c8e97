"""Outputs that go further than the object store once a step succeeds (OutputFileDatasetConfig).

An output with a ``destination`` is copied to its datastore path, placeholders filled in
(``{run-id}``, ``{output-name}``), through a temporary folder renamed into place, so the path
holds the whole output or nothing. An output with ``register_on_complete(name)`` becomes a
version of that dataset, with the step run that produced it: a TabularDataset when registered
through its table view (``read_delimited_files()``, ``read_parquet_files()``), read as that says.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from localpipe.faults import fault_point
from localpipe.plan.graph import REPLACES_STATE, replaces_state
from localpipe.state.history import History
from localpipe.state.store import ObjectStore, remove_tree


def deliver(
    history: History,
    store: ObjectStore,
    run_id: int,
    step_run_id: int,
    destinations: dict[str, dict],
    outputs: dict[str, str],
) -> None:
    """Write back and register each output of ``destinations`` (``outputs``: name -> digest)."""
    for name, target in destinations.items():
        digest = outputs[name]
        if target["path"]:
            path = Path(target["path"].replace("{run-id}", str(run_id)).replace("{output-name}", name))
            _copy_into_place(store.path(digest), _inside_datastore(path, target.get("root"), history.layout.state_dir))
        if target["register"]:
            table = dict(target.get("table") or {})
            history.datasets.record_version(
                target["register"],
                digest,
                [table.pop("path_glob", None) or "."],
                kind="tabular" if table else "file",
                options=table or None,
                description=target.get("description"),
                tags=target.get("tags"),
                produced_by=step_run_id,
            )


def _inside_datastore(path: Path, root: str | None, state_dir: Path) -> Path:
    """``path`` with its links resolved, which must still lie in the datastore folder ``root``, and
    not replace the workspace's own state (checked when planning; checked again now, as a link may
    have been made since)."""
    real = Path(os.path.realpath(path))
    if root is not None and not str(real).startswith(root + os.sep):
        raise OSError(f"{path} leads to {real}, outside its datastore {root}: remove the link, or choose another path")
    if replaces_state(str(real), os.path.realpath(state_dir)):
        raise OSError(f"{path} leads to {real}, which {REPLACES_STATE}: remove the link, or choose another path")
    return real


def _copy_into_place(source: Path, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.localpipe-{os.getpid()}")
    remove_tree(staging)
    shutil.copytree(source, staging)
    fault_point("during-delivery")
    for folder, dirs, files in os.walk(staging):  # the copy is the datastore's, writable like it
        for entry in (*dirs, *files):
            full = os.path.join(folder, entry)
            os.chmod(full, os.stat(full).st_mode | 0o200)
    os.chmod(staging, os.stat(staging).st_mode | 0o200)
    if path.exists():
        remove_tree(path)
    os.rename(staging, path)
