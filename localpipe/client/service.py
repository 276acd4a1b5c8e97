"""The workspace service the SDK talks to (``sdk/service.py``), on this machine.

Where Azure ML's SDK calls a remote service, localpipe's calls this: registrations and look-ups
in the workspace's history.db, copies into its object store and datastores, and validation of a
pipeline against its compute targets and this machine. ``localpipe/__init__.py`` makes it each
Workspace's service.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from localpipe.sdk.data import BUILTIN_DATASTORES
from localpipe.state.history import History
from localpipe.state.layout import Layout


class LocalService:
    """The service of one workspace (an ``sdk.workspace.Workspace``)."""

    def __init__(self, workspace):
        self.workspace = workspace
        self.layout = Layout.of(workspace.state_dir)

    @property
    def history(self) -> History:
        return History.open(self.layout)

    def create(self) -> None:
        self.layout.create()
        History.open(self.layout)  # creates and migrates history.db

    # -- datastores ------------------------------------------------------------------------------
    def datastore_names(self) -> list[str]:
        return [*BUILTIN_DATASTORES, *self.history.registry.datastore_names()]

    def datastore_path(self, name: str) -> Path | None:
        if name in BUILTIN_DATASTORES:
            return self.layout.datastore(name)
        path = self.history.registry.datastore_path(name)
        return Path(path) if path is not None else None

    def register_datastore(self, name: str, path: Path) -> None:
        self.history.registry.register_datastore(name, str(path))

    def upload(self, name: str, src_dir: Path, target_path: str, overwrite: bool, show_progress: bool) -> Path:
        from localpipe.state.datastores import upload

        return upload(name, self.datastore_path(name), src_dir, target_path, overwrite, show_progress)

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
        return self.history.datasets.register(name, paths, kind, options, description, tags, create_new_version)

    def get_dataset(self, name: str, version: int | str) -> dict:
        return self.history.datasets.get(name, version)

    # -- compute targets and environments -----------------------------------------------------------
    def compute_targets(self) -> dict[str, dict]:
        return self.history.registry.compute_targets()

    def save_compute_target(self, name: str, kind: str, config: dict) -> None:
        self.history.registry.save_compute_target(name, kind, config)

    def delete_compute_target(self, name: str) -> None:
        self.history.registry.delete_compute_target(name)

    def environments(self) -> dict[str, tuple[int, dict]]:
        return self.history.registry.environments()

    def environment(self, name: str, version: int | None) -> tuple[int, dict]:
        return self.history.registry.environment(name, version)

    def register_environment(self, name: str, spec: dict) -> int:
        return self.history.registry.register_environment(name, spec)

    # -- experiments and pipelines -------------------------------------------------------------------
    def experiments(self) -> dict[str, Any]:
        from localpipe.client.experiment import Experiment

        return {name: Experiment(self.workspace, name) for name in self.history.registry.experiment_names()}

    def get_run(self, run_id) -> Any:
        from localpipe.client.runs import Run

        return Run.get(self.workspace, run_id)

    def validate(self, pipeline, parameters: dict | None) -> list[str]:
        from localpipe.plan.graph import problems
        from localpipe.sdk.compute import compute_targets

        return problems(pipeline, parameters, compute_targets(self.workspace))
