"""Data declarations: datastores, file datasets, pipeline data and the ways a step consumes them.

A data object used in a step's ``arguments``, ``inputs`` or ``outputs`` is a *data reference*:
planning turns each into a named input or output of the step and, in the arguments, into the
path the step reads or writes at run time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from localpipe.errors import NotFoundError, UsageError

BUILTIN_DATASTORES = ("workspaceblobstore", "workspacefilestore")


class Datastore:
    """A named folder that datasets and outputs can live in."""

    def __init__(self, workspace, name: str):
        self.workspace = workspace
        self.name = name
        path = workspace.service.datastore_path(name)
        if path is None:
            raise NotFoundError(
                f'datastore "{name}" is not registered in {workspace.root}: '
                "use Datastore.register_local(ws, name, path)"
            )
        self.path = Path(path)

    @classmethod
    def get(cls, workspace, datastore_name: str) -> Datastore:
        """The datastore named ``datastore_name``."""
        return cls(workspace, datastore_name)

    @classmethod
    def register_local(cls, workspace, name: str, path: str | os.PathLike) -> Datastore:
        """Register an existing local folder as a datastore called ``name``."""
        folder = Path(path).resolve()
        if not folder.is_dir():
            raise UsageError(f'datastore "{name}": {folder} is not a folder: create it or pass an existing one')
        if name in BUILTIN_DATASTORES:
            raise UsageError(f'datastore "{name}" is built in: choose another name')
        workspace.service.register_datastore(name, folder)
        return cls(workspace, name)

    def upload(
        self,
        src_dir: str | os.PathLike,
        target_path: str | None = None,
        overwrite: bool = False,
        show_progress: bool = False,
    ) -> Path:
        """Copy the files of ``src_dir`` into ``target_path`` of this datastore; returns that folder.

        Files already there are kept unless ``overwrite``; ``target_path`` must stay inside the datastore.
        """
        return self.workspace.service.upload(self.name, Path(src_dir), target_path or "", overwrite, show_progress)

    def __repr__(self) -> str:
        return f"Datastore({self.name!r}, path={str(self.path)!r})"


@dataclass(frozen=True)
class FileDataset:
    """Files at one or more absolute local paths, consumed by steps as a folder or a file.

    A registered dataset (``register``, ``Dataset.get_by_name``) also has a ``name`` and a
    ``version``, and its files are a read-only copy in the object store.
    """

    paths: tuple[str, ...]
    name: str | None = None
    version: int | None = None

    def as_named_input(self, name: str) -> DatasetConsumptionConfig:
        """Consume this dataset as the step input called ``name``."""
        return DatasetConsumptionConfig(name=name, dataset=self)

    def as_download(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        return self.as_named_input(_default_input_name(self)).as_download(path_on_compute)

    def as_mount(self) -> DatasetConsumptionConfig:
        return self.as_named_input(_default_input_name(self)).as_mount()

    def register(
        self,
        workspace,
        name: str,
        description: str | None = None,
        tags: dict | None = None,
        create_new_version: bool = True,
    ) -> FileDataset:
        """Keep a read-only copy of the files as version N of dataset ``name``.

        The version is fixed by the content: registering unchanged content returns the same
        version; changed content makes a new one (or, with ``create_new_version=False`` on a
        name that exists, is an error).
        """
        kind, options = "file", {}
        if isinstance(self, TabularDataset):
            kind, options = "tabular", {"separator": self.separator, "header": self.header}
        return dataset_from_record(
            workspace.service.register_dataset(
                name, list(self.paths), kind, options, description, tags, create_new_version
            )
        )

    def to_path(self) -> list[str]:
        """The paths of the files."""
        return list(self.paths)


@dataclass(frozen=True)
class TabularDataset(FileDataset):
    """Delimited files read as one table: ``to_pandas_dataframe()`` (needs pandas)."""

    separator: str = ","
    header: bool = True

    def to_pandas_dataframe(self):
        """The rows of every file, in order, as one pandas DataFrame."""
        try:
            import pandas
        except ImportError:
            raise UsageError("to_pandas_dataframe needs pandas: pip install 'localpipe[pandas]'") from None
        files = [p for path in self.paths for p in _files_under(path)]
        frames = [pandas.read_csv(path, sep=self.separator, header=0 if self.header else None) for path in files]
        if not frames:
            raise UsageError(f"tabular dataset {self.paths}: no files to read: check the path")
        return pandas.concat(frames, ignore_index=True)


def _files_under(path: str) -> list[str]:
    if os.path.isdir(path):
        return sorted(str(p) for p in Path(path).rglob("*") if p.is_file())
    return [path]


def _default_input_name(dataset: FileDataset) -> str:
    return dataset.name or Path(dataset.paths[0]).name or "dataset"


class _FileDatasetFactory:
    """``Dataset.File``: builds FileDatasets."""

    @staticmethod
    def from_files(path, validate: bool = True) -> FileDataset:
        """``path``: a local path, a ``(datastore, "relative/path")`` tuple, or a list of these."""
        return FileDataset(paths=_resolve_paths(path, "Dataset.File.from_files"))


class _TabularDatasetFactory:
    """``Dataset.Tabular``: builds TabularDatasets."""

    @staticmethod
    def from_delimited_files(
        path,
        validate: bool = True,
        include_path: bool = False,
        infer_column_types: bool = True,
        set_column_types: dict | None = None,
        separator: str = ",",
        header=True,
        partition_format: str | None = None,
        support_multi_line: bool = False,
        empty_as_string: bool = False,
        encoding: str = "utf8",
    ) -> TabularDataset:
        """Delimited files at ``path`` (as for ``Dataset.File.from_files``), read as one table
        (``validate`` and ``infer_column_types``: pandas infers the types as it reads; the
        options localpipe does not read yet are refused by name rather than ignored)."""
        _not_yet(
            "Dataset.Tabular.from_delimited_files",
            include_path=(include_path, False),
            set_column_types=(set_column_types, None),
            partition_format=(partition_format, None),
            support_multi_line=(support_multi_line, False),
            empty_as_string=(empty_as_string, False),
            encoding=(encoding, "utf8"),
        )
        return TabularDataset(
            paths=_resolve_paths(path, "Dataset.Tabular.from_delimited_files"), separator=separator, header=bool(header)
        )


def _not_yet(caller: str, **given) -> None:
    """Refuse the options ``caller`` accepts (the SDK's) but localpipe does not honour yet, when
    given other than their default: ``name=(value, default)``."""
    for name, (value, default) in given.items():
        if value != default:
            raise UsageError(
                f"{caller}: {name}={value!r} is not supported by localpipe yet (docs/azureml-compat.md): leave it out"
            )


def _resolve_paths(path, caller: str) -> tuple[str, ...]:
    items = path if isinstance(path, list) else [path]
    if not items:
        raise UsageError(f"{caller}: no path given: pass a path or (datastore, path)")
    return tuple(_resolve_data_path(item) for item in items)


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
    Tabular = _TabularDatasetFactory

    class Scenario:
        """What a dataset was for, as ``Model.register(..., datasets=[(Dataset.Scenario.TRAINING, ds)])`` names it."""

        TRAINING = "training"
        VALIDATION = "validation"
        INFERENCING = "inferencing"

    @staticmethod
    def get_by_name(workspace, name: str, version: int | str = "latest") -> FileDataset:
        """A registered dataset version (``"latest"`` by default)."""
        return dataset_from_record(workspace.service.get_dataset(name, version))


def dataset_from_record(record: dict) -> FileDataset:
    """The dataset of a registered version, as the workspace service describes it."""
    if record["kind"] == "tabular":
        return TabularDataset(
            paths=tuple(record["paths"]), name=record["name"], version=record["version"], **record["options"]
        )
    return FileDataset(paths=tuple(record["paths"]), name=record["name"], version=record["version"])


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

    def as_input(self, input_name: str | None = None, name: str | None = None) -> PipelineDataInput:
        """Consume this data in another step (read-only, no copy)."""
        return PipelineDataInput(self, input_name or name or self.name, "mount")

    def as_mount(self, input_name: str | None = None) -> PipelineDataInput:
        return PipelineDataInput(self, input_name or self.name, "mount")

    def as_download(self, input_name: str | None = None, path_on_compute: str | None = None) -> PipelineDataInput:
        """Consume a copy of this data, placed in the consuming step's folder (at ``path_on_compute``
        in its inputs folder, when given)."""
        return PipelineDataInput(self, input_name or self.name, "download", path_on_compute=path_on_compute)


class OutputFileDatasetConfig(PipelineData):
    """A step output that is also written back to a datastore path once the step succeeds.

    ``destination=(datastore, "path/{run-id}/{output-name}")``; with ``register_on_complete(name)``
    each successful run also registers it as a new version of dataset ``name``.
    """

    def __init__(self, name: str | None = None, destination: tuple | None = None, source=None, partition_format=None):
        _not_yet("OutputFileDatasetConfig", partition_format=(partition_format, None))
        super().__init__(name or "output")
        if destination is not None and (len(destination) != 2 or not isinstance(destination[0], Datastore)):
            raise UsageError(f'OutputFileDatasetConfig "{self.name}": destination must be (datastore, "path")')
        self.destination = destination
        self.register_as: str | None = None

    def register_on_complete(self, name: str, description: str | None = None, tags: dict | None = None):
        """Register what the step wrote as a new version of dataset ``name`` when it succeeds."""
        self.register_as = name
        return self

    def read_delimited_files(
        self,
        include_path: bool = False,
        separator: str = ",",
        header=True,
        partition_format: str | None = None,
        path_glob: str | None = None,
        set_column_types: dict | None = None,
    ) -> TabularOutput:
        """This output as a table: its consumers get a tabular dataset (``to_pandas_dataframe()``).
        ``header`` is True or False here, or one of the SDK's PromoteHeadersBehavior values
        (0, no header; any other, a header row)."""
        _not_yet(
            "read_delimited_files",
            include_path=(include_path, False),
            partition_format=(partition_format, None),
            path_glob=(path_glob, None),
            set_column_types=(set_column_types, None),
        )
        return TabularOutput(self, {"separator": separator, "header": bool(getattr(header, "value", header))})

    def as_input(self, name: str | None = None, input_name: str | None = None) -> PipelineDataInput:
        return PipelineDataInput(self, name or input_name or self.name, "mount")


@dataclass(frozen=True)
class TabularOutput:
    """``OutputFileDatasetConfig.read_delimited_files()``: consumed through ``as_input()``."""

    data: OutputFileDatasetConfig
    options: dict

    def as_input(self, name: str | None = None) -> PipelineDataInput:
        return PipelineDataInput(self.data, name or self.data.name, "mount", self.options)


@dataclass(frozen=True, eq=False)
class PipelineDataInput:
    """A PipelineData consumed by a step, under ``name``, by ``mode`` (as a table when ``tabular``)."""

    data: PipelineData
    name: str
    mode: str
    tabular: dict | None = None
    path_on_compute: str | None = None
