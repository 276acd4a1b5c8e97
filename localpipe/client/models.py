"""Models and runs: ``register_model`` of a run, the lineage a registration records, copying a
model out of the store, and the run that registered a version (docs/models.md).

``register_model`` is one function that the run classes take as their method (``StepRunContext``
in a step, the ``Run``, ``StepRun`` and ``PipelineRun`` handles): ``run.register_model("m", "outputs/m.pkl")``
registers a file of the run's, as the SDK registers one of the files the run uploaded. A step's
files are those of its working directory (where it writes ``./outputs``), which stay in
``.localpipe/runs/RUN/STEP/`` until ``localpipe gc`` forgets the run. Steps record a registration
themselves, in one short write transaction, because the SDK hands the new version back at once
(``model.version``); concurrent registrations get distinct versions (``state/model_registry.py``).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from localpipe.errors import ModelPathNotFoundException, UserErrorException, WebserviceException
from localpipe.sdk.model import Model, registration_fields
from localpipe.status import ACTIVE

LISTED_FILES = 10  # files of a run named when a model path is not among them


def register_model(
    self,
    model_name,
    model_path=None,
    tags=None,
    properties=None,
    model_framework=None,
    model_framework_version=None,
    description=None,
    datasets=None,
    sample_input_dataset=None,
    sample_output_dataset=None,
    resource_configuration=None,
    **kwargs,
) -> Model:
    """Register ``model_path`` (default: ``model_name``), a file or folder of this run's, as the next
    version of ``model_name``, with this run as its lineage; returns the Model.

    A step's files are those of its working directory: ``outputs/model.pkl`` is what the step wrote
    to ``./outputs/model.pkl``. A pipeline run's are those of its steps: the one step that has
    ``model_path`` is taken. ``datasets`` is a list of ``(scenario, dataset)``.
    """
    if "asset_id" in kwargs:
        raise UserErrorException(
            "register_model: asset_id (an Azure asset) is not supported by localpipe: leave it out"
        )
    if kwargs:
        raise TypeError(f"register_model() got an unexpected keyword argument '{next(iter(kwargs))}'")
    workspace = _workspace_of(self)
    fields, links = registration_fields(
        workspace,
        model_name,
        tags,
        properties,
        description,
        datasets,
        model_framework,
        model_framework_version,
        sample_input_dataset,
        sample_output_dataset,
        resource_configuration,
    )
    relative = os.path.normpath(model_path if model_path is not None else model_name)
    if os.path.isabs(relative) or relative.split(os.sep)[0] == "..":
        raise ModelPathNotFoundException(
            f"model_path \"{model_path}\" is not a path among the run's files: give it relative to the step's "
            'working directory ("outputs/model.pkl"), or register another file with Model.register(ws, path, name)'
        )
    path, lineage = _run_file(self, relative)
    record = workspace.service.register_model(model_name, path, [], fields, links, lineage)
    return Model._from_record(workspace, record)


# The run classes take this module's function as their method, so it tells them apart by what they
# have rather than importing them: the step this process is, a pipeline run, or a step run of one.
def _in_step(run) -> bool:
    return hasattr(run, "_workspace_root")


def _workspace_of(run):
    if _in_step(run):
        from localpipe.sdk.workspace import Workspace

        return Workspace(run._workspace_root)
    return run.experiment.workspace


def _run_file(run, relative: str) -> tuple[str, dict]:
    """The path of ``relative`` among ``run``'s files, and the lineage to record for it."""
    from localpipe.state.reader import STEP_KIND

    if _in_step(run):  # the step is still running: its files are in its working directory
        root = _working_dir(Path(os.environ["LOCALPIPE_STEP_DIR"]))
        lineage = _lineage(STEP_KIND, run.number, run._experiment_name, run._pipeline_run_id, run.name, run.number)
        found = root / relative
        return _existing(found if found.exists() else None, relative, run, root), lineage
    if hasattr(run, "get_steps"):
        holders = [(step, path) for step in run.get_steps() if (path := _among_files(step, relative))]
        if len(holders) != 1:
            where = ", ".join(f'"{s.name}"' for s, _ in holders) or "none of them"
            raise ModelPathNotFoundException(
                f'model_path "{relative}": {len(holders)} steps of run {run.id} have it ({where}): register it from '
                f'one step, run.find_step_run("STEP")[0].register_model(...)'
            )
        step, path = holders[0]
        lineage = _lineage("pipeline", run.number, run.experiment.name, run.number, step.name, step.number)
        return str(path), lineage
    step = run._step()
    if run.parent is None:  # a script or interactive run: its files are its step's
        lineage = _lineage("pipeline", run.number, run.experiment.name, run.number, step["name"], step["id"])
    else:  # a step run, or a child run (whose id is not a number: its step run's is kept)
        lineage = _lineage(STEP_KIND, step["id"], run.experiment.name, run._run_number(), step["name"], step["id"])
    return _existing(_among_files(run, relative), relative, run, None), lineage


def _lineage(kind: str, run_id: int, experiment: str, pipeline_run: int, step: str, step_run: int) -> dict:
    return {
        "run_kind": kind,
        "run_id": run_id,
        "experiment": experiment,
        "pipeline_run": pipeline_run,
        "step": step,
        "step_run": step_run,
    }


def _working_dir(folder: Path) -> Path:
    """Where a step runs: the snapshot of its source, or its folder when it has no source directory."""
    snapshot = folder / "snapshot"
    return snapshot if snapshot.is_dir() else folder


def _among_files(step_run, relative: str) -> Path | None:
    """``relative`` (a file or a folder) among a finished step run's files (``client/run_files.py``)."""
    return next((root / relative for root in step_run._file_roots() if (root / relative).exists()), None)


def _existing(path: Path | None, relative: str, run, working_dir: Path | None) -> str:
    if path is not None:
        return str(path)
    if working_dir is not None:
        outputs = working_dir / "outputs"
        found = (
            sorted(str(p.relative_to(working_dir)) for p in outputs.rglob("*") if p.is_file())
            if outputs.is_dir()
            else []
        )
    else:
        found = [name for name in run.get_file_names() if name.startswith("outputs/")]
        status = run.get_status()
        if not found and run.parent is None and status in {s.value for s in ACTIVE}:  # an interactive run
            raise ModelPathNotFoundException(
                f'Could not locate the provided model_path "{relative}" in the files of run {run.id}: run {run.id} '
                f"is {status}: its ./outputs is kept among its files when it completes (run.complete() ends an "
                "interactive run, run.wait_for_completion() waits for a submitted one), or keep the file now with "
                f'run.upload_file("{relative}", path)'
            )
    listed = ", ".join(found[:LISTED_FILES]) + (
        f" and {len(found) - LISTED_FILES} more" if len(found) > LISTED_FILES else ""
    )
    has = f"its outputs: {listed}" if found else "it wrote nothing to ./outputs"
    raise ModelPathNotFoundException(
        f'Could not locate the provided model_path "{relative}" in the files of step run {run.id} ("{run.name}") '
        f"({has}): write the model there, or fix the path"
    )


def step_lineage(workspace) -> dict:
    """The step this process is, when it is one of ``workspace``'s: what ``Model.register`` records as
    the lineage of what it registers (the SDK's run_id stays None, as ``Model.register`` has none)."""
    root = os.environ.get("LOCALPIPE_WORKSPACE")
    if not (root and os.environ.get("LOCALPIPE_STEP_RUN_ID")) or Path(root).resolve() != workspace.root:
        return {}
    return {
        "pipeline_run": int(os.environ["LOCALPIPE_RUN_ID"]),
        "step": os.environ.get("LOCALPIPE_STEP_NAME"),
        "step_run": int(os.environ["LOCALPIPE_STEP_RUN_ID"]),
    }


def download(record: dict, target_dir: str, exist_ok: bool) -> str:
    """Copy a model version's file or folder into ``target_dir``; returns the common path of the files
    copied (the SDK's answer: the file, the folder, or the one file of a folder of one). The copies
    are the user's: writable, whatever the store's read-only bits."""
    source = Path(record["path"])
    if not source.exists():
        raise WebserviceException(
            f"model {record['name']}:{record['version']}: its files are not in the store ({source}): register them "
            "again (`localpipe fsck` names what else is damaged)"
        )
    target = Path(target_dir) / record["entry"]
    files = [source] if source.is_file() else sorted(p for p in source.rglob("*") if p.is_file())
    copies = [target / p.relative_to(source) for p in files] if source.is_dir() else [target]
    for copy in copies:  # checked before anything is copied
        if copy.is_dir() and not copy.is_symlink():
            raise WebserviceException(f"{copy} is a folder: remove it, or choose another target_dir")
        for above in [Path(target_dir) / folder for folder in reversed(copy.relative_to(target_dir).parents)]:
            if above.exists() and not above.is_dir():  # target_dir, then each folder down to the copy
                raise WebserviceException(f"{above} is a file, not a folder: choose another target_dir")
        if not exist_ok and (copy.exists() or copy.is_symlink()):
            raise WebserviceException(f"File already exists. To overwrite, set exist_ok to True. {copy}")
    for original, copy in zip(files, copies):
        copy.parent.mkdir(parents=True, exist_ok=True)
        if copy.is_symlink() or copy.exists():
            copy.unlink()
        shutil.copyfile(original, copy)
    return os.path.commonpath([str(c) for c in copies])
