"""The Azure ML SDK's own usage, as the official samples write it (issue 14), run for real."""

from __future__ import annotations

import os
import signal

import psutil

from localpipe import Experiment, Pipeline, PipelineData, PythonScriptStep
from tests.conftest import wait_for

EXTRACT = "import os, sys\nopen(os.path.join(sys.argv[2], 'x.txt'), 'w').write('extracted')\n"
USE = "import os, sys\nprint('read', open(os.path.join(sys.argv[2], 'x.txt')).read())\n"


def data_dependency(ws, project) -> Pipeline:
    """The data-dependency sample's form: a bare PipelineData in the consumer's ``arguments`` and
    in its ``inputs``, and in the producer's ``arguments`` and ``outputs``."""
    project("a/extract.py", EXTRACT)
    project("b/use.py", USE)
    processed = PipelineData("processed_data1", datastore=ws.get_default_datastore())
    extract = PythonScriptStep(
        script_name="extract.py",
        source_directory=str(ws.root / "a"),
        arguments=["--output_extract", processed],
        outputs=[processed],
        name="extract.py",
    )
    use = PythonScriptStep(
        script_name="use.py",
        source_directory=str(ws.root / "b"),
        arguments=["--input_data", processed],
        inputs=[processed],
        name="use.py",
    )
    return Pipeline(ws, [extract, use])


def test_a_pipeline_data_listed_in_a_consumers_inputs_and_arguments_is_its_input(ws, project, run_pipeline):
    pipeline = data_dependency(ws, project)
    assert pipeline.validate() == []
    run_id, status, _ = run_pipeline(pipeline)
    assert status == "Completed"
    log = (ws.root / ".localpipe" / "runs" / str(run_id) / "use.py" / "stdout.log").read_text()
    assert log == "read extracted\n"


def test_waiting_on_a_run_whose_scheduler_died_as_an_unreaped_child_ends(ws, project):
    """Experiment.submit starts the scheduler as a child of this process; killed, it stays a
    zombie (nobody here reaps it): wait_for_completion must see that it is gone."""
    project("a/extract.py", "import time\ntime.sleep(60)\n")
    step = PythonScriptStep(script_name="extract.py", source_directory=str(ws.root / "a"), name="slow")
    run = Experiment(ws, "zombie").submit(Pipeline(ws, [step]))
    scheduler = run._history.runs.get(run.id)["scheduler_pid"]
    wait_for(lambda: run.get_status() == "Running", timeout=30, what="the run to start")
    os.kill(scheduler, signal.SIGKILL)
    wait_for(lambda: psutil.Process(scheduler).status() == psutil.STATUS_ZOMBIE, timeout=10, what="a zombie")
    assert run.wait_for_completion(show_output=False, raise_on_error=False, timeout_seconds=30) == "Failed"
    os.waitpid(scheduler, 0)
