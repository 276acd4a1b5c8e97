"""Source trees kept up to date file by file from change notifications.

A tree is walked and hashed once; afterwards only the paths a watcher reports as changed are
looked at again, so re-checking a 10,000-file project after a save touches one file, not ten
thousand. A change to an ignore file, or to a symlink, rewalks that tree; so does any change in a
tree that holds a symlink (a save reports the file the link points to, not the link).
"""

from __future__ import annotations

import os

from localpipe.content.hashing import (
    EXTRA_IGNORE_FILE,
    PRIMARY_IGNORE_FILES,
    StatCacheLike,
    TreeDigest,
    file_entries,
    ignore_spec,
    tree_digest,
    walk,
)

IGNORE_FILES = frozenset((*PRIMARY_IGNORE_FILES, EXTRA_IGNORE_FILE))


class TreeCache:
    """Digests of trees by root, refreshed only where ``changed`` says."""

    def __init__(self, stat_cache: StatCacheLike | None = None):
        self.stat_cache = stat_cache
        self._files: dict[str, dict[str, str]] = {}  # root -> relative path -> entry digest
        self._sizes: dict[str, dict[str, int]] = {}
        self._dirty: dict[str, set[str]] = {}  # root -> absolute paths reported changed
        self._linked: set[str] = set()  # roots holding a symlink

    def tree(self, root: str) -> TreeDigest:
        """The current digest of ``root``; hashed in full the first time only."""
        root = os.path.abspath(root)
        dirty = self._dirty.pop(root, set())
        try:
            return self._tree(root, dirty)
        except BaseException:  # a link to nothing, say: the changes noted are not lost, it is walked again
            self._files.pop(root, None)
            raise

    def _tree(self, root: str, dirty: set[str]) -> TreeDigest:
        if root not in self._files or any(self._needs_full_walk(root, path) for path in dirty):
            files: dict[str, str] = {}
            sizes: dict[str, int] = {}
            links: list[str] = []
            for rel, entry, st in file_entries(walk(root, links=links), self.stat_cache):
                files[rel], sizes[rel] = entry, st.st_size
            self._files[root], self._sizes[root] = files, sizes
            if links:
                self._linked.add(root)
            else:
                self._linked.discard(root)
        elif dirty:
            spec = ignore_spec(root)
            for path in sorted(dirty):
                self._refresh(root, path, spec)
        files = self._files[root]
        return TreeDigest(tree_digest(files), dict(files), sum(self._sizes[root].values()))

    def changed(self, path: str) -> list[str]:
        """Note that ``path`` changed; returns the known roots it belongs to."""
        path = os.path.abspath(path)
        roots = [root for root in self._files if path == root or path.startswith(root + os.sep)]
        for root in roots:
            self._dirty.setdefault(root, set()).add(path)
        if self.stat_cache is not None:
            self.stat_cache.forget(path)
        return roots

    def knows(self, path: str) -> bool:
        """Whether ``path`` is, or holds, a file of a tree hashed so far (an editor's temporary
        file, made and removed between two hashings, never is)."""
        path = os.path.abspath(path)
        for root, files in self._files.items():
            if path == root:
                return True
            if path.startswith(root + os.sep):
                rel = os.path.relpath(path, root).replace(os.sep, "/")
                if rel in files or any(known.startswith(rel + "/") for known in files):
                    return True
        return False

    def _needs_full_walk(self, root: str, path: str) -> bool:
        return root in self._linked or os.path.basename(path) in IGNORE_FILES or os.path.islink(path) or path == root

    def _refresh(self, root: str, path: str, spec) -> None:
        files, sizes = self._files[root], self._sizes[root]
        rel = os.path.relpath(path, root)
        for known in [k for k in files if k == rel or k.startswith(rel + "/")]:
            del files[known]
            del sizes[known]
        if os.path.isdir(path):
            if spec.match_file(rel + "/"):
                return
            found = [(f"{rel}/{sub_rel}", sub_path, st) for sub_rel, sub_path, st in walk(path, ignore=False)]
            for full_rel, entry, st in file_entries([f for f in found if not spec.match_file(f[0])], self.stat_cache):
                files[full_rel], sizes[full_rel] = entry, st.st_size
        elif os.path.isfile(path) and not spec.match_file(rel):
            try:
                found = [(rel, path, os.stat(path))]
            except FileNotFoundError:  # deleted again since
                return
            for rel, entry, st in file_entries(found, self.stat_cache):
                files[rel], sizes[rel] = entry, st.st_size


def source_trees(graph, trees: TreeCache) -> dict[str, TreeDigest | None]:
    """The source tree of every step of ``graph`` (a ``Graph``), each distinct folder once."""
    by_folder: dict[str, TreeDigest] = {}
    for spec in graph.steps.values():
        if spec.source_dir and spec.source_dir not in by_folder:
            by_folder[spec.source_dir] = trees.tree(spec.source_dir)
    return {name: by_folder.get(spec.source_dir) if spec.source_dir else None for name, spec in graph.steps.items()}
