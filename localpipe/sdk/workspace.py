"""Workspace: a folder holding `.localpipe/` (history.db, object store, run folders, datastores)."""

from __future__ import annotations

import contextvars
import os
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from localpipe.errors import UsageError, UserErrorException, WorkspaceNotFoundError
from localpipe.sdk.service import WorkspaceService

STATE_DIR = ".localpipe"
# What Azure ML's Workspace.from_config() reads, and the keys it needs (written by ws.write_config()).
AZURE_CONFIG = "config.json"
AZURE_KEYS = ("subscription_id", "resource_group", "workspace_name")
DEFAULT_DATASTORE = "workspaceblobstore"

# Set by the CLI while it loads a pipeline file, so that `Workspace.from_config()` inside
# that file answers with the workspace the command already chose.
current_workspace: contextvars.ContextVar[Workspace | None] = contextvars.ContextVar("current_workspace", default=None)


class FileLoading:
    """Whether a command is loading a pipeline file in this process (in any thread: a file may
    submit from a thread of its own, which the context variable above does not reach), and the
    submissions the file made meanwhile (``errors.SubmittedWhileLoading``), first one first."""

    def __init__(self):
        self.active = False
        self.submitted: list = []


file_loading = FileLoading()


class _DefaultCluster:
    """A default cluster's provisioning configuration, made when first read: it needs the VM size
    table, which ``from azureml.core import Run`` in a step must not import."""

    def __init__(self, vm_size: str):
        self.vm_size = vm_size

    def __get__(self, instance, owner):
        from localpipe.sdk.compute import AmlCompute

        return AmlCompute.provisioning_configuration(
            min_nodes=0, max_nodes=2, vm_size=self.vm_size, vm_priority="dedicated"
        )


class Workspace:
    """A local workspace rooted at ``root``; its state lives in ``root/.localpipe``."""

    # Makes the service that keeps this workspace's records (see sdk/service.py); localpipe/__init__.py
    # plugs in the one implementation, so that the SDK need not import it.
    service_factory: ClassVar[Callable[[Workspace], WorkspaceService]]

    # Azure's names and configurations of a workspace's default clusters, as the samples create them:
    # ComputeTarget.create(ws, Workspace.DEFAULT_CPU_CLUSTER_NAME, Workspace.DEFAULT_CPU_CLUSTER_CONFIGURATION)
    # makes a local target of that VM size's CPUs, memory and GPUs (docs/resources.md).
    DEFAULT_CPU_CLUSTER_CONFIGURATION = _DefaultCluster("STANDARD_DS2_V2")
    DEFAULT_CPU_CLUSTER_NAME = "cpu-cluster"
    DEFAULT_GPU_CLUSTER_CONFIGURATION = _DefaultCluster("STANDARD_NC6")
    DEFAULT_GPU_CLUSTER_NAME = "gpu-cluster"

    def __init__(
        self,
        subscription_id,
        resource_group: str | None = None,
        workspace_name: str | None = None,
        auth=None,
        _location: str | None = None,
        _disable_service_check: bool = False,
        _workspace_id=None,
        sku: str = "basic",
        tags: dict | None = None,
        _cloud: str = "AzureCloud",
    ):
        """``Workspace(subscription_id, resource_group, workspace_name)``, Azure's form, is the
        nearest workspace above the current directory (there is one per project folder here), known
        by those names; localpipe's own form, ``Workspace(root)`` (one argument), is the workspace
        in the folder ``root``."""
        azure = {}
        if resource_group is None and workspace_name is None:
            root = subscription_id
        else:
            root = _nearest(Path(os.getcwd()).resolve())
            azure = {"subscription_id": subscription_id, "resource_group": resource_group}
            azure.update({"workspace_name": workspace_name} if workspace_name else {})
            azure.update({"location": _location} if _location else {})
        self.root = Path(root).resolve()
        self.state_dir = self.root / STATE_DIR
        self._service: WorkspaceService | None = None
        self._azure: dict[str, str] = azure  # what Azure's names for it are (see from_config)

    @property
    def service(self) -> WorkspaceService:
        """Registrations, look-ups and validation against this workspace's records."""
        if self._service is None:
            self._service = type(self).service_factory(self)
        return self._service

    # -- finding and creating -------------------------------------------------------------
    @classmethod
    def from_config(
        cls, path: str | os.PathLike | None = None, auth=None, _logger=None, _file_name: str | None = None
    ) -> Workspace:
        """The nearest workspace (a folder holding ``.localpipe/``) walking up from ``path``: a folder,
        or a file in one (default: the folder of the script this process runs, ``python
        pipeline.py``, when a workspace is above it, else the current directory).

        An Azure ML ``config.json`` (or ``_file_name``) found on the way, in a folder or its
        ``.azureml/`` subfolder, up to the workspace's own folder, or ``path`` itself when it is
        that file, names it: its ``workspace_name`` becomes ``name``, and ``subscription_id``,
        ``resource_group`` (and ``location``, if given) are kept. ``auth`` is accepted and unused.
        """
        loading = current_workspace.get() if path is None else None  # a command loading this file chose it
        start = Path(path or (None if loading else _script_folder()) or os.getcwd()).resolve()
        folder = start.parent if start.is_file() else start
        found = loading or cls(_nearest(folder))
        config = start if start.is_file() else _find_azure_config(folder, _file_name or AZURE_CONFIG)
        if config is None:
            return found
        import copy  # here, not above: finding a workspace stays cheap for the CLI

        named = copy.copy(found)  # the same workspace and service, named as config.json says
        named._azure = _read_azure_config(config)
        return named

    @classmethod
    def create(
        cls,
        name: str | os.PathLike,
        auth=None,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        location: str | None = None,
        create_resource_group: bool = True,
        sku: str = "basic",
        tags: dict | None = None,
        friendly_name: str | None = None,
        storage_account=None,
        key_vault=None,
        app_insights=None,
        container_registry=None,
        adb_workspace=None,
        primary_user_assigned_identity=None,
        cmk_keyvault=None,
        resource_cmk_uri=None,
        hbi_workspace: bool = False,
        default_cpu_compute_target=None,
        default_gpu_compute_target=None,
        private_endpoint_config=None,
        private_endpoint_auto_approval: bool = True,
        exist_ok: bool = False,
        show_output: bool = True,
        user_assigned_identity_for_cmk_encryption=None,
        system_datastores_auth_mode: str = "accessKey",
        v1_legacy_mode=None,
    ) -> Workspace:
        """The workspace in the folder ``name`` (a path; relative: from the current directory), made
        there; one already there is an error unless ``exist_ok``, as in the SDK. It keeps
        ``subscription_id``, ``resource_group`` and ``location`` as its Azure names; the other
        parameters (storage, networking, keys, identities) have no meaning on one machine and are
        accepted as they are."""
        ws = cls(name)
        if ws.state_dir.exists() and not exist_ok:
            raise UserErrorException(f"a workspace already exists at {ws.root}: pass exist_ok=True to use it")
        ws.service.create()
        given = {"subscription_id": subscription_id, "resource_group": resource_group, "location": location}
        ws._azure = {key: value for key, value in given.items() if value}
        if ws._azure:
            ws._azure["workspace_name"] = ws.root.name
        return ws

    def write_config(self, path: str | os.PathLike | None = None, file_name: str | None = None) -> None:
        """Write Azure's ``config.json`` (subscription_id, resource_group, workspace_name) into
        ``path`` (default: the workspace's folder) ``/.azureml/``, for ``Workspace.from_config()``."""
        import json

        folder = Path(path or self.root) / ".azureml"
        folder.mkdir(parents=True, exist_ok=True)
        config = {"subscription_id": self.subscription_id, "resource_group": self.resource_group}
        (folder / (file_name or AZURE_CONFIG)).write_text(json.dumps({**config, "workspace_name": self.name}, indent=2))

    @property
    def name(self) -> str:
        """``workspace_name`` of the Azure ``config.json`` it was found with, else its folder's name."""
        return self._azure.get("workspace_name", self.root.name)

    @property
    def subscription_id(self) -> str:
        """That of the Azure ``config.json`` it was found with, else ``"local"``."""
        return self._azure.get("subscription_id", "local")

    @property
    def resource_group(self) -> str:
        """That of the Azure ``config.json`` it was found with, else ``"local"``."""
        return self._azure.get("resource_group", "local")

    @property
    def location(self) -> str:
        """That of the Azure ``config.json`` it was found with, else ``"local"``: this machine."""
        return self._azure.get("location", "local")

    @staticmethod
    def get(
        name: str,
        auth=None,
        subscription_id: str | None = None,
        resource_group: str | None = None,
        location: str | None = None,
        cloud: str = "AzureCloud",
        id=None,
    ) -> Workspace:
        """Azure's look-up by name, as ``Workspace(subscription_id, resource_group, name)``: the
        nearest workspace above the current directory, known by these names."""
        return Workspace(subscription_id or "local", resource_group or "local", name, _location=location)

    @staticmethod
    def list(subscription_id, auth=None, resource_group: str | None = None) -> dict:
        """``{name: [workspace]}`` of the workspace this folder is in (Azure lists a subscription's;
        here the one that code run from this folder would use), or ``{}`` outside any."""
        try:
            found = Workspace.from_config()
        except WorkspaceNotFoundError:
            return {}
        return {found.name: [found]}

    # -- the workspace's own settings ---------------------------------------------------------
    @property
    def tags(self) -> dict:
        """The tags ``update(tags=...)`` set."""
        return self.service.settings().get("tags", {})

    def update(
        self,
        friendly_name: str | None = None,
        description: str | None = None,
        tags: dict | None = None,
        image_build_compute=None,
        service_managed_resources_settings=None,
        primary_user_assigned_identity=None,
        allow_public_access_when_behind_vnet=None,
        v1_legacy_mode=None,
    ) -> None:
        """Keep ``friendly_name``, ``description`` and ``tags`` (replacing the earlier ones) in
        history.db; the other parameters are Azure resources, with no meaning here."""
        given = {"friendly_name": friendly_name, "description": description, "tags": tags}
        self.service.update_settings({key: value for key, value in given.items() if value is not None})

    def get_details(self) -> dict:
        """Azure's description of the workspace, with local values: its names, folder and settings."""
        settings = self.service.settings()
        return {
            "id": f"/subscriptions/{self.subscription_id}/resourceGroups/{self.resource_group}"
            f"/providers/Microsoft.MachineLearningServices/workspaces/{self.name}",
            "name": self.name,
            "location": self.location,
            "type": "Microsoft.MachineLearningServices/workspaces",
            "workspaceid": str(self.root),
            "friendlyName": settings.get("friendly_name", self.name),
            "description": settings.get("description", ""),
            "tags": settings.get("tags", {}),
            "defaultDatastore": settings.get("default_datastore", DEFAULT_DATASTORE),
            "provisioningState": "Succeeded",
        }

    # -- views of the workspace's records -------------------------------------------------
    def get_default_datastore(self):
        """The default datastore: ``workspaceblobstore`` unless ``set_default_datastore`` chose another."""
        from localpipe.sdk.data import Datastore

        return Datastore(self, self.service.settings().get("default_datastore", DEFAULT_DATASTORE))

    def set_default_datastore(self, name: str) -> None:
        """Make datastore ``name`` (built in, or registered) the one ``get_default_datastore`` returns."""
        names = self.service.datastore_names()
        if name not in names:
            raise UserErrorException(
                f'datastore "{name}" does not exist in workspace {self.root}: register it with '
                f"Datastore.register_local(ws, {name!r}, path), or choose one of {', '.join(names)}"
            )
        self.service.update_settings({"default_datastore": name})

    @property
    def datasets(self) -> dict:
        """Every registered dataset by name (its latest version)."""
        from localpipe.sdk.data import Dataset

        return {name: Dataset.get_by_name(self, name) for name in self.service.dataset_names()}

    @property
    def datastores(self) -> dict:
        """Every datastore by name: the two built-in ones and those registered."""
        from localpipe.sdk.data import Datastore

        return {name: Datastore(self, name) for name in self.service.datastore_names()}

    def get_default_compute_target(self, type):
        """(Deprecated in the SDK.) The target named ``DEFAULT_CPU_CLUSTER_NAME`` (``type`` "CPU") or
        ``DEFAULT_GPU_CLUSTER_NAME`` ("GPU"), or None when the workspace has none of that name."""
        import logging

        logging.getLogger(__name__).warning(
            "'get_default_compute_target' is deprecated and will be removed in a future release. "
            "Use compute_targets['name'] to retrieve an existing compute target instead."
        )
        names = {"cpu": self.DEFAULT_CPU_CLUSTER_NAME, "gpu": self.DEFAULT_GPU_CLUSTER_NAME}
        if str(type).lower() not in names:
            raise ValueError("Invalid compute type. Accepted values are CPU and GPU")
        return self.compute_targets.get(names[str(type).lower()])

    def delete(self, delete_dependent_resources: bool = False, no_wait: bool = False) -> None:
        """Delete the workspace: its ``.localpipe/`` folder (history.db, the object store with every
        output, dataset and model it holds, run folders). Refused while a run is active. The project's
        own files, the folders of ``register_local`` datastores and the machine's cache of built
        environments are never removed (``delete_dependent_resources`` changes nothing: a local
        workspace has no resources of its own elsewhere); ``no_wait`` changes nothing either."""
        self.service.delete()
        self._service = None

    @staticmethod
    def setup() -> Workspace:
        """(Deprecated in the SDK.) The nearest workspace (``from_config()``), or, when there is none,
        a new one in the current folder (as ``localpipe init``), said on stdout."""
        try:
            return Workspace.from_config()
        except WorkspaceNotFoundError:
            ws = Workspace.create(os.getcwd(), exist_ok=True)
            print(f"Created a localpipe workspace in {ws.root} (localpipe init)")
            return ws

    def get_run(self, run_id):
        """The run ``run_id`` of this workspace (the number ``localpipe runs`` shows), of its own kind."""
        return self.service.get_run(run_id)

    @property
    def experiments(self) -> dict:
        """Every experiment that has runs, by name."""
        return self.service.experiments()

    @property
    def compute_targets(self) -> dict:
        """Compute targets by name; ``local`` (the whole machine) is always there."""
        from localpipe.sdk.compute import compute_targets

        return compute_targets(self)

    @property
    def models(self) -> dict:
        """The latest version of each registered model, by name (``Model.list(ws, latest=True)``)."""
        return self.service.latest_models()

    @property
    def environments(self) -> dict:
        """Registered environments by name (their latest version)."""
        from localpipe.sdk.environment import registered_environments

        return registered_environments(self)

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Workspace) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)


def _script_folder() -> Path | None:
    """The folder of the script this process runs (``python pipeline.py``), when a workspace is
    above it: a pipeline file finds its own workspace from whatever folder it is run."""
    import sys

    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is None or not script.is_file() or {"site-packages", "dist-packages"} & set(script.parts):
        return None  # no script (python -c, a REPL), or an installed tool's (pytest, a Jupyter kernel)
    folder = script.resolve().parent
    return folder if workspace_above(folder) is not None else None


def workspace_above(folder: Path) -> Path | None:
    """The nearest folder holding a workspace, walking up from ``folder`` (itself first), if any."""
    return next((f for f in (folder, *folder.parents) if (f / STATE_DIR).is_dir()), None)


def _nearest(folder: Path) -> Path:
    """The nearest folder holding a workspace, walking up from ``folder``."""
    found = workspace_above(folder)
    if found is None:
        raise WorkspaceNotFoundError(
            f"no localpipe workspace in {folder} or any parent: run `localpipe init` there first"
        )
    return found


def _find_azure_config(start: Path, file_name: str) -> Path | None:
    """``file_name`` in ``start``, its ``.azureml/``, or those of a parent, up to the first folder
    that holds a workspace (an unrelated config.json above a project is never read)."""
    for folder in (start, *start.parents):
        for candidate in (folder / file_name, folder / ".azureml" / file_name):
            if candidate.is_file():
                return candidate
        if (folder / STATE_DIR).is_dir():
            return None
    return None


def _read_azure_config(path: Path) -> dict[str, str]:
    """The workspace settings of an Azure ML config.json; a UsageError naming it when it holds none."""
    import json

    fix = 'write {"subscription_id": ..., "resource_group": ..., "workspace_name": ...} in it, or move it away'
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else f"not JSON ({exc})"
        raise UsageError(f"Azure ML config {path} cannot be read: {reason}: {fix}") from None
    if not isinstance(config, dict):
        raise UsageError(f"Azure ML config {path} is not a JSON object: {fix}")
    scope = config.get("Scope") or config.get("scope")
    if isinstance(scope, str):  # the form azureml-core also reads: an ARM resource id
        parts = scope.strip("/").split("/")
        named = dict(zip(parts[::2], parts[1::2]))
        config = {
            "subscription_id": named.get("subscriptions"),
            "resource_group": named.get("resourceGroups"),
            "workspace_name": named.get("workspaces"),
            **{k: v for k, v in config.items() if k in AZURE_KEYS or k == "location"},
        }
    wrong = [key for key in AZURE_KEYS if not isinstance(config.get(key), str) or not config[key]]
    if wrong:
        raise UsageError(f"Azure ML config {path} lacks {', '.join(wrong)} (or they are not text): {fix}")
    keys = (*AZURE_KEYS, "location")
    return {key: config[key] for key in keys if isinstance(config.get(key), str)}
