"""The seam between the SDK's declarations and the workspace they are registered in.

Azure ML's SDK objects call a remote service to register a datastore, get a dataset or create a
compute target. localpipe's call this protocol instead, through ``workspace.service``; it is
implemented above the SDK (``localpipe/client/service.py``, over history.db and the object
store) and plugged in by ``localpipe/__init__.py``, so that nothing in ``sdk/`` imports the
layers that do I/O. Values cross it as plain data: paths, names, dicts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol


class WorkspaceService(Protocol):
    """What the SDK's objects ask of their workspace."""

    def create(self) -> None:
        """Create the workspace's folders and history.db (nothing happens to an existing one)."""

    # -- datastores ------------------------------------------------------------------------------
    def datastore_names(self) -> list[str]:
        """Every datastore: the built-in ones, then the registered ones."""

    def datastore_path(self, name: str) -> Path | None:
        """The folder of datastore ``name``, or None when there is no such datastore."""

    def register_datastore(self, name: str, path: Path) -> None: ...

    def upload(self, name: str, src_dir: Path, target_path: str, overwrite: bool, show_progress: bool) -> Path:
        """Copy ``src_dir`` into ``target_path`` of datastore ``name``; returns that folder."""

    # -- datasets --------------------------------------------------------------------------------
    def register_dataset(
        self,
        name: str,
        paths: list[str],
        kind: str,
        options: dict,
        description: str | None,
        tags: dict | None,
        create_new_version: bool,
    ) -> dict:
        """Register files as a version of dataset ``name``: ``{"name", "version", "kind", "options", "paths"}``."""

    def get_dataset(self, name: str, version: int | str) -> dict:
        """A registered version, as ``register_dataset`` returns it."""

    # -- compute targets and environments -----------------------------------------------------------
    def compute_targets(self) -> dict[str, dict]:
        """Created compute targets: name -> configuration."""

    def save_compute_target(self, name: str, kind: str, config: dict) -> None: ...

    def delete_compute_target(self, name: str) -> None: ...

    def environments(self) -> dict[str, tuple[int, dict]]:
        """The latest version of each registered environment: name -> (version, spec)."""

    def environment(self, name: str, version: int | None) -> tuple[int, dict]: ...

    def register_environment(self, name: str, spec: dict) -> int:
        """Keep ``spec`` under ``name``; returns its version (a new one only when it changed)."""

    # -- experiments and pipelines -------------------------------------------------------------------
    def experiments(self) -> dict[str, Any]:
        """Every experiment that has runs, by name, as ``Experiment`` handles."""

    def get_run(self, run_id: Any) -> Any:
        """The run ``run_id`` (a PipelineRun, or a Run for a script run)."""

    def validate(self, pipeline: Any, parameters: dict | None) -> list[str]:
        """Every problem that keeps ``pipeline`` from running here, as readable lines."""
