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
    def delete(self) -> None:
        """Remove the workspace's state; refused while a run is active."""

    def datastore_names(self) -> list[str]:
        """Every datastore: the built-in ones, then the registered ones."""

    def datastore_location(self, name: str) -> tuple[Path, str | None] | None:
        """Datastore ``name``'s (folder, url), or None when there is no such datastore: a public blob
        container has its container's url and, as folder, its mirror in the machine's cache."""

    def register_datastore(self, name: str, path: Path | None, url: str | None = None) -> None:
        """Record a local datastore's folder, or a public blob container's url (``path`` None)."""

    def unregister_datastore(self, name: str) -> None:
        """Forget a registered datastore (not its folder); the default goes back to the built-in one
        when it was this one."""

    def upload(
        self, name: str, files: list[Path], root: Path, target_path: str, overwrite: bool, show_progress: bool
    ) -> Path:
        """Copy ``files`` into ``target_path`` of datastore ``name``, each at its path below ``root``;
        returns that folder."""

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
        root: str | None = None,
    ) -> dict:
        """Register files as a version of dataset ``name``: ``{"name", "version", "kind", "options", "paths"}``
        (with ``root``, one folder holding each path at its place below ``root``)."""

    def get_dataset(self, name: str, version: int | str) -> dict:
        """A registered version, as ``register_dataset`` returns it."""

    def dataset_names(self) -> list[str]:
        """Every registered dataset's name, sorted."""

    def latest_datasets(self) -> list[dict]:
        """The latest version of each registered dataset, as ``register_dataset`` returns it, by name."""

    def get_dataset_by_id(self, dataset_id: str) -> dict:
        """The registered version whose ``id`` is ``dataset_id``; UserErrorException when none is."""

    def update_dataset(self, name: str, version: int, description: str | None, tags: dict | None) -> dict:
        """Set a version's description and tags (None leaves one as it is); the version's record."""

    def unregister_dataset(self, name: str) -> None:
        """Forget every version of dataset ``name`` (its copies stay until ``localpipe gc``)."""

    # -- the workspace's own settings (default datastore, description, tags) ---------------------------
    def settings(self) -> dict: ...

    def update_settings(self, values: dict) -> None: ...

    # -- models ----------------------------------------------------------------------------------
    def register_model(
        self, name: str, path: str, child_paths: list[str], fields: dict, datasets: list[dict], lineage: dict | None
    ) -> dict:
        """Keep the file or folder ``path`` as the next version of model ``name``; ``lineage`` (run_id,
        experiment, pipeline_run, step, step_run) is the run that registers it, None for the step
        this process is, if it is one. Returns the version's record (``state/model_registry.py``)."""

    def models(self, filters: dict, latest: bool) -> list[dict]:
        """Registered model versions matching ``filters``, newest first."""

    def model(self, name: str, version: int) -> dict:
        """One registered version; WebserviceException (ModelNotFound) when there is none."""

    def update_model(self, name: str, version: int, changes: dict) -> dict: ...

    def delete_model(self, name: str, version: int) -> None: ...

    def download_model(self, record: dict, target_dir: str, exist_ok: bool) -> str:
        """Copy a version's file or folder into ``target_dir``; returns the path the SDK returns."""

    def model_run(self, record: dict) -> Any:
        """The run handle (StepRun or PipelineRun) that registered a version, or None."""

    def latest_models(self) -> dict[str, Any]:
        """The latest version of each registered model, as ``Model`` objects, by name."""

    # -- compute targets and environments -----------------------------------------------------------
    def compute_targets(self) -> dict[str, dict]:
        """Created compute targets: name -> configuration."""

    def save_compute_target(self, name: str, kind: str, config: dict) -> None: ...

    def delete_compute_target(self, name: str) -> None: ...

    def environments(self) -> dict[str, tuple[int, dict]]:
        """The latest version of each registered environment: name -> (version, spec)."""

    def environment(self, name: str, version: int | None, label: str | None = None) -> tuple[int, dict]: ...

    def label_environment(self, name: str, version: int, labels: list[str]) -> None: ...

    def register_environment(self, name: str, spec: dict) -> int:
        """Keep ``spec`` under ``name``; returns its version (a new one only when it changed)."""

    def build_environment(self, environment: Any) -> dict:
        """Build ``environment`` (an ``Environment``) in the machine's cache now: ``{"kind":
        "python", "interpreter"}`` when it installs nothing, else ``{"kind": "venv", "digest", "path",
        "python", "packages", "log"}``."""

    def build_image(self, environment: Any, caller: str) -> dict:
        """Build ``environment``'s Docker image now in this machine's daemon (``caller`` names the
        SDK call in a refusal): ``{"image", "built": the tags built now, "log": their build's log}``."""

    def image_details(self, environment: Any) -> dict:
        """``environment``'s image in the shape of Azure's ``DockerImageDetails``."""

    def add_private_wheel(self, path: str, exist_ok: bool) -> Path:
        """Copy the wheel ``path`` into the workspace; returns the copy."""

    # -- experiments and pipelines -------------------------------------------------------------------
    def experiments(self) -> dict[str, Any]:
        """Every experiment that has runs, by name, as ``Experiment`` handles."""

    def module(self, module_id: str | None, name: str | None) -> Any:
        """The Module with ``module_id`` or ``name`` (``Module.get``); NotFoundError when there is none."""

    def get_run(self, run_id: Any) -> Any:
        """The run ``run_id`` (a PipelineRun, or a Run for a script run)."""

    def active_runs(self, target: str) -> list[Any]:
        """Handles of the active runs with a step on compute target ``target``, newest first."""

    def held_claims(self, target: str) -> list[dict]:
        """The claims running steps of compute target ``target`` hold now: ``{"id", "run_id"}`` each."""

    def plan(self, pipeline: Any) -> Any:
        """The planned graph of ``pipeline`` here (``plan.graph.Graph``); raises with every problem."""

    def validate(self, pipeline: Any, parameters: dict | None) -> list[str]:
        """Every problem that keeps ``pipeline`` from running here, as readable lines."""

    def publish(self, pipeline: Any, name: Any, description: Any, version: Any, continue_on_step_failure: Any) -> Any:
        """Freeze ``pipeline`` in the workspace; its PublishedPipeline."""

    def submit(self, pipeline: Any, experiment_name: str, options: dict) -> Any:
        """``Experiment(workspace, experiment_name).submit(pipeline, **options)``: the run's handle."""
