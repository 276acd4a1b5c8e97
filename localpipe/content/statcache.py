"""A per-file stat cache: (path, size, mtime_ns, ctime_ns, inode) -> digest, so unchanged files are never
re-read. The ctime is what a program cannot set: a file edited in place with its size and mtime put
back (``touch -r``, a tool restoring times) has a new one, so it is read again, as git does
(``core.trustctime``).

Kept in its own file (`.localpipe/statcache.bin`, a marshal-encoded dict) rather than history.db:
it is a cache that may be deleted at any time, read whole by every command that hashes (so it
must load in milliseconds for 10,000 files), and written by whoever hashes, not only the
scheduler. A save merges with what is on disk and replaces the file by a rename; two writers at
once can lose each other's new entries, which only costs a re-read later.
"""

from __future__ import annotations

import marshal
import os
from pathlib import Path

FORMAT = 2  # 1 had no ctime: its entries are not read (a slower run, nothing worse)


class StatCache:
    """Loaded whole on open; new entries are written back by ``save``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        # path -> (size, mtime_ns, ctime_ns, inode, digest)
        self._entries: dict[str, tuple] = self._load()
        self._new: dict[str, tuple] = {}

    def _load(self) -> dict[str, tuple]:
        try:
            version, entries = marshal.loads(self.path.read_bytes())
        except (OSError, ValueError, EOFError, TypeError):
            return {}  # missing or damaged: a slower run, nothing worse
        return entries if version == FORMAT and isinstance(entries, dict) else {}

    def lookup(self, path: str, st: os.stat_result) -> str | None:
        entry = self._new.get(path) or self._entries.get(path)
        if (
            entry
            and entry[0] == st.st_size
            and entry[1] == st.st_mtime_ns
            and entry[2] == st.st_ctime_ns
            and entry[3] == st.st_ino
        ):
            return entry[4]
        return None

    def remember(self, path: str, st: os.stat_result, digest: str) -> None:
        self._new[path] = (st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, digest)

    def forget(self, path: str) -> None:
        """Drop what is known of ``path`` (the watcher calls this on a change)."""
        self._entries.pop(path, None)
        self._new.pop(path, None)

    def save(self) -> None:
        if not self._new:
            return
        merged = {**self._load(), **self._entries, **self._new}
        staging = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        try:
            staging.write_bytes(marshal.dumps((FORMAT, merged)))
            os.replace(staging, self.path)
        except OSError:
            staging.unlink(missing_ok=True)
            return  # a cache that cannot be written only costs time
        self._entries = merged
        self._new.clear()
