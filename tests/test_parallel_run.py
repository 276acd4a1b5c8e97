"""ParallelRunStep (issue 20): mini-batches run by worker processes, thresholds, retries, the
per-batch cache, progress, GPUs per worker (docs/parallel-run.md). Real pipelines, real processes."""

from __future__ import annotations

import json
import os
import re
import time

import pytest

from localpipe import (
    ComputeTarget,
    Dataset,
    Environment,
    LocalCompute,
    ParallelRunConfig,
    ParallelRunStep,
    Pipeline,
    PipelineData,
    PipelineParameter,
)
from localpipe.errors import ParallelRunConfigError, PipelineValidationError

ECHO = """
import os
from azureml_user.parallel_run import EntryScript

def init():
    global prefix
    prefix = EntryScript().agent_name[:6]

def run(mini_batch):
    return [f"{os.path.basename(path)} {open(path).read().strip()}" for path in mini_batch]
"""


def _files(root, count: int, start: int = 0):
    root.mkdir(parents=True, exist_ok=True)
    for number in range(start, start + count):
        (root / f"f{number:05d}.txt").write_text(f"{number * 7}\n")
    return root


def _config(ws, source, **changes):
    values = dict(
        environment=Environment("local"),
        entry_script="score.py",
        source_directory=str(source),
        error_threshold=-1,
        output_action="append_row",
        compute_target="local",
        node_count=1,
        process_count_per_node=2,
        run_invocation_timeout=30,
    )
    values.update(changes)
    return ParallelRunConfig(**values)


def _pipeline(ws, source, data, config=None, name="score", **config_changes):
    dataset = Dataset.File.from_files(str(data))
    output = PipelineData("scores", datastore=ws.get_default_datastore())
    step = ParallelRunStep(
        name=name,
        parallel_run_config=config or _config(ws, source, **config_changes),
        inputs=[dataset.as_named_input("files")],
        output=output,
    )
    return Pipeline(ws, [step])


def _output(history, run_id: int, step: str = "score", file: str = "parallel_run_step.txt") -> str:
    from localpipe.state.store import ObjectStore

    steps = {s["name"]: s for s in history.runs.details(run_id)["steps"]}
    digest = steps[step]["outputs"]["scores"]
    store = ObjectStore(history.layout.objects)
    return (store.path(digest) / file).read_text()


def _timings(history, run_id: int, step: str = "score") -> list[dict]:
    path = history.layout.step_dir(run_id, step) / "parallel_run" / "batches.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


PIPELINE_FILE = """
from azureml.core import Dataset, Environment, Workspace
from azureml.pipeline.core import Pipeline, PipelineData
from azureml.pipeline.steps import ParallelRunConfig, ParallelRunStep

ws = Workspace.from_config()
config = ParallelRunConfig(environment=Environment("e"), entry_script="score.py", source_directory="src",
                           error_threshold=-1, output_action="append_row", compute_target="local",
                           node_count=1, process_count_per_node=2, run_max_try={run_max_try})
out = PipelineData("scores", datastore=ws.get_default_datastore())
step = ParallelRunStep("score", config, inputs=[Dataset.File.from_files("data").as_named_input("files")], output=out)
pipeline = Pipeline(ws, [step])
"""


def _pipeline_file(project, run_max_try: int = 3) -> None:
    """pipeline.py in the workspace: a ParallelRunStep over data/ with src/score.py on 2 workers."""
    project("pipeline.py", PIPELINE_FILE.format(run_max_try=run_max_try))


def test_a_thousand_files_on_two_workers_give_what_a_serial_loop_gives(ws, project, run_pipeline, history):
    source = project("src/score.py", ECHO).parent
    data = _files(ws.root / "data", 1000)
    run_id, status, steps = run_pipeline(_pipeline(ws, source, data))
    assert status == "Completed", steps["score"]
    files = sorted(data.iterdir())
    serial = "".join(f"{p.name} {p.read_text().strip()}\n" for p in files)
    assert _output(history, run_id) == serial
    timings = _timings(history, run_id)
    assert len(timings) == 100 and {t["worker"] for t in timings} <= {"worker0", "worker1"}
    log = (history.layout.step_dir(run_id, "score") / "stdout.log").read_text()
    assert "100 mini-batches, 0 reused from earlier runs, 100 to run on 2 workers" in log
    progress = json.loads((history.layout.step_dir(run_id, "score") / "parallel_run" / "progress.json").read_text())
    assert progress["done"] == 100 and progress["left"] == 0 and progress["failed"] == 0


FAILING = """
import os

def init():
    pass

def run(mini_batch):
    names = [os.path.basename(path) for path in mini_batch]
    if any(open(path).read().strip() == "bad" for path in mini_batch):
        raise ValueError(f"bad file in {names[0]}")
    return names
"""


def _with_bad(ws, bad: int):
    data = _files(ws.root / "data", 40)
    for number in range(bad):
        (data / f"f{number * 10:05d}.txt").write_text("bad\n")  # one bad file in each of the first batches
    return data


@pytest.mark.parametrize(
    ("threshold", "bad", "ends", "crossed"),
    [
        ({"error_threshold": 20}, 2, "Completed", None),
        ({"error_threshold": 19}, 2, "Failed", "error_threshold 19 (20 items failed)"),
        ({"allowed_failed_count": 1}, 1, "Completed", None),
        ({"allowed_failed_count": 1}, 2, "Failed", "allowed_failed_count 1 (2 mini-batches failed)"),
        ({"allowed_failed_percent": 50}, 2, "Completed", None),
        ({"allowed_failed_percent": 25}, 2, "Failed", "allowed_failed_percent 25 (50.0% of mini-batches failed)"),
        ({"error_threshold": -1, "allowed_failed_count": -1}, 4, "Completed", None),
    ],
)
def test_failures_under_a_threshold_pass_and_over_it_fail_naming_it(
    ws, project, run_pipeline, history, threshold, bad, ends, crossed
):
    source = project("src/score.py", FAILING).parent
    config = {"error_threshold": -1, "run_max_try": 1, **threshold}
    run_id, status, steps = run_pipeline(_pipeline(ws, source, _with_bad(ws, bad), **config))
    assert status == ends, steps["score"]
    if crossed:
        reason = steps["score"]["reason"]
        assert crossed in reason and "ValueError: bad file in f00000.txt" in reason, reason
        assert "mini-batch 0 (first item" in reason
    else:
        assert _output(history, run_id).count("\n") == 40 - 10 * bad


def test_a_step_stopped_by_a_threshold_shows_no_time_left(ws, project, run_pipeline, history):
    """A step the driver stopped (a threshold crossed) has nothing more to run: its progress said
    "about 2s left" in `show` for ever (found by a review, 3 Dec 2026)."""
    from localpipe.parallel.progress import describe, read

    source = project(
        "src/score.py",
        FAILING.replace("def run(mini_batch):", "def run(mini_batch):\n    import time; time.sleep(0.05)"),
    ).parent
    data = _files(ws.root / "data", 200)
    (data / "f00040.txt").write_text("bad\n")
    run_id, status, _ = run_pipeline(_pipeline(ws, source, data, run_max_try=1, error_threshold=0, mini_batch_size=2))
    assert status == "Failed"
    progress = read(history.layout.step_dir(run_id, "score"))
    assert progress["left"] > 0 and progress["eta_seconds"] is None, progress
    assert "about" not in describe(progress) and describe(progress).endswith("items/s")


def test_a_step_whose_driver_was_killed_shows_no_time_left(ws, project, localpipe):
    """A driver killed (SIGKILL, the OOM killer) never writes that it ended: `show` printed the time
    left it had estimated, for ever, under a Failed step (found by a review, 3 Dec 2026)."""
    project(
        "src/score.py",
        """
import os, signal, time

def init():
    pass

def run(mini_batch):
    time.sleep(0.1)
    if mini_batch[0].endswith("f00100.txt"):
        os.kill(os.getppid(), signal.SIGKILL)  # the driver
        time.sleep(5)
    return [os.path.basename(path) for path in mini_batch]
""",
    )
    _files(ws.root / "data", 200)
    _pipeline_file(project, run_max_try=1)
    localpipe("submit", "pipeline.py")
    shown = localpipe("show", "1", check=True).stdout
    assert "score: Failed" in shown and "mini-batches done" in shown and " left, " in shown, shown
    assert "s left" not in shown, shown


def test_the_mini_batch_context_has_the_batchs_index(ws, project, run_pipeline, history):
    """Azure's scripts (azureml-assets' batch scoring) read ``mini_batch_context.minibatch_index``: it
    was an AttributeError, every batch failed (found by a review, 3 Dec 2026)."""
    script = "def init():\n    pass\n\ndef run(mini_batch, mini_batch_context):\n"
    script += "    return [f'{mini_batch_context.minibatch_index} {len(mini_batch)}']\n"
    source = project("src/score.py", script).parent
    run_id, status, steps = run_pipeline(_pipeline(ws, source, _files(ws.root / "data", 25)))
    assert status == "Completed", steps["score"]
    assert _output(history, run_id).splitlines() == ["0 10", "1 10", "2 5"]


def test_entry_script_takes_a_logging_level_as_azures(ws, project, run_pipeline, history):
    """Azure's EntryScript(logging_level=...) (its samples' stand-in takes it too) was a TypeError
    that failed init() (found by a review, 3 Dec 2026)."""
    script = """
import logging
from azureml_user.parallel_run import EntryScript

def init():
    global logger
    logger = EntryScript(logging_level=logging.DEBUG).logger

def run(mini_batch):
    logger.debug("debugging %d", len(mini_batch))
    return [str(len(mini_batch))]
"""
    source = project("src/score.py", script).parent
    run_id, status, steps = run_pipeline(_pipeline(ws, source, _files(ws.root / "data", 5), process_count_per_node=1))
    assert status == "Completed", steps["score"]
    logs = list(history.layout.step_dir(run_id, "score").rglob("worker0.log"))
    assert logs and "DEBUG debugging 5" in logs[0].read_text(), logs


def test_a_failing_batch_is_tried_run_max_try_times(ws, project, run_pipeline, history):
    source = project("src/score.py", FAILING).parent
    run_id, status, steps = run_pipeline(_pipeline(ws, source, _with_bad(ws, 1), run_max_try=3))
    assert status == "Completed"
    tries = [t["try"] for t in _timings(history, run_id) if t["batch"] == 0]
    assert tries == [1, 2, 3] and [t["outcome"] for t in _timings(history, run_id) if t["batch"] == 0][-1] == "failed"


KILLED = """
import os, signal

def init():
    pass

def run(mini_batch):
    marker = os.path.join(os.environ["MARKERS"], os.path.basename(mini_batch[0]))
    if mini_batch[0].endswith("f00020.txt") and not os.path.exists(marker):
        open(marker, "w").close()
        os.kill(os.getpid(), signal.SIGKILL)  # the worker dies mid-batch, once
    return [os.path.basename(path) for path in mini_batch]
"""


def test_a_worker_killed_mid_batch_is_replaced_and_its_batch_retried(ws, project, run_pipeline, history, monkeypatch):
    monkeypatch.setenv("MARKERS", str(ws.root))
    source = project("src/score.py", KILLED).parent
    run_id, status, steps = run_pipeline(_pipeline(ws, source, _files(ws.root / "data", 50)))
    assert status == "Completed", steps["score"]
    assert _output(history, run_id).splitlines() == [f"f{n:05d}.txt" for n in range(50)]
    batch = [t for t in _timings(history, run_id) if t["batch"] == 2]
    assert [t["outcome"] for t in batch] == ["retried", "succeeded"]
    log = (history.layout.step_dir(run_id, "score") / "stderr.log").read_text()
    assert "died (killed by signal 9)" in log


def test_a_worker_killed_with_quick_batches_queued_loses_none_and_spends_no_try_on_them(
    ws, project, run_pipeline, history, monkeypatch
):
    """Quick batches are queued several to a worker (driver.QUEUED_WHILE_FAST): when it dies, the
    ones it had not started go to the next worker without a try spent, and each runs once."""
    monkeypatch.setenv("MARKERS", str(ws.root))
    source = project("src/score.py", KILLED.replace("f00020.txt", "f00200.txt")).parent
    # Many batches after the 20th: the last ones left are handed out two at a time.
    run_id, status, steps = run_pipeline(_pipeline(ws, source, _files(ws.root / "data", 800)))
    assert status == "Completed", steps["score"]
    assert _output(history, run_id).splitlines() == [f"f{n:05d}.txt" for n in range(800)]
    tries = {}
    for line in _timings(history, run_id):
        tries.setdefault(line["batch"], []).append((line["try"], line["outcome"]))
    assert tries.pop(20) == [(1, "retried"), (2, "succeeded")]
    assert tries == {batch: [(1, "succeeded")] for batch in range(80) if batch != 20}


QUICK_THEN_SLOW = """
import os, time

def init():
    pass

def run(mini_batch):
    if int(os.path.basename(mini_batch[0])[1:6]) >= 40:  # the last eight batches
        time.sleep(0.25)
    return [os.path.basename(path) for path in mini_batch]
"""


def test_batches_that_turn_slow_are_not_left_queued_on_one_worker(ws, project, run_pipeline, history):
    """A worker whose batches were quick is sent several at once; when the batches left turn slow
    (a script skipping what it did before, then working), they are still shared by the workers:
    eight slow batches queued on the first worker to finish a quick one ran one after another
    while the other worker idled (found by a review, 2 Dec 2026)."""
    source = project("src/score.py", QUICK_THEN_SLOW).parent
    run_id, status, steps = run_pipeline(_pipeline(ws, source, _files(ws.root / "data", 120)))
    assert status == "Completed", steps["score"]
    slow = [t["worker"] for t in _timings(history, run_id) if t["batch"] >= 4]
    assert len(slow) == 8 and max(slow.count(w) for w in set(slow)) <= 5, slow


SLOW = """
import os, time

def init():
    pass

def run(mini_batch):
    if any(path.endswith("f00010.txt") for path in mini_batch):
        time.sleep(60)
    return [os.path.basename(path) for path in mini_batch]
"""


def test_a_run_over_run_invocation_timeout_is_ended_and_counted(ws, project, run_pipeline, history):
    source = project("src/score.py", SLOW).parent
    config = {"run_invocation_timeout": 1, "run_max_try": 2, "allowed_failed_count": 0}
    run_id, status, steps = run_pipeline(_pipeline(ws, source, _files(ws.root / "data", 30), **config))
    assert status == "Failed"
    reason = steps["score"]["reason"]
    assert "allowed_failed_count 0 (1 mini-batches failed)" in reason
    assert "run() timed out after 1 seconds (run_invocation_timeout)" in reason, reason
    assert [t["outcome"] for t in _timings(history, run_id) if t["batch"] == 1] == ["retried", "failed"]


HUNG_INIT = """
import time

def init():
    time.sleep(600)

def run(mini_batch):
    return mini_batch
"""


def test_an_init_that_does_not_return_fails_the_step_after_first_task_creation_timeout(ws, project, run_pipeline):
    """A hung init() held the step for ever: no batch is sent to a worker before it is ready, so
    run_invocation_timeout never applied. Azure's --first_task_creation_timeout (600 s by default)
    bounds it; given in the arguments, it is read by the driver and changes no result's key."""
    source = project("src/score.py", HUNG_INIT).parent
    data = _files(ws.root / "data", 4)
    output = PipelineData("scores", datastore=ws.get_default_datastore())
    step = ParallelRunStep(
        name="score",
        parallel_run_config=_config(ws, source),
        inputs=[Dataset.File.from_files(str(data)).as_named_input("files")],
        output=output,
        arguments=["--first_task_creation_timeout", "2"],
    )
    started = time.monotonic()
    run_id, status, steps = run_pipeline(Pipeline(ws, [step]))
    assert status == "Failed"
    assert time.monotonic() - started < 60
    assert steps["score"]["reason"].endswith(
        "init() of the entry script did not return within 2 seconds in worker0 (first_task_creation_timeout: give it"
        " more with '--first_task_creation_timeout', 'SECONDS' in the step's arguments)"
    ), steps["score"]["reason"]


COUNTING = """
import os

def init():
    pass

def run(mini_batch):
    with open(os.path.join(os.environ["MARKERS"], "calls.txt"), "a") as log:
        log.write(os.path.basename(mini_batch[0]) + "\\n")
    return [os.path.basename(path) for path in mini_batch]
"""


CLOSING = """
import os, time

def init():
    pass

def run(mini_batch):
    if mini_batch[0].endswith("f00010.txt"):
        os.closerange(3, 4096)  # a library that closes every descriptor it did not open, then waits
        time.sleep(600)
    return [os.path.basename(path) for path in mini_batch]
"""


@pytest.mark.timeout(60)
def test_a_worker_that_closes_its_connection_and_goes_on_is_ended(ws, project, run_pipeline, history):
    """The driver waited for the end of a worker whose connection closed: one whose script closed
    every descriptor and went on held the driver for as long as it ran, past run_invocation_timeout
    (found by a review, 3 Dec 2026)."""
    source = project("src/score.py", CLOSING).parent
    config = {"run_max_try": 1, "run_invocation_timeout": 5}
    run_id, status, steps = run_pipeline(_pipeline(ws, source, _files(ws.root / "data", 40), **config))
    assert status == "Completed", steps["score"]
    failed = [t for t in _timings(history, run_id) if t["outcome"] != "succeeded"]
    assert [t["batch"] for t in failed] == [1] and failed[0]["seconds"] < 5, failed
    log = (history.layout.step_dir(run_id, "score") / "stderr.log").read_text()
    assert "closed its connection to the driver" in log, log


def test_a_rerun_after_adding_ten_files_runs_only_the_new_batch(ws, project, run_pipeline, history, monkeypatch):
    monkeypatch.setenv("MARKERS", str(ws.root))
    source = project("src/score.py", COUNTING).parent
    data = _files(ws.root / "data", 100)
    first, status, _ = run_pipeline(_pipeline(ws, source, data))
    assert status == "Completed" and len((ws.root / "calls.txt").read_text().splitlines()) == 10
    (ws.root / "calls.txt").unlink()
    _files(data, 10, start=100)
    second, status, _ = run_pipeline(_pipeline(ws, source, data))
    assert status == "Completed"
    assert (ws.root / "calls.txt").read_text().splitlines() == ["f00100.txt"]
    assert _output(history, second).splitlines() == [f"f{n:05d}.txt" for n in range(110)]
    (data / "f00055.txt").write_text("changed\n")  # a changed file reruns its batch only
    (ws.root / "calls.txt").unlink()
    third, status, _ = run_pipeline(_pipeline(ws, source, data))
    assert status == "Completed" and (ws.root / "calls.txt").read_text().splitlines() == ["f00050.txt"]


WRITING = """
import os
from azureml_user.parallel_run import EntryScript

def init():
    pass

def run(mini_batch):  # Azure's EntryScript().output_dir: "store the output of your entry script" there
    for path in mini_batch:
        with open(os.path.join(EntryScript().output_dir, os.path.basename(path) + ".out"), "w") as out:
            out.write(open(path).read())
    return [os.path.basename(path) for path in mini_batch]
"""


def test_a_rerun_of_a_script_writing_to_the_output_folder_keeps_every_file(ws, project, run_pipeline, history):
    """A script that writes its own files to EntryScript().output_dir: a rerun after adding files
    reused the other batches' results, and the step's output had only the new batch's files, 2 of
    the 111 (found by a review, 3 Dec 2026). Its batches now all run again."""
    from localpipe.state.store import ObjectStore

    source = project("src/score.py", WRITING).parent
    data = _files(ws.root / "data", 100)
    first, status, _ = run_pipeline(_pipeline(ws, source, data))
    assert status == "Completed"
    _files(data, 10, start=100)
    second, status, steps = run_pipeline(_pipeline(ws, source, data))
    assert status == "Completed", steps["score"]
    digest = {s["name"]: s for s in history.runs.details(second)["steps"]}["score"]["outputs"]["scores"]
    written = sorted(p.name for p in ObjectStore(history.layout.objects).path(digest).iterdir())
    assert written == sorted([*(f"f{n:05d}.txt.out" for n in range(110)), "parallel_run_step.txt"])
    log = (history.layout.step_dir(second, "score") / "stdout.log").read_text()
    assert "11 mini-batches, 0 reused from earlier runs, 11 to run" in log, log


def test_a_file_edited_with_its_size_and_times_put_back_reruns_its_batch(ws, project, run_pipeline, history):
    # Files written just before a submission are not kept in the workspace's stat cache (racily
    # clean): the step hashes them itself and keeps their digests for its next run, which must see
    # an edit even when the editor put the size and the modification time back (touch -r).
    source = project("src/score.py", ECHO).parent
    data = _files(ws.root / "data", 20)
    first, status, _ = run_pipeline(_pipeline(ws, source, data))
    assert status == "Completed" and "f00013.txt 91" in _output(history, first).splitlines()
    edited = data / "f00013.txt"
    before = edited.stat()
    edited.write_text("19\n")  # as many bytes as "91\n"
    os.utime(edited, ns=(before.st_atime_ns, before.st_mtime_ns))
    second, status, _ = run_pipeline(_pipeline(ws, source, data))
    assert status == "Completed"
    assert "f00013.txt 19" in _output(history, second).splitlines()


GPU = """
import os, time
from azureml_user.parallel_run import EntryScript

def init():  # every worker says which GPU it sees, whether or not it gets a batch before the others end
    with open(os.path.join(os.environ["MARKERS"], EntryScript().agent_name), "w") as out:
        out.write(os.environ["CUDA_VISIBLE_DEVICES"])

def run(mini_batch):
    for _ in range(600):  # until both workers are up: one alone could otherwise take every batch
        if len(os.listdir(os.environ["MARKERS"])) == 2:
            break
        time.sleep(0.05)
    return [f"{os.environ['CUDA_VISIBLE_DEVICES']} {os.getpid()}" for _ in mini_batch]
"""


def test_on_a_gpu_target_each_worker_has_its_own_gpu(ws, project, run_pipeline, history, monkeypatch):
    monkeypatch.setenv("LOCALPIPE_FAKE_GPUS", "2")
    monkeypatch.setenv("MARKERS", str(ws.root / "markers"))
    (ws.root / "markers").mkdir()
    source = project("src/score.py", GPU).parent
    gpu = ComputeTarget.create(ws, "gpu", LocalCompute.provisioning_configuration(gpus_per_step=1))
    config = _config(ws, source, compute_target=gpu, process_count_per_node=None)  # default: one per GPU
    run_id, status, steps = run_pipeline(_pipeline(ws, source, _files(ws.root / "data", 200), config=config))
    assert status == "Completed", steps["score"]
    seen = {path.name: path.read_text() for path in (ws.root / "markers").iterdir()}
    assert sorted(seen) == ["worker0", "worker1"] and len(set(seen.values())) == 2
    assert all("," not in device and device for device in seen.values())  # one GPU each, by UUID
    devices = {line.split()[0] for line in _output(history, run_id).splitlines()}
    assert devices <= set(seen.values())


def test_too_many_workers_for_the_machine_fail_validation_naming_the_fix(ws, project, history):
    from localpipe.engine.submit import plan

    source = project("src/score.py", ECHO).parent
    pipeline = _pipeline(ws, source, _files(ws.root / "data", 3), node_count=4, process_count_per_node=1000)
    with pytest.raises(
        PipelineValidationError, match=r"needs 4000 workers \(node_count 4 x process_count_per_node 1000\)"
    ):
        plan(history, pipeline)


def test_an_entry_script_without_run_fails_validation(ws, project, history):
    from localpipe.engine.submit import plan

    source = project("src/score.py", "def init():\n    pass\n").parent
    with pytest.raises(PipelineValidationError, match=r"entry script score.py has no run\(\) function"):
        plan(history, _pipeline(ws, source, _files(ws.root / "data", 3)))


def test_a_size_for_a_file_dataset_fails_validation(ws, project, history):
    from localpipe.engine.submit import plan

    source = project("src/score.py", ECHO).parent
    with pytest.raises(PipelineValidationError, match=r'mini_batch_size "1MB" is a size'):
        plan(history, _pipeline(ws, source, _files(ws.root / "data", 3), mini_batch_size="1MB"))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"error_threshold": -2}, "error_threshold -2 is not an integer of -1 or more"),
        ({"allowed_failed_percent": 101}, "allowed_failed_percent 101 is not a number from 0 to 100"),
        ({"allowed_failed_count": "3"}, "allowed_failed_count '3' is not an integer"),
        ({"mini_batch_size": "1TB"}, 'mini_batch_size "1TB" is not a number of files'),
        ({"output_action": "append"}, 'output_action \'append\' is not "append_row" or "summary_only"'),
        ({"run_max_try": 0}, "run_max_try 0 is not an integer greater than 0"),
        ({"run_invocation_timeout": -5}, "run_invocation_timeout -5 is not a number greater than 0"),
        ({"append_row_file_name": "a/b.txt"}, "append_row_file_name 'a/b.txt' is not a plain file name"),
        ({"partition_keys": ["a"], "mini_batch_size": 3}, "mini_batch_size and partition_keys both given"),
        ({"environment": "env"}, "environment 'env' is not an Environment"),
        ({"node_count": PipelineParameter("nodes", default_value=0)}, "the default of node_count 0 is not an integer"),
    ],
)
def test_a_wrong_config_value_is_one_line_and_a_value_error(ws, tmp_path, change, message):
    with pytest.raises(ParallelRunConfigError) as raised:
        _config(ws, tmp_path, **change)
    assert message in str(raised.value) and isinstance(raised.value, ValueError)
    assert "\n" not in str(raised.value) and raised.value.exit_code == 2


def test_a_pipeline_file_with_a_wrong_config_exits_2_with_one_line(ws, project, localpipe):
    project(
        "p/pipeline.py",
        """
        from azureml.core import Environment, Workspace
        from azureml.pipeline.steps import ParallelRunConfig

        ParallelRunConfig(environment=Environment("e"), entry_script="s.py", error_threshold=-7,
                          output_action="append_row", compute_target="local", node_count=1)
        """,
    )
    proc = localpipe("submit", "p/pipeline.py")
    assert proc.returncode == 2
    assert "ParallelRunConfig: error_threshold -7 is not an integer of -1 or more" in proc.stderr
    assert "Traceback" not in proc.stderr


PARAMETERS_FILE = """
from azureml.core import Dataset, Environment, Workspace
from azureml.pipeline.core import Pipeline, PipelineData, PipelineParameter
from azureml.pipeline.steps import ParallelRunConfig, ParallelRunStep

ws = Workspace.from_config()
config = ParallelRunConfig(environment=Environment("e"), entry_script="score.py", source_directory="src",
                           error_threshold=-1, output_action="append_row", compute_target="local", node_count=1,
                           process_count_per_node=PipelineParameter("workers", default_value=1),
                           mini_batch_size=PipelineParameter("batch", default_value=5),
                           run_max_try=PipelineParameter("tries", default_value=3),
                           run_invocation_timeout=PipelineParameter("timeout", default_value=30.0))
out = PipelineData("scores", datastore=ws.get_default_datastore())
step = ParallelRunStep("score", config, inputs=[Dataset.File.from_files("data").as_named_input("files")], output=out)
pipeline = Pipeline(ws, [step])
"""


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ("batch=0", 'mini_batch_size 0 (PipelineParameter "batch") is not a number of files (10) or a size'),
        ("batch=-3", 'mini_batch_size -3 (PipelineParameter "batch") is not a number of files (10) or a size'),
        ("workers=0", 'process_count_per_node 0 (PipelineParameter "workers") is not an integer greater than 0'),
        ("tries=0", 'run_max_try 0 (PipelineParameter "tries") is not an integer greater than 0'),
        ("timeout=-1", 'run_invocation_timeout -1.0 (PipelineParameter "timeout") is not a number greater than 0'),
    ],
)
def test_a_parameter_value_out_of_range_exits_2_with_one_line(ws, project, localpipe, given, message):
    """A mini_batch_size of 0 set at submission failed the step with "range() arg 3 must not be zero",
    one below 0 ran no batch and completed, process_count_per_node 0 waited for ever (found by a
    review, 3 Dec 2026): they are checked when planned, as ParallelRunConfig checks the others."""
    project("src/score.py", ECHO)
    _files(ws.root / "data", 12)
    project("pipeline.py", PARAMETERS_FILE)
    proc = localpipe("submit", "pipeline.py", "--param", given, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_workers_set_at_submission_are_checked_and_claimed(ws, project, localpipe, history):
    """process_count_per_node given at submission is what the step runs and claims: it was checked,
    and claimed, with its default, so that 64 workers ran on a 2-CPU machine's one claimed CPU."""
    project("src/score.py", ECHO)
    _files(ws.root / "data", 12)
    project("pipeline.py", PARAMETERS_FILE)
    proc = localpipe("submit", "pipeline.py", "--param", "workers=64", timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.startswith('error: the pipeline is invalid: step "score" needs 64 workers (node_count 1 x ')
    assert history.runs.list(10) == []  # nothing recorded
    proc = localpipe("submit", "pipeline.py", "--param", "workers=2", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    claimed = history.runs.find_step(1, "score")["placement"]
    assert claimed["cpus"] == 2, claimed


def test_a_tables_mini_batch_size_may_be_a_parameter_of_a_size(ws, project, run_pipeline, history):
    """Azure's mini_batch_size PipelineParameter of a TabularDataset is a size ("1MB"): the driver
    refused it ("invalid int value: '1KB'", found by a review, 3 Dec 2026)."""
    pytest.importorskip("pandas")
    source = project("src/score.py", TABLE).parent
    data = ws.root / "table"
    data.mkdir()
    (data / "part0.csv").write_text("a,b\n" + "".join(f"{i},{'x' * 40}\n" for i in range(500)))
    size = PipelineParameter("size", default_value="8KB")
    config = _config(ws, source, mini_batch_size=size, process_count_per_node=1)
    dataset = Dataset.Tabular.from_delimited_files(str(data / "*.csv"))
    output = PipelineData("scores", datastore=ws.get_default_datastore())
    step = ParallelRunStep("score", config, inputs=[dataset.as_named_input("rows")], output=output)
    run_id, status, steps = run_pipeline(Pipeline(ws, [step]), parameters={"size": "16KB"})
    assert status == "Completed", steps["score"]
    assert len(_output(history, run_id).splitlines()) == 500
    assert len(_timings(history, run_id)) == -(-(data / "part0.csv").stat().st_size // 16384)


TABLE = """
def init():
    pass

def run(mini_batch):
    return [f"{row.a} {row.b}" for row in mini_batch.itertuples()]
"""


def _three_csv_files(ws, rows: int):
    """``table/part0.csv`` to ``part2.csv``, ``rows`` rows each: a = file * 1000 + row, b = 40 x's."""
    data = ws.root / "table"
    data.mkdir()
    for number in range(3):
        lines = "".join(f"{number * 1000 + i},{'x' * 40}\n" for i in range(rows))
        (data / f"part{number}.csv").write_text("a,b\n" + lines)
    return data


def test_a_tabular_dataset_is_cut_by_size_and_never_across_files(ws, project, run_pipeline, history):
    pytest.importorskip("pandas")
    source = project("src/score.py", TABLE).parent
    data = _three_csv_files(ws, rows=500)
    dataset = Dataset.Tabular.from_delimited_files(str(data / "*.csv"))
    output = PipelineData("scores", datastore=ws.get_default_datastore())
    config = _config(ws, source, mini_batch_size="8KB", process_count_per_node=1)  # one pandas import less
    step = ParallelRunStep("score", config, inputs=[dataset.as_named_input("rows")], output=output)
    run_id, status, steps = run_pipeline(Pipeline(ws, [step]))
    assert status == "Completed", steps["score"]
    lines = _output(history, run_id).splitlines()
    assert [int(line.split()[0]) for line in lines] == [n * 1000 + i for n in range(3) for i in range(500)]
    timings = [t for t in _timings(history, run_id) if t["outcome"] == "succeeded"]
    size = (data / "part0.csv").stat().st_size
    assert len(timings) == 3 * -(-size // 8192)  # ceil(bytes / 8 KiB) batches of each file
    assert all(len({t["first"]}) == 1 for t in timings) and sum(t["items"] for t in timings) == 1500


@pytest.mark.parametrize(
    "transform",
    [lambda t: t.take(60), lambda t: t.skip(140), lambda t: t.random_split(0.5, seed=1)[1]],
    ids=["take", "skip", "random_split"],
)
def test_a_tabular_datasets_take_skip_and_split_count_rows_of_the_whole_dataset(
    ws, project, run_pipeline, history, transform
):
    """take, skip and a sample's draws are of the dataset's rows, as to_pandas_dataframe gives them,
    not of each file's: take(60) of three files of 50 rows ran 150 (found by a review, 3 Dec 2026)."""
    pytest.importorskip("pandas")
    source = project("src/score.py", TABLE).parent
    data = _three_csv_files(ws, rows=50)
    dataset = transform(Dataset.Tabular.from_delimited_files(str(data / "*.csv")))
    output = PipelineData("scores", datastore=ws.get_default_datastore())
    config = _config(ws, source, mini_batch_size="1KB", process_count_per_node=1)
    step = ParallelRunStep("score", config, inputs=[dataset.as_named_input("rows")], output=output)
    run_id, status, steps = run_pipeline(Pipeline(ws, [step]))
    assert status == "Completed", steps["score"]
    lines = _output(history, run_id).splitlines()
    assert [int(line.split()[0]) for line in lines] == list(dataset.to_pandas_dataframe()["a"])
    timings = _timings(history, run_id)
    assert all(t["items"] > 0 for t in timings)  # no file is left an empty batch
    expected = {f"part{n}.csv" for n in {int(line.split()[0]) // 1000 for line in lines}}
    assert {os.path.basename(t["first"]) for t in timings} == expected  # a batch per file with rows kept


WIDE_ROWS = """
def init():
    pass

def run(mini_batch):
    return [f"{row.a:0200d}" for row in mini_batch.itertuples()]
"""


@pytest.mark.timeout(60)
@pytest.mark.parametrize("size, rows", [("64KB", 16000), ("1MB", 20000)])
def test_batches_of_a_table_queued_to_a_worker_never_block_the_driver(ws, project, run_pipeline, history, size, rows):
    """A worker reads its next batch once it has sent its last result: the driver, blocked writing
    a batch its socket had no room for while the worker was blocked sending it a result, never
    read that result, and the step hung for ever, past run_invocation_timeout (found by a review,
    2 Dec 2026): quick 64 KB batches, queued several to a worker, and 1 MB ones (the SDK's default
    size for a table), two to a worker."""
    pytest.importorskip("pandas")
    source = project("src/score.py", WIDE_ROWS).parent
    data = ws.root / "table"
    data.mkdir()
    (data / "part0.csv").write_text("a,b\n" + "".join(f"{i},{'x' * 200}\n" for i in range(rows)))
    dataset = Dataset.Tabular.from_delimited_files(str(data / "*.csv"))
    config = _config(ws, source, mini_batch_size=size, process_count_per_node=2, run_invocation_timeout=20)
    output = PipelineData("scores", datastore=ws.get_default_datastore())
    step = ParallelRunStep("score", config, inputs=[dataset.as_named_input("rows")], output=output)
    run_id, status, steps = run_pipeline(Pipeline(ws, [step]))
    assert status == "Completed", steps["score"]
    assert _output(history, run_id).splitlines() == [f"{i:0200d}" for i in range(rows)]


def test_summary_only_counts_the_items_and_writes_no_file(ws, project, run_pipeline, history):
    source = project("src/score.py", ECHO).parent
    dataset = Dataset.File.from_files(str(_files(ws.root / "data", 25)))
    config = _config(ws, source, output_action="summary_only")
    step = ParallelRunStep("score", config, inputs=[dataset.as_named_input("files")])
    run_id, status, steps = run_pipeline(Pipeline(ws, [step]))
    assert status == "Completed", steps["score"]
    assert "3 mini-batches succeeded, 0 failed" in (history.layout.step_dir(run_id, "score") / "stdout.log").read_text()


def test_init_that_raises_fails_the_step_and_a_wrong_return_fails_the_batch(ws, project, run_pipeline, history):
    data = _files(ws.root / "data", 20)
    source = project(
        "a/score.py", "def init():\n    raise RuntimeError('no model')\n\ndef run(b):\n    return b\n"
    ).parent
    _, status, steps = run_pipeline(_pipeline(ws, source, data))
    assert status == "Failed"
    assert "init() of the entry script failed in worker" in steps["score"]["reason"]
    assert "RuntimeError: no model" in steps["score"]["reason"]
    source = project("b/score.py", "def init():\n    pass\n\ndef run(b):\n    return {'n': len(b)}\n").parent
    run_id, status, steps = run_pipeline(_pipeline(ws, source, data, run_max_try=1, allowed_failed_count=0))
    assert status == "Failed"
    assert "run() returned a dict: return a list or a pandas DataFrame" in steps["score"]["reason"]


def test_submit_and_show_print_the_batches_done_failed_and_left(ws, project, localpipe):
    project("src/score.py", FAILING)
    _files(ws.root / "data", 30)
    (ws.root / "data" / "f00010.txt").write_text("bad\n")
    _pipeline_file(project, run_max_try=1)
    submitted = localpipe("submit", "pipeline.py", check=True)
    line = "parallel run: 2/3 mini-batches done, 1 failed, 0 left"
    assert line in submitted.stdout, submitted.stdout
    shown = localpipe("show", "1", check=True)
    assert line in shown.stdout and "items/s" in shown.stdout


def test_a_scheduler_killed_half_way_loses_only_the_batches_in_flight(ws, project, localpipe, history, monkeypatch):
    import signal
    import subprocess
    import sys
    import time

    from tests.conftest import wait_for

    monkeypatch.setenv("MARKERS", str(ws.root))
    project(
        "src/score.py",
        COUNTING.replace("def run(mini_batch):", "def run(mini_batch):\n    import time; time.sleep(0.1)"),
    )
    _files(ws.root / "data", 1000)
    _pipeline_file(project, run_max_try=3)
    scheduler = subprocess.Popen([sys.executable, "-m", "localpipe", "submit", "pipeline.py"], cwd=ws.root,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    progress = history.layout.step_dir(1, "score") / "parallel_run" / "progress.json"
    wait_for(lambda: progress.exists() and json.loads(progress.read_text())["done"] >= 30, timeout=60)
    scheduler.send_signal(signal.SIGKILL)
    scheduler.wait()
    time.sleep(0.5)  # the step's supervisor ends the driver and its workers
    first = (ws.root / "calls.txt").read_text().splitlines()
    assert 30 <= len(first) < 100
    (ws.root / "calls.txt").unlink()
    localpipe("submit", "pipeline.py", check=True)
    second = (ws.root / "calls.txt").read_text().splitlines()
    # Every batch whose run() ended before the kill is reused; at most the 2 in flight run twice.
    assert set(first) | set(second) == {f"f{n:05d}.txt" for n in range(0, 1000, 10)}
    assert len(set(first) & set(second)) <= 2, sorted(set(first) & set(second))
    assert _output(history, 2).splitlines() == [f"f{n:05d}.txt" for n in range(1000)]


SIDE = """
import argparse, os

def init():
    global label
    parser = argparse.ArgumentParser()
    parser.add_argument("--labels")
    args, _ = parser.parse_known_args()
    label = open(os.path.join(args.labels, "label.txt")).read().strip()

def run(mini_batch):
    return [f"{os.path.basename(path)} {label}" for path in mini_batch]
"""


def test_side_inputs_reach_every_worker_and_their_content_is_part_of_the_cache(ws, project, run_pipeline, history):
    source = project("src/score.py", SIDE).parent
    labels = ws.root / "labels"
    project("labels/label.txt", "cat\n")
    data = _files(ws.root / "data", 40)

    def pipeline(allow_reuse=True):
        side = Dataset.File.from_files(str(labels)).as_named_input("labels").as_download()
        output = PipelineData("scores", datastore=ws.get_default_datastore())
        step = ParallelRunStep(
            "score",
            _config(ws, source),
            inputs=[Dataset.File.from_files(str(data)).as_named_input("files")],
            output=output,
            side_inputs=[side],
            arguments=["--labels", side],
            allow_reuse=allow_reuse,
        )
        return Pipeline(ws, [step])

    run_id, status, steps = run_pipeline(pipeline())
    assert status == "Completed", steps["score"]
    assert set(line.split()[1] for line in _output(history, run_id).splitlines()) == {"cat"}
    project("labels/label.txt", "dog\n")
    run_id, status, steps = run_pipeline(pipeline())
    assert status == "Completed", steps["score"]
    assert set(line.split()[1] for line in _output(history, run_id).splitlines()) == {"dog"}
    # The same label again, in a new copy (as_download): every batch is reused from the run before.
    run_id, status, steps = run_pipeline(pipeline(allow_reuse=False))
    assert status == "Completed", steps["score"]
    progress = json.loads((history.layout.step_dir(run_id, "score") / "parallel_run" / "progress.json").read_text())
    assert progress["reused"] == progress["total"] == 4


PARTS = """
import os

def init():
    pass

def run(mini_batch, mini_batch_context):
    region = mini_batch_context.partition_key_value["region"]
    if hasattr(mini_batch, "columns"):
        return [f"{mini_batch['region'].iloc[0]} {len(mini_batch)} {region}"]
    files = len(mini_batch_context.dataset.to_path())
    return [" ".join(sorted(os.path.basename(os.path.dirname(p)) for p in mini_batch)) + f" {region} {files}"]
"""


def test_partition_keys_make_one_batch_per_key_value(ws, project, run_pipeline, history):
    source = project("src/score.py", PARTS).parent
    for region, count in (("east", 3), ("west", 5)):
        for number in range(count):
            project(f"parts/{region}/{number}.csv", f"region,value\n{region},{number}\n")
    config = _config(ws, source, partition_keys=["region"], process_count_per_node=1)
    files = Dataset.File.from_files(str(ws.root / "parts/**/*.csv"), partition_format="{region}/{name}.csv")
    output = PipelineData("scores", datastore=ws.get_default_datastore())
    step = ParallelRunStep("score", config, inputs=[files.as_named_input("files")], output=output)
    run_id, status, steps = run_pipeline(Pipeline(ws, [step]))
    assert status == "Completed", steps["score"]
    assert _output(history, run_id).splitlines() == ["east east east east 3", "west west west west west west 5"]

    pytest.importorskip("pandas")
    table = Dataset.Tabular.from_delimited_files(str(ws.root / "parts/**/*.csv"))
    step = ParallelRunStep("score", config, inputs=[table.as_named_input("rows")], output=output)
    run_id, status, steps = run_pipeline(Pipeline(ws, [step]))
    assert status == "Completed", steps["score"]
    assert _output(history, run_id).splitlines() == ["east 3 east", "west 5 west"]


def test_the_live_view_shows_a_running_steps_batches(ws, project):
    import pty
    import subprocess
    import sys
    import threading

    project(
        "src/score.py",
        COUNTING.replace("def run(mini_batch):", "def run(mini_batch):\n    import time; time.sleep(0.1)"),
    )
    _files(ws.root / "data", 300)
    _pipeline_file(project, run_max_try=3)
    main, child = pty.openpty()
    seen = []

    def read() -> None:
        while True:
            try:
                chunk = os.read(main, 65536)
            except OSError:  # the terminal's other end is closed: all is read
                return
            if not chunk:
                return
            seen.append(chunk)

    reader = threading.Thread(target=read)
    reader.start()
    done = subprocess.run(
        [sys.executable, "-m", "localpipe", "submit", "pipeline.py"],
        stdin=child, stdout=child, stderr=child, cwd=ws.root, timeout=120,
        env={**os.environ, "COLUMNS": "300", "MARKERS": str(ws.root)},
    )  # fmt: skip
    os.close(child)
    reader.join(timeout=10)
    os.close(main)
    text = b"".join(seen).decode(errors="replace")
    assert done.returncode == 0
    assert re.search(r"\d+/30 mini-batches done, 0 failed, \d+ left, [\d.]+ items/s", text), text[-2000:]


def test_a_config_saved_to_yaml_loads_back(ws, tmp_path):
    environment = Environment("scoring")
    environment.register(ws)
    config = _config(ws, tmp_path, environment=environment, mini_batch_size="20", allowed_failed_percent=12.5)
    config.save_to_yaml(tmp_path / "prc.yml")
    loaded = ParallelRunConfig.load_yaml(ws, tmp_path / "prc.yml")
    assert loaded.mini_batch_size == 20 and loaded.allowed_failed_percent == 12.5
    assert loaded.environment.name == "scoring" and loaded.compute_target == "local"
    assert loaded.run_invocation_timeout == 30 and loaded.process_count_per_node == 2


HALF = """
def init():
    pass

def run(mini_batch):
    return mini_batch[: len(mini_batch) // 2]  # the other half counts as failed items
"""


@pytest.mark.parametrize(("threshold", "ends"), [(20, "Completed"), (19, "Failed")])
def test_items_run_returns_nothing_for_count_as_failed(ws, project, run_pipeline, history, threshold, ends):
    source = project("src/score.py", HALF).parent
    run_id, status, steps = run_pipeline(_pipeline(ws, source, _files(ws.root / "data", 40), error_threshold=threshold))
    assert status == ends, steps["score"]
    if ends == "Failed":
        assert "error_threshold 19 (" in steps["score"]["reason"]
        assert "run() returned 5 items for the 10 of its mini-batch" in steps["score"]["reason"]
    else:
        assert len(_output(history, run_id).splitlines()) == 20


SKIPPING = """
import os

def init():
    pass

def run(mini_batch):  # Azure's pattern: an item that fails is left out of the result, and counts as failed
    ok = os.path.exists(os.path.join(os.environ["MARKERS"], "ok"))
    with open(os.path.join(os.environ["MARKERS"], "calls.txt"), "a") as log:
        log.write(os.path.basename(mini_batch[0]) + "\\n")
    return [os.path.basename(p) for p in mini_batch if ok or not p.endswith("f00013.txt")]
"""


def test_a_batch_whose_items_failed_is_run_again_by_the_next_run(ws, project, run_pipeline, history, monkeypatch):
    """A batch whose run() left items out (failed items: a file it could not read) ran again on the
    next run, not the failed items kept as its result, which failed every later run the same way
    however the cause was fixed (found by a review, 3 Dec 2026)."""
    monkeypatch.setenv("MARKERS", str(ws.root))
    source = project("src/score.py", SKIPPING).parent
    data = _files(ws.root / "data", 30)
    _, status, steps = run_pipeline(_pipeline(ws, source, data, error_threshold=0))
    assert status == "Failed" and "error_threshold 0 (1 items failed)" in steps["score"]["reason"]
    (ws.root / "calls.txt").unlink()
    (ws.root / "ok").touch()  # the cause is gone
    second, status, steps = run_pipeline(_pipeline(ws, source, data, error_threshold=0))
    assert status == "Completed", steps["score"]
    # The others are reused (f00020.txt's batch may not have ended when the first run stopped).
    assert set((ws.root / "calls.txt").read_text().splitlines()) - {"f00020.txt"} == {"f00010.txt"}
    assert _output(history, second).splitlines() == [f"f{n:05d}.txt" for n in range(30)]


def test_pipeline_parameters_set_the_workers_and_the_batch_size(ws, project, run_pipeline, history):

    source = project("src/score.py", ECHO).parent
    config = _config(
        ws,
        source,
        process_count_per_node=PipelineParameter("workers", default_value=1),
        mini_batch_size=PipelineParameter("batch", default_value=5),
    )
    run_id, status, steps = run_pipeline(_pipeline(ws, source, _files(ws.root / "data", 30), config=config))
    assert status == "Completed", steps["score"]
    assert len(_timings(history, run_id)) == 6
    run_id, status, steps = run_pipeline(
        _pipeline(ws, source, ws.root / "data", config=config), parameters={"batch": 3}
    )
    assert status == "Completed", steps["score"]
    assert len(_timings(history, run_id)) == 10


def test_the_files_of_another_steps_output_are_an_input(ws, project, run_pipeline, history):
    from localpipe import PythonScriptStep

    source = project("src/score.py", ECHO).parent
    project(
        "make/make.py",
        """
        import os, sys
        os.makedirs(sys.argv[1], exist_ok=True)
        for number in range(25):
            with open(os.path.join(sys.argv[1], f"f{number:05d}.txt"), "w") as out:
                out.write(f"{number}\\n")
        """,
    )
    made = PipelineData("made", datastore=ws.get_default_datastore(), is_directory=True)
    make = PythonScriptStep("make.py", name="make", arguments=[made], outputs=[made], source_directory=ws.root / "make")
    output = PipelineData("scores", datastore=ws.get_default_datastore())
    score = ParallelRunStep("score", _config(ws, source), inputs=[made.as_input()], output=output)
    run_id, status, steps = run_pipeline(Pipeline(ws, [make, score]))
    assert status == "Completed", steps["score"]
    assert _output(history, run_id).splitlines() == [f"f{n:05d}.txt {n}" for n in range(25)]


def test_the_files_the_workspace_hashed_are_not_read_again_by_the_step(ws, project, run_pipeline, history):
    from localpipe.content.hashing import hash_file
    from localpipe.parallel.batches import Digests

    source = project("src/score.py", ECHO).parent
    data = _files(ws.root / "data", 300)
    for path in data.iterdir():  # older than the stat cache's racy window, so that it keeps them
        os.utime(path, (path.stat().st_atime - 3600, path.stat().st_mtime - 3600))
    first, status, _ = run_pipeline(_pipeline(ws, source, data))
    assert status == "Completed"
    # The scheduler saves the digests it made for the step's cache key before it starts the step:
    # even the first run's driver hashed none of the files itself.
    (kept,) = (history.layout.parallel_cache / "digests").iterdir()
    assert json.loads(kept.read_text())["files"] == {}
    (data / "f00123.txt").write_text("changed\n")  # just written: the stat cache does not keep it
    second, status, _ = run_pipeline(_pipeline(ws, source, data))
    assert status == "Completed"  # every other file's digest came from the workspace's stat cache
    hashed = json.loads(kept.read_text())
    assert hashed["algorithm"] == "blake3" and list(hashed["files"]) == [str(data / "f00123.txt")]
    assert _output(history, second).splitlines()[123] == "f00123.txt changed"
    assert len(_timings(history, second)) == 1  # the one batch whose file changed
    # The step's own digests are the workspace's: a file hashed by either gives a batch the same key.
    assert Digests().of(str(data / "f00007.txt")) == hash_file(data / "f00007.txt")


def test_gc_removes_the_batch_results_no_kept_run_has(ws, project, run_pipeline, history, monkeypatch):
    from localpipe.state.gc import collect, plan_gc

    monkeypatch.setenv("MARKERS", str(ws.root))
    source = project("src/score.py", COUNTING).parent
    data = _files(ws.root / "data", 100)

    def family(run_id: int) -> str:
        record = history.layout.step_dir(run_id, "score") / "parallel_run" / "cache.json"
        return json.loads(record.read_text())["family"]

    def journal(name: str) -> list[str]:
        return (history.layout.parallel_cache / name / "results.jsonl").read_text().splitlines()

    first, status, _ = run_pipeline(_pipeline(ws, source, data))
    assert status == "Completed"
    project("src/score.py", COUNTING + "\n# changed: another family\n")
    second, _, _ = run_pipeline(_pipeline(ws, source, data))
    (data / "f00055.txt").write_text("changed\n")
    third, status, _ = run_pipeline(_pipeline(ws, source, data))
    assert status == "Completed" and family(second) == family(third) != family(first)
    assert len(journal(family(third))) == 11  # batch 5 twice: before and after its file changed

    plan = plan_gc(history, keep_last=1)  # keeps the third run only
    assert plan.forget_runs == [first, second]
    assert set(plan.parallel) == {family(first), f"{family(third)}/results.jsonl"}
    kept = family(third)
    stale = family(first)
    result = collect(history, plan)
    assert result.parallel_removed == 2 and not result.problems
    assert not (history.layout.parallel_cache / stale).exists()
    assert len(journal(kept)) == 10 and len(list((history.layout.parallel_cache / "digests").iterdir())) == 1
    # What the kept run had is all still there: run again, no batch runs.
    (ws.root / "calls.txt").unlink()
    fourth, status, _ = run_pipeline(
        Pipeline(
            ws,
            [
                ParallelRunStep(
                    name="score",
                    parallel_run_config=_config(ws, source),
                    inputs=[Dataset.File.from_files(str(data)).as_named_input("files")],
                    output=PipelineData("scores", datastore=ws.get_default_datastore()),
                    allow_reuse=False,
                )
            ],
        )
    )
    assert status == "Completed" and not (ws.root / "calls.txt").exists()
    assert _output(history, fourth).splitlines() == [f"f{n:05d}.txt" for n in range(100)]
    assert plan_gc(history).parallel == {}  # nothing more to remove while every run is kept


def test_the_channel_between_driver_and_workers_keeps_messages_whole_and_in_order():
    """Messages sent together arrive in one read; a large one (a table's rows) arrives whole."""
    import socket
    import threading

    from localpipe.parallel.worker import Channel

    left, right = (Channel(end) for end in socket.socketpair())
    large = ["x" * 100] * 20_000  # about 2 MB pickled: more than the socket holds at once
    sent = [("done", 1, [1, 2]), ("done", 2, None), (3, large, {"user": "u1"}), ("failed", 4, "boom", 0.5)]
    sender = threading.Thread(target=lambda: [left.send(message) for message in sent])
    sender.start()
    received = []
    while len(received) < len(sent):
        received += right.received()
    sender.join()
    assert received == sent
    left.close()
    with pytest.raises(EOFError):
        right.received()
