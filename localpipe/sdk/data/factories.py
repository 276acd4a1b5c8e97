"""The dataset factories: ``Dataset.File`` (FileDatasetFactory) and ``Dataset.Tabular``
(TabularDatasetFactory), the ``Dataset`` namespace, and the paths they take (local paths and glob
patterns, ``(datastore, "path")``, DataReference and DataPath, http(s) URLs)."""

from __future__ import annotations

import os
from pathlib import Path

from localpipe.errors import UsageError, UserErrorException
from localpipe.sdk.data.datasets import FileDataset, TabularDataset, _not_yet
from localpipe.sdk.data.datastore import Datastore, datastore_file, datastore_target
from localpipe.sdk.data.locate import checked, checked_format, resolve_paths, target_of
from localpipe.sdk.data.tables import ENCODINGS, column_types


class FileDatasetFactory:
    """``Dataset.File``: builds FileDatasets."""

    @staticmethod
    def from_files(path, validate: bool = True, partition_format: str | None = None, is_file: bool = False):
        """Files at ``path``: a local path or glob pattern, ``(datastore, "relative/path/*.csv")``, a
        DataReference or DataPath (``datastore.path("imgs")``), or a list of these. ``validate``: some
        file must match. ``is_file`` (a hint to the SDK's service about the paths) changes nothing here."""
        caller = "Dataset.File.from_files"
        dataset = FileDataset(
            paths=resolve_paths(path, caller), partition_format=checked_format(caller, partition_format)
        )
        return checked(dataset, validate)

    @staticmethod
    def upload_directory(src_dir, target, pattern: str | None = None, overwrite: bool = False, show_progress=True):
        """Copy the files of ``src_dir`` (those whose name matches ``pattern``, when given) to
        ``target`` (``(datastore, "path")`` or a DataPath), and return them as a FileDataset."""
        import fnmatch

        store, relative = target_of(target, "Dataset.File.upload_directory")
        if not os.path.isdir(src_dir):
            raise UserErrorException(f"Dataset.File.upload_directory: {src_dir} is not a folder: pass a folder")
        files = [
            os.path.join(folder, name)
            for folder, _, names in os.walk(src_dir)
            for name in names
            if pattern is None or fnmatch.fnmatch(name, pattern)
        ]
        store.workspace.service.upload(
            store.name, [Path(f) for f in files], Path(os.path.abspath(src_dir)), relative, overwrite, show_progress
        )
        return FileDataset(paths=(datastore_file(store, relative, "Dataset.File.upload_directory"),))


class TabularDatasetFactory:
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
        """Delimited files at ``path`` (as for ``Dataset.File.from_files``), read as one table.
        pandas infers the column types (``infer_column_types``) and reads quoted line breaks
        (``support_multi_line``) in any case."""
        caller = "Dataset.Tabular.from_delimited_files"
        if encoding not in ENCODINGS:
            raise UserErrorException(f"{caller}: encoding {encoding!r} is not one of {', '.join(ENCODINGS)}")
        dataset = TabularDataset(
            paths=resolve_paths(path, caller),
            separator=separator,
            header=bool(getattr(header, "value", header)),
            encoding=encoding,
            empty_as_string=empty_as_string,
            include_path=include_path,
            set_column_types=column_types(caller, set_column_types),
            partition_format=checked_format(caller, partition_format),
        )
        return checked(dataset, validate)

    @staticmethod
    def from_parquet_files(
        path,
        validate: bool = True,
        include_path: bool = False,
        set_column_types: dict | None = None,
        partition_format: str | None = None,
    ) -> TabularDataset:
        """Parquet files at ``path`` (as for ``Dataset.File.from_files``), read as one table (needs pyarrow)."""
        caller = "Dataset.Tabular.from_parquet_files"
        dataset = TabularDataset(
            paths=resolve_paths(path, caller),
            format="parquet",
            include_path=include_path,
            set_column_types=column_types(caller, set_column_types),
            partition_format=checked_format(caller, partition_format),
        )
        return checked(dataset, validate)

    @staticmethod
    def from_json_lines_files(
        path,
        validate: bool = True,
        include_path: bool = False,
        set_column_types: dict | None = None,
        partition_format: str | None = None,
        invalid_lines: str = "error",
        encoding: str = "utf8",
    ) -> TabularDataset:
        """JSON lines files at ``path`` (one object per line), read as one table; a line that is not
        JSON is an error (``invalid_lines="error"``, the only choice here)."""
        caller = "Dataset.Tabular.from_json_lines_files"
        _not_yet(caller, invalid_lines=(invalid_lines, "error"))
        if encoding not in ENCODINGS:
            raise UserErrorException(f"{caller}: encoding {encoding!r} is not one of {', '.join(ENCODINGS)}")
        dataset = TabularDataset(
            paths=resolve_paths(path, caller),
            format="json_lines",
            encoding=encoding,
            include_path=include_path,
            set_column_types=column_types(caller, set_column_types),
            partition_format=checked_format(caller, partition_format),
        )
        return checked(dataset, validate)

    @staticmethod
    def register_pandas_dataframe(
        dataframe,
        target,
        name: str,
        description: str | None = None,
        tags: dict | None = None,
        show_progress: bool = True,
        row_group_size: int | None = None,
        make_target_path_unique: bool = True,
    ) -> TabularDataset:
        """Write ``dataframe`` as a Parquet file to ``target`` (a datastore, ``(datastore, "path")`` or a
        DataPath; in a new folder below it unless ``make_target_path_unique=False``) and register it as a
        new version of dataset ``name``."""
        import uuid

        caller = "Dataset.Tabular.register_pandas_dataframe"
        store, relative = target_of((target, "") if isinstance(target, Datastore) else target, caller)
        if make_target_path_unique:
            relative = f"{relative.rstrip('/')}/{uuid.uuid4()}".lstrip("/")
        folder = datastore_target(store, relative, caller)
        path = datastore_target(store, f"{relative}/part-00000.parquet", caller)  # a link there too
        os.makedirs(folder, exist_ok=True)
        try:
            dataframe.to_parquet(path, index=False, row_group_size=row_group_size)
        except ImportError:
            raise UsageError("writing Parquet files needs pyarrow: pip install 'localpipe[parquet]'") from None
        if show_progress:
            print(f"Wrote the DataFrame to {store.name}:{relative}")
        dataset = TabularDataset(paths=(folder,), format="parquet")
        return dataset.register(store.workspace, name, description, tags, create_new_version=True)


class Dataset:
    """Entry point for dataset factories, as in the Azure ML SDK: ``Dataset.File.from_files(...)``."""

    File = FileDatasetFactory
    Tabular = TabularDatasetFactory

    class Scenario:
        """What a dataset was for, as ``Model.register(..., datasets=[(Dataset.Scenario.TRAINING, ds)])`` names it."""

        TRAINING = "training"
        VALIDATION = "validation"
        INFERENCING = "inferencing"

    get_by_name = staticmethod(FileDataset.get_by_name)
    get_by_id = staticmethod(FileDataset.get_by_id)
    get_all = staticmethod(FileDataset.get_all)
