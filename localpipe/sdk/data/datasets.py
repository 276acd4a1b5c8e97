"""Datasets: FileDataset and TabularDataset (made by the factories of ``factories.py``), and how a
step consumes one (DatasetConsumptionConfig).

A dataset is files on this machine: paths (folders, files or glob patterns) below a root that
``to_path()`` names them from. Subsets (``take``, ``skip``, ``random_split`` ...) of a FileDataset are
fixed lists of files taken when the subset is made; those of a TabularDataset are rows, recorded and
applied each time the table is read.
"""

from __future__ import annotations

import glob
import json
import os
import random
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import localpipe.sdk.data.partitions as partitions
from localpipe.errors import UsageError, UserErrorException
from localpipe.sdk.data.abstract import AbstractDataset, Registration
from localpipe.sdk.data.expressions import expression_tree, file_metadata, record_matches
from localpipe.sdk.data.locate import checked, resolve_paths, target_of
from localpipe.sdk.data.tables import column_types, read_table
from localpipe.sdk.data.tabular_ops import TabularOperations

GLOB_CHARS = "*?["
SAVED_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://localpipe/datasets/saved")
DIRECT, MOUNT, DOWNLOAD = "direct", "mount", "download"


@dataclass(frozen=True)
class FileDataset(AbstractDataset):
    """Files at one or more absolute local paths (glob patterns allowed), consumed by steps as a
    folder, a file, or (``as_named_input``) as this dataset.

    A registered dataset (``register``, ``Dataset.get_by_name``) also has a ``name``, a ``version``
    and its ``registration`` (id, description, tags: ``abstract.py``), and its files are a read-only
    copy in the object store. ``partition_format`` names values in the files' paths (``partitions.py``).
    """

    paths: tuple[str, ...]
    name: str | None = None
    version: int | None = None
    root: str | None = None  # what to_path() names files from; by default found from the paths
    partition_format: str | None = None
    registration: Registration | None = field(default=None, compare=False, repr=False)

    # -- what the dataset holds ----------------------------------------------------------------
    # -- registered datasets of a workspace ----------------------------------------------------------
    @staticmethod
    def get_by_name(workspace, name: str, version="latest"):
        """A registered dataset version (``"latest"`` by default)."""
        return dataset_from_record(workspace.service.get_dataset(name, version), workspace)

    @staticmethod
    def get_by_id(workspace, id: str):
        """The dataset whose ``id`` is ``id`` (``dataset.id``): a registered version, or a dataset a
        submission used and saved."""
        record = workspace.service.get_dataset_by_id(str(id))
        if "definition" in record:
            return dataset_from_definition(record["definition"], record["id"])
        return dataset_from_record(record, workspace)

    def definition(self) -> dict:
        """What this dataset reads, as plain data: its kind, paths, root and partition format (a
        TabularDataset adds how its files are read). A submission saves it under ``definition_id()``."""
        return {"kind": "file", "paths": list(self.paths), "root": self.root, "partition_format": self.partition_format}

    def definition_id(self) -> str:
        """The id a submission gives this dataset when it is not registered: a GUID fixed by its
        definition, so that the same definition always has the same id. Computed once per dataset
        (the dataclass is frozen: its definition never changes)."""
        if self._definition_id is None:
            found = str(uuid.uuid5(SAVED_NAMESPACE, json.dumps(self.definition(), sort_keys=True)))
            object.__setattr__(self, "_definition_id", found)
        return self._definition_id

    @staticmethod
    def get_all(workspace) -> dict:
        """Every registered dataset's latest version, by name."""
        return {r["name"]: dataset_from_record(r, workspace) for r in workspace.service.latest_datasets()}

    def _apply(self, registration: Registration, description, tags):
        record = registration.workspace.service.update_dataset(self.name, self.version, description, tags)
        registration.refresh(record)
        return dataset_from_record(record, registration.workspace)

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

    def file_metadata(self, col: str):
        """A file's metadata (Size, LastModifiedTime, CreationTime, Extension, CanSeek), for
        ``filter``: ``dataset.filter(dataset.file_metadata("Size") > 1000)``."""
        return file_metadata(col)

    def filter(self, expression) -> FileDataset:
        """The files the expression holds for, decided now: their metadata (``file_metadata``),
        ``dataset["Path"]`` (the path below the dataset's root) and the partition keys."""
        tree = expression_tree(expression, "FileDataset.filter")
        root = self.base()
        kept = []
        for path in self.files():
            record = {"Path": "/" + os.path.relpath(path, root).replace(os.sep, "/")}
            if self.partition_format:
                record.update(partitions.values(self.partition_format, path))
            if record_matches(tree, record, path):
                kept.append(path)
        return self._pick(kept)

    def _pick(self, files: list[str]) -> FileDataset:
        return replace(self, paths=tuple(files), root=self.base(), name=None, version=None, registration=None)

    # -- use on this machine ------------------------------------------------------------------
    def download(self, target_path=None, overwrite: bool = False, ignore_not_found: bool = False) -> list[str]:
        """Copy the files into ``target_path`` (a new temporary folder by default), each at its
        ``to_path()``; returns their paths. A file already there is an error unless ``overwrite``."""
        target = os.path.abspath(target_path) if target_path is not None else tempfile.mkdtemp(prefix="dataset-")
        missing = [p for p in self.paths if not any(c in p for c in GLOB_CHARS) and not os.path.exists(p)]
        if missing and not ignore_not_found:
            raise UserErrorException(f'dataset file "{missing[0]}" does not exist: pass ignore_not_found=True to skip')
        pairs = [(f, os.path.join(target, rel.lstrip("/"))) for f, rel in zip(self.files(), self.to_path())]
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

        The version is fixed by the definition: registering unchanged content, read the same way,
        returns the same version; other content (or the same files as another kind, or read
        otherwise) under a name that exists needs ``create_new_version=True``.
        """
        if isinstance(self, TabularDataset):
            kind, options = "tabular", self.table_options()
        else:
            kind, options = "file", {"partition_format": self.partition_format} if self.partition_format else {}
        paths, root = self.local_paths()
        record = workspace.service.register_dataset(
            name, paths, kind, options, description, tags, create_new_version, root
        )
        return dataset_from_record(record, workspace)


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
        for source, relative in zip(self.dataset.files(), self.dataset.to_path()):
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
class TabularDataset(TabularOperations, FileDataset):
    """Files read as one table (``to_pandas_dataframe()``, with pandas): delimited text, Parquet or
    JSON lines; column and row operations are recorded and applied when it is read. Its filters,
    timestamp columns and ``partition_by`` are in ``tabular_ops.py``."""

    format: str = "delimited"
    separator: str = ","
    header: bool = True
    encoding: str = "utf8"
    empty_as_string: bool = False
    include_path: bool = False
    set_column_types: dict | None = None
    transforms: tuple = ()
    timestamp: str | None = None
    partition_timestamp: str | None = None

    # -- partition_by ------------------------------------------------------------------------------------
    def partition_by(self, partition_keys, target, name=None, show_progress: bool = True,
                     partition_as_file_dataset: bool = False):  # fmt: skip
        """Write the table to ``target`` (``(datastore, "path")`` or a DataPath) in a new folder (a
        GUID), one folder per value of each key in turn (``{Store}/{Brand}/part-00000.parquet``,
        needs pyarrow), and return it as a dataset with ``partition_format`` naming those keys
        (registered as ``name`` when given; a FileDataset with ``partition_as_file_dataset``)."""
        partition_keys = list(partition_keys or [])
        if not partition_keys:
            raise UserErrorException("partition_keys cannot be empty")
        table = self.to_pandas_dataframe().reset_index(drop=True)
        invalid = [key for key in partition_keys if key not in table.columns]
        if invalid:
            raise UserErrorException(f"{invalid} are invalid partition keys")
        if len(partition_keys) != len(set(partition_keys)):
            raise UserErrorException("partition_keys cannot have duplicates")
        caller = "TabularDataset.partition_by"
        store, relative = target_of(target, caller)
        base = f"{relative.strip('/')}/{uuid.uuid4()}".lstrip("/")
        dates = {key for key in partition_keys if str(table[key].dtype).startswith("datetime")}
        if show_progress:
            print(f"Uploading file to /{base}/")
        for values, rows in table.groupby(partition_keys, sort=False, dropna=False):
            values = values if isinstance(values, tuple) else (values,)
            folders = [_folder_name(value, key in dates) for key, value in zip(partition_keys, values)]
            folder = os.path.join(str(store.folder), base, *folders)
            os.makedirs(folder, exist_ok=True)
            write_parquet(rows.drop(columns=partition_keys), os.path.join(folder, "part-00000.parquet"))
        keys = "/".join(f"{{{key}:yyyyMMddHHmmss}}" if key in dates else f"{{{key}}}" for key in partition_keys)
        layout, glob = f"/{base}/{keys}/*.parquet", f"{base}/{'/'.join('*' for _ in partition_keys)}/*.parquet"
        paths = resolve_paths((store, glob), caller)
        if partition_as_file_dataset:
            dataset = checked(FileDataset(paths=paths, partition_format=layout), validate=True)
        else:
            types = {k: _kind(table[k]) for k in partition_keys if k not in dates and _kind(table[k])}
            dataset = TabularDataset(
                paths=paths,
                format="parquet",
                set_column_types=column_types(caller, types or None),
                partition_format=layout,
            )
            dataset = checked(dataset, validate=True)
            dataset = dataset.with_timestamp_columns(*self.timestamp_columns) if self.timestamp else dataset
        if name is None:
            return dataset
        return dataset.register(store.workspace, name, create_new_version=True)

    def definition(self) -> dict:
        """The FileDataset's definition with ``kind`` "tabular" and ``options``: ``table_options()``."""
        return {**super().definition(), "kind": "tabular", "options": self.table_options()}

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
            "partition_format": self.partition_format,
            "timestamp": self.timestamp,
            "partition_timestamp": self.partition_timestamp,
        }

    def to_pandas_dataframe(self, on_error: str = "null", out_of_range_datetime: str = "null"):
        """The rows of every file, in order, as one pandas DataFrame; a value that does not convert to
        its ``set_column_types`` type is missing (``on_error="null"``) or an error (``"fail"``). With a
        timestamp column, it is also the index (as in the SDK)."""
        table = read_table(self.files(), self.base(), self.table_options(), on_error, out_of_range_datetime)
        if self.timestamp and self.timestamp in table.columns and not table.empty:
            table = table.set_index(self.timestamp, drop=False).rename_axis(None)
        return table

    def keep_columns(self, columns, validate: bool = False) -> TabularDataset:
        """Only ``columns`` (a name or a list)."""
        columns = [columns] if isinstance(columns, str) else list(columns)
        if validate:
            missing = [c for c in columns if c not in self.take(1).to_pandas_dataframe().columns]
            if missing:
                raise UserErrorException(f"keep_columns: column {missing[0]!r} is not in the dataset")
        return self._then("keep_columns", columns)._timestamps_among(lambda c: c in columns)

    def drop_columns(self, columns) -> TabularDataset:
        """Every column but ``columns`` (a name or a list)."""
        columns = [columns] if isinstance(columns, str) else list(columns)
        return self._then("drop_columns", columns)._timestamps_among(lambda c: c not in columns)

    def _timestamps_among(self, kept) -> TabularDataset:
        """A timestamp column that is dropped is no longer one (the partition one with it), as in the SDK."""
        if self.timestamp and not kept(self.timestamp):
            return replace(self, timestamp=None, partition_timestamp=None)
        if self.partition_timestamp and not kept(self.partition_timestamp):
            return replace(self, partition_timestamp=None)
        return self

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
        return replace(
            self, name=None, version=None, registration=None, transforms=(*self.transforms, tuple(operation))
        )


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
    """The files below folder ``path``, sorted (a link to a file is one, a linked folder is not
    entered), or ``path`` itself. With os.scandir: pathlib's rglob took 130 ms for 10,000 files."""
    if os.path.isdir(path):
        return sorted(_walk_files(str(Path(path))))  # named as pathlib names them: "./data/" is "data"
    return [path] if os.path.exists(path) else []


def _walk_files(folder: str) -> Iterator[str]:
    try:
        entries = list(os.scandir(folder))
    except PermissionError:
        return  # an unreadable folder: none of its files could be read either
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            yield from _walk_files(entry.path)
        elif entry.is_file():
            yield entry.path


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


def _not_yet(caller: str, **given) -> None:
    """Refuse the options ``caller`` accepts (the SDK's) but localpipe does not honour yet, when
    given other than their default: ``name=(value, default)``."""
    for name, (value, default) in given.items():
        if value != default:
            raise UsageError(
                f"{caller}: {name}={value!r} is not supported by localpipe yet (docs/azureml-compat.md): leave it out"
            )


def dataset_from_record(record: dict, workspace=None) -> FileDataset:
    """The dataset of a registered version, as the workspace service describes it (with its
    registration when the workspace is given)."""
    registration = Registration(workspace, record) if workspace is not None and "id" in record else None
    options = record.get("options") or {}
    if record["kind"] == "tabular":
        return tabular_dataset(record["paths"], options, record["name"], record["version"], registration)
    return FileDataset(
        paths=tuple(record["paths"]),
        name=record["name"],
        version=record["version"],
        partition_format=options.get("partition_format"),
        registration=registration,
    )


def dataset_from_definition(definition: dict, saved_id: str) -> FileDataset:
    """The dataset a submission saved (``definition()``), with its id."""
    if definition["kind"] == "tabular":
        dataset = replace(tabular_dataset(definition["paths"], definition["options"]), root=definition["root"])
    else:
        dataset = FileDataset(
            paths=tuple(definition["paths"]), root=definition["root"], partition_format=definition["partition_format"]
        )
    dataset._saved_as(saved_id)
    return dataset


def tabular_dataset(paths, options: dict, name=None, version=None, registration=None) -> TabularDataset:
    """A TabularDataset from its ``table_options()`` (or those an older version recorded)."""
    options = {k: v for k, v in options.items() if k not in ("root", "path_glob", "file_extension")}
    transforms = tuple(tuple(t) for t in options.pop("transforms", ()))
    return TabularDataset(
        paths=tuple(paths), name=name, version=version, transforms=transforms, registration=registration, **options
    )


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

    @property
    def arg_val(self) -> str:
        """``DatasetConsumptionConfig:<name>``: the SDK's placeholder for this input in a command line."""
        return f"DatasetConsumptionConfig:{self.name}"

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


def _folder_name(value, is_date: bool) -> str:
    if is_date:
        return value.strftime("%Y%m%d%H%M%S")
    return str(value)


def _kind(values) -> str | None:
    """The column type a key's values are read back as from its folders' names (text by default)."""
    kind = str(values.dtype)
    if kind.startswith(("int", "Int")):
        return "int"
    if kind.startswith(("float", "Float")):
        return "float"
    if kind in ("bool", "boolean"):
        return "bool"
    return None
