"""Reclaiming space: forget old runs, then remove what no kept run, dataset or model version references.

``plan_gc`` decides (it reads history.db and the folders, and changes nothing); ``collect``
carries a plan out; ``disk_usage`` says what takes the space. The rules, for users, are in
docs/storage.md:

- a run in an active status is always kept, with everything it references and its folder;
- ``keep_last=N`` keeps the newest N runs of each experiment, ``older_than=S`` keeps the runs
  submitted in the last S seconds; a run either rule keeps is kept; with neither, every run is;
- a run whose step runs a kept run reused (directly or through a chain of reuses) is kept too,
  whole: the kept run's logs, metrics and reasons are that step run's (``Experiment.delete``
  alone forgets such a run, and the reusing step runs lose the link);
- an object is referenced by a ``step_output`` row of a kept run (a reused step has such rows
  too), by a ``dataset_version`` or ``model_version`` row, by a published pipeline's or a pipeline
  draft's row (its declaration and sources), by a ``module_version`` row (its source), or by a kept
  saved dataset's definition (an unregistered version's copy); every other object is removed, except
  one that may be a running step's output being committed (newer than the oldest active run);
- a saved dataset (``saved_dataset``: one a submission or publishing used without its being
  registered) is removed when no kept run's, published pipeline's or draft's graph names its id as
  a step input's dataset (where ``inputDatasets`` finds it) and it was saved over an hour ago (a
  submission saves its datasets just before it records its run); the pass that forgets the last run
  naming one keeps it and dates it now, so that ``Dataset.get_by_id`` (which writes nothing) leaves
  the hour after to a submission of what it found;
- a folder of ``.localpipe/runs/`` is removed when its run is forgotten or does not exist;
- an entry of ``.localpipe/tmp/`` is removed when it was last modified over an hour ago and
  before every active run was submitted;
- in ``.localpipe/parallel-cache/`` (ParallelRunStep's results per mini-batch), a family no kept
  run's step used is removed, and a used family's journal keeps only the results the kept runs
  have (all of them for a run whose driver did not end); a step's digests file goes with the
  last kept run that used it; nothing changed since the oldest active run was submitted is touched.

Rows go first, in one IMMEDIATE transaction, and files after: once the transaction commits, no
row and no cache entry points at anything about to be removed, so a scheduler deciding
afterwards reruns a step whose outputs were collected rather than reusing them.
"""

from __future__ import annotations

import os
import re
import stat
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import localpipe.parallel_files as parallel_files
from localpipe.errors import UsageError
from localpipe.state.history import History
from localpipe.state.layout import within
from localpipe.state.models import Tables, now
from localpipe.state.store import ObjectStore, remove_tree
from localpipe.status import ACTIVE, RunStatus

TMP_GRACE_SECONDS = 3600.0  # an entry of tmp/ younger than this may still be being written
# File times can be coarser than the clock that stamped the run (2 s on some file systems).
TIMESTAMP_SLACK_SECONDS = 2.0
_CHUNK = 500  # SQLite caps the number of bound variables of one statement
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([smhd])")
_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_ACTIVE = frozenset(s.value for s in ACTIVE)
_SUCCEEDED = (RunStatus.COMPLETED.value, RunStatus.REUSED.value)


@dataclass
class GcPlan:
    """What ``collect`` would do: runs to forget, and the paths to remove with their sizes in bytes."""

    kept_runs: list[int]
    active_runs: list[int]
    forget_runs: list[int]
    objects: dict[str, int]  # digest -> bytes
    run_folders: dict[str, int]  # name in .localpipe/runs/ -> bytes
    tmp: dict[str, int]  # name in .localpipe/tmp/ -> bytes
    # in .localpipe/parallel-cache/: a family's folder or a digests file -> bytes; a family's journal -> the
    # bytes of its results no kept run has
    parallel: dict[str, int] = field(default_factory=dict)
    protected_objects: list[str] = field(default_factory=list)  # unreferenced, but maybe a running step's
    protect_since: float | None = None  # the submission of the oldest active run
    # run kept only because kept runs reused its step runs -> those kept runs
    producers: dict[int, list[int]] = field(default_factory=dict)
    experiment: int | None = None  # Experiment.delete's: its runs go even when others reused them
    saved_datasets: list[str] = field(default_factory=list)  # ids of saved datasets no kept graph names

    @property
    def bytes(self) -> int:
        """Bytes the plan frees."""
        return (
            sum(self.objects.values())
            + sum(self.run_folders.values())
            + sum(self.tmp.values())
            + sum(self.parallel.values())
        )


@dataclass
class GcResult:
    """What ``collect`` did (or, for a dry run, would do)."""

    bytes_freed: int
    objects_removed: int
    run_folders_removed: int
    runs_forgotten: int
    tmp_removed: int = 0
    parallel_removed: int = 0  # entries of the parallel cache removed or trimmed
    saved_datasets_removed: int = 0
    problems: list[str] = field(default_factory=list)  # paths that could not be removed, and why


def parse_duration(text: str) -> float:
    """Seconds in ``text``: a number followed by s, m, h or d (``90s``, ``30m``, ``12h``, ``7d``)."""
    match = _DURATION.fullmatch(text.strip())
    if match is None:
        raise UsageError(f'"{text}" is not a duration: write a number followed by s, m, h or d (90s, 30m, 12h, 7d)')
    return float(match.group(1)) * _UNITS[match.group(2)]


# -- deciding ------------------------------------------------------------------------------------
def plan_gc(
    history: History,
    keep_last: int | None = None,
    older_than: float | None = None,
    now: Callable[[], float] = time.time,
    experiment: int | None = None,
) -> GcPlan:
    """Decide what to forget and remove; reads history.db and the folders, writes nothing.

    ``keep_last`` keeps the newest N runs of each experiment, ``older_than`` (seconds) keeps the
    runs submitted since ``now() - older_than``; with ``experiment`` (an id), every run of that
    experiment is forgotten and every other kept (``Experiment.delete``); active runs are always kept.
    """
    t, layout = history.tables, history.layout
    clock = now()
    runs = list(
        t.PipelineRun.select(
            t.PipelineRun.id, t.PipelineRun.experiment, t.PipelineRun.status, t.PipelineRun.submitted_at
        )
        .order_by(t.PipelineRun.id.desc())
        .tuples()
    )
    kept, active, forget = [], [], []
    seen: Counter[int] = Counter()
    for run_id, run_experiment, status, submitted in runs:
        seen[run_experiment] += 1
        if status in _ACTIVE:
            active.append(run_id)
        if (
            status in _ACTIVE
            or (experiment is not None and run_experiment != experiment)
            or (experiment is None and keep_last is None and older_than is None)
            or (keep_last is not None and seen[run_experiment] <= keep_last)
            or (older_than is not None and submitted > clock - older_than)
        ):
            kept.append(run_id)
        else:
            forget.append(run_id)
    producers = {} if experiment is not None else _kept_producers(t, set(forget))
    forget = [run_id for run_id in forget if run_id not in producers]
    kept.extend(producers)
    since = min((submitted for _, _, status, submitted in runs if status in _ACTIVE), default=None)
    unnamed = _unnamed_saved_datasets(t, clock)  # one named by a run forgotten now is kept (collect)
    referenced = _referenced_digests(t, set(forget), layout, unnamed)
    objects, protected = {}, []
    for digest, path in stored_objects(layout.objects).items():
        if digest in referenced:
            continue
        if _maybe_being_committed(path, since):
            protected.append(digest)
        else:
            objects[digest] = tree_size(path)
    existing = {run_id for run_id, *_ in runs}
    forgotten = set(forget)
    run_folders = {
        entry.name: tree_size(entry.path)
        for entry in _entries(layout.runs)
        if _run_of(entry.name) not in existing or _run_of(entry.name) in forgotten
    }
    tmp = {}
    for entry in _entries(layout.tmp):
        changed = _modified_at(entry.path)
        if changed < clock - TMP_GRACE_SECONDS and (since is None or changed < since - TIMESTAMP_SLACK_SECONDS):
            tmp[entry.name] = tree_size(entry.path)
    return GcPlan(
        sorted(kept),
        sorted(active),
        sorted(forget),
        objects,
        run_folders,
        tmp,
        _parallel_unneeded(layout, kept, since),
        sorted(protected),
        since,
        producers,
        experiment,
        sorted(unnamed),
    )


def _kept_producers(t: Tables, forget: set[int]) -> dict[int, list[int]]:
    """Run of ``forget`` whose step runs a kept run reused, directly or through a chain of reuses
    (run 3 reused from run 2, which reused from run 1) -> the kept runs that reused them."""
    producer = t.StepRun.alias("producer")
    reuses: dict[int, set[int]] = {}  # reusing run -> the runs it reused from
    for reuser, origin in (
        t.StepRun.select(t.StepRun.run, producer.run)
        .join(producer, on=(t.StepRun.reused_from == producer.id))
        .where(t.StepRun.run != producer.run)
        .tuples()
    ):
        reuses.setdefault(reuser, set()).add(origin)
    found: dict[int, set[int]] = {}
    frontier = [r for r in reuses if r not in forget]
    while frontier:
        reuser = frontier.pop()
        for origin in reuses.get(reuser, ()):
            if origin in forget:
                if origin not in found:
                    frontier.append(origin)
                found.setdefault(origin, set()).add(reuser)
    return {origin: sorted(by) for origin, by in sorted(found.items())}


def _unnamed_saved_datasets(t: Tables, clock: float) -> set[str]:
    """Ids of the saved datasets that no graph of a run, of a published pipeline or of a draft names as
    a step input's dataset, saved before ``clock`` less the grace of tmp/."""
    saved = t.SavedDataset.select(t.SavedDataset.saved_id).where(t.SavedDataset.created_at < clock - TMP_GRACE_SECONDS)
    candidates = {saved_id for (saved_id,) in saved.tuples()}
    if not candidates:
        return set()  # no graph read
    graphs = {graph for (graph,) in t.PipelineRun.select(t.PipelineRun.pipeline).tuples()}
    for frozen in (t.PublishedPipeline, t.PipelineDraft):
        graphs.update(graph for (graph,) in frozen.select(frozen.pipeline).tuples())
    return candidates - _named_datasets(t, graphs)


def _named_by_runs(t: Tables, run_ids: list[int]) -> set[str]:
    """Ids of the datasets the graphs of the runs ``run_ids`` name as a step input's dataset."""
    graphs = {
        graph
        for chunk in _chunks(run_ids)
        for (graph,) in t.PipelineRun.select(t.PipelineRun.pipeline).where(t.PipelineRun.id.in_(chunk)).tuples()
    }
    return _named_datasets(t, graphs)


def _named_datasets(t: Tables, graphs: set[int]) -> set[str]:
    """Ids of the datasets the pipeline graphs ``graphs`` name as a step input's dataset."""
    named = set()
    for chunk in _chunks(sorted(graphs)):
        for (graph,) in t.PipelineGraph.select(t.PipelineGraph.graph).where(t.PipelineGraph.id.in_(chunk)).tuples():
            for step in graph.get("steps") or ():  # a test's or an older file's graph may have none
                named.update((given.get("dataset") or {}).get("id") for given in (step.get("inputs") or {}).values())
    named.discard(None)  # an input that is not a dataset (another step's output)
    return named


def _referenced_digests(t: Tables, forget: set[int], layout, unnamed: set[str]) -> set[str]:
    """Digests of the step outputs of every run not in ``forget``, of every dataset and model version,
    of the datasets models name, of every published pipeline's and pipeline draft's declaration and
    sources, of every module version's source, and of the copies the saved datasets not in ``unnamed``
    read."""
    rows = (
        t.StepOutput.select(t.StepRun.run, t.StepOutput.digest)
        .join(t.StepRun, on=(t.StepOutput.step_run == t.StepRun.id))
        .tuples()
    )
    found = {digest for run_id, digest in rows if run_id not in forget}
    found.update(d for (d,) in t.DatasetVersion.select(t.DatasetVersion.digest).tuples())
    found.update(d for (d,) in t.ModelVersion.select(t.ModelVersion.digest).tuples())
    # A model's link to a dataset unregistered since: the paths of that version's copy (DatasetRecords.unregister).
    for (paths,) in t.ModelDataset.select(t.ModelDataset.paths).where(t.ModelDataset.paths.is_null(False)).tuples():
        found.update(_stored_digests(paths, layout))
    found.update(d for (d,) in t.ModuleVersionRecord.select(t.ModuleVersionRecord.source).tuples())
    for frozen in (t.PublishedPipeline, t.PipelineDraft):
        for declaration, sources in frozen.select(frozen.declaration, frozen.sources).tuples():
            found.add(declaration)
            found.update(sources.values())
    for saved_id, definition in t.SavedDataset.select(t.SavedDataset.saved_id, t.SavedDataset.definition).tuples():
        if saved_id not in unnamed:
            found.update(_stored_digests(definition["paths"], layout))
    found.discard("")  # a pipeline frozen from a run has no declaration
    return found


def _stored_digests(paths: list[str], layout) -> set[str]:
    """The objects of the store that ``paths`` (absolute, or relative to the workspace) lie in."""
    found = set()
    for path in paths:
        inside = Path(layout.root, path)  # an absolute path stays itself
        if within(inside, layout.objects):
            parts = inside.relative_to(layout.objects).parts
            if len(parts) > 1:
                found.add(parts[1])
    return found


def stored_objects(objects: Path) -> dict[str, str]:
    """digest -> path of every tree in the store (``objects/<first two>/<digest>``)."""
    found = {}
    for prefix in _entries(objects):
        if len(prefix.name) == 2 and prefix.is_dir(follow_symlinks=False):
            for entry in _entries(prefix.path):
                if entry.name[:2] == prefix.name:
                    found[entry.name] = entry.path
    return found


def _run_of(name: str) -> int | None:
    """The run id a folder of runs/ is named after, or None ("007" and "x" name no run)."""
    return int(name) if name.isdigit() and str(int(name)) == name else None


# -- carrying out --------------------------------------------------------------------------------
def collect(history: History, plan: GcPlan, dry_run: bool = False) -> GcResult:
    """Forget ``plan``'s runs and remove its paths; with ``dry_run``, only say what that would free.

    Rows are deleted in one IMMEDIATE transaction, which also checks again, under the write
    lock, that each object is still unreferenced and each folder still belongs to no kept
    run; the paths are moved aside inside it and deleted once it has committed.
    """
    if dry_run:
        return GcResult(
            plan.bytes,
            len(plan.objects),
            len(plan.run_folders),
            len(plan.forget_runs),
            len(plan.tmp),
            len(plan.parallel),
            saved_datasets_removed=len(plan.saved_datasets),
        )
    t, layout = history.tables, history.layout
    store = ObjectStore(layout.objects)
    trash = layout.tmp / f"gc-{os.getpid()}-{time.time_ns()}"
    trash.mkdir(parents=True)
    result = GcResult(0, 0, 0, 0)
    doomed: list[tuple[Path, int, str]] = []  # (path to delete, bytes, what it was) once committed
    try:
        with history.write():
            forget = [
                r
                for chunk in _chunks(plan.forget_runs)
                for (r,) in t.PipelineRun.select(t.PipelineRun.id)
                .where(t.PipelineRun.id.in_(chunk), t.PipelineRun.status.not_in(list(_ACTIVE)))
                .tuples()
            ]
            if plan.forget_runs and not plan.experiment:
                # A run submitted since the plan may have reused a step run of one planned to go.
                forget = [r for r in forget if r not in _kept_producers(t, set(forget))]
            named_by_forgotten = _named_by_runs(t, forget)
            _forget_runs(t, forget)
            result.runs_forgotten = len(forget)
            # Their hour starts now: one found by its id before this pass is still there to submit.
            for chunk in _chunks(sorted(named_by_forgotten)):
                t.SavedDataset.update(created_at=now()).where(t.SavedDataset.saved_id.in_(chunk)).execute()
            # Checked again: a run submitted since the plan may name one.
            unnamed = _unnamed_saved_datasets(t, time.time()) & set(plan.saved_datasets)
            for chunk in _chunks(sorted(unnamed)):
                t.SavedDataset.delete().where(t.SavedDataset.saved_id.in_(chunk)).execute()
            result.saved_datasets_removed = len(unnamed)
            referenced = _referenced_digests(t, set(), layout, set())
            existing = {r for (r,) in t.PipelineRun.select(t.PipelineRun.id).tuples()}
            # Moved aside last, under the write lock: no run can be created with a folder's id
            # meanwhile, and nothing can be decided from an entry whose rows are going.
            since = _oldest_active_submission(t)
            for digest, size in plan.objects.items():
                if digest not in referenced and not _maybe_being_committed(store.path(digest), since):
                    doomed.append((_set_aside(store.path(digest), trash, "object-" + digest), size, "object"))
            for name, size in plan.run_folders.items():
                if _run_of(name) not in existing:
                    doomed.append((_set_aside(layout.runs / name, trash, "run-" + name), size, "run folder"))
    except BaseException:
        try:
            trash.rmdir()  # when something was moved into it, the next gc removes it with tmp/'s leftovers
        except OSError:
            pass
        raise
    for name, size in plan.tmp.items():
        doomed.append((layout.tmp / name, size, "tmp"))
    doomed += _trim_parallel_cache(history, plan, result)
    for path, size, kind in doomed:
        try:
            if not _remove(path):
                continue
        except OSError as exc:
            result.problems.append(f"{path}: {exc.strerror or exc}")
            continue
        result.bytes_freed += size
        if kind == "object":
            result.objects_removed += 1
        elif kind == "run folder":
            result.run_folders_removed += 1
        elif kind == "parallel":
            result.parallel_removed += 1
        else:
            result.tmp_removed += 1
    try:
        remove_tree(trash)
    except OSError as exc:
        result.problems.append(f"{trash}: {exc.strerror or exc}")
    return result


def _parallel_needed(layout, runs) -> tuple[dict[str, set[str] | None], set[str]]:
    """family -> the result keys the step runs of ``runs`` have (None: all, a driver that did not
    end), and the digests files they use, from the record each driver left in its step's folder."""
    families: dict[str, set[str] | None] = {}
    digests: set[str] = set()
    for run_id in runs:
        for step in _entries(layout.run_dir(run_id)):
            record = parallel_files.read_record(Path(step.path, parallel_files.FOLDER, parallel_files.RECORD))
            if record is None:
                continue
            digests.add(str(record.get("digests")))
            keys, family = record.get("keys"), record["family"]
            if keys is None or families.get(family, set()) is None:
                families[family] = None
            else:
                families.setdefault(family, set()).update(keys)
    return families, digests


def _parallel_unneeded(layout, runs, since: float | None) -> dict[str, int]:
    """What of the parallel cache the step runs of ``runs`` do not need (``GcPlan.parallel``)."""
    root = layout.parallel_cache
    entries = _entries(root)
    if not entries:
        return {}
    families, digests = _parallel_needed(layout, runs)
    found = {}
    for entry in entries:
        if _maybe_being_committed(entry.path, since):
            continue
        if entry.is_symlink():  # removed, never followed: a ParallelRunStep's container writes here
            found[entry.name] = 0
        elif entry.name == parallel_files.DIGESTS:
            for kept in _entries(entry.path):
                if kept.name not in digests and not _maybe_being_committed(kept.path, since):
                    found[f"{entry.name}/{kept.name}"] = tree_size(kept.path)
        elif entry.name not in families:
            found[entry.name] = tree_size(entry.path)
        elif families[entry.name] is not None:
            journal = Path(entry.path, parallel_files.JOURNAL)
            if not _maybe_being_committed(journal, since):
                _, dropped = parallel_files.needed_lines(Path(entry.path), families[entry.name])
                if dropped:
                    found[f"{entry.name}/{parallel_files.JOURNAL}"] = dropped
    return found


def _trim_parallel_cache(history: History, plan: GcPlan, result: GcResult) -> list[tuple[Path, int, str]]:
    """Carry out ``plan.parallel``, checking again what the runs left now need (a run may have
    started since the plan): journals are trimmed here; the families and digests files to remove
    are returned, as ``collect``'s doomed paths."""
    if not plan.parallel:
        return []
    t, root = history.tables, history.layout.parallel_cache
    runs = [r for (r,) in history.tables.PipelineRun.select(t.PipelineRun.id).tuples()]
    now_unneeded = _parallel_unneeded(history.layout, runs, _oldest_active_submission(t))
    families, _ = _parallel_needed(history.layout, runs)
    doomed = []
    for name in plan.parallel.keys() & now_unneeded.keys():
        path = root / name
        if not name.endswith("/" + parallel_files.JOURNAL):
            doomed.append((path, now_unneeded[name], "parallel"))
            continue
        lines, size = parallel_files.needed_lines(path.parent, families[path.parent.name])
        try:
            parallel_files.rewrite_journal(path.parent, lines)
        except OSError as exc:
            result.problems.append(f"{path}: {exc.strerror or exc}")
            continue
        result.bytes_freed += size
        result.parallel_removed += 1
    return doomed


def _forget_runs(t: Tables, run_ids: list[int]) -> None:
    """Delete the rows of ``run_ids`` (their step runs, outputs, edges, metrics, claims cascade).

    A cache entry of a forgotten step run passes to a kept step run with the same key that
    succeeded (a reused one has the same outputs), so that forgetting the run that computed
    something does not make later runs compute it again while its outputs are kept.
    """
    step_ids = []
    for chunk in _chunks(run_ids):
        step_ids += [s for (s,) in t.StepRun.select(t.StepRun.id).where(t.StepRun.run.in_(chunk)).tuples()]
    forgotten = set(run_ids)
    for chunk in _chunks(step_ids):
        entries = dict(
            t.CacheEntry.select(t.CacheEntry.key, t.CacheEntry.step_run)
            .where(t.CacheEntry.step_run.in_(chunk))
            .tuples()
        )
        for key, successor in _successors(t, list(entries), forgotten).items():
            t.CacheEntry.update(step_run=successor).where(t.CacheEntry.key == key).execute()
        # The self-reference has no ON DELETE action. Only Experiment.delete forgets a step run
        # that a kept one reused: that one keeps its outputs and its reason's text, not the link.
        t.StepRun.update(reused_from=None).where(t.StepRun.reused_from.in_(chunk)).execute()
    for chunk in _chunks(run_ids):
        t.PipelineRun.delete().where(t.PipelineRun.id.in_(chunk)).execute()
    if run_ids:
        _prune_unreferenced_rows(t)


def _successors(t: Tables, keys: list[str], forgotten: set[int]) -> dict[str, int]:
    """key -> the newest kept step run that succeeded with that key, for the keys that have one."""
    found: dict[str, int] = {}
    for chunk in _chunks(keys):
        rows = (
            t.StepRun.select(t.StepRun.cache_key, t.StepRun.id, t.StepRun.run)
            .where(t.StepRun.cache_key.in_(chunk), t.StepRun.status.in_(_SUCCEEDED))
            .order_by(t.StepRun.id)
            .tuples()
        )
        found.update({key: step_id for key, step_id, run_id in rows if run_id not in forgotten})
    return found


def _prune_unreferenced_rows(t: Tables) -> None:
    """Delete the cache keys, snapshots and graphs that no remaining row refers to.

    A snapshot row is written just before the step run naming it, so one newer than the oldest
    active run is kept. (``NOT IN`` over a column with NULLs matches nothing: they are left out.)
    """
    db = t.StepRun._meta.database
    db.execute_sql(
        'DELETE FROM "cache_key" WHERE "key" NOT IN (SELECT "cache_key" FROM "step_run" WHERE "cache_key" '
        'IS NOT NULL) AND "key" NOT IN (SELECT "key" FROM "cache_entry")'
    )
    since = _oldest_active_submission(t)
    db.execute_sql(
        'DELETE FROM "snapshot" WHERE "created_at" < ? '
        'AND "digest" NOT IN (SELECT "snapshot" FROM "step_run" WHERE "snapshot" IS NOT NULL) '
        'AND "digest" NOT IN (SELECT json_extract("components", \'$.source\') FROM "cache_key" '
        "WHERE json_extract(\"components\", '$.source') IS NOT NULL)",
        (since - TIMESTAMP_SLACK_SECONDS if since is not None else float("inf"),),
    )
    db.execute_sql(
        'DELETE FROM "pipeline_graph" WHERE "id" NOT IN (SELECT "pipeline_id" FROM "pipeline_run") '
        'AND "id" NOT IN (SELECT "pipeline_id" FROM "published_pipeline") '
        'AND "id" NOT IN (SELECT "pipeline_id" FROM "pipeline_draft")'
    )


def _oldest_active_submission(t: Tables) -> float | None:
    return (
        t.PipelineRun.select(t.PipelineRun.submitted_at)
        .where(t.PipelineRun.status.in_(list(_ACTIVE)))
        .order_by(t.PipelineRun.submitted_at)
        .scalar()
    )


def _maybe_being_committed(path: str | os.PathLike, since: float | None) -> bool:
    """Whether an unreferenced object may be a running step's output not yet recorded: one changed
    since the oldest active run was submitted (a commit chmods what it moves in)."""
    return since is not None and _changed_at(path) >= since - TIMESTAMP_SLACK_SECONDS


def _set_aside(path: Path, trash: Path, name: str) -> Path:
    """Move ``path`` into ``trash`` (one rename, under the write lock); where it cannot be moved,
    it is deleted where it lies."""
    try:
        if stat.S_ISDIR(os.lstat(path).st_mode):
            os.chmod(path, 0o700)  # moving a folder rewrites its "..": a read-only one refuses
        os.rename(path, trash / name)
    except OSError:
        return path
    return trash / name


def _remove(path: Path) -> bool:
    """Delete a file, a link (never what it points at) or a folder, read-only or not; False when
    there was nothing (another gc at the same time took it: its bytes are that one's to count)."""
    try:
        mode = os.lstat(path).st_mode
    except FileNotFoundError:
        return False
    if stat.S_ISDIR(mode):
        remove_tree(path)
    else:
        os.unlink(path)
    return True


def _chunks(items: list) -> list[list]:
    return [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]


# -- measuring -----------------------------------------------------------------------------------
def tree_size(path: str | os.PathLike) -> int:
    """Bytes of the files under ``path`` (a link counts as itself; links are never followed)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0
    if not stat.S_ISDIR(st.st_mode):
        return st.st_size
    total, folders = 0, [os.fspath(path)]
    while folders:
        for entry in _entries(folders.pop()):
            try:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(entry.path)
                else:
                    total += entry.stat(follow_symlinks=False).st_size
            except FileNotFoundError:
                continue  # removed while we looked
    return total


def disk_usage(history: History) -> dict:
    """What takes the space in ``.localpipe/``: bytes (and counts) by part, and run folders by size.

    The parts add up to ``total``: whatever is not a known part is counted in ``other``.
    ``reclaimable`` is what ``localpipe gc`` with no option would free.
    """
    t, layout = history.tables, history.layout
    parts = dict.fromkeys(("objects", "runs", "history", "statcache", "datastores", "tmp", "other"), 0)
    for entry in _entries(layout.state_dir):
        size = tree_size(entry.path)
        if entry.name.startswith(layout.history.name):
            parts["history"] += size
        elif entry.name.startswith("statcache.bin"):
            parts["statcache"] += size
        elif entry.name in ("objects", "runs", "datastores", "tmp"):
            parts[entry.name] += size
        else:
            parts["other"] += size
    known = {
        run_id: (status, experiment)
        for run_id, status, experiment in t.PipelineRun.select(
            t.PipelineRun.id, t.PipelineRun.status, t.Experiment.name
        )
        .join(t.Experiment)
        .tuples()
    }
    runs = []
    for entry in _entries(layout.runs):
        run_id = _run_of(entry.name)
        status, experiment = known.get(run_id, (None, None))
        runs.append(
            {
                "folder": entry.name,
                "run": run_id if run_id in known else None,
                "status": status,
                "experiment": experiment,
                "bytes": tree_size(entry.path),
            }
        )
    runs.sort(key=lambda r: (-r["bytes"], r["folder"]))
    return {
        "total": sum(parts.values()),
        "parts": parts,
        "objects": len(stored_objects(layout.objects)),
        "runs": runs,
        "tmp_entries": sum(1 for _ in _entries(layout.tmp)),
        "reclaimable": plan_gc(history).bytes,
    }


def _entries(folder: str | os.PathLike) -> list[os.DirEntry]:
    try:
        with os.scandir(folder) as found:
            return list(found)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _changed_at(path: str | os.PathLike) -> float:
    """The later of a path's modification and status-change times (a commit chmods what it moves in)."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return 0.0
    return max(st.st_mtime, st.st_ctime)


def _modified_at(path: str | os.PathLike) -> float:
    try:
        return os.lstat(path).st_mtime
    except FileNotFoundError:
        return 0.0
