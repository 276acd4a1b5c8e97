"""The seed page's pipeline ("create your first pipeline"): data prep -> train -> compare models.

The page's code as written, its `azureml` imports included, in the order the page gives it. One
change: `vm_size` (see README.md). The page leaves out `compare_step`; it is defined where the
page lists it. This copy takes the page's other branch,
`USE_CURATED_ENV = False`: an environment built from its `CondaDependencies`.
"""

import azureml.core
from azureml.core import Datastore, Workspace

ws = Workspace.from_config()

# Default datastore
def_data_store = ws.get_default_datastore()

# Get the blob storage associated with the workspace
def_blob_store = Datastore(ws, "workspaceblobstore")

# Get file storage associated with the workspace
def_file_store = Datastore(ws, "workspacefilestore")

from azureml.core import Dataset

my_dataset = Dataset.File.from_files([(def_blob_store, "train-images/")])

from azureml.pipeline.core import PipelineData

output_data1 = PipelineData("output_data1", datastore=def_blob_store, output_name="output_data1")

from azureml.core.compute import AmlCompute, ComputeTarget

compute_name = "aml-compute"
# localpipe: STANDARD_NC6 (6 vCPUs and a GPU per node) is what the page asks for; each step of a
# local "cluster" claims one node's worth of this machine, so a size a workstation without a GPU
# can give is used here.
vm_size = "STANDARD_D1_V2"
if compute_name in ws.compute_targets:
    compute_target = ws.compute_targets[compute_name]
    if compute_target and type(compute_target) is AmlCompute:
        print("Found compute target: " + compute_name)
else:
    print("Creating a new compute target...")
    provisioning_config = AmlCompute.provisioning_configuration(
        vm_size=vm_size,  # STANDARD_NC6 is GPU-enabled
        min_nodes=0,
        max_nodes=4,
    )
    # create the compute target
    compute_target = ComputeTarget.create(ws, compute_name, provisioning_config)

    # Can poll for a minimum number of nodes and for a specific timeout.
    # If no min node count is provided it will use the scale settings for the cluster
    compute_target.wait_for_completion(show_output=True, min_node_count=None, timeout_in_minutes=20)

    # For a more detailed view of current cluster status, use the 'status' property
    print(compute_target.status.serialize())

from azureml.core import Environment
from azureml.core.conda_dependencies import CondaDependencies
from azureml.core.runconfig import RunConfiguration

aml_run_config = RunConfiguration()
# `compute_target` as defined in "Azure Machine Learning compute" section above
aml_run_config.target = compute_target

USE_CURATED_ENV = False
if USE_CURATED_ENV:
    curated_environment = Environment.get(workspace=ws, name="AzureML-Tutorial")
    aml_run_config.environment = curated_environment
else:
    aml_run_config.environment.python.user_managed_dependencies = False

    # Add some packages relied on by data prep step
    aml_run_config.environment.python.conda_dependencies = CondaDependencies.create(
        conda_packages=["pandas", "scikit-learn"],
        pip_packages=["azureml-sdk", "azureml-dataprep[fuse,pandas]"],
        pin_sdk_version=False,
    )

from azureml.pipeline.steps import PythonScriptStep

dataprep_source_dir = "./dataprep_src"
entry_point = "prepare.py"
# `my_dataset` as defined above
ds_input = my_dataset.as_named_input("input1")

# `output_data1`, `compute_target`, `aml_run_config` as defined above
data_prep_step = PythonScriptStep(
    script_name=entry_point,
    source_directory=dataprep_source_dir,
    arguments=["--input", ds_input.as_download(), "--output", output_data1],
    inputs=[ds_input],
    outputs=[output_data1],
    compute_target=compute_target,
    runconfig=aml_run_config,
    allow_reuse=True,
)

train_source_dir = "./train_src"
train_entry_point = "train.py"

training_results = PipelineData(name="training_results", datastore=def_blob_store, output_name="training_results")

train_step = PythonScriptStep(
    script_name=train_entry_point,
    source_directory=train_source_dir,
    arguments=["--prepped_data", output_data1.as_input(), "--training_results", training_results],
    compute_target=compute_target,
    runconfig=aml_run_config,
    allow_reuse=True,
)

# Not shown on the page: reads the training results and logs the best accuracy.
compare_step = PythonScriptStep(
    script_name="compare.py",
    source_directory="./compare_src",
    arguments=["--training_results", training_results.as_input()],
    compute_target=compute_target,
    runconfig=aml_run_config,
    allow_reuse=True,
)

# list of steps to run (`compare_step` definition not shown)
compare_models = [data_prep_step, train_step, compare_step]

from azureml.pipeline.core import Pipeline

# Build the pipeline
pipeline1 = Pipeline(workspace=ws, steps=[compare_models])

from azureml.core import Experiment

# Submit the pipeline to be run
pipeline_run1 = Experiment(ws, "Compare_Models_Exp").submit(pipeline1)
pipeline_run1.wait_for_completion()
