"""What a user registers in a workspace: datastores, compute targets, environments; and experiments."""

from __future__ import annotations

from localpipe.errors import NotFoundError, UsageError
from localpipe.state.db import Database
from localpipe.state.layout import located_context, relocatable_context


class Registry:
    """The ``datastore``, ``workspace_setting``, ``compute_target``, ``environment`` and ``experiment`` tables."""

    def __init__(self, database: Database):
        self.database = database
        self.t = database.tables
        # Compute targets this process saved since its last submission -> their (kind, config)
        # before it (None: there was none), so that a refused submission can take them back.
        self.unsubmitted_targets: dict[str, tuple[str, dict] | None] = {}

    # -- datastores (the built-in ones are folders of the workspace, not rows) ---------------------
    def datastore_names(self) -> list[str]:
        t = self.t
        return [
            name
            for (name,) in t.DatastoreRecord.select(t.DatastoreRecord.name).order_by(t.DatastoreRecord.name).tuples()
        ]

    def datastore(self, name: str) -> tuple[str, str | None] | None:
        """Registered datastore ``name``'s (folder, url): a public blob container has a url and no folder."""
        t = self.t
        query = t.DatastoreRecord.select(t.DatastoreRecord.path, t.DatastoreRecord.url)
        return query.where(t.DatastoreRecord.name == name).tuples().first()

    def register_datastore(self, name: str, path: str, url: str | None = None) -> None:
        self.t.DatastoreRecord.replace(name=name, path=path, url=url).execute()

    def unregister_datastore(self, name: str, default: str) -> None:
        """Forget datastore ``name`` (its folder stays as it is); when it was the workspace's default,
        ``default`` becomes the default again."""
        t = self.t
        with self.database.write():
            removed = t.DatastoreRecord.delete().where(t.DatastoreRecord.name == name).execute()
            if not removed:
                raise NotFoundError(f'datastore "{name}" is not registered: see `localpipe datastores`')
            setting = t.WorkspaceSetting.key == "default_datastore"
            t.WorkspaceSetting.update(value=default).where(setting, t.WorkspaceSetting.value == name).execute()

    # -- the workspace's own settings --------------------------------------------------------------
    def settings(self) -> dict:
        t = self.t
        return dict(t.WorkspaceSetting.select(t.WorkspaceSetting.key, t.WorkspaceSetting.value).tuples())

    def update_settings(self, values: dict) -> None:
        with self.database.write():
            for key, value in values.items():
                self.t.WorkspaceSetting.replace(key=key, value=value).execute()

    # -- compute targets ---------------------------------------------------------------------------
    def compute_targets(self) -> dict[str, dict]:
        """Created compute targets: name -> their configuration (``kind`` included)."""
        t = self.t
        return {
            name: config
            for name, config in t.ComputeTargetRecord.select(
                t.ComputeTargetRecord.name, t.ComputeTargetRecord.config
            ).tuples()
        }

    def save_compute_target(self, name: str, kind: str, config: dict) -> None:
        t = self.t
        with self.database.write():
            if name not in self.unsubmitted_targets:
                self.unsubmitted_targets[name] = (
                    t.ComputeTargetRecord.select(t.ComputeTargetRecord.kind, t.ComputeTargetRecord.config)
                    .where(t.ComputeTargetRecord.name == name)
                    .tuples()
                    .first()
                )
            t.ComputeTargetRecord.replace(name=name, kind=kind, config=config).execute()

    def take_back_unsubmitted_targets(self) -> dict[str, bool]:
        """Undo what this process saved of compute targets since its last submission (which was
        refused): name -> whether the target existed before (and is now as it was then)."""
        t = self.t
        with self.database.write():
            for name, before in self.unsubmitted_targets.items():
                if before is None:
                    t.ComputeTargetRecord.delete().where(t.ComputeTargetRecord.name == name).execute()
                else:
                    t.ComputeTargetRecord.replace(name=name, kind=before[0], config=before[1]).execute()
        taken = {name: before is not None for name, before in self.unsubmitted_targets.items()}
        self.unsubmitted_targets.clear()
        return taken

    def delete_compute_target(self, name: str) -> None:
        t = self.t
        t.ComputeTargetRecord.delete().where(t.ComputeTargetRecord.name == name).execute()

    # -- environments ------------------------------------------------------------------------------
    def environments(self) -> dict[str, tuple[int, dict]]:
        """The latest version of each registered environment: name -> (version, spec)."""
        t = self.t
        latest: dict[str, tuple[int, dict]] = {}
        for name, version, spec in (
            t.EnvironmentRecord.select(t.EnvironmentRecord.name, t.EnvironmentRecord.version, t.EnvironmentRecord.spec)
            .order_by(t.EnvironmentRecord.version)
            .tuples()
        ):
            latest[name] = (version, spec)
        root = self.database.layout.root
        return {name: (version, located_context(spec, root)) for name, (version, spec) in latest.items()}

    def environment(self, name: str, version: int | None = None, label: str | None = None) -> tuple[int, dict]:
        """A registered environment's (version, spec): the latest, ``version``, or the one labelled ``label``."""
        t = self.t
        query = t.EnvironmentRecord.select(
            t.EnvironmentRecord.version, t.EnvironmentRecord.spec, t.EnvironmentRecord.labels
        ).where(t.EnvironmentRecord.name == name)
        if version is not None:
            query = query.where(t.EnvironmentRecord.version == version)
        rows = list(query.order_by(t.EnvironmentRecord.version.desc()).tuples())
        if label is not None:
            rows = [row for row in rows if label in (row[2] or [])]
        if not rows:
            if label is not None:
                raise NotFoundError(
                    f'environment "{name}" has no version labelled "{label}": label one with '
                    f'Environment.label(ws, "{name}", version, ["{label}"])'
                )
            versions = [
                number
                for (number,) in t.EnvironmentRecord.select(t.EnvironmentRecord.version)
                .where(t.EnvironmentRecord.name == name)
                .order_by(t.EnvironmentRecord.version)
                .tuples()
            ]
            if versions:
                raise NotFoundError(
                    f'environment "{name}" has no version {version} (its versions: {", ".join(map(str, versions))}): '
                    f"give one of them, or none for the latest"
                )
            raise NotFoundError(
                f'environment "{name}" is not registered: build one with Environment(name) and call env.register(ws)'
            )
        return rows[0][0], located_context(rows[0][1], self.database.layout.root)

    def label_environment(self, name: str, version: int, labels: list[str]) -> None:
        """Give version ``version`` of ``name`` exactly ``labels``; a label names one version, so the
        others of ``name`` lose these."""
        t = self.t
        with self.database.write():
            rows = dict(
                t.EnvironmentRecord.select(t.EnvironmentRecord.version, t.EnvironmentRecord.labels)
                .where(t.EnvironmentRecord.name == name)
                .tuples()
            )
            if version not in rows:
                raise NotFoundError(
                    f'environment "{name}" has no version {version} (its versions: '
                    f"{', '.join(map(str, sorted(rows))) or 'none'}): register it with env.register(ws)"
                )
            for other, current in rows.items():
                kept = list(labels) if other == version else [x for x in (current or []) if x not in labels]
                if kept != (current or []):
                    t.EnvironmentRecord.update(labels=kept).where(
                        t.EnvironmentRecord.name == name, t.EnvironmentRecord.version == other
                    ).execute()

    def register_environment(self, name: str, spec: dict) -> int:
        """Keep ``spec`` as the latest version of ``name`` (a new version only when it changed); returns it.
        A build context's folder inside the workspace is kept relative to it: moved, it is found."""
        t = self.t
        spec = relocatable_context(spec, self.database.layout.root)
        with self.database.write():
            latest = (
                t.EnvironmentRecord.select(t.EnvironmentRecord.version, t.EnvironmentRecord.spec)
                .where(t.EnvironmentRecord.name == name)
                .order_by(t.EnvironmentRecord.version.desc())
                .tuples()
                .first()
            )
            if latest is not None and latest[1] == spec:
                return latest[0]
            version = latest[0] + 1 if latest else 1
            t.EnvironmentRecord.create(name=name, version=version, spec=spec)
        return version

    # -- experiments -------------------------------------------------------------------------------
    def experiment_names(self) -> list[str]:
        t = self.t
        return [name for (name,) in t.Experiment.select(t.Experiment.name).order_by(t.Experiment.name).tuples()]

    def experiment_id(self, name: str) -> int | None:
        t = self.t
        return t.Experiment.select(t.Experiment.id).where(t.Experiment.name == name).scalar()

    def experiments(self) -> list[dict]:
        """Every experiment: name, tags, when it was first used, when it was archived (or None)."""
        t = self.t
        query = t.Experiment.select(
            t.Experiment.name, t.Experiment.tags, t.Experiment.created_at, t.Experiment.archived_at
        )
        return [
            {"name": name, "tags": tags or {}, "created_at": created, "archived_at": archived}
            for name, tags, created, archived in query.order_by(t.Experiment.name).tuples()
        ]

    def archive_experiment(self, name: str, archived_at: float | None) -> None:
        """Archive the experiment ``name`` (recording it if it has no run yet), or with None reactivate it."""
        t = self.t
        with self.database.write():
            row, _ = t.Experiment.get_or_create(name=name)
            t.Experiment.update(archived_at=archived_at).where(t.Experiment.id == row.id).execute()

    def delete_experiment(self, experiment_id: int) -> str:
        """Forget the experiment ``experiment_id``, which must have no run left; returns its name."""
        t = self.t
        with self.database.write():
            name = t.Experiment.select(t.Experiment.name).where(t.Experiment.id == experiment_id).scalar()
            if name is None:
                raise NotFoundError(f"experiment {experiment_id} does not exist: see Experiment.list(ws) for their ids")
            left = t.PipelineRun.select().where(t.PipelineRun.experiment == experiment_id).count()
            if left:
                raise UsageError(
                    f'experiment "{name}" still has {left} active run(s): cancel them (localpipe cancel RUN) '
                    "and delete it again"
                )
            t.Experiment.delete().where(t.Experiment.id == experiment_id).execute()
        return name

    def set_experiment_tags(self, name: str, tags: dict, removed: list[str] = ()) -> dict:
        """Merge ``tags`` into the experiment's (recording it if it has no run yet), drop ``removed``."""
        t = self.t
        with self.database.write():
            row, _ = t.Experiment.get_or_create(name=name)
            current = {k: v for k, v in {**(row.tags or {}), **tags}.items() if k not in set(removed)}
            t.Experiment.update(tags=current).where(t.Experiment.id == row.id).execute()
        return current
