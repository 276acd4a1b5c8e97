"""Mini-batches: the input's files (or rows) cut into batches, each with the digest of its content.

A batch is plain data: ``{"key", "first", "count", "files"}`` with, for a table, the rows it holds
(``"rows": [start, stop]`` of one file's table, or ``"group"``: the partition key values). Its
``key`` is the digest of what ``run()`` receives, so that a result found under it in the cache is
that batch's result whatever run or order it came from.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import os

CHUNK = 1 << 20


def list_files(path: str) -> list[str]:
    """Every file below ``path`` (links followed: a mounted pick is a folder of links), sorted."""
    if os.path.isfile(path):
        return [path]
    found: list[str] = []
    _scan(path, found)
    return sorted(found)


def _scan(folder: str, found: list[str]) -> None:
    # scandir tells a folder from a file without a stat: a file's stat is left to its digest, which
    # a new family's batches work out in the workers.
    with os.scandir(folder) as entries:
        for entry in entries:
            if entry.is_dir():
                _scan(entry.path, found)
            else:
                found.append(entry.path)


def tree_items(path: str, digests: Digests) -> list[list[str]]:
    """``[name below path, content digest]`` of every file below ``path``: its content, wherever it lies."""
    root = os.path.normpath(path)
    return [[found[len(root) :], digests.of(found)] for found in list_files(root)]


def _hasher() -> tuple[str, type]:
    """BLAKE3, the workspace's hash (so that the stat cache's digests are this step's), or, in an
    environment that cannot load it (an older Python), BLAKE2b: the family key names the
    interpreter, so that one family's digests are all of one kind."""
    try:
        import blake3
    except ImportError:
        return "blake2b", functools.partial(hashlib.blake2b, digest_size=32)
    return "blake3", blake3.blake3


ALGORITHM, _new_hasher = _hasher()


class Digests:
    """Content digests of files, read only when neither the workspace's stat cache (the files
    ``localpipe submit`` hashed for the step's cache key) nor ``known`` (what this step hashed
    itself last time) has the file at its size and times (the ctime too, as the stat cache: a file
    edited with its size and mtime put back is read again)."""

    def __init__(self, known: dict | None = None, stat_cache=None):
        self.known = dict(known or {})  # path -> [size, mtime_ns, ctime_ns, digest]
        self.stat_cache = stat_cache if ALGORITHM == "blake3" else None
        self.seen: dict[str, str] = {}  # path -> digest, of every file asked for this run
        self.own: dict[str, list] = {}  # those the stat cache did not know: ``known`` of the next run

    def of(self, path: str) -> str:
        digest = self.seen.get(path)
        if digest is None:
            st = os.stat(path)
            digest = self._known(path, st)
            if digest is None:
                hasher = _new_hasher()
                with open(path, "rb") as handle:
                    while chunk := handle.read(CHUNK):
                        hasher.update(chunk)
                digest = hasher.hexdigest()
                self.own[path] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, digest]
            self.seen[path] = digest
        return digest

    def _known(self, path: str, st: os.stat_result) -> str | None:
        if self.stat_cache is not None and (digest := self.stat_cache.lookup(path, st)):
            return digest
        old = self.known.get(path)
        if old and old[:3] == [st.st_size, st.st_mtime_ns, st.st_ctime_ns]:  # a 3-item entry of before: read again
            self.own[path] = old
            return old[3]
        if self.stat_cache is not None and (real := os.path.realpath(path)) != path:
            return self.stat_cache.lookup(real, st)  # a mounted folder of links: the workspace hashed the target
        return None


def _key(*parts) -> str:
    return hashlib.blake2b(json.dumps(parts, sort_keys=True).encode(), digest_size=16).hexdigest()


def item_keys(files: list[str], names: dict, digests: Digests) -> dict[str, str]:
    """Each file's key: its content and its name below its input (a copy's path differs run to run)."""
    found = {}
    for path in files:
        text = f"{names[path]}\0{digests.of(path)}"
        found[path] = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
    return found


def file_batches(files: list[str], items: dict, size: int, previous: list[list[str]]) -> list[dict]:
    """Batches of at most ``size`` files: first each batch of ``previous`` (lists of item keys)
    whose files are all still there unchanged, so that adding or changing files reruns only the
    batches they fall in; the files left over are cut in order. Returned in input order (by each
    batch's first file)."""
    position = {path: index for index, path in enumerate(files)}
    by_digest: dict[str, list[str]] = {}
    for path in files:
        by_digest.setdefault(items[path], []).append(path)
    used: set[str] = set()
    batches = []
    for old in previous:
        paths = [by_digest.get(item, [None])[0] for item in old]
        if len(old) <= size and all(p is not None and p not in used for p in paths):
            used.update(paths)
            batches.append(paths)
    left = [path for path in files if path not in used]
    batches += [left[i : i + size] for i in range(0, len(left), size)]
    batches.sort(key=lambda paths: position[paths[0]])
    return [_file_batch(paths, items) for paths in batches]


def _file_batch(paths: list[str], items: dict) -> dict:
    keys = [items[path] for path in paths]
    return {"key": _key("files", keys), "first": paths[0], "count": len(paths), "files": paths, "items": keys}


def file_chunks(files: list[str], size: int) -> list[dict]:
    """Batches of ``size`` files in order, their keys left to ``keyed``: a family never run has no
    result to look up, so each batch's files are hashed by the worker given it, before ``run()``."""
    chunks = [files[i : i + size] for i in range(0, len(files), size)]
    return [{"key": None, "first": chunk[0], "count": len(chunk), "files": chunk} for chunk in chunks]


def keyed(batch: dict, names: dict, digests: Digests) -> dict:
    """``batch`` with its key and items' keys, hashing its files if ``file_chunks`` left them out."""
    if batch["key"] is None:
        batch.update(_file_batch(batch["files"], item_keys(batch["files"], names, digests)))
    return batch


def file_partitions(files: list[str], names: dict, items: dict, keys: list[str], partition_format: str | None):
    """One batch per combination of the partition keys' values, read from each file's path."""
    if not partition_format:
        raise ValueError(
            "partition_keys needs a dataset with partition_format (Dataset.File.from_files(..., partition_format=...))"
        )
    from localpipe.sdk.data import partitions

    known = partitions.keys(partition_format)
    missing = [key for key in keys if key not in known]
    if missing:
        raise ValueError(f"partition_keys {missing} are not in the dataset's partition_format {partition_format!r}")
    groups: dict[tuple, list[str]] = {}
    for path in files:
        found = partitions.values(partition_format, "/" + names[path].split("/", 1)[1])
        groups.setdefault(tuple(str(found.get(key)) for key in keys), []).append(path)
    batches = []
    for values, paths in groups.items():
        batch = _file_batch(paths, items)
        batch["partition"] = dict(zip(keys, values))
        batches.append(batch)
    return sorted(batches, key=lambda b: b["first"])


# A table's transforms whose rows depend on the rows before them, in the whole dataset: read file by
# file, take(60) of three files of 50 rows gave 150.
WHOLE_TABLE_TRANSFORMS = ("take", "skip", "sample")
_FILE_COLUMN = "__localpipe_file__"


def table_batches(files: list[str], size: int, options: dict, digests: Digests, root: str) -> list[dict]:
    """Each file's rows cut into ``ceil(bytes / size)`` batches of about equal rows: a batch never
    holds rows of two files. The rows are read by the driver when the batch is sent (``rows_of``),
    or, for a dataset with a transform of ``WHOLE_TABLE_TRANSFORMS``, here: the whole table, with
    each file's share of its bytes for the rows of it that are kept."""
    if any(operation[0] in WHOLE_TABLE_TRANSFORMS for operation in options.get("transforms") or ()):
        return _whole_table_batches(files, size, options, digests, root)
    batches = []
    for path in files:
        digest = digests.of(path)
        pieces = max(1, math.ceil(os.path.getsize(path) / size))
        for piece in range(pieces):
            key = _key("table", digest, options, piece, pieces)
            batches.append({"key": key, "first": path, "count": None, "files": [path], "piece": [piece, pieces]})
    return batches


def _whole_table_batches(files: list[str], size: int, options: dict, digests: Digests, root: str) -> list[dict]:
    """``table_batches`` of a table whose transforms count rows of the whole dataset: every file read,
    the transforms applied to their rows together, then each file's kept rows cut by the bytes they
    stand for; a file with no row kept has no batch. A batch's key has every file's content."""
    if not files:
        return []
    from localpipe.sdk.data.tables import _apply, pandas

    pd = pandas()
    plain = {**options, "transforms": []}
    frames, read = [], []
    for number, path in enumerate(files):
        frame = read_table([path], root, plain)
        frame[_FILE_COLUMN] = number
        frames.append(frame)
        read.append(len(frame))
    table = pd.concat(frames, ignore_index=True)
    for operation in options.get("transforms") or ():
        if operation[0] == "keep_columns":
            operation = ["keep_columns", [*operation[1], _FILE_COLUMN]]
        table = _apply(table, operation)
    content = [digests.of(path) for path in files]
    kept = {number: rows.drop(columns=_FILE_COLUMN) for number, rows in table.groupby(_FILE_COLUMN, sort=True)}
    batches = []
    for number, path in enumerate(files):
        rows = kept.get(number)
        if rows is None or rows.empty:
            continue
        rows = rows.reset_index(drop=True)
        share = os.path.getsize(path) * len(rows) / read[number]
        pieces = min(len(rows), max(1, math.ceil(share / size)))
        for piece in range(pieces):
            frame = rows.iloc[len(rows) * piece // pieces : len(rows) * (piece + 1) // pieces]
            key = _key("table", content, options, number, piece, pieces)
            batches.append({"key": key, "first": path, "count": len(frame), "files": [path], "frame": frame})
    return batches


def table_partitions(files: list[str], root: str, keys: list[str], options: dict, digests: Digests) -> list[dict]:
    """One batch per combination of the partition keys' values over the whole table."""
    table = read_table(files, root, options)
    missing = [key for key in keys if key not in table.columns]
    if missing:
        raise ValueError(f"partition_keys {missing} are not columns of the dataset ({list(table.columns)})")
    content = [digests.of(path) for path in files]
    batches = []
    for values, rows in table.groupby(keys, sort=True, dropna=False):
        values = values if isinstance(values, tuple) else (values,)
        group = [str(v) for v in values]
        batch = {"key": _key("group", content, options, keys, group), "first": files[0], "count": len(rows)}
        batches.append({**batch, "files": files, "partition": dict(zip(keys, group)), "frame": rows})
    return batches


def read_table(files: list[str], root: str, options: dict):
    from localpipe.sdk.data.tables import read_table as read

    return read(files, root, options)


class TableReader:
    """The rows of a table batch, reading each file once while its pieces are handed out in order."""

    def __init__(self, root: str, options: dict):
        self.root, self.options = root, options
        self._path, self._table = None, None

    def rows_of(self, batch: dict):
        if "frame" in batch:
            return batch["frame"]
        path = batch["first"]
        if path != self._path:
            self._path, self._table = path, read_table([path], self.root, self.options)
        piece, pieces = batch["piece"]
        rows = len(self._table)
        return self._table.iloc[rows * piece // pieces : rows * (piece + 1) // pieces]
