"""Data passed between steps: PipelineData (and ``as_dataset()``), OutputFileDatasetConfig, and the ways
a consuming step reads them (PipelineDataInput).

A PipelineData is an output of the step that lists it in ``outputs`` (or gives it bare in its
``arguments``) and an input of the steps that list it in ``inputs`` or pass ``as_input()``,
``as_mount()``, ``as_download()``, or a ``parse_*_files()`` table of it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from localpipe.errors import UsageError, UserErrorException
from localpipe.sdk.data.datasets import _check_fraction, _not_yet, _seed
from localpipe.sdk.data.datastore import Datastore
from localpipe.sdk.data.locate import checked_format
from localpipe.sdk.data.tables import column_types

OUTPUT_MODES = ("mount", "upload")
DATASET_OUTPUT_ARGUMENT = "DatasetOutputConfig:"  # the SDK's _DATASET_OUTPUT_ARGUMENT_TEMPLATE


class PipelineData:
    """Intermediate data: written by one step into a folder localpipe creates, read by others.

    ``output_mode`` mount or upload: either way the step writes into that folder and its content is
    kept once the step succeeds. ``pipeline_output_name`` names the output for the whole pipeline
    (each step's ``pipeline_outputs`` in the run's graph). ``output_overwrite`` has no meaning here:
    every run writes into a new, empty folder.
    """

    def __init__(
        self,
        name: str,
        datastore: Datastore | None = None,
        output_name: str | None = None,
        output_mode: str = "mount",
        output_path_on_compute: str | None = None,
        output_overwrite: bool | None = None,
        data_type: str | None = None,
        is_directory: bool | None = None,
        pipeline_output_name: str | None = None,
        training_output=None,
    ):
        caller = f'PipelineData "{name}"'
        if output_mode not in OUTPUT_MODES:
            raise UserErrorException(f"{caller}: output_mode {output_mode!r} is not mount or upload")
        _not_yet(caller, output_path_on_compute=(output_path_on_compute, None))
        self.name = name
        self.datastore = datastore
        self.output_name = output_name or name
        self.output_mode = output_mode
        self.output_overwrite = output_overwrite
        self.data_type = data_type or "AnyDirectory"
        self.is_directory = True if is_directory is None else bool(is_directory)
        self.pipeline_output_name = pipeline_output_name
        self._training_output = training_output  # what a HyperDriveStep writes there (sdk/hyperdrive.py)
        # The steps that declared this as an output; validation wants exactly one.
        self.producers: list = []

    @property
    def training_output(self):
        """The ``TrainingOutput`` given: what a HyperDriveStep writes into this data."""
        return self._training_output

    def as_input(self, input_name: str | None = None) -> PipelineDataInput:
        """Consume this data in another step (read-only, no copy), as input ``input_name`` (the SDK
        requires it; left out, it is the data's own name)."""
        return PipelineDataInput(self, input_name or self.name, "mount")

    def as_mount(self, input_name: str | None = None) -> PipelineDataInput:
        """Consume this data in another step (read-only, no copy)."""
        return PipelineDataInput(self, input_name or self.name, "mount")

    def as_download(
        self, input_name: str | None = None, path_on_compute: str | None = None, overwrite: bool | None = None
    ) -> PipelineDataInput:
        """Consume a copy of this data, placed in the consuming step's folder (at ``path_on_compute``
        in its inputs folder, when given; ``overwrite`` has no meaning: the folder is new)."""
        return PipelineDataInput(self, input_name or self.name, "download", path_on_compute=path_on_compute)

    def create_input_binding(
        self,
        input_name: str | None = None,
        mode: str | None = None,
        path_on_compute: str | None = None,
        overwrite: bool | None = None,
    ) -> PipelineDataInput:
        """Consume this data by ``mode`` (mount, the default, or download)."""
        if (mode or "mount") == "download":
            return self.as_download(input_name, path_on_compute, overwrite)
        if mode not in (None, "mount"):
            raise UserErrorException(f'PipelineData "{self.name}": input mode {mode!r} is not mount or download')
        return self.as_mount(input_name)

    def get_env_variable_name(self) -> str:
        """``$AZUREML_DATAREFERENCE_<name>``, as the SDK names this data (its ``str()``)."""
        return str(self)

    def as_dataset(self) -> PipelineOutputFileDataset:
        """This output as a file dataset: its consumers may read it as a table (``parse_parquet_files()``,
        ``parse_delimited_files()``)."""
        return PipelineOutputFileDataset(self)

    def __str__(self) -> str:
        return f"$AZUREML_DATAREFERENCE_{self.name}"

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"


class PipelineOutputFileDataset(PipelineData):
    """``PipelineData.as_dataset()``: the same output (declare it in the producer's ``outputs``), which
    consumers take as it is (a folder) or parsed as a table."""

    def __init__(self, data: PipelineData):
        self.__dict__.update(vars(data))  # the same data: the producers list is shared

    def parse_delimited_files(
        self,
        include_path: bool = False,
        separator: str = ",",
        header=True,
        partition_format: str | None = None,
        file_extension: str = "",
        set_column_types: dict | None = None,
        quoted_line_breaks: bool = False,
    ) -> PipelineDataInput:
        """Consumed as a table of the delimited files its producer wrote (those ending in
        ``file_extension``, when given); ``input_datasets[name]`` is a TabularDataset."""
        caller = f'PipelineData "{self.name}".parse_delimited_files'
        options = {
            "format": "delimited",
            "separator": separator,
            "header": bool(getattr(header, "value", header)),
            "include_path": include_path,
            "set_column_types": column_types(caller, set_column_types),
            "partition_format": checked_format(caller, partition_format),
            "file_extension": file_extension,
        }
        return PipelineDataInput(self, self.name, "mount", options)

    def parse_parquet_files(
        self,
        include_path: bool = False,
        partition_format: str | None = None,
        file_extension: str = ".parquet",
        set_column_types: dict | None = None,
    ) -> PipelineDataInput:
        """Consumed as a table of the Parquet files its producer wrote (those ending in
        ``file_extension``); ``input_datasets[name]`` is a TabularDataset (needs pyarrow)."""
        caller = f'PipelineData "{self.name}".parse_parquet_files'
        options = {
            "format": "parquet",
            "include_path": include_path,
            "set_column_types": column_types(caller, set_column_types),
            "partition_format": checked_format(caller, partition_format),
            "file_extension": file_extension,
        }
        return PipelineDataInput(self, self.name, "mount", options)


class OutputFileDatasetConfig(PipelineData):
    """A step output that is also written back to a datastore path once the step succeeds.

    ``destination=(datastore, "path/{run-id}/{output-name}")``; with ``register_on_complete(name)``
    each successful run also registers it as a new version of dataset ``name``. ``as_mount()`` and
    ``as_upload()`` keep it an output (the step writes into a folder; what it wrote is copied to the
    destination, replacing the folder there as a whole, once it succeeds).
    """

    def __init__(self, name: str | None = None, destination: tuple | None = None, source=None, partition_format=None):
        _not_yet("OutputFileDatasetConfig", partition_format=(partition_format, None))
        super().__init__(name or "output")
        if destination is not None and (len(destination) != 2 or not isinstance(destination[0], Datastore)):
            raise UsageError(f'OutputFileDatasetConfig "{self.name}": destination must be (datastore, "path")')
        self.destination = destination
        self.source = source
        self.register_as: str | None = None
        self.register_description: str | None = None
        self.register_tags: dict | None = None
        self.register_table: dict | None = None  # how the registered TabularDataset reads the files

    @property
    def mode(self) -> str:
        """How the output reaches its destination: ``mount`` (the default) or ``upload`` (``as_upload()``)."""
        return self.output_mode

    @property
    def arg_val(self) -> str:
        """``DatasetOutputConfig:<name>``: the SDK's placeholder for this output in a command line."""
        return f"{DATASET_OUTPUT_ARGUMENT}{self.name}"

    def register_on_complete(self, name: str, description: str | None = None, tags: dict | None = None):
        """Register what the step wrote as a new version of dataset ``name`` when it succeeds."""
        self.register_as, self.register_description, self.register_tags = name, description, tags
        self.register_table = None
        return self

    def as_mount(self, disable_metadata_cache: bool = False) -> OutputFileDatasetConfig:
        """This output, written through a folder the step writes into (it stays an output)."""
        self.output_mode = "mount"
        return self

    def as_upload(self, overwrite: bool = False, source_globs: list | None = None) -> OutputFileDatasetConfig:
        """This output, written in the step's folder and copied to its destination when the step
        succeeds (it stays an output). The destination folder is replaced as a whole either way."""
        _not_yet(f'OutputFileDatasetConfig "{self.name}".as_upload', source_globs=(source_globs, None))
        self.output_mode = "upload"
        self.output_overwrite = overwrite
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
        """This output as a table of delimited files (those matching ``path_glob`` below it, when
        given): its consumers get a TabularDataset. ``header`` is True or False here, or one of the
        SDK's PromoteHeadersBehavior values (0, no header; any other, a header row)."""
        caller = "read_delimited_files"
        options = {
            "format": "delimited",
            "separator": separator,
            "header": bool(getattr(header, "value", header)),
            "include_path": include_path,
            "set_column_types": column_types(caller, set_column_types),
            "partition_format": checked_format(caller, partition_format),
            "path_glob": path_glob,
        }
        return TabularOutput(self, options)

    def read_parquet_files(
        self,
        include_path: bool = False,
        partition_format: str | None = None,
        path_glob: str | None = None,
        set_column_types: dict | None = None,
    ) -> TabularOutput:
        """This output as a table of Parquet files (those matching ``path_glob``, when given): its
        consumers get a TabularDataset (needs pyarrow)."""
        caller = "read_parquet_files"
        options = {
            "format": "parquet",
            "include_path": include_path,
            "set_column_types": column_types(caller, set_column_types),
            "partition_format": checked_format(caller, partition_format),
            "path_glob": path_glob,
        }
        return TabularOutput(self, options)

    def as_input(self, name: str | None = None) -> PipelineDataInput:
        """Consume this output in another step (read-only, no copy)."""
        return PipelineDataInput(self, name or self.name, "mount")


@dataclass(frozen=True)
class TabularOutput:
    """``OutputFileDatasetConfig.read_delimited_files()`` / ``read_parquet_files()`` (the SDK's
    OutputTabularDatasetConfig): the output its producer writes as files, read as a table by the
    steps that consume it through ``as_input()`` and by the dataset ``register_on_complete`` makes."""

    data: OutputFileDatasetConfig
    options: dict
    split_name: str | None = None  # random_split's halves are "NAME_1" and "NAME_2", as in the SDK

    @property
    def name(self) -> str:
        return self.split_name or self.data.name

    def as_input(self, name: str | None = None) -> PipelineDataInput:
        return PipelineDataInput(self.data, name or self.name, "mount", self.options)

    def keep_columns(self, columns) -> TabularOutput:
        """The table with only ``columns`` (a name or a list)."""
        return self._then("keep_columns", [columns] if isinstance(columns, str) else list(columns))

    def drop_columns(self, columns) -> TabularOutput:
        """The table without ``columns`` (a name or a list)."""
        return self._then("drop_columns", [columns] if isinstance(columns, str) else list(columns))

    def random_split(self, percentage: float, seed: int | None = None) -> tuple[TabularOutput, TabularOutput]:
        """About ``percentage`` of the rows, and the others (one draw splits both), named NAME_1 and NAME_2."""
        _check_fraction("random_split", "percentage", percentage)
        seed = _seed(seed)
        first, second = self._then("sample", percentage, seed, True), self._then("sample", percentage, seed, False)
        return replace(first, split_name=f"{self.name}_1"), replace(second, split_name=f"{self.name}_2")

    def _then(self, *transform) -> TabularOutput:
        return replace(
            self, options={**self.options, "transforms": [*self.options.get("transforms", []), list(transform)]}
        )

    def register_on_complete(self, name: str, description: str | None = None, tags: dict | None = None):
        """Register what the producer wrote as a new version of TabularDataset ``name`` when it
        succeeds, read as this table is (the files ``path_glob`` matches, when given)."""
        self.data.register_on_complete(name, description, tags)
        self.data.register_table = self.options
        return self


@dataclass(frozen=True, eq=False)
class PipelineDataInput:
    """A PipelineData consumed by a step, under ``name``, by ``mode`` (as a table when ``tabular``)."""

    data: PipelineData
    name: str
    mode: str
    tabular: dict | None = None
    path_on_compute: str | None = None
