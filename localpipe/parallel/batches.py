"""Mini-batches: the input's files (or rows) cut into batches, each with the digest of its content.

A batch is plain data: ``{"key", "first", "count", "files"}`` with, for a table, the rows it holds
(``"rows": [start, stop]`` of one file's table, or ``"group"``: the partition key values). Its
``key`` is the digest of what ``run()`` receives, so that a result found under it in the cache is
that batch's result whatever run or order it came from.
"""

from __future__ import annotations

import hashlib
import json
import math
import os

CHUNK = 1 << 20


def list_files(path: str) -> list[str]:
    """Every file below ``path`` (links followed: a mounted pick is a folder of links), sorted."""
    if os.path.isfile(path):
        return [path]
    found = []
    for folder, names, files in os.walk(path, followlinks=True):
        names.sort()
        found.extend(os.path.join(folder, name) for name in files)
    return sorted(found)


def tree_items(path: str, digests: Digests) -> list[list[str]]:
    """``[name below path, content digest]`` of every file below ``path``: its content, wherever it lies."""
    root = os.path.normpath(path)
    return [[found[len(root) :], digests.of(found)] for found in list_files(root)]


class Digests:
    """Content digests of files, read again only when a file's size or time changed since ``known``."""

    def __init__(self, known: dict | None = None):
        self.known = dict(known or {})  # path -> [size, mtime_ns, digest]
        self.seen: dict[str, list] = {}

    def of(self, path: str) -> str:
        if path in self.seen:
            return self.seen[path][2]
        st = os.stat(path)
        old = self.known.get(path)
        if old and old[0] == st.st_size and old[1] == st.st_mtime_ns:
            digest = old[2]
        else:
            hasher = hashlib.blake2b(digest_size=16)
            with open(path, "rb") as handle:
                while chunk := handle.read(CHUNK):
                    hasher.update(chunk)
            digest = hasher.hexdigest()
        self.seen[path] = [st.st_size, st.st_mtime_ns, digest]
        return digest


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
    result to look up, so its files are hashed while the workers run, as their batches end."""
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
        batch["partition"] = dict(zip(keys, values, strict=True))
        batches.append(batch)
    return sorted(batches, key=lambda b: b["first"])


def table_batches(files: list[str], size: int, options: dict, digests: Digests) -> list[dict]:
    """Each file's rows cut into ``ceil(bytes / size)`` batches of about equal rows: a batch never
    holds rows of two files. The rows are read by the driver when the batch is sent (``rows_of``)."""
    batches = []
    for path in files:
        digest = digests.of(path)
        pieces = max(1, math.ceil(os.path.getsize(path) / size))
        for piece in range(pieces):
            key = _key("table", digest, options, piece, pieces)
            batches.append({"key": key, "first": path, "count": None, "files": [path], "piece": [piece, pieces]})
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
        batches.append({**batch, "files": files, "partition": dict(zip(keys, group, strict=True)), "frame": rows})
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
