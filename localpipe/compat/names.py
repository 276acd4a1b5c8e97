"""The table of the ``azureml.*`` names localpipe provides: module -> name -> where it lives here.

Plain data, read by the ``azureml`` package of ``shim/``. A value is ``"module:attribute"``, imported
on first use. A module listed is importable (each one is a package, so that its submodules are
too); a name or module left out is refused with a message that says localpipe lacks it. The names
are those of the Azure ML SDK v1 (azureml-core, azureml-pipeline-core, azureml-pipeline-steps) that
localpipe has; docs/azureml-imports.md lists them, and what is not provided yet.
"""

from __future__ import annotations

# azureml.train.hyperdrive's parameter expressions, exported by it and by its parameter_expressions module.
PARAMETER_EXPRESSIONS = {
    e: f"localpipe.sdk.hyperdrive:{e}"
    for e in (
        "choice",
        "lognormal",
        "loguniform",
        "normal",
        "qlognormal",
        "qloguniform",
        "qnormal",
        "quniform",
        "randint",
        "uniform",
    )
}

MODULES: dict[str, dict[str, str]] = {
    "azureml": {},
    "azureml.core": {
        "ComputeTarget": "localpipe.sdk.compute:ComputeTarget",
        "Dataset": "localpipe.sdk.data:Dataset",
        "Datastore": "localpipe.sdk.data:Datastore",
        "Environment": "localpipe.sdk.environment:Environment",
        "Experiment": "localpipe.client.experiment:Experiment",
        "Model": "localpipe.sdk.model:Model",
        "Run": "localpipe.client.runs:Run",
        "RunConfiguration": "localpipe.sdk.runconfig:RunConfiguration",
        "ScriptRunConfig": "localpipe.sdk.script_run:ScriptRunConfig",
        "VERSION": "localpipe:__version__",
        "Workspace": "localpipe.sdk.workspace:Workspace",
        "__version__": "localpipe:__version__",
    },
    "azureml.core.authentication": {
        "InteractiveLoginAuthentication": "localpipe.client.rest:InteractiveLoginAuthentication",
    },
    # localpipe's own targets, LocalCompute and RayCompute, have no azureml name: Azure ML has neither.
    "azureml.core.compute": {
        "AmlCompute": "localpipe.sdk.compute:AmlCompute",
        "ComputeTarget": "localpipe.sdk.compute:ComputeTarget",
    },
    "azureml.core.compute_target": {
        "ComputeTargetException": "localpipe.errors:ComputeTargetException",
    },
    "azureml.core.conda_dependencies": {
        "CondaDependencies": "localpipe.sdk.conda:CondaDependencies",
    },
    "azureml.core.dataset": {
        "Dataset": "localpipe.sdk.data:Dataset",
    },
    "azureml.core.container_registry": {
        "ContainerRegistry": "localpipe.sdk.environment:ContainerRegistry",
        "RegistryIdentity": "localpipe.sdk.environment:RegistryIdentity",
    },
    "azureml.opendatasets": {
        "Diabetes": "localpipe.sdk.opendatasets:Diabetes",
    },
    "azureml.core.datastore": {
        "Datastore": "localpipe.sdk.data:Datastore",
    },
    "azureml.core.environment": {
        "CondaDependencies": "localpipe.sdk.conda:CondaDependencies",
        "DockerBuildContext": "localpipe.sdk.environment:DockerBuildContext",
        "DockerImageDetails": "localpipe.sdk.environment:DockerImageDetails",
        "Environment": "localpipe.sdk.environment:Environment",
        "ImageBuildDetails": "localpipe.sdk.environment:ImageBuildDetails",
    },
    "azureml.core.experiment": {
        "Experiment": "localpipe.client.experiment:Experiment",
    },
    "azureml.core.model": {
        "Model": "localpipe.sdk.model:Model",
    },
    "azureml.core.run": {
        "Run": "localpipe.client.runs:Run",
    },
    "azureml.core.runconfig": {
        "CondaDependencies": "localpipe.sdk.conda:CondaDependencies",
        "DEFAULT_CPU_IMAGE": "localpipe.sdk.environment:DEFAULT_CPU_IMAGE",
        "DEFAULT_GPU_IMAGE": "localpipe.sdk.environment:DEFAULT_GPU_IMAGE",
        "DockerConfiguration": "localpipe.sdk.runconfig:DockerConfiguration",
        "MpiConfiguration": "localpipe.sdk.runconfig:MpiConfiguration",
        "PyTorchConfiguration": "localpipe.sdk.runconfig:PyTorchConfiguration",
        "RunConfiguration": "localpipe.sdk.runconfig:RunConfiguration",
        "TensorflowConfiguration": "localpipe.sdk.runconfig:TensorflowConfiguration",
    },
    "azureml.core.script_run_config": {
        "ScriptRunConfig": "localpipe.sdk.script_run:ScriptRunConfig",
    },
    "azureml.core.workspace": {
        "Workspace": "localpipe.sdk.workspace:Workspace",
    },
    "azureml.data": {
        "FileDataset": "localpipe.sdk.data:FileDataset",
        "OutputFileDatasetConfig": "localpipe.sdk.data:OutputFileDatasetConfig",
        "TabularDataset": "localpipe.sdk.data:TabularDataset",
        "VERSION": "localpipe:__version__",
        "__version__": "localpipe:__version__",
    },
    "azureml.data.data_reference": {
        "DataReference": "localpipe.sdk.data:DataReference",
    },
    "azureml.data.datapath": {
        "DataPath": "localpipe.sdk.data:DataPath",
        "DataPathComputeBinding": "localpipe.sdk.data:DataPathComputeBinding",
    },
    "azureml.data.dataset_consumption_config": {
        "DatasetConsumptionConfig": "localpipe.sdk.data:DatasetConsumptionConfig",
    },
    "azureml.data.file_dataset": {
        "FileDataset": "localpipe.sdk.data:FileDataset",
    },
    "azureml.data.tabular_dataset": {
        "TabularDataset": "localpipe.sdk.data:TabularDataset",
    },
    "azureml.data.output_dataset_config": {
        "OutputFileDatasetConfig": "localpipe.sdk.data:OutputFileDatasetConfig",
    },
    "azureml.exceptions": {
        "ActivityFailedException": "localpipe.errors:RunFailedError",
        "AzureMLException": "localpipe.errors:LocalpipeError",
        "ComputeTargetException": "localpipe.errors:ComputeTargetException",
        "DatasetTimestampMissingError": "localpipe.errors:DatasetTimestampMissingError",
        "ModelNotFoundException": "localpipe.errors:ModelNotFoundException",
        "ModelPathNotFoundException": "localpipe.errors:ModelPathNotFoundException",
        "UserErrorException": "localpipe.errors:UserErrorException",
        "WebserviceException": "localpipe.errors:WebserviceException",
    },
    "azureml.pipeline": {},
    "azureml.pipeline.core": {
        "Module": "localpipe.client.modules:Module",
        "ModuleVersion": "localpipe.client.modules:ModuleVersion",
        "ModuleVersionDescriptor": "localpipe.client.modules:ModuleVersionDescriptor",
        "Pipeline": "localpipe.sdk.pipeline:Pipeline",
        "PipelineData": "localpipe.sdk.data:PipelineData",
        "PipelineDraft": "localpipe.client.drafts:PipelineDraft",
        "PipelineEndpoint": "localpipe.client.publishing:PipelineEndpoint",
        "PipelineParameter": "localpipe.sdk.parameters:PipelineParameter",
        "PipelineRun": "localpipe.client.runs:PipelineRun",
        "PublishedPipeline": "localpipe.client.publishing:PublishedPipeline",
        "Schedule": "localpipe.client.schedules:Schedule",
        "ScheduleRecurrence": "localpipe.client.schedules:ScheduleRecurrence",
        "StepRun": "localpipe.client.runs:StepRun",
        "StepSequence": "localpipe.sdk.pipeline:StepSequence",
        "TimeZone": "localpipe.client.schedules:TimeZone",
        "TrainingOutput": "localpipe.sdk.hyperdrive:TrainingOutput",
    },
    "azureml.pipeline.core.graph": {
        "InputPortDef": "localpipe.sdk.modules:InputPortDef",
        "OutputPortDef": "localpipe.sdk.modules:OutputPortDef",
        "ParamDef": "localpipe.sdk.modules:ParamDef",
        "PipelineParameter": "localpipe.sdk.parameters:PipelineParameter",
        "PublishedPipeline": "localpipe.client.publishing:PublishedPipeline",
        "TrainingOutput": "localpipe.sdk.hyperdrive:TrainingOutput",
    },
    "azureml.pipeline.core.module": {
        "Module": "localpipe.client.modules:Module",
        "ModuleVersion": "localpipe.client.modules:ModuleVersion",
        "ModuleVersionDescriptor": "localpipe.client.modules:ModuleVersionDescriptor",
    },
    "azureml.pipeline.core.pipeline_draft": {
        "PipelineDraft": "localpipe.client.drafts:PipelineDraft",
    },
    "azureml.pipeline.core.pipeline_endpoint": {
        "PipelineEndpoint": "localpipe.client.publishing:PipelineEndpoint",
        "PipelineIdVersion": "localpipe.client.publishing:PipelineIdVersion",
        "PipelineVersion": "localpipe.client.publishing:PipelineVersion",
    },
    "azureml.pipeline.core.schedule": {
        "Schedule": "localpipe.client.schedules:Schedule",
        "ScheduleRecurrence": "localpipe.client.schedules:ScheduleRecurrence",
        "TimeZone": "localpipe.client.schedules:TimeZone",
    },
    "azureml.pipeline.core.run": {
        "PipelineRun": "localpipe.client.runs:PipelineRun",
        "StepRun": "localpipe.client.runs:StepRun",
    },
    "azureml.pipeline.steps": {
        "CommandStep": "localpipe.sdk.steps:CommandStep",
        "HyperDriveStep": "localpipe.sdk.hyperdrive:HyperDriveStep",
        "HyperDriveStepRun": "localpipe.client.runs:HyperDriveStepRun",
        "ModuleStep": "localpipe.sdk.modules:ModuleStep",
        "ParallelRunConfig": "localpipe.sdk.parallel_run:ParallelRunConfig",
        "ParallelRunStep": "localpipe.sdk.parallel_run:ParallelRunStep",
        "PythonScriptStep": "localpipe.sdk.steps:PythonScriptStep",
    },
    # Azure's diagnostics switch, which the framework samples turn on: localpipe sends nothing.
    "azureml.telemetry": {
        "set_diagnostics_collection": "localpipe.sdk.telemetry:set_diagnostics_collection",
    },
    # Hyperparameter tuning (docs/hyperdrive.md): azureml-train-core's hyperdrive package.
    "azureml.train": {},
    "azureml.train.hyperdrive": {
        "BanditPolicy": "localpipe.sdk.hyperdrive:BanditPolicy",
        "BayesianParameterSampling": "localpipe.sdk.hyperdrive:BayesianParameterSampling",
        "EarlyTerminationPolicy": "localpipe.sdk.hyperdrive:EarlyTerminationPolicy",
        "GridParameterSampling": "localpipe.sdk.hyperdrive:GridParameterSampling",
        "HyperDriveConfig": "localpipe.sdk.hyperdrive:HyperDriveConfig",
        "HyperDriveRun": "localpipe.client.runs:HyperDriveRun",
        "HyperParameterSampling": "localpipe.sdk.hyperdrive:HyperParameterSampling",
        "MedianStoppingPolicy": "localpipe.sdk.hyperdrive:MedianStoppingPolicy",
        "NoTerminationPolicy": "localpipe.sdk.hyperdrive:NoTerminationPolicy",
        "PrimaryMetricGoal": "localpipe.sdk.hyperdrive:PrimaryMetricGoal",
        "RandomParameterSampling": "localpipe.sdk.hyperdrive:RandomParameterSampling",
        "TruncationSelectionPolicy": "localpipe.sdk.hyperdrive:TruncationSelectionPolicy",
        **PARAMETER_EXPRESSIONS,
    },
    "azureml.train.hyperdrive.exceptions": {
        "HyperDriveConfigException": "localpipe.errors:HyperDriveConfigException",
        "HyperDriveException": "localpipe.errors:HyperDriveException",
        "HyperDriveScenarioNotSupportedException": "localpipe.errors:HyperDriveScenarioNotSupportedException",
    },
    "azureml.train.hyperdrive.parameter_expressions": {
        **PARAMETER_EXPRESSIONS,
    },
    "azureml.train.hyperdrive.policy": {
        "BanditPolicy": "localpipe.sdk.hyperdrive:BanditPolicy",
        "EarlyTerminationPolicy": "localpipe.sdk.hyperdrive:EarlyTerminationPolicy",
        "MedianStoppingPolicy": "localpipe.sdk.hyperdrive:MedianStoppingPolicy",
        "NoTerminationPolicy": "localpipe.sdk.hyperdrive:NoTerminationPolicy",
        "TruncationSelectionPolicy": "localpipe.sdk.hyperdrive:TruncationSelectionPolicy",
    },
    "azureml.train.hyperdrive.run": {
        "HyperDriveRun": "localpipe.client.runs:HyperDriveRun",
        "PrimaryMetricGoal": "localpipe.sdk.hyperdrive:PrimaryMetricGoal",
    },
    "azureml.train.hyperdrive.runconfig": {
        "HyperDriveConfig": "localpipe.sdk.hyperdrive:HyperDriveConfig",
        "PrimaryMetricGoal": "localpipe.sdk.hyperdrive:PrimaryMetricGoal",
    },
    "azureml.train.hyperdrive.sampling": {
        "BayesianParameterSampling": "localpipe.sdk.hyperdrive:BayesianParameterSampling",
        "GridParameterSampling": "localpipe.sdk.hyperdrive:GridParameterSampling",
        "HyperParameterSampling": "localpipe.sdk.hyperdrive:HyperParameterSampling",
        "RandomParameterSampling": "localpipe.sdk.hyperdrive:RandomParameterSampling",
    },
    "azureml.pipeline.steps.hyper_drive_step": {
        "HyperDriveStep": "localpipe.sdk.hyperdrive:HyperDriveStep",
        "HyperDriveStepRun": "localpipe.client.runs:HyperDriveStepRun",
    },
    "azureml.widgets": {
        "RunDetails": "localpipe.client.run_details:RunDetails",
    },
    "azureml.widgets.run_details": {
        "RunDetails": "localpipe.client.run_details:RunDetails",
    },
}
