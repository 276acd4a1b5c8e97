"""``Run.take_snapshot``: a copy of a file or folder kept as a run's snapshot, as a step's source is.

The copy holds the non-ignored files (``.amlignore``, else ``.gitignore``, and ``.localpipeignore``,
as for a step's source) in the run's folder (``.localpipe/runs/RUN/STEP/snapshot``), and its digest
is recorded on the run, so that ``get_snapshot_id`` and ``restore_snapshot`` work as for steps.
"""

from __future__ import annotations

import os
from pathlib import Path

from localpipe.errors import UserErrorException

# The SDK refuses a snapshot above this size (its message suggests a smaller folder or an ignore file).
MAX_SNAPSHOT_BYTES = 300 * 1024 * 1024


def take_snapshot(history, holder: dict, folder: Path, file_or_folder_path) -> str:
    """Copy ``file_or_folder_path`` into ``folder/snapshot`` and record it on the step run ``holder``."""
    from localpipe.content.hashing import copy_tree, hash_tree

    source = Path(file_or_folder_path).resolve()
    if not source.exists():
        raise UserErrorException(f"take_snapshot: {file_or_folder_path} does not exist: give a file or a folder")
    if source.is_file():
        root, names = source.parent, [source.name]
    else:
        tree = hash_tree(source)
        if tree.size > MAX_SNAPSHOT_BYTES:
            raise UserErrorException(
                f"take_snapshot: {source} holds {tree.size // 2**20} MiB, over the {MAX_SNAPSHOT_BYTES // 2**20} MiB "
                "a snapshot may hold: list what to leave out in its .amlignore, or pass a smaller folder "
                "(start_logging(snapshot_directory=None) takes none)"
            )
        root, names = source, sorted(tree.files)
    target = folder / "snapshot"
    os.makedirs(target, exist_ok=True)
    copied = copy_tree(root, names, target)
    history.runs.set_snapshot(holder["id"], copied.digest, copied.files, copied.size)
    return copied.digest
