"""Model: the Azure ML SDK v1's model registry, kept in the workspace (docs/models.md).

``Model.register(ws, model_path, model_name)`` keeps a read-only copy of a file or folder as the
next version of ``model_name``; ``Model(ws, name, version=...)`` and ``Model.list(ws, ...)`` find
registered versions; ``model.download(target_dir)`` copies one out; ``Model.get_model_path(name)``
gives its path, in a step too. The registry lives in history.db and the object store, reached
through ``workspace.service`` (sdk/service.py), as everything of the SDK that has a workspace.
"""

from __future__ import annotations

import os
import re
import warnings
from datetime import datetime, timezone

from localpipe.errors import ModelNotFoundException, ModelPathNotFoundException, UserErrorException, WebserviceException

# The SDK's rule for model names (azureml._model_management._util.model_name_validation).
MODEL_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9\-._]{0,254}")
# Where the SDK's Model.get_model_path looks, outside a run and without a workspace.
MODELS_DIR = "azureml-models"
MIME_TYPE = "application/octet-stream"
# A dataset's id (Azure's, and a registered version's here), as Model.list(dataset_id=ds.id) passes it.
GUID = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
NO_DATASET = ("", None)  # an id of no registered version: models name such a dataset by its paths only


class Model:
    """A registered model version: ``Model(ws, name)`` is the latest version of ``name``,
    ``Model(ws, name, version=2)`` or ``Model(ws, id="name:2")`` that one.

    ``tags`` and ``properties`` filter as in the SDK: a list of ``"key"`` or ``["key", "value"]``;
    ``run_id`` and ``model_framework`` too. A model that is not registered raises
    WebserviceException, its message starting with ``ModelNotFound``. ``expand`` has nothing to
    expand here (the run and datasets are looked up when read).
    """

    class Framework:
        """The SDK's framework names for ``model_framework``."""

        CUSTOM = "Custom"
        TENSORFLOW = "TensorFlow"
        SCIKITLEARN = "ScikitLearn"
        ONNX = "Onnx"
        TFKERAS = "TfKeras"
        PYTORCH = "PyTorch"
        MULTI = "Multi"

    def __init__(
        self,
        workspace,
        name=None,
        id=None,
        tags=None,
        properties=None,
        version=None,
        run_id=None,
        model_framework=None,
        expand=True,
        **kwargs,
    ):
        if kwargs:  # the SDK's **kwargs carry its own internals (_model_dto): nothing a user passes
            raise TypeError(f"Model.__init__() got an unexpected keyword argument '{next(iter(kwargs))}'")
        if workspace is None:  # Model.deserialize's empty shell, as in the SDK
            self._initialize(None, {})
            return
        if not id and not name:
            raise WebserviceException(
                "Error, one of id or name must be provided: Model(ws, name) or Model(ws, id='name:1')"
            )
        if id:
            name, version = _split_id(id)
        if version is not None:
            record = workspace.service.model(name, _version(version))
        else:
            filters = {"name": name, "tags": _filter_list(tags, "tags"), "run_id": run_id, "framework": model_framework}
            found = workspace.service.models({**filters, "properties": _filter_list(properties, "properties")}, True)
            if not found:
                given = {"name": name, "tags": tags, "properties": properties, "run_id": run_id}
                what = ", ".join(f"{k} {v}" for k, v in {**given, "model_framework": model_framework}.items() if v)
                raise WebserviceException(
                    f"ModelNotFound: Model with {what} not found in provided workspace: "
                    "see Model.list(ws) or `localpipe models` for what is registered"
                )
            record = found[0]
        self._initialize(workspace, record)

    def _initialize(self, workspace, record: dict) -> None:
        """The attributes the SDK's Model has, from a registered version's record."""
        self.workspace = workspace
        self.name = record.get("name")
        self.version = record.get("version")
        self.id = f"{self.name}:{self.version}" if self.name else None
        created = record.get("created_at")
        self.created_time = datetime.fromtimestamp(created, timezone.utc) if created else None  # noqa: UP017  (steps may run on Python 3.8-3.10, which lack datetime.UTC)
        self.created_by = None  # Azure's user; one machine has one
        self.description = record.get("description")
        self.tags = dict(record.get("tags") or {})
        self.properties = dict(record.get("properties") or {})
        self.model_framework = record.get("framework") or (Model.Framework.CUSTOM if self.name else None)
        self.model_framework_version = record.get("framework_version")
        self.mime_type = MIME_TYPE
        self.unpack = False
        self.url = _file_uri(record["path"]) if record.get("path") else None
        self.experiment_name = record.get("experiment")
        self.run_id = None if record.get("run_id") is None else str(record["run_id"])  # a string, as Azure's
        self.parent_id = None
        self.derived_model_ids = None
        self.resource_configuration = record.get("resource_configuration")
        self.datasets: dict[str, list] = {}
        self.sample_input_dataset = None
        self.sample_output_dataset = None
        for link in record.get("datasets", ()):
            dataset = _dataset(link)
            if link["role"] == "sample_input":
                self.sample_input_dataset = dataset
            elif link["role"] == "sample_output":
                self.sample_output_dataset = dataset
            else:
                self.datasets.setdefault(link["scenario"], []).append(dataset)
        self._record = record

    @classmethod
    def _from_record(cls, workspace, record: dict) -> Model:
        model = cls.__new__(cls)
        model._initialize(workspace, record)
        return model

    @property
    def run(self):
        """The run that registered this version (a step run, or a pipeline run), when it is still recorded."""
        if self.workspace is None or not self._record.get("pipeline_run") or self.run_id is None:
            return None
        return self.workspace.service.model_run(self._record)

    # -- registering -------------------------------------------------------------------------
    @staticmethod
    def register(
        workspace,
        model_path,
        model_name,
        tags=None,
        properties=None,
        description=None,
        datasets=None,
        model_framework=None,
        model_framework_version=None,
        child_paths=None,
        sample_input_dataset=None,
        sample_output_dataset=None,
        resource_configuration=None,
    ) -> Model:
        """Keep a read-only copy of the file or folder ``model_path`` (relative to the current
        directory) as the next version of ``model_name``; with ``child_paths``, only those paths
        of the folder. ``datasets`` is a list of ``(scenario, dataset)``: ``Dataset.Scenario.TRAINING``
        and the like, or any text. Inside a step, the step run is kept as the version's lineage."""
        fields, links = registration_fields(
            workspace,
            model_name,
            tags,
            properties,
            description,
            datasets,
            model_framework,
            model_framework_version,
            sample_input_dataset,
            sample_output_dataset,
            resource_configuration,
        )
        path = os.path.join(os.getcwd(), model_path)
        if not os.path.exists(path):
            raise ModelPathNotFoundException(
                f'model path "{model_path}" does not exist (in {os.getcwd()}): write the model there, or fix the path'
            )
        for child in child_paths or ():
            if (
                os.path.isabs(child) or os.path.normpath(child).split(os.sep)[0] == ".."
            ):  # copied at that path below the copy
                raise WebserviceException(
                    f'Error, provided child path "{child}" leaves "{model_path}": give a path relative to it, inside it'
                )
            if not os.path.exists(os.path.join(path, child)):
                raise WebserviceException(
                    f'Error, provided child path "{child}" cannot be found in "{model_path}": fix child_paths'
                )
        print(f"Registering model {model_name}")
        record = workspace.service.register_model(model_name, path, list(child_paths or ()), fields, links, None)
        return Model._from_record(workspace, record)

    # -- finding -----------------------------------------------------------------------------
    @staticmethod
    def list(
        workspace,
        name=None,
        tags=None,
        properties=None,
        run_id=None,
        latest=False,
        dataset_id=None,
        expand=True,
        page_count=255,
        model_framework=None,
    ) -> list[Model]:
        """The registered versions, newest first, filtered by ``name``, ``tags`` and ``properties``
        (lists of ``"key"`` or ``["key", "value"]``), ``run_id``, ``model_framework`` and
        ``dataset_id`` (a registered dataset: its ``id``, as Azure's, ``"name"`` or
        ``"name:version"``); with ``latest``, only the newest version of each name. ``expand`` and
        ``page_count`` (a page's size at Azure's service) change nothing here; ``page_count`` is
        checked as the SDK checks it."""
        if page_count and (page_count < 20 or page_count > 255):
            raise UserErrorException(f"Expected page_count value is between 20 and 255. Provided: {page_count}")
        if tags is not None and not isinstance(tags, list):
            raise UserErrorException(
                f'Expected tags must be list type. Ex. ["key", ["key2", "key2 value"]]: provided {type(tags)}'
            )
        dataset = _dataset_filter(workspace, dataset_id)
        if dataset == NO_DATASET:
            return []
        filters = {
            "name": name,
            "tags": _filter_list(tags, "tags"),
            "properties": _filter_list(properties, "properties"),
            "run_id": run_id,
            "framework": model_framework,
            "dataset": dataset,
        }
        return [Model._from_record(workspace, r) for r in workspace.service.models(filters, bool(latest))]

    @staticmethod
    def get_model_path(model_name, version=None, _workspace=None) -> str:
        """The path of a registered model's file or folder: in a step, in the step's workspace;
        else in ``_workspace``. The path is the read-only copy in the object store (no download).
        Without either, as the SDK: ``./azureml-models/NAME/VERSION/`` (the latest version when
        ``version`` is None) holding one entry, else ``./NAME``."""
        if version is not None and not isinstance(version, int):
            raise WebserviceException(f"version should be an int, not {version!r}: pass version=2")
        workspace = _step_workspace() or _workspace
        if workspace is None:
            return _local_model_path(model_name, version)
        try:
            model = Model(workspace, name=model_name, version=version)
        except WebserviceException:
            known = sorted(f"{m.name}/{m.version}" for m in Model.list(workspace))
            raise ModelNotFoundException(
                f"Model/Version {model_name}/{version} not found in workspace {workspace.root} ({known}): "
                "register it first (Model.register, run.register_model)"
            ) from None
        return model._files_path()

    def _files_path(self) -> str:
        """Where the SDK's download would have put the model, here in the store: its one file, or
        its folder (its one file, if that folder holds only one, as the SDK's common path of what
        it downloaded)."""
        path = self._record["path"]
        if os.path.isdir(path) and self._record["files"] == 1:
            for folder, _, names in os.walk(path):
                if names:
                    return os.path.join(folder, names[0])
        return path

    # -- using -------------------------------------------------------------------------------
    def download(self, target_dir=".", exist_ok=False, exists_ok=None) -> str:
        """Copy the model's file or folder into ``target_dir``; returns the path of what was copied
        (its one file, if it is a folder of one file, as in the SDK). A file that exists there is
        an error unless ``exist_ok`` (``exists_ok`` is its deprecated name)."""
        if exists_ok is not None:
            warnings.warn("exists_ok is deprecated: use exist_ok", DeprecationWarning, stacklevel=2)
            exist_ok = exists_ok
        record = self.workspace.service.model(self.name, self.version)  # ModelNotFound once deleted, as the SDK
        return self.workspace.service.download_model(record, str(target_dir), bool(exist_ok))

    def update(
        self,
        tags=None,
        description=None,
        sample_input_dataset=None,
        sample_output_dataset=None,
        resource_configuration=None,
    ) -> None:
        """Replace the tags (all of them), the description, the sample datasets or the resource
        configuration, where given."""
        changes: dict = {}
        if tags:
            changes["tags"] = _dict(tags, "Tags")
        if description:
            changes["description"] = description
        if resource_configuration:
            changes["resource_configuration"] = _resource_configuration(resource_configuration)
        links = _dataset_links(None, sample_input_dataset, sample_output_dataset)
        if links:
            changes["datasets"] = links
        self._apply(changes)

    def update_tags_properties(self, add_tags=None, remove_tags=None, add_properties=None) -> None:
        """Add and remove tags, and add properties (a property that exists cannot change)."""
        taken = [key for key in add_properties or () if key in self.properties]
        if taken:
            raise WebserviceException(
                f"Error, properties are immutable, the following keys cannot be added/modified: {','.join(taken)}"
            )
        tags = dict(self.tags)
        for key, value in (add_tags or {}).items():
            if key in tags:
                print(f"Replacing tag {key} -> {tags[key]} with {key} -> {value}")
            tags[key] = value
        if remove_tags is not None:
            for key in remove_tags if isinstance(remove_tags, list) else [remove_tags]:
                if tags.pop(key, None) is None:
                    print(f"Tag with key {key} not found.")
        changes: dict = {}
        if tags != self.tags:
            changes["tags"] = tags
        if add_properties:
            changes["properties"] = {**self.properties, **_dict(add_properties, "Properties")}
        if changes:
            self._apply(changes)

    def add_tags(self, tags) -> None:
        """Add (or replace) these tags."""
        self.update_tags_properties(add_tags=tags)
        print("Model tag add operation complete.")

    def remove_tags(self, tags) -> None:
        """Remove the tags of these keys."""
        self.update_tags_properties(remove_tags=tags)
        print("Model tag remove operation complete.")

    def add_properties(self, properties) -> None:
        """Add properties (those it has cannot change)."""
        self.update_tags_properties(add_properties=properties)
        print("Model properties add operation complete.")

    def add_dataset_references(self, datasets) -> None:
        """Name more datasets: a list of ``(scenario, dataset)``."""
        self._apply({"datasets": _dataset_links(datasets, None, None)})

    def delete(self) -> None:
        """Forget this version; its files leave the object store at the next ``localpipe gc``."""
        self.workspace.service.delete_model(self.name, self.version)

    def _apply(self, changes: dict) -> None:
        self._initialize(self.workspace, self.workspace.service.update_model(self.name, self.version, changes))

    # -- as data -----------------------------------------------------------------------------
    def serialize(self) -> dict:
        """The model as the SDK's JSON dictionary."""
        datasets = [
            {"name": scenario, "id": _dataset_id(dataset)}
            for scenario, found in self.datasets.items()
            for dataset in found
        ]
        return {
            "createdTime": self.created_time.isoformat() if self.created_time else None,
            "createdBy": self.created_by,
            "description": self.description,
            "id": self.id,
            "mimeType": self.mime_type,
            "name": self.name,
            "framework": self.model_framework,
            "frameworkVersion": self.model_framework_version,
            "tags": self.tags,
            "properties": self.properties,
            "unpack": self.unpack,
            "url": self.url,
            "version": self.version,
            "experimentName": self.experiment_name,
            "runId": self.run_id,
            "runDetails": str(self.run),
            "datasets": datasets,
            "resourceConfiguration": self.resource_configuration,
            "sampleInputDatasetId": _dataset_id(self.sample_input_dataset),
            "sampleOutputDatasetId": _dataset_id(self.sample_output_dataset),
        }

    @staticmethod
    def deserialize(workspace, model_payload) -> Model:
        """The registered version a ``serialize()`` dictionary names, read again from ``workspace``."""
        return Model(workspace, id=model_payload["id"])

    def __repr__(self) -> str:
        return (
            f"Model(workspace={self.workspace!r}, name={self.name}, id={self.id}, version={self.version}, "
            f"tags={self.tags}, properties={self.properties})"
        )


def registration_fields(
    workspace,
    model_name,
    tags,
    properties,
    description,
    datasets,
    model_framework,
    model_framework_version,
    sample_input_dataset,
    sample_output_dataset,
    resource_configuration,
) -> tuple[dict, list[dict]]:
    """What a registration keeps, checked as the SDK checks it: the version's fields, and its
    dataset links. Shared by ``Model.register`` and ``run.register_model``."""
    if not isinstance(model_name, str) or not MODEL_NAME.fullmatch(model_name):
        raise WebserviceException(
            f"Error, provided model name {model_name!r} is invalid. It must only consist of letters, numbers, "
            "dashes, periods, or underscores, start with a letter or number, and be between 1 and 255 characters long."
        )
    if model_framework is None and model_framework_version is not None:
        raise WebserviceException(
            "Model framework version cannot be provided without a valid framework: pass model_framework too"
        )
    fields = {
        "description": description,
        "tags": _dict(tags, "Tags") if tags else {},
        "properties": _dict(properties, "Properties") if properties else {},
        "framework": model_framework,
        "framework_version": model_framework_version,
        "resource_configuration": _resource_configuration(resource_configuration) if resource_configuration else None,
    }
    return fields, _dataset_links(datasets, sample_input_dataset, sample_output_dataset)


def _dict(value, what: str) -> dict:
    import json

    if not isinstance(value, dict):
        raise WebserviceException(f"{what} must be a dict, not {type(value).__name__}: pass {{'key': 'value'}}")
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        raise WebserviceException(
            f"Error with JSON serialization for {what.lower()}, be sure they are properly formatted: "
            "use text, numbers and booleans"
        ) from None


def _resource_configuration(value) -> dict:
    if isinstance(value, dict):
        return value
    if hasattr(value, "serialize"):
        return value.serialize()
    raise WebserviceException(
        f"resource_configuration must be a ResourceConfiguration or a dict, not {type(value).__name__}"
    )


def _dataset_links(datasets, sample_input, sample_output) -> list[dict]:
    """``{"role", "scenario", "name", "version", "paths"}`` for each dataset named."""
    links = []
    for pair in datasets or ():
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            raise WebserviceException(
                f"datasets takes (scenario, dataset) pairs, not {pair!r}: pass [(Dataset.Scenario.TRAINING, dataset)]"
            )
        links.append(_dataset_link("dataset", pair[0], pair[1]))
    for role, dataset in (("sample_input", sample_input), ("sample_output", sample_output)):
        if dataset is not None:
            links.append(_dataset_link(role, None, dataset))
    return links


def _dataset_link(role: str, scenario, dataset) -> dict:
    from localpipe.sdk.data import FileDataset

    if not isinstance(dataset, FileDataset):
        raise WebserviceException(
            f"Invalid dataset of type {type(dataset).__name__} passed, must be of type Dataset: pass a FileDataset or "
            "TabularDataset (Dataset.get_by_name(ws, name), Dataset.File.from_files(path))"
        )
    return {
        "role": role,
        "scenario": scenario,
        "name": dataset.name,
        "version": dataset.version,
        "paths": list(dataset.paths),
    }


def _dataset(link: dict):
    from localpipe.sdk.data import dataset_from_record

    return dataset_from_record(link)


def _dataset_id(dataset) -> str | None:
    if dataset is None:
        return None
    return f"{dataset.name}:{dataset.version}" if dataset.name else None


def _dataset_filter(workspace, dataset_id) -> tuple[str, int | None] | None:
    """The registered dataset ``dataset_id`` names: its ``id`` (a GUID, as Azure's), ``"name"`` or
    ``"name:version"``; ``NO_DATASET`` for an id no registered version has."""
    if dataset_id is None:
        return None
    if GUID.fullmatch(str(dataset_id)):
        try:
            record = workspace.service.get_dataset_by_id(str(dataset_id))
        except UserErrorException:
            return NO_DATASET  # no dataset has it: no model names it
        return (record["name"], record["version"]) if "definition" not in record else NO_DATASET
    name, _, version = str(dataset_id).partition(":")
    return name, _version(version) if version else None


def _filter_list(values, what: str) -> list | None:
    """The SDK's filter form: ``["key", ["key2", "value"]]``."""
    if values is None:
        return None
    for item in values:
        if not isinstance(item, (str, list, tuple)) or (not isinstance(item, str) and len(item) != 2):
            raise UserErrorException(f'{what} filters are "key" or ["key", "value"], not {item!r}')
    return [list(item) if isinstance(item, (list, tuple)) else item for item in values]


def _split_id(model_id: str) -> tuple[str, int]:
    name, sep, version = str(model_id).rpartition(":")
    if not sep or not name:
        raise WebserviceException(f'model id "{model_id}" is not "name:version": pass id="{model_id}:1"')
    return name, _version(version)


def _version(version) -> int:
    try:
        return int(version)
    except (TypeError, ValueError):
        raise WebserviceException(f"version should be an int, not {version!r}: pass version=2") from None


def _file_uri(path: str) -> str:
    from pathlib import Path

    return Path(path).as_uri()


def _step_workspace():
    """The workspace of the step this process is (a step's ``Run.get_context().experiment.workspace``)."""
    root = os.environ.get("LOCALPIPE_WORKSPACE")
    if not (root and os.environ.get("LOCALPIPE_STEP_RUN_ID")):
        return None
    from localpipe.sdk.workspace import Workspace

    return Workspace(root)


def _local_model_path(model_name: str, version: int | None) -> str:
    """The SDK's look-up without a workspace: its download cache in the current folder, then ./NAME."""
    folder = os.path.join(MODELS_DIR, model_name)
    if os.path.isdir(folder):
        versions = [int(v) for v in os.listdir(folder) if v.isdigit()]
        chosen = version if version is not None else max(versions, default=None)
        candidate = os.path.join(folder, str(chosen))
        if chosen is not None and os.path.isdir(candidate):
            entries = os.listdir(candidate)
            if len(entries) != 1:
                raise WebserviceException(f"Dir {candidate} can contain only 1 file or folder. Found {entries}")
            return os.path.join(candidate, entries[0])
    if os.path.exists(model_name):
        return model_name
    raise ModelNotFoundException(
        f"Model {model_name} not found in cache at {MODELS_DIR} or in current working directory {os.getcwd()}: "
        "pass _workspace=ws to find it in a workspace"
    )
