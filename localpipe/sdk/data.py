"""Data declarations: datastores, file datasets, pipeline data and the ways a step consumes them.

A data object used in a step's ``arguments``, ``inputs`` or ``outputs`` is a *data reference*:
planning turns each into a named input or output of the step and, in the arguments, into the
path the step reads or writes at run time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from localpipe.errors import NotFoundError, UsageError

if TYPE_CHECKING:
    from localpipe.sdk.workspace import Workspace

BUILTIN_DATASTORES = ("workspaceblobstore", "workspacefilestore")


class Datastore:
    """A named folder that datasets and outputs can live in."""

    def __init__(self, workspace: Workspace, name: str):
        from localpipe.state import records

        self.workspace = workspace
        self.name = name
        if name in BUILTIN_DATASTORES:
            self.path = workspace.state_dir / "datastores" / name
        else:
            path = records.datastore_path(workspace, name)
            if path is None:
                raise NotFoundError(
                    f'datastore "{name}" is not registered in {workspace.root}: '
                    "use Datastore.register_local(ws, name, path)"
                )
            self.path = Path(path)

    @classmethod
    def get(cls, workspace: Workspace, datastore_name: str) -> Datastore:
        """The datastore named ``datastore_name``."""
        return cls(workspace, datastore_name)

    @classmethod
    def register_local(cls, workspace: Workspace, name: str, path: str | os.PathLike) -> Datastore:
        """Register an existing local folder as a datastore called ``name``."""
        from localpipe.state import records

        folder = Path(path).resolve()
        if not folder.is_dir():
            raise UsageError(f'datastore "{name}": {folder} is not a folder: create it or pass an existing one')
        if name in BUILTIN_DATASTORES:
            raise UsageError(f'datastore "{name}" is built in: choose another name')
        records.register_datastore(workspace, name, folder)
        return cls(workspace, name)

    def __repr__(self) -> str:
        return f"Datastore({self.name!r}, path={str(self.path)!r})"


@dataclass(frozen=True)
class FileDataset:
    """Files at one or more absolute local paths, consumed by steps as a folder or a file."""

    paths: tuple[str, ...]

    def as_named_input(self, name: str) -> DatasetConsumptionConfig:
        """Consume this dataset as the step input called ``name``."""
        return DatasetConsumptionConfig(name=name, dataset=self)

    def as_download(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        return self.as_named_input(_default_input_name(self)).as_download(path_on_compute)

    def as_mount(self) -> DatasetConsumptionConfig:
        return self.as_named_input(_default_input_name(self)).as_mount()


def _default_input_name(dataset: FileDataset) -> str:
    return Path(dataset.paths[0]).name or "dataset"


class _FileDatasetFactory:
    """``Dataset.File``: builds FileDatasets."""

    @staticmethod
    def from_files(path, validate: bool = True) -> FileDataset:
        """``path``: a local path, a ``(datastore, "relative/path")`` tuple, or a list of these."""
        items = path if isinstance(path, list) else [path]
        if not items:
            raise UsageError("Dataset.File.from_files: no path given: pass a path or (datastore, path)")
        return FileDataset(paths=tuple(_resolve_data_path(item) for item in items))


def _resolve_data_path(item) -> str:
    if isinstance(item, tuple):
        if len(item) != 2 or not isinstance(item[0], Datastore):
            raise UsageError(f"Dataset.File.from_files: {item!r} is not a (datastore, path) pair")
        store, relative = item
        target = (store.path / str(relative)).resolve()
        if not target.is_relative_to(store.path.resolve()):
            raise UsageError(f'Dataset.File.from_files: path "{relative}" leaves datastore "{store.name}"')
        return str(target)
    if isinstance(item, (str, os.PathLike)):
        return os.path.abspath(item)
    raise UsageError(f"Dataset.File.from_files: {item!r} is neither a path nor a (datastore, path) pair")


class Dataset:
    """Entry point for dataset factories, as in the Azure ML SDK: ``Dataset.File.from_files(...)``."""

    File = _FileDatasetFactory


@dataclass(frozen=True)
class DatasetConsumptionConfig:
    """How a step consumes a dataset: its input name and mode (``mount`` or ``download``)."""

    name: str
    dataset: FileDataset
    mode: str = "mount"
    path_on_compute: str | None = None

    def as_download(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        """Copy the data into the step's folder before it starts."""
        return replace(self, mode="download", path_on_compute=path_on_compute)

    def as_mount(self) -> DatasetConsumptionConfig:
        """Give the step a read-only path to the data, with no copy."""
        return replace(self, mode="mount")


@dataclass(eq=False)
class PipelineData:
    """Intermediate data: written by one step into a folder localpipe creates, read by others."""

    name: str
    datastore: Datastore | None = None
    output_name: str | None = None
    is_directory: bool = True
    # The steps that declared this as an output; validation wants exactly one.
    producers: list = field(default_factory=list, repr=False)

    def __post_init__(self):
        self.output_name = self.output_name or self.name

    def as_input(self, input_name: str | None = None) -> PipelineDataInput:
        """Consume this data in another step (read-only, no copy)."""
        return PipelineDataInput(self, input_name or self.name, "mount")

    def as_mount(self, input_name: str | None = None) -> PipelineDataInput:
        return PipelineDataInput(self, input_name or self.name, "mount")

    def as_download(self, input_name: str | None = None, path_on_compute: str | None = None) -> PipelineDataInput:
        """Consume a copy of this data, placed in the consuming step's folder."""
        return PipelineDataInput(self, input_name or self.name, "download")


@dataclass(frozen=True, eq=False)
class PipelineDataInput:
    """A PipelineData consumed by a step, under ``name``, by ``mode``."""

    data: PipelineData
    name: str
    mode: str
