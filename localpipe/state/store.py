"""The content-addressed object store: committed step outputs, one read-only tree per digest.

A tree enters the store by one ``rename`` of a fully written folder, so no reader ever sees a
half-written object; identical content is stored once. What a step wrote is checked first: a
link must point inside the output (an absolute one is made relative, so that it still does
after the move), a file with other hard links is copied (the object must not share its bytes
with a file outside), and anything else than folders, files and such links is refused, as is a
name that is not UTF-8. A commit that finds its digest's folder already there rehashes it and
replaces it when it was damaged.

Reuse checks an object cheaply (``intact``: its files' count and total size against what was
recorded when it was committed, no content read); ``verify`` rehashes it, as `localpipe fsck`
does for every object.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass, field
from pathlib import Path

from localpipe.content.hashing import TreeDigest, digest_of, hash_tree, walk
from localpipe.errors import LocalpipeError, OutputError
from localpipe.faults import fault_point

READ_ONLY_FILE = stat.S_IRUSR | stat.S_IRGRP | stat.S_IROTH
READ_ONLY_DIR = READ_ONLY_FILE | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH
# A tree committed outside a transaction may be collected by a concurrent gc before the transaction
# that names it: registering commits it again (this many times in all).
COMMIT_ATTEMPTS = 3


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

    def intact(self, digest: str, size: int | None, files: int | None) -> bool:
        """Whether the object is there with the count of files and the bytes it was committed with
        (``TreeDigest.files`` and ``.size``); only its presence, for objects recorded before
        localpipe kept those."""
        path = os.path.join(self._root, digest[:2], digest)
        if files is None or size is None:
            return os.path.isdir(path)
        try:
            counted = _count(path)
            if counted is None:  # links, counted as what they point to by the general walk
                found = walk(path, ignore=False)
                counted = len(found), sum(st.st_size for _, _, st in found)
        except (OSError, LocalpipeError):
            return False
        return counted == (files, size)

    def verify(self, digest: str) -> str | None:
        """Why the object is damaged (its content no longer hashes to its name), or None."""
        if not stat.S_ISDIR(os.lstat(self.path(digest)).st_mode):
            return "it is a link or a file, not a folder"
        try:
            actual = hash_tree(self.path(digest), ignore=False).digest
        except (OSError, LocalpipeError) as exc:
            return f"cannot be read: {exc}"
        return None if actual == digest else f"its content hashes to {actual[:12]}, not to its name"

    def commit(self, folder: str | os.PathLike) -> TreeDigest:
        """Move ``folder`` into the store under its content digest and make it read-only.

        ``folder`` is consumed. When the store already holds the same content, ``folder`` is
        deleted instead. OutputError says what in ``folder`` cannot be stored.
        """
        folder = os.fspath(folder)
        found = prepare_tree(folder)
        # Links are hashed as what they point to: the general walk follows them.
        tree = hash_tree(folder, ignore=False) if found.links else digest_of(found.files)
        target = os.path.join(self._root, tree.digest[:2], tree.digest)
        if os.path.isdir(target):
            if self.verify(tree.digest) is None:
                os.utime(target)  # fresh again: gc keeps objects changed since the oldest active run began
                remove_tree(folder)
                return tree
            remove_tree(target)  # damaged: this commit's copy, which hashes to its name, replaces it
        for _, path, st in found.files:
            os.chmod(path, st.st_mode & 0o555)  # read-only, and never set-user-ID: a step's file, run by anyone
        os.makedirs(os.path.dirname(target), exist_ok=True)
        fault_point("store-rename")
        try:
            os.rename(folder, target)
        except OSError:
            if not os.path.isdir(target):  # a concurrent commit of the same content won the race otherwise
                raise
            remove_tree(folder)
            return tree
        for rel in found.folders:
            os.chmod(os.path.join(target, rel), READ_ONLY_DIR)
        os.chmod(target, READ_ONLY_DIR)
        return tree

    def remove(self, digest: str) -> None:
        remove_tree(self.path(digest))


@dataclass
class _Found:
    """What a tree about to be stored holds: its regular files (relative path, path, stat), its
    folders (relative paths, below its root) and whether it holds links."""

    files: list[tuple[str, str, os.stat_result]] = field(default_factory=list)
    folders: list[str] = field(default_factory=list)
    links: bool = False


def _count(folder: str) -> tuple[int, int] | None:
    """The files below ``folder`` and their bytes, or None when it holds a link (asked for every
    output of every reused step: one listing per folder, no sorting, nothing hashed)."""
    files = size = 0
    pending = [folder]
    while pending:
        for entry in os.scandir(pending.pop()):
            if entry.is_symlink():
                return None
            if entry.is_dir():
                pending.append(entry.path)
            elif entry.is_file():
                files, size = files + 1, size + entry.stat().st_size
    return files, size


def prepare_tree(folder: str) -> _Found:
    """Make ``folder`` fit to be stored as it is, or raise OutputError naming what is not; what
    it holds, from the same one pass.

    A link pointing inside ``folder`` stays (an absolute one is made relative); one pointing
    outside it, to nothing, or in a loop is refused. A file with other hard links becomes a copy
    of its own. Names that are not UTF-8, and FIFOs, sockets and devices, are refused.
    """
    if not stat.S_ISDIR(os.lstat(folder).st_mode):  # the output's own folder replaced by a link, say
        raise OutputError(
            f"{os.path.basename(folder)} is not a folder the step wrote into (it is a link or a file): "
            "write the output's files into the folder given to the step"
        )
    found = _Found()
    pending = [("", folder)]
    while pending:
        rel_dir, path_dir = pending.pop()
        for entry in os.scandir(path_dir):
            name, path = entry.name, entry.path
            rel = rel_dir + name
            if not name.isascii():
                try:
                    name.encode("utf-8")
                except UnicodeEncodeError:
                    raise OutputError(
                        f"file name {os.fsencode(name)!r} in {rel_dir.rstrip('/') or '.'} is not UTF-8: rename it"
                    ) from None
            st = entry.stat(follow_symlinks=False)
            if stat.S_ISDIR(st.st_mode):
                found.folders.append(rel)
                pending.append((rel + "/", path))
            elif stat.S_ISREG(st.st_mode):
                if st.st_nlink > 1:
                    copy = f"{path}.localpipe-copy"
                    shutil.copy2(path, copy)
                    os.replace(copy, path)
                    st = os.lstat(path)
                found.files.append((rel, path, st))
            elif stat.S_ISLNK(st.st_mode):
                _keep_link_inside(path, rel, os.path.realpath(folder))
                found.links = True
            else:
                raise OutputError(f"{rel} is a {kind_of(st.st_mode)}, which cannot be stored: write a regular file")
    found.files.sort(key=lambda item: item[0])
    return found


def _keep_link_inside(path: str, rel: str, root: str) -> None:
    target = os.path.realpath(path)  # strict=True is Python 3.10's: a step on 3.8 commits what it registers
    if not os.path.exists(target):  # a loop, or a dangling link
        raise OutputError(f"symlink {rel} is a loop or points to nothing: remove it, or point it inside the output")
    if not target.startswith(root + os.sep):
        raise OutputError(
            f"symlink {rel} points outside the output ({target}): write the data itself into the output"
        ) from None
    if os.path.isabs(os.readlink(path)):  # it would point into the step folder once moved into the store
        os.unlink(path)
        os.symlink(os.path.relpath(target, os.path.realpath(os.path.dirname(path))), path)


def kind_of(mode: int) -> str:
    """What a file that is neither a regular file nor a folder is, in a word: "link", "FIFO", ..."""
    if stat.S_ISLNK(mode):
        return "link"
    if stat.S_ISFIFO(mode):
        return "FIFO"
    if stat.S_ISSOCK(mode):
        return "socket"
    return "device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) else "special file"


def remove_tree(path: str | os.PathLike) -> None:
    """Delete a folder even where the store made it read-only; a link (or a file) is removed itself,
    never what it points at."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(mode):
        os.unlink(path)
        return
    for dirpath, _, _ in os.walk(path):
        os.chmod(dirpath, 0o700)
    shutil.rmtree(path)
