"""The folders and files inside a workspace's `.localpipe/` (docs/storage.md)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from localpipe.content.hashing import hash_bytes

MAX_PLAIN_BYTES = 100  # bytes of a step name kept in its folder's name (file names hold 255)
SUBDIRS = ("objects", "runs", "tmp", "datastores/workspaceblobstore", "datastores/workspacefilestore")


@dataclass(frozen=True)
class Layout:
    """Where everything of one workspace lives; ``state_dir`` is its `.localpipe/` folder."""

    state_dir: Path

    @classmethod
    def of(cls, state_dir: str | Path) -> Layout:
        return cls(Path(state_dir).resolve())

    @property
    def root(self) -> Path:
        """The workspace folder (the one holding `.localpipe/`)."""
        return self.state_dir.parent

    @property
    def history(self) -> Path:
        return self.state_dir / "history.db"

    @property
    def objects(self) -> Path:
        return self.state_dir / "objects"

    @property
    def runs(self) -> Path:
        return self.state_dir / "runs"

    @property
    def tmp(self) -> Path:
        return self.state_dir / "tmp"

    @property
    def private_packages(self) -> Path:
        """Wheels added with ``Environment.add_private_pip_wheel``."""
        return self.state_dir / "private-packages"

    @property
    def parallel_cache(self) -> Path:
        """ParallelRunStep's results per mini-batch (localpipe/parallel/cache.py)."""
        return self.state_dir / "parallel-cache"

    @property
    def statcache(self) -> Path:
        return self.state_dir / "statcache.bin"

    @property
    def api_token(self) -> Path:
        """The bearer token of the workspace's REST endpoints (``state.token.api_token``)."""
        return self.state_dir / "api-token"

    def datastore(self, name: str) -> Path:
        """The folder of a built-in datastore."""
        return self.state_dir / "datastores" / name

    def holds(self, path: str) -> bool:
        """Whether ``path`` (real, absolute) is the workspace's own state: ``.localpipe/`` or what is
        in it, but for what a built-in datastore's folder holds."""
        state = str(self.state_dir)
        if not (path == state or path.startswith(state + os.sep)):
            return False
        datastores = os.path.join(state, "datastores") + os.sep
        return not (path.startswith(datastores) and os.sep in path[len(datastores) :])

    def run_dir(self, run_id: int) -> Path:
        return self.runs / str(run_id)

    def cancel_request(self, run_id: int) -> Path:
        """The file `localpipe cancel` leaves before it signals a run's scheduler: a watcher, which
        runs one scheduler after another in its process, then cancels that run alone."""
        return self.run_dir(run_id) / "cancel-requested"

    def cancel_taken(self, run_id: int) -> Path:
        """A request that watcher took: ``cancel_request`` renamed, where its scheduler still reads how
        to end the run (``Run.fail``'s details)."""
        return self.run_dir(run_id) / "cancel-taken"

    def step_dir(self, run_id: int, step_name: str) -> Path:
        """The folder of one step run: logs, snapshot, outputs being written."""
        return self.run_dir(run_id) / safe_name(step_name)

    def create(self) -> None:
        """Create the folders; `.localpipe/` is readable by its owner only."""
        self.root.mkdir(parents=True, exist_ok=True)
        self.state_dir.mkdir(mode=0o700, exist_ok=True)
        for sub in SUBDIRS:
            (self.state_dir / sub).mkdir(parents=True, exist_ok=True)


def safe_name(name: str) -> str:
    """A folder (or file) name for step ``name``: the name itself when it is a plain one (letters, digits,
    ".", "_" and "-", at most MAX_PLAIN_BYTES bytes), else the name with its other characters
    replaced, cut to fit, and "+" and a digest of the name added. Plain names have no "+", so no
    two steps ever share a folder; no name climbs out of the run folder or is too long for the
    file system."""
    encoded = name.encode("utf-8", "surrogatepass")
    cleaned = "".join(c if c.isalnum() or c in "._-" else "_" for c in name).lstrip(".")
    if name and cleaned == name and len(encoded) <= MAX_PLAIN_BYTES:
        return name
    short = cleaned.encode("utf-8", "surrogatepass")[:MAX_PLAIN_BYTES].decode("utf-8", "ignore")
    return f"{short or 'step'}+{hash_bytes(encoded)[:12]}"


# -- a saved dataset's paths (state/datasets.py; migration 0018 rewrote older rows) ---------------
def relocatable(definition: dict, root: Path) -> dict:
    """``definition`` with its paths and root inside the workspace folder ``root`` written relative to
    it (``located`` reads them back); a path elsewhere stays absolute."""
    return _each_path(definition, lambda path: _relative(path, root))


def located(definition: dict, root: Path) -> dict:
    """A saved ``definition`` with its relative paths made absolute under the workspace folder ``root``."""
    return _each_path(definition, lambda path: _absolute(path, root))


def _relative(path: str, root: Path) -> str:
    """``path`` relative to the workspace folder ``root`` when inside it; else as it is."""
    return os.path.relpath(path, root) if within(Path(path), root) else path


def within(path: Path, root: Path) -> bool:
    """``path.is_relative_to(root)`` (by name), which is Python 3.9's: a step on 3.8 imports this."""
    return path == root or root in path.parents


def _absolute(path: str, root: Path) -> str:
    """A path stored by ``_relative`` made absolute again."""
    return path if os.path.isabs(path) else os.path.join(root, path)


def _each_path(definition: dict, change) -> dict:
    root = definition.get("root")
    return {
        **definition,
        "paths": [change(path) for path in definition["paths"]],
        "root": change(root) if root is not None else None,
    }


# -- a registered environment's Docker build context (state/registry.py) --------------------------
def relocatable_context(spec: dict, root: Path) -> dict:
    """An environment's ``spec`` with its build context's folder, when inside the workspace folder
    ``root``, written relative to it, as a saved dataset's paths are (``located_context`` reads it)."""
    return _each_context(spec, lambda path: _relative(path, root))


def located_context(spec: dict, root: Path) -> dict:
    """A registered ``spec`` with a relative build context folder made absolute under ``root``."""
    return _each_context(spec, lambda path: _absolute(path, root))


def _each_context(spec: dict, change) -> dict:
    docker = spec.get("docker") if isinstance(spec, dict) else None
    context = docker.get("build_context") if isinstance(docker, dict) else None
    if not isinstance(context, dict) or context.get("location_type") not in (None, "storageAccount"):
        return spec  # none, or a Git repository's URL
    location = context.get("location")
    if not isinstance(location, str):
        return spec
    return {**spec, "docker": {**docker, "build_context": {**context, "location": change(location)}}}
