"""What the studio (``localpipe serve``) shows, read from history.db on a read-only connection.

A step run's ``parent_id`` is tested as ``+parent_id IS NULL``: without statistics SQLite
would otherwise choose that column's index, where nearly every row is NULL, over the run's.

The studio must never block a scheduler: it reads with plain ``sqlite3`` on connections opened
``mode=ro`` (in WAL mode readers and the one writer never wait on each other), one per thread
that reads through a ``Views`` (the studio makes its pages in a pool of threads). Every reader
returns plain dicts, ready to render or to dump as JSON. A history.db of an older localpipe is
migrated once, on opening, by ``History`` as every command does.
"""

from __future__ import annotations

import json
import sqlite3
import threading

from localpipe.errors import NotFoundError
from localpipe.state import reader
from localpipe.state.layout import Layout
from localpipe.state.schema import SCHEMA_VERSION

_STEP_COLUMNS = (
    "s.id, s.name, s.status, s.reason, s.ran_because, s.queued_at, s.started_at, s.ended_at, s.exit_code, s.signal, "
    "s.peak_memory, s.placement, s.attempt, s.arguments, s.tags, s.properties, s.environment, s.snapshot, "
    "s.cache_key, s.display_name, s.parent_id, s.reused_from_id, o.run_id AS reused_from_run, "
    "o.name AS reused_from_step"
)
_PUBLISHED_ID = "json_extract(properties, '$.\"azureml.pipelineid\"')"  # the pipeline a run was submitted from
_JSON_COLUMNS = ("placement", "arguments", "tags", "properties", "parameters", "git", "value", "packages", "paths")


class Views:
    """Read-only views of the workspace at ``layout`` for the studio."""

    def __init__(self, layout: Layout):
        self.layout = layout
        if not layout.history.is_file():
            raise NotFoundError(f"{layout.root} has no history.db: run a pipeline there first (localpipe submit)")
        probe = sqlite3.connect(layout.history.as_uri() + "?mode=ro", uri=True)
        try:
            version = probe.execute("PRAGMA user_version").fetchone()[0]
        finally:
            probe.close()
        if version != SCHEMA_VERSION:
            from localpipe.state.db import open_database

            open_database(layout).db.close()  # migrates it, or raises the error that says what is wrong
        self._local = threading.local()
        self._opened: list[sqlite3.Connection] = []
        self._lock = threading.Lock()

    @property
    def connection(self) -> sqlite3.Connection:
        """This thread's read-only connection: the studio makes its pages in several threads at once."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            uri = self.layout.history.as_uri() + "?mode=ro"
            connection = sqlite3.connect(uri, uri=True, check_same_thread=False)  # closed by close(), in another
            connection.execute("PRAGMA busy_timeout = 2000")
            self._local.connection = connection
            with self._lock:
                self._opened.append(connection)
        return connection

    def close(self) -> None:
        with self._lock:
            opened, self._opened = self._opened, []
        for connection in opened:
            connection.close()

    def _all(self, sql: str, params=()) -> list[dict]:
        """The rows as dicts, their JSON columns decoded (the columns looked at once per query:
        a 1,000-step run is 1,000 rows)."""
        cursor = self.connection.execute(sql, params)
        columns = [column for column, *_ in cursor.description]
        decoded = [i for i, column in enumerate(columns) if column in _JSON_COLUMNS]
        rows = []
        for values in cursor.fetchall():
            if decoded:
                values = list(values)
                for i in decoded:
                    if isinstance(values[i], str):
                        try:
                            values[i] = json.loads(values[i])
                        except ValueError:
                            pass
            rows.append(dict(zip(columns, values)))
        return rows

    def _one(self, sql: str, params=()) -> dict | None:
        found = self._all(sql, params)
        return found[0] if found else None

    # -- runs ------------------------------------------------------------------------------------
    def runs(self, experiment: str | None = None, status: str | None = None, limit: int = 50, offset: int = 0) -> dict:
        """A page of runs, newest first, each with its steps counted by status; ``total`` matching.

        Read from pipeline_run alone (by its experiment and status indexes, or along its ids),
        experiment names added to the page's rows after: a page of 10,000 runs costs what a page
        of ten does."""
        names = {row["id"]: row["name"] for row in self._all("SELECT id, name FROM experiment")}
        where, params = [], []
        if experiment:
            where.append("experiment_id = ?")
            params.append(next((i for i, name in names.items() if name == experiment), -1))
        if status:
            where.append("status = ?")
            params.append(status)
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        total = self._one(f"SELECT COUNT(*) AS n FROM pipeline_run {clause}", params)["n"]
        runs = self._all(
            "SELECT id, experiment_id AS experiment, status, submitted_at, started_at, ended_at, parameters, "
            f"display_name, error, tags FROM pipeline_run {clause} ORDER BY id DESC LIMIT ? OFFSET ?",
            [*params, limit, offset],
        )
        counts = self._step_counts([run["id"] for run in runs])
        for run in runs:
            run["experiment"] = names[run["experiment"]]
            run["steps"] = counts.get(run["id"], {})
            run["reused"] = run["steps"].get("Reused", 0)
        return {"runs": runs, "total": total, "limit": limit, "offset": offset}

    def _step_counts(self, run_ids: list[int]) -> dict[int, dict[str, int]]:
        counts: dict[int, dict[str, int]] = {}
        if run_ids:
            marks = ",".join("?" * len(run_ids))
            for row in self._all(
                "SELECT run_id, status, COUNT(*) AS n FROM step_run "
                f"WHERE run_id IN ({marks}) AND +parent_id IS NULL GROUP BY run_id, status",
                run_ids,
            ):
                counts.setdefault(row["run_id"], {})[row["status"]] = row["n"]
        return counts

    def experiment_names(self) -> list[str]:
        return [row["name"] for row in self._all("SELECT name FROM experiment ORDER BY name")]

    def experiments(self) -> list[dict]:
        """Every experiment with its number of runs, the last one and its runs counted by status."""
        found = self._all(
            "SELECT e.name, e.archived_at, COUNT(r.id) AS runs, MAX(r.id) AS last_run, "
            "MAX(r.submitted_at) AS last_submitted FROM experiment e "
            "LEFT JOIN pipeline_run r ON r.experiment_id = e.id GROUP BY e.id ORDER BY last_submitted DESC"
        )
        statuses: dict[str, dict[str, int]] = {}  # by name: each experiment looked up, not matched against all
        for row in self._all(
            "SELECT e.name, r.status, COUNT(*) AS n FROM pipeline_run r JOIN experiment e "
            "ON e.id = r.experiment_id GROUP BY e.id, r.status"
        ):
            statuses.setdefault(row["name"], {})[row["status"]] = row["n"]
        for experiment in found:
            experiment["statuses"] = statuses.get(experiment["name"], {})
        return found

    def run(self, run_id) -> dict:
        """One run: its record, its steps (not their child runs) and the edges of its graph."""
        number = reader.run_number(run_id)
        run = self._one(
            "SELECT r.id, e.name AS experiment, r.status, r.error, r.parameters, r.tags, r.pipeline_file, r.git, "
            "r.properties, r.display_name, r.description, r.submitted_at, r.started_at, r.ended_at, "
            "r.regenerate_outputs, r.continue_on_step_failure FROM pipeline_run r "
            "JOIN experiment e ON e.id = r.experiment_id WHERE r.id = ?",
            [number],
        )
        if run is None:
            raise reader.missing_run(self.layout.root, number)
        run["steps"] = self._steps("s.run_id = ? AND +s.parent_id IS NULL", [number])
        run["edges"] = self._all("SELECT source, target, data FROM edge WHERE run_id = ? ORDER BY id", [number])
        return run

    def _steps(self, where: str, params) -> list[dict]:
        return self._all(
            f"SELECT {_STEP_COLUMNS} FROM step_run s LEFT JOIN step_run o ON o.id = s.reused_from_id "
            f"WHERE {where} ORDER BY s.id",
            params,
        )

    def statuses(self, run_id) -> dict:
        """What changes while a run goes on (its status, each step's status and times), cheaply:
        the live page polls it."""
        number = reader.run_number(run_id)
        run = self._one("SELECT status, started_at, ended_at, error FROM pipeline_run WHERE id = ?", [number])
        if run is None:
            raise reader.missing_run(self.layout.root, number)
        run["steps"] = {
            row.pop("name"): row
            for row in self._all(
                "SELECT name, status, reason, queued_at, started_at, ended_at FROM step_run "
                "WHERE run_id = ? AND +parent_id IS NULL ORDER BY id",
                [number],
            )
        }
        return run

    def step(self, run_id, name: str) -> dict:
        """One step of a run with its outputs, environment, datasets, child runs and run's git."""
        run = self._one("SELECT id, git FROM pipeline_run WHERE id = ?", [reader.run_number(run_id)])
        if run is None:
            raise reader.missing_run(self.layout.root, reader.run_number(run_id))
        found = self._steps("s.run_id = ? AND s.name = ?", [run["id"], name])
        if not found:
            names = [row["name"] for row in self._all("SELECT name FROM step_run WHERE run_id = ?", [run["id"]])]
            raise reader.missing_step(run["id"], name, names)
        step = found[0]
        step["run"] = run["id"]
        step["git"] = run["git"] or {}
        step["outputs"] = self._all(
            "SELECT name, digest, size, files FROM step_output WHERE step_run_id = ? ORDER BY id", [step["id"]]
        )
        step["environment_build"] = (
            self._one(
                "SELECT name, digest, python, packages, path FROM environment_build WHERE id = ?", [step["environment"]]
            )
            if step["environment"]
            else None
        )
        step["datasets"] = self._all(
            "SELECT d.name, d.version, d.digest FROM dataset_use u JOIN dataset_version d "
            "ON d.id = u.dataset_version_id WHERE u.step_run_id = ? ORDER BY d.name",
            [step["id"]],
        )
        step["children"] = self._steps("s.parent_id = ?", [step["id"]])
        step["inputs"] = self._all(
            "SELECT e.source AS step, e.data AS output, o.size, o.digest FROM edge e "
            "JOIN step_run p ON p.run_id = e.run_id AND p.name = e.source "
            "LEFT JOIN step_output o ON o.step_run_id = p.id AND o.name = e.data "
            "WHERE e.run_id = ? AND e.target = ? AND e.data IS NOT NULL ORDER BY e.id",
            [run["id"], name],
        )
        graph = self._one(
            "SELECT g.graph FROM pipeline_graph g JOIN pipeline_run r ON r.pipeline_id = g.id WHERE r.id = ?",
            [run["id"]],
        )
        declared = next((s for s in json.loads(graph["graph"]).get("steps", []) if s.get("name") == name), {})
        step["declared"] = {
            key: declared.get(key) for key in ("script", "source_dir", "compute_target", "params", "pipeline_params")
        }
        return step

    def sweeps(self, run_id: int) -> list[dict]:
        """The hyperparameter sweeps of a run's graph (``docs/hyperdrive.md``): none for most runs."""
        graph = self._one(
            "SELECT g.graph FROM pipeline_graph g JOIN pipeline_run r ON r.pipeline_id = g.id WHERE r.id = ?", [run_id]
        )
        return json.loads(graph["graph"]).get("sweeps") or [] if graph else []

    def step_run_location(self, step_run_id: int) -> tuple[int, str] | None:
        """(run id, step name) of a step run; None when gc forgot it."""
        row = self._one("SELECT run_id, name FROM step_run WHERE id = ?", [step_run_id])
        return (row["run_id"], row["name"]) if row else None

    # -- metrics ---------------------------------------------------------------------------------
    def metrics(self, run_id, step: str | None = None) -> list[dict]:
        """Every metric of a run's steps (or of one), in the order logged: a reused step shows
        those of the step run whose outputs it reused."""
        return self.metrics_of_steps([s for s in self.run(run_id)["steps"] if step is None or s["name"] == step])

    def metrics_of_steps(self, steps: list[dict]) -> list[dict]:
        """``metrics`` of these rows of ``run()``'s steps."""
        sources = {s["reused_from_id"] or s["id"]: s["name"] for s in steps}
        if not sources:
            return []
        marks = ",".join("?" * len(sources))
        rows = self._all(
            f"SELECT step_run_id, name, kind, value, logged_at FROM metric WHERE step_run_id IN ({marks}) ORDER BY id",
            list(sources),
        )
        return [{"step": sources[row.pop("step_run_id")], **row} for row in rows]

    def last_scalars(self, run_id) -> list[dict]:
        """Each step's last scalar value of each name (``step``, ``name``, ``value``), in the order
        first logged; a reused step's are those of the step run it reused. One row each, however
        many values were logged (a loss at each of 100,000 batches)."""
        sources = {s["reused_from_id"] or s["id"]: s["name"] for s in self.run(run_id)["steps"]}
        if not sources:
            return []
        marks = ",".join("?" * len(sources))
        rows = self._all(
            "SELECT m.step_run_id, m.name, m.value, g.first FROM metric m JOIN (SELECT MIN(id) AS first, "
            f"MAX(id) AS last FROM metric WHERE step_run_id IN ({marks}) AND kind = 'scalar' "
            "GROUP BY step_run_id, name) g ON m.id = g.last",
            list(sources),
        )
        rows.sort(key=lambda row: row["first"])
        return [{"step": sources[row["step_run_id"]], "name": row["name"], "value": row["value"]} for row in rows]

    def experiment_metrics(self, experiment: str, limit: int = 200) -> dict:
        """The last value of each scalar metric in each of the experiment's latest runs:
        ``{metric name: [(run id, value), ...]}``, oldest run first."""
        run_ids = [
            row["id"]
            for row in self._all(
                "SELECT r.id FROM pipeline_run r JOIN experiment e ON e.id = r.experiment_id "
                "WHERE e.name = ? ORDER BY r.id DESC LIMIT ?",
                [experiment, limit],
            )
        ]
        if not run_ids:
            return {}
        marks = ",".join("?" * len(run_ids))
        owners: dict[int, list[int]] = {}
        for row in self._all(
            f"SELECT run_id, COALESCE(reused_from_id, id) AS source FROM step_run WHERE run_id IN ({marks})", run_ids
        ):
            owners.setdefault(row["source"], []).append(row["run_id"])
        last: dict[str, dict[int, tuple[int, float]]] = {}  # name -> run -> (metric id, value)
        source_marks = ",".join("?" * len(owners))
        # each step run's last value of each name, not all of them (a loss logged at each of 100,000 batches)
        for row in self._all(
            "SELECT id, step_run_id, name, value FROM metric WHERE id IN (SELECT MAX(id) FROM metric "
            f"WHERE step_run_id IN ({source_marks}) AND kind = 'scalar' GROUP BY step_run_id, name)",
            list(owners),
        ):
            found = (row["id"], row["value"]) if _is_number(row["value"]) else self._last_number(row)
            if found is None:
                continue
            for run in owners[row["step_run_id"]]:
                known = last.setdefault(row["name"], {}).get(run)
                if known is None or found[0] > known[0]:  # a run's steps logging one name: the last of them
                    last[row["name"]][run] = found
        return {name: sorted((run, v) for run, (_, v) in values.items()) for name, values in sorted(last.items())}

    def _last_number(self, row: dict, looked: int = 1000) -> tuple[int, float] | None:
        """(id, value) of the last number a step run logged as ``row["name"]`` before ``row``,
        a value that is none (a text, a boolean); among the ``looked`` values before it."""
        for earlier in self._all(
            "SELECT id, value FROM metric WHERE step_run_id = ? AND name = ? AND kind = 'scalar' AND id < ? "
            "ORDER BY id DESC LIMIT ?",
            [row["step_run_id"], row["name"], row["id"], looked],
        ):
            if _is_number(earlier["value"]):
                return earlier["id"], earlier["value"]
        return None

    # -- published pipelines ---------------------------------------------------------------------
    def published(self) -> list[dict]:
        """Every published pipeline, newest first, with how many runs were submitted from it."""
        runs = {
            row["published_id"]: row["n"]
            for row in self._all(
                f"SELECT {_PUBLISHED_ID} AS published_id, COUNT(*) AS n FROM pipeline_run "
                f"WHERE {_PUBLISHED_ID} IS NOT NULL GROUP BY 1"
            )
        }
        found = self._all(
            "SELECT published_id, name, version, status, description, created_at FROM published_pipeline "
            "ORDER BY id DESC"
        )
        for pipeline in found:
            pipeline["runs"] = runs.get(pipeline["published_id"], 0)
        return found

    def published_pipeline(self, published_id: str, limit: int = 50) -> dict:
        """A published pipeline: its record, the parameters and steps of its graph (each step's kind,
        script and the steps it reads from), and the runs submitted from it, newest first."""
        found = self._one(
            "SELECT p.published_id, p.name, p.version, p.status, p.description, p.created_at, "
            "p.continue_on_step_failure, g.graph FROM published_pipeline p JOIN pipeline_graph g "
            "ON g.id = p.pipeline_id WHERE p.published_id = ?",
            [published_id],
        )
        if found is None:
            raise NotFoundError(f'no published pipeline has id "{published_id}": see the published pipelines page')
        graph = json.loads(found.pop("graph"))
        found["parameters"] = graph.get("parameters", {})
        found["steps"] = [
            {"name": spec["name"], "kind": spec.get("kind"), "script": spec.get("script"),
             "reads_from": sorted({i["step"] for i in spec.get("inputs", {}).values() if i.get("step")})}
            for spec in graph["steps"]
        ]  # fmt: skip
        names = {row["id"]: row["name"] for row in self._all("SELECT id, name FROM experiment")}
        found["runs"] = self._all(
            "SELECT id, experiment_id AS experiment, status, submitted_at, ended_at, parameters FROM pipeline_run "
            f"WHERE {_PUBLISHED_ID} = ? ORDER BY id DESC LIMIT ?",
            [published_id, limit],
        )
        for run in found["runs"]:
            run["experiment"] = names[run["experiment"]]
        return found

    # -- datasets --------------------------------------------------------------------------------
    def datasets(self) -> list[dict]:
        return self._all(
            "SELECT name, COUNT(*) AS versions, MAX(version) AS latest, MAX(created_at) AS updated_at, "
            "MIN(kind) AS kind FROM dataset_version GROUP BY name ORDER BY name"
        )

    def dataset(self, name: str) -> dict:
        """A dataset's versions, newest first, each with the step run that produced it and those
        that consumed it."""
        versions = self._all(
            "SELECT d.id, d.version, d.digest, d.kind, d.paths, d.description, d.tags, d.created_at, "
            "s.run_id AS produced_by_run, s.name AS produced_by_step FROM dataset_version d "
            "LEFT JOIN step_run s ON s.id = d.produced_by_id WHERE d.name = ? ORDER BY d.version DESC",
            [name],
        )
        if not versions:
            raise NotFoundError(f'no dataset "{name}" is registered in {self.layout.root}: see the datasets page')
        marks = ",".join("?" * len(versions))
        uses = self._all(
            "SELECT u.dataset_version_id AS version_id, s.run_id AS run, s.name AS step FROM dataset_use u "
            f"JOIN step_run s ON s.id = u.step_run_id WHERE u.dataset_version_id IN ({marks}) ORDER BY s.id",
            [v["id"] for v in versions],
        )
        for version in versions:
            version["consumed_by"] = [
                {"run": u["run"], "step": u["step"]} for u in uses if u["version_id"] == version["id"]
            ]
            del version["id"]
        return {"name": name, "versions": versions}


def _is_number(value) -> bool:
    """A value a chart places: a number, not a boolean (JSON's true is no point on it)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)
