"""The iris pipeline: prepare -> train -> evaluate, on the iris data that scikit-learn ships.

Run it with `localpipe submit examples/iris/pipeline.py`, or `python examples/iris/pipeline.py`.
"""

from pathlib import Path

from localpipe import (
    Experiment,
    Pipeline,
    PipelineData,
    PipelineParameter,
    PythonScriptStep,
    Workspace,
)

HERE = Path(__file__).resolve().parent  # so that the file runs from any folder
ws = Workspace.from_config()
datastore = ws.get_default_datastore()

splits = PipelineData("splits", datastore=datastore)
model = PipelineData("model", datastore=datastore)

test_fraction = PipelineParameter("test_fraction", default_value=0.3)
max_iter = PipelineParameter("max_iter", default_value=200)

prepare = PythonScriptStep(
    name="prepare",
    script_name="prepare.py",
    source_directory=HERE / "prepare",
    arguments=["--test-fraction", test_fraction, "--output", splits],
)
train = PythonScriptStep(
    name="train",
    script_name="train.py",
    source_directory=HERE / "train",
    arguments=["--splits", splits.as_input(), "--max-iter", max_iter, "--model", model],
)
evaluate = PythonScriptStep(
    name="evaluate",
    script_name="evaluate.py",
    source_directory=HERE / "evaluate",
    arguments=["--splits", splits.as_input(), "--model", model.as_input()],
)

# `evaluate` is enough: the steps producing its inputs are pulled in.
pipeline = Pipeline(workspace=ws, steps=[evaluate], description="iris: prepare, train, evaluate")

if __name__ == "__main__":
    run = Experiment(ws, "iris").submit(pipeline)
    run.wait_for_completion(show_output=True)
