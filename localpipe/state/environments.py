"""The built environments a workspace's steps ran in: what each installed, kept with the run
history even after the machine's cache let the build go."""

from __future__ import annotations

from localpipe.state.db import Database


class EnvironmentRecords:
    """The ``environment_build`` table (``step_run.environment`` names a row of it)."""

    def __init__(self, database: Database):
        self.database = database
        self.t = database.tables

    def record(self, built: dict, name: str) -> int:
        """The id of the row keeping a build (the fields of ``envs.cache.BuiltEnvironment``),
        written the first time a step of this workspace runs in it, under ``name``."""
        t = self.t
        fields = {field: built[field] for field in t.EnvironmentBuild._meta.fields if field not in ("id", "name")}
        with self.database.write():
            t.EnvironmentBuild.insert(**fields, name=name).on_conflict_ignore().execute()
            return (
                t.EnvironmentBuild.select(t.EnvironmentBuild.id)
                .where(
                    (t.EnvironmentBuild.digest == built["digest"]) & (t.EnvironmentBuild.built_at == built["built_at"])
                )
                .scalar()
            )
