"""Workspace: a folder holding `.localpipe/` (history.db, object store, run folders, datastores)."""

from __future__ import annotations

import contextvars
import os
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from localpipe.errors import WorkspaceNotFoundError
from localpipe.sdk.service import WorkspaceService

STATE_DIR = ".localpipe"

# Set by the CLI while it loads a pipeline file, so that `Workspace.from_config()` inside
# that file answers with the workspace the command already chose.
current_workspace: contextvars.ContextVar[Workspace | None] = contextvars.ContextVar("current_workspace", default=None)


class Workspace:
    """A local workspace rooted at ``root``; its state lives in ``root/.localpipe``."""

    # Makes the service that keeps this workspace's records (see sdk/service.py); localpipe/__init__.py
    # plugs in the one implementation, so that the SDK need not import it.
    service_factory: ClassVar[Callable[[Workspace], WorkspaceService]]

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root).resolve()
        self.state_dir = self.root / STATE_DIR
        self._service: WorkspaceService | None = None

    @property
    def service(self) -> WorkspaceService:
        """Registrations, look-ups and validation against this workspace's records."""
        if self._service is None:
            self._service = type(self).service_factory(self)
        return self._service

    # -- finding and creating -------------------------------------------------------------
    @classmethod
    def from_config(cls, path: str | os.PathLike | None = None, **_ignored) -> Workspace:
        """The nearest workspace walking up from ``path`` (default: the current directory)."""
        if path is None and (ws := current_workspace.get()) is not None:
            return ws
        start = Path(path or os.getcwd()).resolve()
        for folder in (start, *start.parents):
            if (folder / STATE_DIR).is_dir():
                return cls(folder)
        raise WorkspaceNotFoundError(
            f"no localpipe workspace in {start} or any parent: run `localpipe init` there first"
        )

    @classmethod
    def create(cls, path: str | os.PathLike = ".", exist_ok: bool = True, **_ignored) -> Workspace:
        """Create (or, with ``exist_ok``, open) the workspace at ``path``."""
        ws = cls(path)
        if ws.state_dir.exists() and not exist_ok:
            raise WorkspaceNotFoundError(f"a workspace already exists at {ws.root}: pass exist_ok=True")
        ws.service.create()
        return ws

    @property
    def name(self) -> str:
        return self.root.name

    # -- views of the workspace's records -------------------------------------------------
    def get_default_datastore(self):
        """The default datastore, ``workspaceblobstore``."""
        from localpipe.sdk.data import Datastore

        return Datastore(self, "workspaceblobstore")

    @property
    def datastores(self) -> dict:
        """Every datastore by name: the two built-in ones and those registered."""
        from localpipe.sdk.data import Datastore

        return {name: Datastore(self, name) for name in self.service.datastore_names()}

    @property
    def experiments(self) -> dict:
        """Every experiment that has runs, by name."""
        return self.service.experiments()

    @property
    def compute_targets(self) -> dict:
        """Compute targets by name; ``local`` (the whole machine) is always there."""
        from localpipe.sdk.compute import compute_targets

        return compute_targets(self)

    @property
    def environments(self) -> dict:
        """Registered environments by name (their latest version)."""
        from localpipe.sdk.environment import registered_environments

        return registered_environments(self)

    def __repr__(self) -> str:
        return f"Workspace({str(self.root)!r})"

    def __eq__(self, other) -> bool:
        return isinstance(other, Workspace) and other.root == self.root

    def __hash__(self) -> int:
        return hash(self.root)
