"""A per-file stat cache: (path, size, mtime_ns, inode) -> digest, so unchanged files are never re-read.

Kept in its own SQLite file (`.localpipe/statcache.db`) rather than history.db: it is a cache
that may be deleted at any time, and it is written by whoever hashes, not only the scheduler.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path


class StatCache:
    """Loaded whole on open; new entries are written back by ``save``."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        # path -> (path, size, mtime_ns, inode, digest): the rows as SQLite returns them.
        self._entries: dict[str, tuple] = {}
        self._new: dict[str, tuple] = {}
        try:
            with self._connect() as conn:
                self._entries = {row[0]: row for row in conn.execute("SELECT * FROM files").fetchall()}
        except sqlite3.DatabaseError:
            self._entries = {}  # a damaged cache is only a slower run: start again

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=10)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("CREATE TABLE IF NOT EXISTS files (path TEXT PRIMARY KEY, size INTEGER, "
                     "mtime_ns INTEGER, ino INTEGER, digest TEXT)")
        return conn

    def lookup(self, path: str, st: os.stat_result) -> str | None:
        entry = self._new.get(path) or self._entries.get(path)
        if entry and entry[1] == st.st_size and entry[2] == st.st_mtime_ns and entry[3] == st.st_ino:
            return entry[4]
        return None

    def remember(self, path: str, st: os.stat_result, digest: str) -> None:
        self._new[path] = (path, st.st_size, st.st_mtime_ns, st.st_ino, digest)

    def forget(self, path: str) -> None:
        """Drop what is known of ``path`` (the watcher calls this on a change)."""
        self._entries.pop(path, None)
        self._new.pop(path, None)

    def save(self) -> None:
        if not self._new:
            return
        try:
            with self._connect() as conn:
                conn.executemany("INSERT OR REPLACE INTO files VALUES (?, ?, ?, ?, ?)", list(self._new.values()))
        except sqlite3.Error:
            return  # a cache that cannot be written only costs time
        self._entries.update(self._new)
        self._new.clear()
