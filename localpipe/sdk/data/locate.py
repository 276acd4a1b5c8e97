"""Where a dataset's files are: paths, glob patterns, ``(datastore, "path")``, DataReferences and
DataPaths, and http(s) URLs (fetched), resolved to local paths; checks the factories share."""

from __future__ import annotations

import os

import localpipe.sdk.data.partitions as partitions
from localpipe.errors import UsageError, UserErrorException
from localpipe.sdk.data.blob import url_folder
from localpipe.sdk.data.datastore import DataPath, DataReference, Datastore, datastore_file
from localpipe.sdk.data.remote import fetch, is_url


def target_of(target, caller: str) -> tuple[Datastore, str]:
    """Where to write: ``(datastore, "path")`` or a DataPath, in a datastore that can be written."""
    if isinstance(target, DataPath):
        target = (target._datastore, target.path_on_datastore)
    if isinstance(target, tuple) and len(target) == 2 and isinstance(target[0], Datastore):
        target[0].check_writable(caller)
        return target[0], str(target[1] or "")
    raise UserErrorException(f'{caller}: target {target!r} is not (datastore, "path") or a DataPath')


def checked(dataset, validate: bool):
    """``dataset``, which must hold some file when ``validate``."""
    if validate and not dataset.files():
        raise UserErrorException(
            f"Cannot load any data from the specified path {list(dataset.paths)}: check the path, "
            "or pass validate=False when the files come later"
        )
    return dataset


def checked_format(caller: str, partition_format: str | None) -> str | None:
    """``partition_format``, checked now (an error names the caller)."""
    if partition_format is None:
        return None
    try:
        partitions.parse(partition_format)
    except UserErrorException as error:
        raise UserErrorException(f"{caller}: {error}") from None
    return partition_format


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
            try:
                return fetch(item, caller)
            except UsageError:  # no file there: a public blob container's folder is its files, as on Azure
                folder = url_folder(item, caller)
                if folder is None:
                    raise
                return folder
        if str(item).startswith(("wasbs://", "abfss://", "azureml://")):
            raise UsageError(
                f'{caller}: "{item}" is Azure storage, not on this machine: download it and pass its local '
                "path (or upload it to a datastore)"
            )
        return os.path.abspath(item)
    raise UsageError(f"{caller}: {item!r} is neither a path nor a (datastore, path) pair")
