"""The content-addressed object store: committed step outputs, one read-only tree per digest.

A tree enters the store by one ``rename`` of a fully written folder, so no reader ever sees a
half-written object; identical content is stored once.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from localpipe.content.hashing import TreeDigest, hash_tree
from localpipe.faults import fault_point

READ_ONLY_FILE = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
READ_ONLY_DIR = READ_ONLY_FILE | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH


class ObjectStore:
    """Read-only trees under ``root/<first two hex digits>/<digest>``."""

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)
        self._root = str(root)

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest

    def has(self, digest: str) -> bool:
        # Plain strings, not Path: this is asked for every output of every reused step.
        return os.path.isdir(os.path.join(self._root, digest[:2], digest))

    def commit(self, folder: str | os.PathLike) -> TreeDigest:
        """Move ``folder`` into the store under its content digest and make it read-only.

        ``folder`` is consumed. When the store already holds the same content, ``folder`` is
        deleted instead.
        """
        tree = hash_tree(folder, ignore=False)
        target = self.path(tree.digest)
        if target.is_dir():
            os.utime(target)  # fresh again: gc keeps objects changed since the oldest active run began
            remove_tree(folder)
            return tree
        for rel in tree.files:
            path = Path(folder, rel)
            os.chmod(path, stat.S_IMODE(path.stat().st_mode) & ~0o222)
        target.parent.mkdir(parents=True, exist_ok=True)
        fault_point("store-rename")
        try:
            os.rename(folder, target)
        except OSError:
            if not target.is_dir():  # a concurrent commit of the same content won the race otherwise
                raise
            remove_tree(folder)
            return tree
        for dirpath, dirnames, _ in os.walk(target):
            for name in dirnames:
                os.chmod(os.path.join(dirpath, name), READ_ONLY_DIR)
        os.chmod(target, READ_ONLY_DIR)
        return tree

    def remove(self, digest: str) -> None:
        remove_tree(self.path(digest))


def remove_tree(path: str | os.PathLike) -> None:
    """Delete a folder even where the store made it read-only."""
    path = Path(path)
    if not path.exists():
        return
    for dirpath, _, _ in os.walk(path):
        os.chmod(dirpath, 0o700)
    shutil.rmtree(path)
