"""The built environments a workspace's steps ran in: what each installed, kept with the run
history even after the machine's cache let the build go."""

from __future__ import annotations

from localpipe.state.db import Database


class EnvironmentRecords:
    """The ``environment_build`` table (``step_run.environment`` names a row of it)."""

    def __init__(self, database: Database):
        self.database = database
        self.t = database.tables

    def record(self, built: dict) -> None:
        """Keep a build (the fields of ``envs.cache.BuiltEnvironment``) unless it is kept already."""
        t = self.t
        fields = {name: built[name] for name in t.EnvironmentBuild._meta.fields}
        t.EnvironmentBuild.insert(**fields).on_conflict_ignore().execute()
