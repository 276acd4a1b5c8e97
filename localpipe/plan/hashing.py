"""Content hashing of files and folder trees, with ignore rules and an optional stat cache.

One walker serves source directories, datasets and step outputs. BLAKE3 is the hash: it is a
cryptographic hash (a content-addressed store must not collide) that still hashes at ~2.7 GB/s
on one core here; see docs/performance.md for the figures behind the choice.

Symlink rule: a link is followed when its target lies inside the tree being hashed (it is then
hashed and snapshotted as the file or folder it points to); a link pointing outside the tree, or
a loop, is an error naming the link.
"""

from __future__ import annotations

import os
import stat as statmod
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import blake3

from localpipe.errors import UsageError

# Ignore files read at the root of a source directory: `.amlignore` replaces `.gitignore`,
# and `.localpipeignore` adds to whichever applies.
PRIMARY_IGNORE_FILES = (".amlignore", ".gitignore")
EXTRA_IGNORE_FILE = ".localpipeignore"
# Never part of a step's identity: byte-code caches change whenever Python runs the code.
DEFAULT_IGNORES = ("__pycache__/", "*.pyc", ".git/", ".localpipe/", ".ipynb_checkpoints/")

MMAP_THRESHOLD = 1 << 20
COPY_CHUNK = 1 << 20
# A file modified this recently may still change within the same mtime tick, so its digest
# is not remembered (git's "racily clean" problem).
RACY_SECONDS = 2.0


def hash_bytes(data: bytes) -> str:
    """Hex BLAKE3 digest of ``data``."""
    return blake3.blake3(data).hexdigest()


def hash_file(path: str | os.PathLike) -> str:
    """Hex BLAKE3 digest of a file's content."""
    hasher = blake3.blake3()
    if os.path.getsize(path) >= MMAP_THRESHOLD:
        hasher.update_mmap(path)
    else:
        with open(path, "rb") as handle:
            hasher.update(handle.read())
    return hasher.hexdigest()


class StatCacheLike(Protocol):
    """Remembers file digests by (path, size, mtime_ns, inode)."""

    def lookup(self, path: str, st: os.stat_result) -> str | None: ...

    def remember(self, path: str, st: os.stat_result, digest: str) -> None: ...


@dataclass(frozen=True)
class TreeDigest:
    """The digest of a tree and of each file in it, by path relative to the tree's root."""

    digest: str
    files: dict[str, str]
    size: int

    def changed_files(self, before: dict[str, str]) -> list[str]:
        """Paths added, removed or changed since ``before`` (a ``files`` mapping), sorted."""
        keys = self.files.keys() | before.keys()
        return sorted(p for p in keys if self.files.get(p) != before.get(p))


def ignore_spec(root: str | os.PathLike):
    """The gitwildmatch spec of a source directory: defaults, then its ignore files."""
    import pathspec

    root = Path(root)
    lines = list(DEFAULT_IGNORES)
    for name in PRIMARY_IGNORE_FILES:
        if (root / name).is_file():
            lines += (root / name).read_text(errors="replace").splitlines()
            break
    if (root / EXTRA_IGNORE_FILE).is_file():
        lines += (root / EXTRA_IGNORE_FILE).read_text(errors="replace").splitlines()
    return pathspec.GitIgnoreSpec.from_lines(lines)


def walk(root: str | os.PathLike, spec=None) -> list[tuple[str, str, os.stat_result]]:
    """Every file under ``root`` not ignored by ``spec``: (relative path, absolute path, stat), sorted.

    ``root`` may be a single file, listed under its own name.
    """
    root = os.path.abspath(root)
    if os.path.isfile(root):
        return [(os.path.basename(root), root, os.stat(root))]
    real_root = os.path.realpath(root)
    found: list[tuple[str, str, os.stat_result]] = []
    _walk_dir(root, "", real_root, spec, found, {real_root})
    found.sort(key=lambda item: item[0])
    return found


def _walk_dir(path: str, rel: str, real_root: str, spec, found: list, active: set[str]) -> None:
    try:
        entries = list(os.scandir(path))
    except OSError as exc:
        raise UsageError(f"cannot read folder {path}: {exc.strerror}: fix its permissions") from exc
    for entry in entries:
        name = _utf8_name(entry, path)
        child_rel = f"{rel}{name}"
        is_dir = entry.is_dir()
        if spec is not None and spec.match_file(child_rel + "/" if is_dir else child_rel):
            continue
        target = entry.path
        if entry.is_symlink():
            target = _resolve_link(entry.path, real_root)
            if is_dir and target in active:
                raise UsageError(f"symlink {entry.path} makes a loop: remove it")
        if is_dir:
            _walk_dir(entry.path, child_rel + "/", real_root, spec, found, active | {os.path.realpath(target)})
        elif entry.is_file():
            found.append((child_rel, entry.path, os.stat(target)))
        elif entry.is_symlink():
            raise UsageError(f"symlink {entry.path} points to nothing: remove it or fix its target")


def _utf8_name(entry: os.DirEntry, folder: str) -> str:
    try:
        entry.name.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(
            f"file name {os.fsencode(entry.name)!r} in {folder} is not UTF-8: rename it"
        ) from None
    return entry.name


def _resolve_link(path: str, real_root: str) -> str:
    try:
        target = os.path.realpath(path, strict=True)
    except OSError:  # ELOOP for a loop, ENOENT for a dangling link
        raise UsageError(f"symlink {path} is a loop or points to nothing: remove it or fix its target") from None
    if target != real_root and not target.startswith(real_root + os.sep):
        raise UsageError(
            f"symlink {path} points outside its folder ({target}): copy the data in, or pass it as a dataset"
        )
    return target


def hash_tree(root: str | os.PathLike, *, ignore: bool = True,
              stat_cache: StatCacheLike | None = None) -> TreeDigest:
    """Digest of every non-ignored file under ``root`` (or of ``root`` itself if it is a file)."""
    spec = ignore_spec(root) if ignore and os.path.isdir(root) else None
    files: dict[str, str] = {}
    size = 0
    for rel, path, st in walk(root, spec):
        digest = stat_cache.lookup(path, st) if stat_cache else None
        if digest is None:
            digest = hash_file(path)
            if stat_cache and time.time() - st.st_mtime > RACY_SECONDS:
                stat_cache.remember(path, st, digest)
        files[rel] = _entry_digest(digest, st)
        size += st.st_size
    return TreeDigest(tree_digest(files), files, size)


def _entry_digest(content_digest: str, st: os.stat_result) -> str:
    # The executable bit is part of a file's identity: `./run.sh` behaves differently without it.
    return content_digest + ("+x" if st.st_mode & statmod.S_IXUSR else "")


def tree_digest(files: dict[str, str]) -> str:
    """Digest of a whole tree from its per-file digests."""
    hasher = blake3.blake3()
    for rel in sorted(files):
        hasher.update(f"{rel}\0{files[rel]}\n".encode())
    return hasher.hexdigest()


def copy_tree(root: str | os.PathLike, rels: list[str], dest: str | os.PathLike) -> TreeDigest:
    """Copy the files ``rels`` of ``root`` into ``dest``, hashing the bytes as they are copied.

    The digest returned is that of the copy, so a file edited after planning shows up as a
    different digest rather than as a snapshot that disagrees with its key.
    """
    root, dest = Path(root), Path(dest)
    files: dict[str, str] = {}
    size = 0
    for rel in rels:
        src, dst = root / rel, dest / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        hasher = blake3.blake3()
        with open(src, "rb") as fin, open(dst, "wb") as fout:
            st = os.fstat(fin.fileno())
            while chunk := fin.read(COPY_CHUNK):
                hasher.update(chunk)
                fout.write(chunk)
        os.chmod(dst, statmod.S_IMODE(st.st_mode))
        files[rel] = _entry_digest(hasher.hexdigest(), st)
        size += st.st_size
    return TreeDigest(tree_digest(files), files, size)
