"""The workspace service the SDK talks to (``sdk/service.py``), on this machine.

Where Azure ML's SDK calls a remote service, localpipe's calls this: registrations and look-ups
in the workspace's history.db, copies into its object store and datastores, and validation of a
pipeline against its compute targets and this machine. ``localpipe/__init__.py`` makes it each
Workspace's service.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path
from typing import Any

from localpipe.sdk.data import BUILTIN_DATASTORES
from localpipe.sdk.data.blob import mirror_folder
from localpipe.sdk.data.datastore import DEFAULT_DATASTORE
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

    def delete(self) -> None:
        from localpipe.engine.recovery import recover_abandoned_runs
        from localpipe.state.history import delete_workspace

        recover_abandoned_runs(self.history)
        delete_workspace(self.layout)

    # -- datastores ------------------------------------------------------------------------------
    def datastore_names(self) -> list[str]:
        return [*BUILTIN_DATASTORES, *self.history.registry.datastore_names()]

    def datastore_location(self, name: str) -> tuple[Path, str | None] | None:
        if name in BUILTIN_DATASTORES:
            return self.layout.datastore(name), None
        row = self.history.registry.datastore(name)
        if row is None:
            return None
        path, url = row
        return (mirror_folder(url), url) if url else (Path(path), None)

    def register_datastore(self, name: str, path: Path | None, url: str | None = None) -> None:
        self.history.registry.register_datastore(name, str(path or ""), url)

    def unregister_datastore(self, name: str) -> None:
        self.history.registry.unregister_datastore(name, DEFAULT_DATASTORE)

    def upload(
        self, name: str, files: list[Path], root: Path, target_path: str, overwrite: bool, show_progress: bool
    ) -> Path:
        from localpipe.state.datastores import upload

        folder = self.datastore_location(name)[0]
        return upload(self.history.layout, name, folder, files, root, target_path, overwrite, show_progress)

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
        return self.history.datasets.register(name, paths, kind, options, description, tags, create_new_version, root)

    def get_dataset(self, name: str, version: int | str) -> dict:
        return self.history.datasets.get(name, version)

    def dataset_names(self) -> list[str]:
        return sorted({version["name"] for version in self.history.datasets.list()})

    def latest_datasets(self) -> list[dict]:
        return self.history.datasets.latest()

    def get_dataset_by_id(self, dataset_id: str) -> dict:
        return self.history.datasets.by_id(dataset_id)

    def update_dataset(self, name: str, version: int, description: str | None, tags: dict | None) -> dict:
        return self.history.datasets.update(name, version, description, tags)

    def unregister_dataset(self, name: str) -> None:
        self.history.datasets.unregister(name)

    # -- the workspace's own settings ----------------------------------------------------------------
    def settings(self) -> dict:
        return self.history.registry.settings()

    def update_settings(self, values: dict) -> None:
        self.history.registry.update_settings(values)

    # -- models ----------------------------------------------------------------------------------
    def register_model(
        self, name: str, path: str, child_paths: list[str], fields: dict, datasets: list[dict], lineage: dict | None
    ) -> dict:
        from localpipe.client.models import step_lineage

        lineage = step_lineage(self.workspace) if lineage is None else lineage
        return self.history.models.register(name, path, child_paths, {**fields, **lineage}, datasets)

    def models(self, filters: dict, latest: bool) -> list[dict]:
        return self.history.models.find(filters, latest)

    def model(self, name: str, version: int) -> dict:
        return self.history.models.get(name, version)

    def update_model(self, name: str, version: int, changes: dict) -> dict:
        return self.history.models.update(name, version, changes)

    def delete_model(self, name: str, version: int) -> None:
        self.history.models.delete(name, version)

    def download_model(self, record: dict, target_dir: str, exist_ok: bool) -> str:
        from localpipe.client.models import download

        return download(record, target_dir, exist_ok)

    def model_run(self, record: dict) -> Any:
        from localpipe.client.experiment import Experiment
        from localpipe.client.runs import Run, StepRun
        from localpipe.errors import NotFoundError
        from localpipe.state.reader import STEP_KIND

        try:
            experiment = self.history.runs.get(record["pipeline_run"])["experiment"]
        except NotFoundError:
            return None  # forgotten by gc: the version keeps its run and step as numbers and names
        if record["run_kind"] != STEP_KIND:
            return Run.get(self.workspace, record["pipeline_run"])  # a pipeline, script or interactive run
        return StepRun(
            Experiment(self.workspace, experiment), record["step_run"], record["pipeline_run"], record["step"]
        )

    def latest_models(self) -> dict[str, Any]:
        from localpipe.sdk.model import Model

        return {model.name: model for model in Model.list(self.workspace, latest=True)}

    # -- compute targets and environments -----------------------------------------------------------
    def compute_targets(self) -> dict[str, dict]:
        return self.history.registry.compute_targets()

    def save_compute_target(self, name: str, kind: str, config: dict) -> None:
        self.history.registry.save_compute_target(name, kind, config)

    def delete_compute_target(self, name: str) -> None:
        self.history.registry.delete_compute_target(name)

    def environments(self) -> dict[str, tuple[int, dict]]:
        return self.history.registry.environments()

    def environment(self, name: str, version: int | None, label: str | None = None) -> tuple[int, dict]:
        return self.history.registry.environment(name, version, label)

    def label_environment(self, name: str, version: int, labels: list[str]) -> None:
        self.history.registry.label_environment(name, version, labels)

    def register_environment(self, name: str, spec: dict) -> int:
        return self.history.registry.register_environment(name, spec)

    def build_environment(self, environment) -> dict:
        from localpipe.engine.submit import machine_capacity
        from localpipe.envs import cache_root
        from localpipe.envs.build import BuildFailed
        from localpipe.envs.cache import EnvironmentCache
        from localpipe.errors import PipelineValidationError
        from localpipe.plan.environments import resolve

        found: list[str] = []
        definition = resolve(f'environment "{environment.name}"', environment, machine_capacity(), found, {})
        if found:
            raise PipelineValidationError(found)
        if definition["kind"] != "venv":
            return definition
        try:
            built = EnvironmentCache(cache_root() / "envs").build(definition)
        except BuildFailed as exc:
            where = f" (log: {exc.log})" if exc.log else ""
            raise BuildFailed(
                f'environment "{environment.name}" could not be built: {exc.reason}{where}', exc.log
            ) from None
        return {
            "kind": "venv",
            "digest": built.digest,
            "path": built.path,
            "python": built.python,
            "packages": built.packages,
            "log": built.log,
        }

    def build_image(self, environment, caller: str) -> dict:
        from localpipe.engine.executors.docker.images import ImageFailed, build_image, build_log, client, image_tag
        from localpipe.errors import UserErrorException

        planned = self._docker_environment(environment, caller)
        log = build_log(image_tag(planned))
        try:
            image, built = build_image(client(), planned, log)
        except ImageFailed as exc:
            raise UserErrorException(f'environment "{environment.name}": {exc}') from None
        return {"image": image, "built": built, "log": str(log) if built else None}

    def image_details(self, environment) -> dict:
        from localpipe.engine.executors.docker import machine_docker
        from localpipe.engine.executors.docker.images import image_tag

        planned = self._docker_environment(environment, "Environment.get_image_details")
        name = image_tag(planned)
        dockerfile = planned.get("dockerfile")
        if planned.get("context"):
            dockerfile = Path(planned["context"], planned["context_dockerfile"]).read_text(errors="replace")
        return {
            "dockerImage": {"name": name, "registry": {"address": None, "username": None, "password": None}},
            "pythonEnvironment": {
                "interpreterPath": planned["interpreter"],
                "condaEnvironmentName": None,
                "condaEnvironmentPath": None,
            },
            "imageExistsInRegistry": machine_docker()["image"](name) is not None,
            "ingredients": {"dockerfile": dockerfile},
        }

    def _docker_environment(self, environment, caller: str) -> dict:
        """``environment`` planned as a Docker one (docs/docker.md); refused when it has no image here."""
        from localpipe.engine.submit import machine_capacity
        from localpipe.errors import UserErrorException
        from localpipe.plan.environments import resolve
        from localpipe.sdk.runconfig import DockerConfiguration

        found: list[str] = []
        in_docker = DockerConfiguration(use_docker=True, shm_size=environment.docker.shm_size)
        with warnings.catch_warnings():  # Azure's base image missing: the refusal below says so
            warnings.simplefilter("ignore")
            definition = resolve(caller, environment, machine_capacity(), found, {}, docker=in_docker)
        if found:  # the problems of this environment, each naming it: no pipeline here
            raise UserErrorException("; ".join(found))
        if definition["kind"] != "docker":
            raise UserErrorException(
                f'{caller}: environment "{environment.name}" has no Docker image on this machine (Azure ML\'s base '
                f"image {environment.docker.base_image} is not here): set docker.base_image to an image of this "
                "machine, or build its packages outside Docker with build_local(ws)"
            )
        return definition

    def add_private_wheel(self, path: str, exist_ok: bool) -> Path:
        from localpipe.errors import UserErrorException

        folder = self.layout.private_packages
        target = folder / Path(path).name
        if target.exists():
            if exist_ok:
                return target
            raise UserErrorException(
                f"A wheel with the name {target.name} already exists in {folder}: make sure it is the one you "
                "want, or pass exist_ok=True to use the one there"
            )
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / f".{target.name}.{os.getpid()}.partial"
        shutil.copyfile(path, partial)
        os.replace(partial, target)  # never a half-copied wheel under its name
        return target

    # -- experiments and pipelines -------------------------------------------------------------------
    def experiments(self) -> dict[str, Any]:
        from localpipe.client.experiment import Experiment

        return {name: Experiment(self.workspace, name) for name in self.history.registry.experiment_names()}

    def module(self, module_id, name) -> Any:
        from localpipe.client.modules import Module

        return Module.get(self.workspace, module_id=module_id, name=name)

    def get_run(self, run_id) -> Any:
        from localpipe.client.runs import Run

        return Run.get(self.workspace, run_id)

    def active_runs(self, target: str) -> list:
        from localpipe.client.runs import Run
        from localpipe.engine.recovery import recover_abandoned_runs

        recover_abandoned_runs(self.history)
        found = []
        for record in sorted(self.history.runs.active(), key=lambda r: -r["id"]):
            steps = self.history.runs.for_scheduler(record["id"]).graph["steps"]
            if any(step.get("compute_target", "local") == target for step in steps):
                found.append(Run.get(self.workspace, record["id"]))
        return found

    def held_claims(self, target: str) -> list[dict]:
        from localpipe.engine.resources import process_alive

        return [
            {"id": claim.id, "run_id": claim.run_id}
            for claim in self.history.claims.held()
            if claim.target == target and process_alive(claim.holder_pid, claim.holder_started)
        ]

    def plan(self, pipeline):
        from localpipe.plan.graph import plan_pipeline
        from localpipe.sdk.compute import compute_targets

        return plan_pipeline(pipeline, None, compute_targets(self.workspace))

    def validate(self, pipeline, parameters: dict | None) -> list[str]:
        from localpipe.plan.graph import problems
        from localpipe.sdk.compute import compute_targets

        return problems(pipeline, parameters, compute_targets(self.workspace))

    def publish(self, pipeline, name, description, version, continue_on_step_failure):
        from localpipe.client.publishing import publish

        return publish(self.workspace, pipeline, name, description, version, continue_on_step_failure)

    def submit(self, pipeline, experiment_name: str, options: dict):
        from localpipe.client.experiment import Experiment

        return Experiment(self.workspace, experiment_name).submit(pipeline, **options)
