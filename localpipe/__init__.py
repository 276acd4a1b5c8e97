"""localpipe: machine-learning pipelines on your own workstation, with the Azure ML SDK's names.

The public names of the SDK (``from localpipe import ...``), re-exported, imported on first use so
that the command line starts fast; and the one piece of wiring: the SDK's workspaces get their
service (``sdk/service.py``) from ``client/service.py``, which the SDK must not import itself.
"""

from __future__ import annotations

import importlib
import os
import sys

from localpipe.sdk.workspace import Workspace as _Workspace

# A step in an environment built for it finds localpipe's own libraries (peewee, blake3) here, after
# the environment's packages, so that the workspace calls of the SDK work there too.
if (_dependencies := os.environ.get("LOCALPIPE_DEPENDENCIES")) and _dependencies not in sys.path:
    sys.path.append(_dependencies)

__version__ = "0.1.0"

_EXPORTS = {
    "BanditPolicy": "localpipe.sdk.hyperdrive",
    "GridParameterSampling": "localpipe.sdk.hyperdrive",
    "HyperDriveConfig": "localpipe.sdk.hyperdrive",
    "MedianStoppingPolicy": "localpipe.sdk.hyperdrive",
    "NoTerminationPolicy": "localpipe.sdk.hyperdrive",
    "PrimaryMetricGoal": "localpipe.sdk.hyperdrive",
    "RandomParameterSampling": "localpipe.sdk.hyperdrive",
    "TruncationSelectionPolicy": "localpipe.sdk.hyperdrive",
    "BayesianParameterSampling": "localpipe.sdk.hyperdrive",
    "choice": "localpipe.sdk.hyperdrive",
    "randint": "localpipe.sdk.hyperdrive",
    "uniform": "localpipe.sdk.hyperdrive",
    "quniform": "localpipe.sdk.hyperdrive",
    "loguniform": "localpipe.sdk.hyperdrive",
    "qloguniform": "localpipe.sdk.hyperdrive",
    "normal": "localpipe.sdk.hyperdrive",
    "qnormal": "localpipe.sdk.hyperdrive",
    "lognormal": "localpipe.sdk.hyperdrive",
    "qlognormal": "localpipe.sdk.hyperdrive",
    "HyperDriveRun": "localpipe.client.runs",
    "AmlCompute": "localpipe.sdk.compute",
    "CommandStep": "localpipe.sdk.steps",
    "ComputeTarget": "localpipe.sdk.compute",
    "CondaDependencies": "localpipe.sdk.conda",
    "DataPath": "localpipe.sdk.data",
    "DataPathComputeBinding": "localpipe.sdk.data",
    "DataReference": "localpipe.sdk.data",
    "Dataset": "localpipe.sdk.data",
    "DatasetConsumptionConfig": "localpipe.sdk.data",
    "Datastore": "localpipe.sdk.data",
    "Environment": "localpipe.sdk.environment",
    "Experiment": "localpipe.client.experiment",
    "OutputFileDatasetConfig": "localpipe.sdk.data",
    "OutputPortDef": "localpipe.sdk.modules",
    "TabularDataset": "localpipe.sdk.data",
    "FileDataset": "localpipe.sdk.data",
    "InputPortDef": "localpipe.sdk.modules",
    "InteractiveLoginAuthentication": "localpipe.client.rest",
    "LocalCompute": "localpipe.sdk.compute",
    "Model": "localpipe.sdk.model",
    "Module": "localpipe.client.modules",
    "ModuleStep": "localpipe.sdk.modules",
    "ModuleVersion": "localpipe.client.modules",
    "Pipeline": "localpipe.sdk.pipeline",
    "PipelineData": "localpipe.sdk.data",
    "PipelineDraft": "localpipe.client.drafts",
    "PipelineEndpoint": "localpipe.client.publishing",
    "PipelineParameter": "localpipe.sdk.parameters",
    "ParallelRunConfig": "localpipe.sdk.parallel_run",
    "ParallelRunStep": "localpipe.sdk.parallel_run",
    "PipelineRun": "localpipe.client.runs",
    "PublishedPipeline": "localpipe.client.publishing",
    "PythonScriptStep": "localpipe.sdk.steps",
    "RayCompute": "localpipe.sdk.compute",
    "Run": "localpipe.client.runs",
    "RunConfiguration": "localpipe.sdk.runconfig",
    "RunStatus": "localpipe.status",
    "Schedule": "localpipe.client.schedules",
    "ScheduleRecurrence": "localpipe.client.schedules",
    "ScriptRunConfig": "localpipe.sdk.script_run",
    "StepRun": "localpipe.client.runs",
    "TimeZone": "localpipe.client.schedules",
    "Workspace": "localpipe.sdk.workspace",
}

__all__ = sorted(_EXPORTS)


def _local_service(workspace):
    """localpipe's wiring, not an SDK member: the service through which a workspace keeps its records."""
    from localpipe.client.service import LocalService

    return LocalService(workspace)


_Workspace.service_factory = _local_service


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'localpipe' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])
