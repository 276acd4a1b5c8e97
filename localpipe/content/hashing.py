"""Content hashing of files and folder trees, with ignore rules and an optional stat cache.

One walker serves source directories, datasets and step outputs. BLAKE3 is the hash: it is a
cryptographic hash (a content-addressed store must not collide) that still hashes at ~2.7 GB/s
on one core here; see docs/performance.md for the figures behind the choice.

Symlink rule: a link is followed when its target lies inside the tree being hashed (it is then
hashed and snapshotted as the file or folder it points to); a link pointing outside the tree, or
a loop, is an error naming the link.
"""

from __future__ import annotations

import functools
import os
import re
import stat as statmod
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NoReturn, Protocol

from localpipe.errors import UsageError

# Ignore files read at the root of a source directory: `.amlignore` replaces `.gitignore`,
# and `.localpipeignore` adds to whichever applies.
PRIMARY_IGNORE_FILES = (".amlignore", ".gitignore")
EXTRA_IGNORE_FILE = ".localpipeignore"
STATE_FOLDER = ".localpipe"  # a workspace's own state, in its folder (state/layout.py)
# Never part of a step's identity: byte-code caches change whenever Python runs the code, and an
# editor's swap and backup files come and go as a file is edited (vim's while it is open).
DEFAULT_IGNORES = ("__pycache__/", "*.pyc", ".git/", f"{STATE_FOLDER}/", ".ipynb_checkpoints/", "*.swp", "*.swo", "*~")

COPY_CHUNK = 1 << 20
# A file modified this recently may still change within the same mtime tick, so its digest
# is not remembered (git's "racily clean" problem).
RACY_SECONDS = 2.0


@functools.lru_cache(maxsize=None)  # functools.cache is Python 3.9's; steps on 3.8 import this
def _blake3() -> type:
    """BLAKE3's hasher, imported on first use: a step whose environment cannot load localpipe's
    build of it (another Python version) still imports the workspace's modules (reading the model
    registry hashes nothing), and one that does hash there is told how to give it one."""
    try:
        from blake3 import blake3
    except ImportError as exc:
        raise UsageError(
            f"BLAKE3, localpipe's hash, cannot be loaded in Python {sys.version.split()[0]} ({exc}): add the "
            'package "blake3" to the environment (CondaDependencies.create(pip_packages=["blake3"]))'
        ) from None
    return blake3


def hash_bytes(data: bytes) -> str:
    """Hex BLAKE3 digest of ``data``."""
    return _blake3()(data).hexdigest()


def hash_file(path: str | os.PathLike) -> str:
    """Hex BLAKE3 digest of a file's content.

    Read in chunks, never through mmap: a mapped file truncated while it is hashed (rewritten in
    place by an editor or a program) kills the process with SIGBUS.
    """
    hasher = _blake3()()
    with open(path, "rb", buffering=0) as handle:
        if os.fstat(handle.fileno()).st_size < COPY_CHUNK:
            hasher.update(handle.read())
        else:
            buffer = _read_buffer()
            while read := handle.readinto(buffer):
                hasher.update(buffer[:read])
    return hasher.hexdigest()


_buffers = threading.local()


def _read_buffer() -> memoryview:
    """This thread's buffer for reading large files (made once: allocating it per file halved
    the throughput of a tree of 1 MiB files)."""
    if not hasattr(_buffers, "view"):
        _buffers.view = memoryview(bytearray(COPY_CHUNK))
    return _buffers.view


class StatCacheLike(Protocol):
    """Remembers file digests by (path, size, mtime_ns, ctime_ns, inode)."""

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


def ignore_spec(root: str | os.PathLike, names: set[str] | None = None):
    """The gitwildmatch spec of a source directory: defaults, then its ignore files.

    ``names``, the names in ``root`` when the caller has listed it already, saves looking for
    ignore files that are not there.
    """
    lines = list(DEFAULT_IGNORES)
    for name in PRIMARY_IGNORE_FILES:
        if (names is None or name in names) and (lines_of := _read_lines(os.path.join(root, name))):
            lines += lines_of
            break
    if names is None or EXTRA_IGNORE_FILE in names:
        lines += _read_lines(os.path.join(root, EXTRA_IGNORE_FILE))
    return _compiled_spec(tuple(lines))


def _read_lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            return handle.read().splitlines()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return []


@functools.lru_cache(maxsize=256)
def _compiled_spec(lines: tuple[str, ...]) -> IgnoreRules | DefaultIgnoreRules:
    # Most folders share the same rules (often only the defaults): compile each set once.
    if lines == DEFAULT_IGNORES:
        return DefaultIgnoreRules()
    import pathspec

    return IgnoreRules(pathspec.GitIgnoreSpec.from_lines(lines))


class IgnoreRules:
    """A gitwildmatch spec (pathspec decides) with a fast path for the common answer, "not ignored".

    pathspec tries its patterns one by one; one regex made of all of them answers at once
    whether any could match. Only when one could does pathspec give the answer, negations and
    all, so the rules are exactly pathspec's.
    """

    def __init__(self, spec):
        self.spec = spec
        sources = [
            _GROUP_NAME.sub("(?:", p.regex.pattern)
            for p in spec.patterns
            if p.include is not None and p.regex is not None
        ]
        self._any = re.compile("|".join(f"(?:{source})" for source in sources)) if sources else None

    def match_file(self, path: str) -> bool:
        return self._any is not None and self._any.match(path) is not None and self.spec.match_file(path)


_GROUP_NAME = re.compile(r"\(\?P<[^>]+>")  # named groups would clash once the patterns are joined


class DefaultIgnoreRules:
    """``DEFAULT_IGNORES`` alone, the rules of a folder without ignore files (the usual case), as
    pathspec answers them but without importing it (a tenth of a submission's start-up): a path
    is ignored when a folder on it has one of the folder names, or a name on it matches a ``*``
    pattern (a pattern without a slash matches a name at any depth, and what is under a match)."""

    FOLDERS = frozenset(p.rstrip("/") for p in DEFAULT_IGNORES if p.endswith("/"))
    SUFFIXES = tuple(p[1:] for p in DEFAULT_IGNORES if p.startswith("*"))

    def match_file(self, path: str) -> bool:
        *folders, name = path.split("/")
        if name.endswith(self.SUFFIXES) or any(f.endswith(self.SUFFIXES) for f in folders):
            return True
        return any(f in self.FOLDERS for f in folders)


def walk(
    root: str | os.PathLike, ignore: bool = True, links: list[str] | None = None
) -> list[tuple[str, str, os.stat_result]]:
    """Every file under ``root`` (not ignored by its ignore files, with ``ignore``):
    (relative path, absolute path, stat), sorted. ``root`` may be a single file. ``links``, when
    given, gets the relative path of each symlink followed.
    """
    root = os.path.abspath(root)
    if os.path.isfile(root):
        return [(os.path.basename(root), root, os.stat(root))]
    found: list[tuple[str, str, os.stat_result]] = []
    entries = _Walker.entries(root)
    spec = ignore_spec(root, {entry.name for entry in entries}) if ignore else None
    _Walker(root, spec, found, links).folder(root, "", frozenset(), entries)
    found.sort(key=lambda item: item[0])
    return found


class _Walker:
    """One walk of a tree; the real path of its root is only worked out if a symlink needs it."""

    def __init__(self, root: str, spec, found: list, links: list[str] | None = None):
        self.root, self.spec, self.found = root, spec, found
        self.links = [] if links is None else links
        self._real_root: str | None = None

    @property
    def real_root(self) -> str:
        if self._real_root is None:
            self._real_root = os.path.realpath(self.root)
        return self._real_root

    @staticmethod
    def entries(path: str) -> list[os.DirEntry]:
        try:
            return list(os.scandir(path))
        except OSError as exc:
            raise UsageError(f"cannot read folder {path}: {exc.strerror}: fix its permissions") from exc

    def folder(self, path: str, rel: str, active: frozenset[str], entries: list[os.DirEntry] | None = None) -> None:
        for entry in entries if entries is not None else self.entries(path):
            child_rel = rel + _utf8_name(entry, path)
            try:
                is_dir = entry.is_dir()
            except OSError:  # a symlink loop: link() names it
                self.link(entry, child_rel, False, active)
                continue
            if self.spec is not None and self.spec.match_file(child_rel + "/" if is_dir else child_rel):
                continue
            if entry.is_symlink():
                self.link(entry, child_rel, is_dir, active)
            elif is_dir:
                self.folder(entry.path, child_rel + "/", active)
            elif entry.is_file():
                try:
                    self.found.append((child_rel, entry.path, entry.stat()))
                except FileNotFoundError:  # deleted since the folder was listed: as a later walk
                    continue

    def link(self, entry: os.DirEntry, rel: str, is_dir: bool, active: frozenset[str]) -> None:
        target = _resolve_link(entry.path, self.real_root)
        self.links.append(rel)
        if is_dir:
            if target in active or target == self.real_root:
                raise UsageError(f"symlink {entry.path} makes a loop: remove it")
            self.folder(entry.path, rel + "/", active | {target})
        elif entry.is_file():
            self.found.append((rel, entry.path, os.stat(target)))
        else:
            raise UsageError(f"symlink {entry.path} points to nothing: remove it or fix its target")


def _utf8_name(entry: os.DirEntry, folder: str) -> str:
    if entry.name.isascii():
        return entry.name
    try:
        entry.name.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"file name {os.fsencode(entry.name)!r} in {folder} is not UTF-8: rename it") from None
    return entry.name


def _resolve_link(path: str, real_root: str) -> str:
    target = os.path.realpath(path)  # strict=True is Python 3.10's: a step on 3.8 hashes what it registers
    if not os.path.exists(target):  # a loop, or a dangling link
        raise UsageError(f"symlink {path} is a loop or points to nothing: remove it or fix its target")
    if target != real_root and not target.startswith(real_root + os.sep):
        raise UsageError(
            f"symlink {path} points outside its folder ({target}): copy the data in, or pass it as a dataset"
        )
    return target


def hash_tree(root: str | os.PathLike, *, ignore: bool = True, stat_cache: StatCacheLike | None = None) -> TreeDigest:
    """Digest of every non-ignored file under ``root`` (or of ``root`` itself if it is a file)."""
    return digest_of(walk(root, ignore), stat_cache)


def digest_of(found: list[tuple[str, str, os.stat_result]], stat_cache: StatCacheLike | None = None) -> TreeDigest:
    """The digest of the files ``found`` ((relative path, path, stat) each, as ``walk`` gives them)."""
    files: dict[str, str] = {}
    size = 0
    for rel, entry, st in file_entries(found, stat_cache):
        files[rel] = entry
        size += st.st_size
    return TreeDigest(tree_digest(files), files, size)


def file_entries(
    found: list[tuple[str, str, os.stat_result]], stat_cache: StatCacheLike | None = None
) -> Iterator[tuple[str, str, os.stat_result]]:
    """(relative path, entry digest, stat) of each file ``found`` that is still there: one deleted
    since it was listed (a build's or an editor's temporary file) is left out, as a walk a moment
    later would leave it out."""
    for rel, path, st in found:
        try:
            yield rel, file_entry(path, st, stat_cache), st
        except FileNotFoundError:
            continue


def dataset_digest(paths, stat_cache: StatCacheLike | None = None, root: str | None = None) -> str:
    """The content digest of a dataset's paths (each a file or a folder), as an input of a cache key:
    each named as the step sees it (below ``root`` for a pick of files, a lone folder by its content
    only, else by its last part), so that the same bytes at another place have the same digest."""
    names = [os.path.relpath(p, root) if root else os.path.basename(os.path.normpath(p)) for p in paths]
    if not root and len(paths) == 1 and os.path.isdir(paths[0]):
        names = ["."]
    if len(set(names)) < len(names):  # two paths of one name: only their full paths tell them apart
        names = list(paths)
    return tree_digest({n: hash_tree(p, ignore=False, stat_cache=stat_cache).digest for n, p in zip(names, paths)})


def context_digest(folder: str | os.PathLike, stat_cache: StatCacheLike | None = None) -> str:
    """The digest of a Docker build context as the daemon is sent it: each file's content and
    executable bit, each symlink's target as written (Docker sends the link, never what it points
    to, so a link out of the folder or to nothing is no problem), each empty folder; not what its
    ``.dockerignore`` leaves out, nor a workspace's own ``STATE_FOLDER`` (history.db, runs, the
    object store), which each submission changes, which is never sent either. A file unchanged
    since ``stat_cache`` saw it (size, modification and change times, inode) is not read again."""
    entries: dict[str, str] = {}
    ignored, negated = _dockerignore(folder)
    for top, folders, names in os.walk(folder, onerror=_unreadable):
        rel = os.path.relpath(top, folder)
        skipped = {STATE_FOLDER}
        if ignored is not None and not negated:  # nothing below an ignored folder can be sent
            skipped |= {name for name in folders if ignored.match_file(_below(rel, name) + "/")}
        folders[:] = [name for name in folders if name not in skipped]
        for name in folders + names:
            path = os.path.join(top, name)
            entry = _below(rel, name)
            if ignored is not None and ignored.match_file(entry):
                continue
            try:
                found = _context_entry(path, stat_cache)
            except OSError as exc:
                _unreadable(exc)
            if found is not None:
                entries[_any_bytes(entry)] = found  # Docker sends a name that is not UTF-8 as it is
    return tree_digest(entries)


def _context_entry(path: str, stat_cache: StatCacheLike | None) -> str | None:
    """A build context's entry for ``path``: a link's target, a file's content, a folder's mark;
    None for anything else (a socket, a pipe: Docker sends none)."""
    st = os.lstat(path)
    if statmod.S_ISLNK(st.st_mode):
        return "->" + _any_bytes(os.readlink(path))
    if statmod.S_ISREG(st.st_mode):
        return file_entry(path, st, stat_cache)
    return "/" if statmod.S_ISDIR(st.st_mode) else None


def _any_bytes(name: str) -> str:
    """``name`` as text that encodes: itself when it is UTF-8, else its bytes escaped (``\\xe9``)."""
    return os.fsencode(name).decode("utf-8", "backslashreplace")


def _below(rel: str, name: str) -> str:
    return name if rel == "." else f"{rel}/{name}"


def _dockerignore(folder: str | os.PathLike) -> tuple[IgnoreRules | None, bool]:
    """The rules of a build context's ``.dockerignore`` (its patterns are anchored at the folder's
    top, the last match decides, ``!`` excepts), and whether any excepts."""
    patterns = []
    for line in _read_lines(os.path.join(folder, ".dockerignore")):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate, body = line.startswith("!"), os.path.normpath(line.lstrip("!").strip()).lstrip("/")
        if body != ".":
            patterns.append(("!" if negate else "") + "/" + body)
    if not patterns:
        return None, False
    return _compiled_spec(tuple(patterns)), any(p.startswith("!") for p in patterns)


def _unreadable(exc: OSError) -> NoReturn:
    if isinstance(exc, FileNotFoundError):  # removed while it was read
        raise UsageError(f"{exc.filename} went away while it was read: put it back, or submit again") from None
    what = "folder " if isinstance(exc, NotADirectoryError) or os.path.isdir(exc.filename or "") else ""
    raise UsageError(f"cannot read {what}{exc.filename}: {exc.strerror}: fix its permissions") from None


def file_entry(path: str, st: os.stat_result, stat_cache: StatCacheLike | None = None) -> str:
    """A file's entry in a tree digest: its content digest (from the stat cache when it is unchanged)
    and its executable bit."""
    digest = stat_cache.lookup(path, st) if stat_cache else None
    if digest is None:
        digest = hash_file(path)
        if stat_cache and time.time() - st.st_mtime > RACY_SECONDS:
            stat_cache.remember(path, st, digest)
    return _entry_digest(digest, st)


def _entry_digest(content_digest: str, st: os.stat_result) -> str:
    # The executable bit is part of a file's identity: `./run.sh` behaves differently without it.
    return content_digest + ("+x" if st.st_mode & statmod.S_IXUSR else "")


def tree_digest(files: dict[str, str]) -> str:
    """Digest of a whole tree from its per-file digests."""
    hasher = _blake3()()
    for rel in sorted(files):
        hasher.update(f"{rel}\0{files[rel]}\n".encode())
    return hasher.hexdigest()


def copy_tree(root: str | os.PathLike, rels: list[str], dest: str | os.PathLike) -> TreeDigest:
    """Copy the files ``rels`` of ``root`` into ``dest``, hashing the bytes as they are copied.

    The digest returned is that of the copy, so a file edited after planning shows up as a
    different digest rather than as a snapshot that disagrees with its key; a file deleted since
    is left out, the same way.
    """
    root, dest = os.fspath(root), os.fspath(dest)
    os.makedirs(dest, exist_ok=True)
    made = {dest}  # the folders made so far: most snapshots are a few files in one or two
    files: dict[str, str] = {}
    size = 0
    for rel in rels:
        src, dst = os.path.join(root, rel), os.path.join(dest, rel)
        try:
            fin = open(src, "rb")  # noqa: SIM115 (closed by the with below)
        except FileNotFoundError:
            continue
        parent = os.path.dirname(dst)
        if parent not in made:
            os.makedirs(parent, exist_ok=True)
            made.add(parent)
        hasher = _blake3()()
        with fin, open(dst, "wb") as fout:
            st = os.fstat(fin.fileno())
            while chunk := fin.read(COPY_CHUNK):
                hasher.update(chunk)
                fout.write(chunk)
        os.chmod(dst, statmod.S_IMODE(st.st_mode))
        files[rel] = _entry_digest(hasher.hexdigest(), st)
        size += st.st_size
    return TreeDigest(tree_digest(files), files, size)
