"""Datasets: FileDataset and TabularDataset, the ``Dataset.File`` / ``Dataset.Tabular`` factories, and
how a step consumes one (DatasetConsumptionConfig).

A dataset is files on this machine: paths (folders, files or glob patterns) below a root that
``to_path()`` names them from. Subsets (``take``, ``skip``, ``random_split`` ...) of a FileDataset are
fixed lists of files taken when the subset is made; those of a TabularDataset are rows, recorded and
applied each time the table is read.
"""

from __future__ import annotations

import glob
import os
import random
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

from localpipe.errors import UsageError, UserErrorException
from localpipe.sdk.data.datastore import DataPath, DataReference, Datastore, datastore_file
from localpipe.sdk.data.remote import fetch, is_url
from localpipe.sdk.data.tables import ENCODINGS, column_types, read_table

GLOB_CHARS = "*?["
DIRECT, MOUNT, DOWNLOAD = "direct", "mount", "download"


@dataclass(frozen=True)
class FileDataset:
    """Files at one or more absolute local paths (glob patterns allowed), consumed by steps as a
    folder, a file, or (``as_named_input``) as this dataset.

    A registered dataset (``register``, ``Dataset.get_by_name``) also has a ``name`` and a
    ``version``, and its files are a read-only copy in the object store.
    """

    paths: tuple[str, ...]
    name: str | None = None
    version: int | None = None
    root: str | None = None  # what to_path() names files from; by default found from the paths

    # -- what the dataset holds ----------------------------------------------------------------
    def files(self) -> list[str]:
        """Every file, in order: folders are walked, patterns expanded."""
        found: list[str] = []
        for path in self.paths:
            if any(c in path for c in GLOB_CHARS):
                matches = sorted(glob.glob(path, recursive=True))
                found += [f for m in matches for f in _files_under(m)]
            else:
                found += _files_under(path)
        return list(dict.fromkeys(found))

    def base(self) -> str:
        """The folder the files are named from: the folder given, a pattern's folder, or the folder
        every path lies in."""
        if self.root is not None:
            return self.root
        heads = [_pattern_head(p) if any(c in p for c in GLOB_CHARS) else p for p in self.paths]
        if len(heads) == 1 and os.path.isdir(heads[0]):
            return heads[0]
        common = os.path.commonpath(heads)
        return common if os.path.isdir(common) and common not in self.paths else os.path.dirname(common)

    def is_selection(self) -> bool:
        """Whether the files are a pick (a pattern, or a subset) rather than the paths as given."""
        return self.root is not None or any(c in p for p in self.paths for c in GLOB_CHARS)

    def local_paths(self) -> tuple[list[str], str | None]:
        """What a step is given: the paths as they are, or (for a pick) its files and their root."""
        if self.is_selection():
            return self.files(), self.base()
        return list(self.paths), None

    def to_path(self) -> list[str]:
        """Each file's path below the dataset's root, with a leading "/" (as the SDK gives them)."""
        root = self.base()
        return ["/" + os.path.relpath(f, root).replace(os.sep, "/") for f in self.files()]

    # -- subsets ---------------------------------------------------------------------------
    def take(self, count: int) -> FileDataset:
        """The first ``count`` files."""
        return self._pick(self.files()[:count])

    def skip(self, count: int) -> FileDataset:
        """The files after the first ``count``."""
        return self._pick(self.files()[count:])

    def take_sample(self, probability: float, seed: int | None = None) -> FileDataset:
        """Each file with ``probability``, drawn with ``seed``."""
        _check_fraction("take_sample", "probability", probability)
        draws = random.Random(seed)
        return self._pick([f for f in self.files() if draws.random() < probability])

    def random_split(self, percentage: float, seed: int | None = None) -> tuple[FileDataset, FileDataset]:
        """Two datasets: about ``percentage`` of the files, and the others."""
        _check_fraction("random_split", "percentage", percentage)
        draws = random.Random(seed)
        chosen = {f: draws.random() < percentage for f in self.files()}
        return self._pick([f for f, c in chosen.items() if c]), self._pick([f for f, c in chosen.items() if not c])

    def _pick(self, files: list[str]) -> FileDataset:
        return FileDataset(paths=tuple(files), root=self.base())

    # -- use on this machine ------------------------------------------------------------------
    def download(self, target_path=None, overwrite: bool = False, ignore_not_found: bool = False) -> list[str]:
        """Copy the files into ``target_path`` (a new temporary folder by default), each at its
        ``to_path()``; returns their paths. A file already there is an error unless ``overwrite``."""
        target = os.path.abspath(target_path) if target_path is not None else tempfile.mkdtemp(prefix="dataset-")
        missing = [p for p in self.paths if not any(c in p for c in GLOB_CHARS) and not os.path.exists(p)]
        if missing and not ignore_not_found:
            raise UserErrorException(f'dataset file "{missing[0]}" does not exist: pass ignore_not_found=True to skip')
        pairs = [
            (f, os.path.join(target, rel.lstrip("/"))) for f, rel in zip(self.files(), self.to_path(), strict=True)
        ]
        if not overwrite:
            for _, dest in pairs:
                if os.path.exists(dest):
                    raise UserErrorException(
                        f'File "{dest}" already exists. Set overwrite=True to overwrite it, '
                        "or choose an empty target path."
                    )
        for source, dest in pairs:
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            shutil.copyfile(source, dest)
        return [dest for _, dest in pairs]

    def mount(self, mount_point=None, **kwargs) -> MountContext:
        """A context manager giving the files in a folder (``mount_point``, or a new temporary one)
        without copying them: links, in a folder that cannot be written to. The SDK's FUSE options
        (``mount_options``, ``skip_validate``, ``client_id``, ...) change nothing here."""
        unknown = sorted(set(kwargs) - MOUNT_OPTIONS)
        if unknown:
            raise TypeError(f"mount() got an unexpected keyword argument '{unknown[0]}'")
        return MountContext(self, mount_point)

    # -- consumption by steps ---------------------------------------------------------------
    def as_named_input(self, name: str) -> DatasetConsumptionConfig:
        """Consume this dataset as the step input called ``name``: the step's
        ``Run.get_context().input_datasets[name]`` is the dataset, its argument the data's path."""
        return DatasetConsumptionConfig(name, self)

    def as_download(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        """Consume a copy of the files placed in the step's folder."""
        return self.as_named_input(default_input_name(self)).as_download(path_on_compute)

    def as_mount(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        """Consume the files where they are, read-only, with no copy."""
        return self.as_named_input(default_input_name(self)).as_mount(path_on_compute)

    def register(
        self,
        workspace,
        name: str,
        description: str | None = None,
        tags: dict | None = None,
        create_new_version: bool = False,
    ) -> FileDataset:
        """Keep a read-only copy of the files as version N of dataset ``name``.

        The version is fixed by the content: registering unchanged content returns the same
        version; changed content under a name that exists needs ``create_new_version=True``.
        """
        kind, options = ("tabular", self.table_options()) if isinstance(self, TabularDataset) else ("file", {})
        paths, root = self.local_paths()
        return dataset_from_record(
            workspace.service.register_dataset(name, paths, kind, options, description, tags, create_new_version, root)
        )


MOUNT_OPTIONS = {"mount_options", "skip_validate", "client_id", "identity_endpoint_type", "enable_rslex_mount"}


class MountContext:
    """``FileDataset.mount()``: ``start()`` fills ``mount_point`` with links to the files, ``stop()``
    removes them; ``with dataset.mount() as context:`` does both."""

    def __init__(self, dataset: FileDataset, mount_point):
        self.dataset = dataset
        self._made = mount_point is None
        self.mount_point = tempfile.mkdtemp(prefix="mount-") if mount_point is None else os.path.abspath(mount_point)
        if os.path.isdir(self.mount_point) and os.listdir(self.mount_point):
            raise UserErrorException(
                "Dataset mount point must be empty, mounting dataset to non-empty folder is not supported."
            )

    def start(self) -> None:
        os.makedirs(self.mount_point, exist_ok=True)
        for source, relative in zip(self.dataset.files(), self.dataset.to_path(), strict=True):
            link = os.path.join(self.mount_point, relative.lstrip("/"))
            os.makedirs(os.path.dirname(link), exist_ok=True)
            os.symlink(source, link)
        for folder, _, _ in os.walk(self.mount_point):  # nothing can be added or removed
            os.chmod(folder, 0o555)

    def stop(self) -> None:
        if not os.path.isdir(self.mount_point):
            return
        for folder, _, _ in os.walk(self.mount_point):
            os.chmod(folder, 0o755)
        for entry in os.scandir(self.mount_point):
            (shutil.rmtree if entry.is_dir(follow_symlinks=False) else os.unlink)(entry.path)
        if self._made:
            os.rmdir(self.mount_point)

    def __enter__(self) -> MountContext:
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


@dataclass(frozen=True)
class TabularDataset(FileDataset):
    """Files read as one table (``to_pandas_dataframe()``, with pandas): delimited text, Parquet or
    JSON lines; column and row operations are recorded and applied when it is read."""

    format: str = "delimited"
    separator: str = ","
    header: bool = True
    encoding: str = "utf8"
    empty_as_string: bool = False
    include_path: bool = False
    set_column_types: dict | None = None
    transforms: tuple = ()

    def table_options(self) -> dict:
        """How the files are read, as plain data (a registered version and a step get these)."""
        return {
            "format": self.format,
            "separator": self.separator,
            "header": self.header,
            "encoding": self.encoding,
            "empty_as_string": self.empty_as_string,
            "include_path": self.include_path,
            "set_column_types": self.set_column_types,
            "transforms": [list(t) for t in self.transforms],
            "root": self.root,
        }

    def to_pandas_dataframe(self, on_error: str = "null", out_of_range_datetime: str = "null"):
        """The rows of every file, in order, as one pandas DataFrame; a value that does not convert to
        its ``set_column_types`` type is missing (``on_error="null"``) or an error (``"fail"``)."""
        return read_table(self.files(), self.base(), self.table_options(), on_error, out_of_range_datetime)

    def keep_columns(self, columns, validate: bool = False) -> TabularDataset:
        """Only ``columns`` (a name or a list)."""
        columns = [columns] if isinstance(columns, str) else list(columns)
        if validate:
            missing = [c for c in columns if c not in self.take(1).to_pandas_dataframe().columns]
            if missing:
                raise UserErrorException(f"keep_columns: column {missing[0]!r} is not in the dataset")
        return self._then("keep_columns", columns)

    def drop_columns(self, columns) -> TabularDataset:
        """Every column but ``columns`` (a name or a list)."""
        return self._then("drop_columns", [columns] if isinstance(columns, str) else list(columns))

    def take(self, count: int) -> TabularDataset:
        """The first ``count`` rows."""
        return self._then("take", int(count))

    def skip(self, count: int) -> TabularDataset:
        """The rows after the first ``count``."""
        return self._then("skip", int(count))

    def take_sample(self, probability: float, seed: int | None = None) -> TabularDataset:
        """Each row with ``probability``, drawn with ``seed``."""
        _check_fraction("take_sample", "probability", probability)
        return self._then("sample", probability, _seed(seed), True)

    def random_split(self, percentage: float, seed: int | None = None) -> tuple[TabularDataset, TabularDataset]:
        """Two datasets: about ``percentage`` of the rows, and the others (the same draw splits both)."""
        _check_fraction("random_split", "percentage", percentage)
        seed = _seed(seed)
        return self._then("sample", percentage, seed, True), self._then("sample", percentage, seed, False)

    def to_csv_files(self, separator: str = ",") -> FileDataset:
        """The table written as one CSV file in a new temporary folder, as a FileDataset."""
        folder = tempfile.mkdtemp(prefix="dataset-csv-")
        path = os.path.join(folder, "part-00000.csv")
        self.to_pandas_dataframe().to_csv(path, sep=separator, index=False)
        return FileDataset(paths=(folder,))

    def to_parquet_files(self) -> FileDataset:
        """The table written as one Parquet file (needs pyarrow) in a new temporary folder, as a FileDataset."""
        folder = tempfile.mkdtemp(prefix="dataset-parquet-")
        write_parquet(self.to_pandas_dataframe(), os.path.join(folder, "part-00000.parquet"))
        return FileDataset(paths=(folder,))

    def download(self, stream_column, target_path=None, overwrite: bool = False, ignore_not_found: bool = True):
        """Refused for now: the files named in a column of the table (issue 14)."""
        _not_yet("TabularDataset.download", stream_column=(stream_column, None))

    def mount(self, stream_column, mount_point=None):
        """Refused for now: the files named in a column of the table (issue 14)."""
        _not_yet("TabularDataset.mount", stream_column=(stream_column, None))

    def _then(self, *operation) -> TabularDataset:
        # A subset is a new, unregistered dataset.
        return replace(self, name=None, version=None, transforms=(*self.transforms, tuple(operation)))


def write_parquet(frame, path: str) -> None:
    try:
        frame.to_parquet(path, index=False)
    except ImportError:
        raise UsageError("writing Parquet files needs pyarrow: pip install 'localpipe[parquet]'") from None


def _seed(seed: int | None) -> int:
    return random.randrange(2**31) if seed is None else int(seed)


def _check_fraction(caller: str, name: str, value) -> None:
    if not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
        raise UserErrorException(f"{caller}: {name} must be a number between 0.0 and 1.0, not {value!r}")


def _files_under(path: str) -> list[str]:
    if os.path.isdir(path):
        return sorted(str(p) for p in Path(path).rglob("*") if p.is_file())
    return [path] if os.path.exists(path) else []


def _pattern_head(pattern: str) -> str:
    """The folder part of a glob pattern before its first wildcard."""
    head = pattern.split("*")[0].split("?")[0].split("[")[0]
    return head.rstrip(os.sep) if head.endswith(os.sep) else os.path.dirname(head)


def default_input_name(dataset: FileDataset) -> str:
    """The input name of a dataset given without one: its registered name, else its first path's."""
    if dataset.name:
        return dataset.name
    first = dataset.paths[0] if dataset.paths else ""
    return os.path.basename(_pattern_head(first) if any(c in first for c in GLOB_CHARS) else first) or "dataset"


# -- the factories ------------------------------------------------------------------------------


class FileDatasetFactory:
    """``Dataset.File``: builds FileDatasets."""

    @staticmethod
    def from_files(path, validate: bool = True, partition_format: str | None = None, is_file: bool = False):
        """Files at ``path``: a local path or glob pattern, ``(datastore, "relative/path/*.csv")``, a
        DataReference or DataPath (``datastore.path("imgs")``), or a list of these. ``validate``: some
        file must match. ``is_file`` (a hint to the SDK's service about the paths) changes nothing here."""
        _not_yet("Dataset.File.from_files", partition_format=(partition_format, None))
        return _checked(FileDataset(paths=resolve_paths(path, "Dataset.File.from_files")), validate)

    @staticmethod
    def upload_directory(src_dir, target, pattern: str | None = None, overwrite: bool = False, show_progress=True):
        """Copy the files of ``src_dir`` (those whose name matches ``pattern``, when given) to
        ``target`` (``(datastore, "path")`` or a DataPath), and return them as a FileDataset."""
        import fnmatch

        store, relative = _target(target, "Dataset.File.upload_directory")
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
        _not_yet(caller, partition_format=(partition_format, None))
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
        )
        return _checked(dataset, validate)

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
        _not_yet(caller, partition_format=(partition_format, None))
        dataset = TabularDataset(
            paths=resolve_paths(path, caller),
            format="parquet",
            include_path=include_path,
            set_column_types=column_types(caller, set_column_types),
        )
        return _checked(dataset, validate)

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
        _not_yet(caller, partition_format=(partition_format, None), invalid_lines=(invalid_lines, "error"))
        if encoding not in ENCODINGS:
            raise UserErrorException(f"{caller}: encoding {encoding!r} is not one of {', '.join(ENCODINGS)}")
        dataset = TabularDataset(
            paths=resolve_paths(path, caller),
            format="json_lines",
            encoding=encoding,
            include_path=include_path,
            set_column_types=column_types(caller, set_column_types),
        )
        return _checked(dataset, validate)

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
        store, relative = (target, "") if isinstance(target, Datastore) else _target(target, caller)
        if make_target_path_unique:
            relative = f"{relative.rstrip('/')}/{uuid.uuid4()}".lstrip("/")
        folder = datastore_file(store, relative, caller)
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, "part-00000.parquet")
        try:
            dataframe.to_parquet(path, index=False, row_group_size=row_group_size)
        except ImportError:
            raise UsageError("writing Parquet files needs pyarrow: pip install 'localpipe[parquet]'") from None
        if show_progress:
            print(f"Wrote the DataFrame to {store.name}:{relative}")
        dataset = TabularDataset(paths=(folder,), format="parquet")
        return dataset.register(store.workspace, name, description, tags, create_new_version=True)


def _target(target, caller: str) -> tuple[Datastore, str]:
    if isinstance(target, DataPath):
        return target._datastore, target.path_on_datastore or ""
    if isinstance(target, tuple) and len(target) == 2 and isinstance(target[0], Datastore):
        return target[0], str(target[1] or "")
    raise UserErrorException(f'{caller}: target {target!r} is not (datastore, "path") or a DataPath')


def _checked(dataset: FileDataset, validate: bool) -> FileDataset:
    if validate and not dataset.files():
        raise UserErrorException(
            f"Cannot load any data from the specified path {list(dataset.paths)}: check the path, "
            "or pass validate=False when the files come later"
        )
    return dataset


def _not_yet(caller: str, **given) -> None:
    """Refuse the options ``caller`` accepts (the SDK's) but localpipe does not honour yet, when
    given other than their default: ``name=(value, default)``."""
    for name, (value, default) in given.items():
        if value != default:
            raise UsageError(
                f"{caller}: {name}={value!r} is not supported by localpipe yet (docs/azureml-compat.md): leave it out"
            )


def resolve_paths(path, caller: str) -> tuple[str, ...]:
    items = path if isinstance(path, list) else [path]
    if not items:
        raise UsageError(f"{caller}: no path given: pass a path or (datastore, path)")
    return tuple(_resolve_data_path(item, caller) for item in items)


def _resolve_data_path(item, caller: str) -> str:
    if isinstance(item, tuple):
        if len(item) != 2 or not isinstance(item[0], Datastore):
            raise UsageError(f"{caller}: {item!r} is not a (datastore, path) pair")
        return datastore_file(item[0], item[1], caller)
    if isinstance(item, (DataReference, DataPath)):
        return item.local_path()
    if isinstance(item, (str, os.PathLike)):
        if is_url(item):
            return fetch(item, caller)
        if str(item).startswith(("wasbs://", "abfss://", "azureml://")):
            raise UsageError(
                f'{caller}: "{item}" is Azure storage, not on this machine: download it and pass its local '
                "path (or upload it to a datastore)"
            )
        return os.path.abspath(item)
    raise UsageError(f"{caller}: {item!r} is neither a path nor a (datastore, path) pair")


class Dataset:
    """Entry point for dataset factories, as in the Azure ML SDK: ``Dataset.File.from_files(...)``."""

    File = FileDatasetFactory
    Tabular = TabularDatasetFactory

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
        return tabular_dataset(record["paths"], record["options"], record["name"], record["version"])
    return FileDataset(paths=tuple(record["paths"]), name=record["name"], version=record["version"])


def tabular_dataset(paths, options: dict, name=None, version=None) -> TabularDataset:
    """A TabularDataset from its ``table_options()`` (or those an older version recorded)."""
    options = {k: v for k, v in options.items() if k not in ("root", "path_glob", "file_extension")}
    transforms = tuple(tuple(t) for t in options.pop("transforms", ()))
    return TabularDataset(paths=tuple(paths), name=name, version=version, transforms=transforms, **options)


def input_table(path: str, options: dict) -> TabularDataset:
    """The table a step reads at ``path`` (its input's folder or file): the files matching
    ``path_glob`` (read_*_files) or ending in ``file_extension`` (parse_*_files), when given."""
    if options.get("path_glob"):
        path = os.path.join(path, options["path_glob"])
    elif options.get("file_extension") and os.path.isdir(path):
        path = os.path.join(path, "**", "*" + options["file_extension"])
    return tabular_dataset((path,), options)


class DatasetConsumptionConfig:
    """How a step consumes a dataset: its input ``name`` and ``mode``: ``direct`` (the step gets the
    dataset itself in ``input_datasets``), ``mount`` (a read-only path, no copy) or ``download`` (a
    copy in the step's folder). ``dataset`` may be a PipelineParameter whose default is a dataset."""

    def __init__(self, name: str, dataset, mode: str = DIRECT, path_on_compute: str | None = None):
        mode = str(mode).lower()
        if mode not in (DIRECT, MOUNT, DOWNLOAD):
            raise UserErrorException(f"Invalid mode '{mode}'. Mode can only be mount, download, or direct")
        value = getattr(dataset, "default_value", dataset)
        if not isinstance(value, FileDataset):
            what = "Invalid PipelineParameter with default value" if value is not dataset else "dataset"
            raise UserErrorException(f"{what} {value!r}: must be a FileDataset or a TabularDataset")
        if isinstance(value, TabularDataset) and mode != DIRECT:
            raise UserErrorException(
                f"{type(value).__name__} does not support {mode}. Only FileDataset supports {mode}"
            )
        self.name = name or default_input_name(value)
        self.dataset = dataset
        self.mode = mode
        self.path_on_compute = path_on_compute

    def as_download(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        """Copy the data into the step's folder before it starts."""
        return DatasetConsumptionConfig(self.name, self.dataset, DOWNLOAD, path_on_compute)

    def as_mount(self, path_on_compute: str | None = None) -> DatasetConsumptionConfig:
        """Give the step a read-only path to the data, with no copy (``path_on_compute`` is where a
        cloud run would mount it: the data is used where it is here)."""
        return DatasetConsumptionConfig(self.name, self.dataset, MOUNT, path_on_compute)

    def __eq__(self, other) -> bool:
        return isinstance(other, DatasetConsumptionConfig) and (
            self.name,
            self.dataset,
            self.mode,
            self.path_on_compute,
        ) == (other.name, other.dataset, other.mode, other.path_on_compute)

    __hash__ = None

    def __repr__(self) -> str:
        return f"DatasetConsumptionConfig({self.name!r}, mode={self.mode!r})"
