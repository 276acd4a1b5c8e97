"""localpipe: machine-learning pipelines on your own workstation, with the Azure ML SDK's names.

The public names of the SDK (``from localpipe import ...``), re-exported and nothing else.
"""

from localpipe.client.context import Run
from localpipe.client.experiment import Experiment
from localpipe.client.runs import PipelineRun, StepRun
from localpipe.sdk.compute import ComputeTarget
from localpipe.sdk.data import Datastore, Dataset, FileDataset, PipelineData
from localpipe.sdk.environment import CondaDependencies, Environment, RunConfiguration
from localpipe.sdk.parameters import PipelineParameter
from localpipe.sdk.pipeline import Pipeline
from localpipe.sdk.steps import CommandStep, PythonScriptStep
from localpipe.sdk.workspace import Workspace
from localpipe.status import RunStatus

__version__ = "0.1.0"

__all__ = [
    "CommandStep", "ComputeTarget", "CondaDependencies", "Dataset", "Datastore", "Environment",
    "Experiment", "FileDataset", "Pipeline", "PipelineData", "PipelineParameter", "PipelineRun",
    "PythonScriptStep", "Run", "RunConfiguration", "RunStatus", "StepRun", "Workspace",
]
