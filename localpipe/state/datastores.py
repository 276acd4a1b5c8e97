"""Datastore contents: uploads into a datastore folder, and what each datastore holds."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from localpipe.errors import UsageError
from localpipe.state.layout import Layout, within


def upload(
    layout: Layout,
    name: str,
    folder: Path,
    files: list[Path],
    root: Path,
    target_path: str,
    overwrite: bool,
    show_progress: bool,
) -> Path:
    """Copy ``files`` into ``folder / target_path`` (datastore ``name``'s folder), each at its path below
    ``root``; existing files are kept unless ``overwrite``. Nothing is copied when one would be
    written out of the datastore, or into the workspace's own state (``layout``)."""
    store = folder.resolve()
    target = (store / target_path.lstrip("/")).resolve()
    if not within(target, store):
        raise UsageError(
            f'upload to datastore "{name}": target_path "{target_path}" leaves the '
            "datastore: use a relative path inside it"
        )
    places = sorted((target / source.relative_to(root), source) for source in files)
    for dest, _ in places:  # all checked before anything is copied
        real = os.path.realpath(dest)
        if not real.startswith(str(store) + os.sep):
            raise UsageError(
                f'upload to datastore "{name}": {dest.relative_to(store).as_posix()} would be written to {real}, '
                "out of the datastore, through a link: remove the link, or upload to another target_path"
            )
        if layout.holds(real):
            raise UsageError(
                f'upload to datastore "{name}": {dest.relative_to(store).as_posix()} would be written to {real}, '
                "into the workspace's own state (its .localpipe folder): upload to another target_path"
            )
    copied = skipped = 0
    for dest, source in places:
        if dest.exists() and not overwrite:
            skipped += 1
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, dest)
        copied += 1
    if show_progress:
        print(f"Uploaded {copied} files to {name}:{target_path or '/'} ({skipped} already there)")
    return target


def folder_summary(path: Path) -> tuple[int, int]:
    """(files, bytes) under ``path``."""
    files = size = 0
    for folder, _, names in os.walk(path):
        for name in names:
            files += 1
            size += os.lstat(os.path.join(folder, name)).st_size
    return files, size
