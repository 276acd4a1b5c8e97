"""Which git commit each step's source came from: commit, branch and whether the tree was dirty.

Recorded on the pipeline run at submission (``pipeline_run.git``), one entry per repository,
so that `localpipe show` can say what code a run used. No git, or a folder outside any
repository, records nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess

GIT_TIMEOUT_SECONDS = 10


def git_info(folders: list[str]) -> dict[str, dict]:
    """``{repository root: {"commit", "branch", "dirty", "folders"}}`` for the folders inside one."""
    git = shutil.which("git")
    if git is None:
        return {}
    roots: dict[str, list[str]] = {}
    known: dict[str, str | None] = {}
    for folder in folders:
        root = _repository_root(folder, known)
        if root is not None:
            roots.setdefault(root, []).append(folder)
    info = {}
    for root, members in roots.items():
        commit = _git(git, root, "rev-parse", "HEAD")
        if commit is None:
            continue  # a repository with no commit yet
        status = _git(git, root, "status", "--porcelain")
        info[root] = {
            "commit": commit,
            "branch": _git(git, root, "rev-parse", "--abbrev-ref", "HEAD"),
            "dirty": bool(status),
            "folders": sorted(members),
        }
    return info


def _repository_root(folder: str, known: dict[str, str | None]) -> str | None:
    """The nearest folder above ``folder`` holding `.git`; looked up once per folder visited."""
    visited = []
    path = os.path.abspath(folder)
    while path not in known:
        visited.append(path)
        if os.path.exists(os.path.join(path, ".git")):
            known[path] = path
            break
        parent = os.path.dirname(path)
        if parent == path:
            known[path] = None
            break
        path = parent
    for seen in visited:
        known[seen] = known[path]
    return known[path]


def _git(git: str, root: str, *args: str) -> str | None:
    try:
        done = subprocess.run([git, "-C", root, *args], capture_output=True, text=True, timeout=GIT_TIMEOUT_SECONDS)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return done.stdout.strip() if done.returncode == 0 else None
