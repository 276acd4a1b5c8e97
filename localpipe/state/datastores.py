"""Datastore contents: uploads into a datastore folder, and what each datastore holds."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from localpipe.errors import UsageError


def upload(name: str, folder: Path, src_dir: Path, target_path: str, overwrite: bool, show_progress: bool) -> Path:
    """Copy ``src_dir`` into ``folder / target_path`` (datastore ``name``'s folder); existing files are
    kept unless ``overwrite``."""
    if not src_dir.is_dir():
        raise UsageError(f'upload to datastore "{name}": {src_dir} is not a folder: pass a folder')
    root = folder.resolve()
    target = (root / target_path).resolve()
    if target != root and not target.is_relative_to(root):
        raise UsageError(
            f'upload to datastore "{name}": target_path "{target_path}" leaves the '
            "datastore: use a relative path inside it"
        )
    copied = skipped = 0
    for folder, _, names in os.walk(src_dir):
        for name in names:
            source = Path(folder, name)
            dest = target / source.relative_to(src_dir)
            if dest.exists() and not overwrite:
                skipped += 1
                continue
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest)
            copied += 1
    if show_progress:
        print(f"uploaded {copied} files to {name}:{target_path or '/'} ({skipped} already there)")
    return target


def folder_summary(path: Path) -> tuple[int, int]:
    """(files, bytes) under ``path``."""
    files = size = 0
    for folder, _, names in os.walk(path):
        for name in names:
            files += 1
            size += os.lstat(os.path.join(folder, name)).st_size
    return files, size
