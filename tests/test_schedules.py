"""Schedules (issue 19, items 3 and 4): Azure's recurrence rules, fires decided once across runners
and across a kill, time zones and daylight-saving changes, datastore schedules; a fake clock, no sleep."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from localpipe import DataPath, Pipeline, PipelineParameter, PythonScriptStep
from localpipe.client.schedules import SETTLING_SECONDS, Schedule, ScheduleRecurrence, ScheduleRunner, TimeZone
from localpipe.errors import UserErrorException
from localpipe.plan.recurrence import fires
from localpipe.sdk.data import DataPathComputeBinding

from .conftest import schedule_loop, wait_for
from .test_resources import overlaps


class Clock:
    """The runner's clock: epoch seconds the test sets."""

    def __init__(self, now: float):
        self.now = now

    def __call__(self) -> float:
        return self.now


def _published(ws, project, name="nightly"):
    project("src/job.py", "import sys\nprint('job', sys.argv[1:])\n")
    n = PipelineParameter("n", default_value=1)
    step = PythonScriptStep("job.py", name="job", source_directory=str(ws.root / "src"), arguments=["--n", n])
    return Pipeline(ws, [step]).publish(name)


def _utc(*args) -> float:
    return datetime(*args, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"frequency": "Fortnight", "interval": 1}, "Invalid value for frequency"),
        ({"frequency": "Day", "interval": 0}, "Interval must be an integer greater than 0."),
        ({"frequency": "Hour", "interval": 1, "hours": [3]}, "Can only specify hours if frequency is Week or Day."),
        (
            {"frequency": "Month", "interval": 1, "minutes": [3]},
            "Can only specify minutes if frequency is Week or Day.",
        ),
        (
            {"frequency": "Day", "interval": 1, "week_days": ["Monday"]},
            "Can only specify week days if frequency is Week.",
        ),
        ({"frequency": "Day", "interval": 1, "hours": [24]}, "Hours must be between 0 and 23."),
        ({"frequency": "Day", "interval": 1, "minutes": [60]}, "Minutes must be between 0 and 59."),
        ({"frequency": "Week", "interval": 1, "week_days": ["Funday"]}, "Week days must be a list of str"),
        ({"frequency": "Day", "interval": 1, "time_zone": "Pacific"}, "Time zone is not a valid TimeZone enum."),
        ({"frequency": "Day", "interval": 1, "start_time": "tomorrow"}, "is not a datetime nor a string"),
    ],
)
def test_each_broken_rule_is_one_line_and_nothing_is_recorded(ws, project, kwargs, message):
    published = _published(ws, project)
    with pytest.raises(ValueError, match=message) as caught:
        Schedule.create(ws, "s", published.id, "exp", recurrence=ScheduleRecurrence(**kwargs))
    assert "\n" not in str(caught.value)
    assert Schedule.list(ws, active_only=False) == []


def test_refusals_at_construction_and_on_what_is_scheduled(ws, project):
    with pytest.raises(ValueError, match="Can not specify time_of_day and hours or minutes."):
        ScheduleRecurrence("Day", 1, hours=[1], time_of_day="10:00")
    with pytest.raises(ValueError, match="time_of_day should be in the format hh:mm."):
        ScheduleRecurrence("Day", 1, time_of_day="10h")
    with pytest.raises(ValueError, match="Can not specify tzinfo for start_time"):
        ScheduleRecurrence("Day", 1, start_time=datetime(2026, 1, 1, tzinfo=UTC))
    published = _published(ws, project)
    with pytest.raises(ValueError, match="Can not specify both a Recurrence and a Datastore"):
        Schedule.create(ws, "s", published.id, "e", recurrence=ScheduleRecurrence("Day", 1),
                        datastore=ws.get_default_datastore())  # fmt: skip
    ws.service.register_datastore("remote", None, url="https://example.blob.core.windows.net/container")
    with pytest.raises(UserErrorException, match='datastore "remote" is not local'):
        Schedule.create(ws, "s", published.id, "e", datastore="remote")
    published.disable()
    with pytest.raises(UserErrorException, match="is disabled: enable it before scheduling it"):
        Schedule.create(ws, "s", published.id, "e", recurrence=ScheduleRecurrence("Day", 1))
    assert Schedule.list(ws, active_only=False) == []


@pytest.mark.parametrize("frequency", ["Day", "Week", "Month"])
def test_a_start_time_a_spring_forward_change_skips_keeps_its_wall_time_on_the_days_after(frequency):
    # 02:30 on 8 March 2026 does not exist in New York: that fire is at 03:30, and the later ones were
    # at 03:30 too (the start's hour read from the instant, not from the time written).
    recurrence = ScheduleRecurrence(
        frequency, 1, start_time="2026-03-08T02:30:00", time_zone=TimeZone.EasternStandardTime
    )
    new_york = ZoneInfo("America/New_York")
    times = fires(recurrence.to_dict(), 0.0, 0.0)
    shown = [datetime.fromtimestamp(next(times), new_york).strftime("%d/%m %H:%M") for _ in range(2)]
    assert shown == ["08/03 03:30", {"Day": "09/03", "Week": "15/03", "Month": "08/04"}[frequency] + " 02:30"]


def test_a_minute_schedule_fires_exactly_at_its_times_once_across_two_runners(ws, project, history):
    published = _published(ws, project)
    start = _utc(2030, 1, 1, 12, 0)
    recurrence = ScheduleRecurrence("Minute", 15, start_time=datetime(2030, 1, 1, 12, 0))
    schedule = Schedule.create(ws, "quarterly", published.id, "timed", recurrence=recurrence,
                               pipeline_parameters={"n": 9})  # fmt: skip
    clock = Clock(start - 60)
    one, two = ScheduleRunner(ws, clock), ScheduleRunner(ws, clock)  # two servers of one workspace
    one.start(), two.start()
    assert one.started_runs == two.started_runs == []  # the start time is ahead
    for minute in range(0, 46):
        clock.now = start + minute * 60 - 1  # a second before each minute: nothing due yet...
        one.tick(), two.tick()
        clock.now = start + minute * 60
        two.tick(), one.tick()
    fired = [f["due"] for f in history.publishing.fires(schedule.id)]
    assert fired == [start, start + 900, start + 1800, start + 2700]
    assert len(one.started_runs) + len(two.started_runs) == 4
    assert sorted(one.started_runs + two.started_runs) == sorted(r.number for r in schedule.get_pipeline_runs())
    runs = schedule.get_pipeline_runs()
    assert {run.wait_for_completion(show_output=False) for run in runs} == {"Completed"}
    assert schedule.get_last_pipeline_run().get_properties()["azureml.pipelinescheduleid"] == schedule.id
    computed = [r.id for r in runs if history.runs.details(r.id)["steps"][0]["status"] == "Completed"]
    assert len(computed) == 1  # the other three reuse its step
    assert "job ['--n', '9']" in (history.layout.step_dir(computed[0], "job") / "stdout.log").read_text()


def test_missed_fires_collapse_to_one_catch_up_run_and_a_disabled_schedule_is_quiet(ws, project, history):
    published = _published(ws, project)
    recurrence = ScheduleRecurrence("Hour", 1, start_time="2030-01-01T00:00:00")
    schedule = Schedule.create(ws, "hourly", published.id, "timed", recurrence=recurrence)
    runner = ScheduleRunner(ws, Clock(_utc(2030, 1, 1, 5, 30)))  # five fires missed while nothing ran
    runner.start()
    assert [f["due"] for f in history.publishing.fires(schedule.id)] == [_utc(2030, 1, 1, 5)]
    ScheduleRunner(ws, Clock(_utc(2030, 1, 1, 5, 59))).start()  # a restart before the next fire: nothing
    assert len(history.publishing.fires(schedule.id)) == 1
    schedule.disable()
    quiet = ScheduleRunner(ws, Clock(_utc(2030, 1, 1, 9, 0)))
    quiet.start()
    assert quiet.started_runs == [] and Schedule.list(ws) == []
    schedule.enable()
    assert Schedule.get(ws, schedule.id).status == "Active"
    quiet.tick()
    assert [f["due"] for f in history.publishing.fires(schedule.id)][-1] == _utc(2030, 1, 1, 9)


def test_a_schedule_without_a_start_time_fires_at_once(ws, project, history):
    schedule = Schedule.create(ws, "now", _published(ws, project).id, "timed", recurrence=ScheduleRecurrence("Day", 1))
    runner = ScheduleRunner(ws)  # the real clock
    runner.start()
    assert len(runner.started_runs) == 1 and len(history.publishing.fires(schedule.id)) == 1


def test_a_week_schedule_keeps_its_wall_times_across_a_daylight_saving_change(ws, project, history):
    """New York springs forward on Sunday 8 March 2026 (02:00 -> 03:00) and falls back on Sunday
    1 November (02:00 -> 01:00)."""
    recurrence = ScheduleRecurrence("Week", 1, start_time="2026-03-01T00:00:00", time_zone=TimeZone.EasternStandardTime,
                                    hours=[1, 2, 9], minutes=[30], week_days=["Sunday", "Wednesday"])  # fmt: skip
    recurrence.validate()
    new_york = ZoneInfo("America/New_York")

    def local(after: float, count: int) -> list[str]:
        times = fires(recurrence.to_dict(), 0.0, after)
        return [datetime.fromtimestamp(next(times), new_york).strftime("%a %d %H:%M %Z") for _ in range(count)]

    assert local(_utc(2026, 3, 5), 6) == [
        "Sun 08 01:30 EST",
        "Sun 08 03:30 EDT",  # 02:30 does not exist that night: an hour later, as the clocks say then
        "Sun 08 09:30 EDT",
        "Wed 11 01:30 EDT",
        "Wed 11 02:30 EDT",
        "Wed 11 09:30 EDT",
    ]
    assert local(_utc(2026, 10, 31), 3) == ["Sun 01 01:30 EDT", "Sun 01 02:30 EST", "Sun 01 09:30 EST"]
    # 01:30 happens twice that night and fires once, the first time; 09:30 is now 14:30 UTC, not 13:30.
    assert next(fires(recurrence.to_dict(), 0.0, _utc(2026, 11, 1, 8))) == _utc(2026, 11, 1, 14, 30)

    # A runner fires the schedule at those instants, not a second early, across the change.
    schedule = Schedule.create(ws, "weekly", _published(ws, project).id, "weekly", recurrence=recurrence)
    history.publishing.update_schedule(schedule.id, {"created_at": _utc(2026, 3, 7, 11)})  # made before the change
    expected = [_utc(2026, 3, 8, 6, 30), _utc(2026, 3, 8, 7, 30), _utc(2026, 3, 8, 13, 30)]
    clock = Clock(_utc(2026, 3, 7, 12))
    runner = ScheduleRunner(ws, clock)
    runner.start()
    for at in expected:
        clock.now = at - 1
        runner.tick()
        clock.now = at
        runner.tick()
    assert [f["due"] for f in history.publishing.fires(schedule.id)] == expected


def test_a_kill_between_claim_and_run_fires_once_after_restart(ws, project, history):
    schedule = Schedule.create(ws, "once", _published(ws, project).id, "timed",
                               recurrence=ScheduleRecurrence("Hour", 1, start_time="2030-01-01T00:00:00"))  # fmt: skip
    now = _utc(2030, 1, 1, 0, 10)
    script = textwrap.dedent(f"""
        from localpipe import Workspace
        from localpipe.client.schedules import ScheduleRunner
        ScheduleRunner(Workspace({str(ws.root)!r}), lambda: {now}).start()
    """)
    env = {**os.environ, "LOCALPIPE_FAULT": "schedule-claimed"}
    killed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert killed.returncode == -9, killed.stderr
    assert [(f["due"], f["run_id"]) for f in history.publishing.fires(schedule.id)] == [(_utc(2030, 1, 1), None)]
    assert history.runs.list() == []
    restarted = ScheduleRunner(ws, Clock(now))
    restarted.start()
    again = ScheduleRunner(ws, Clock(now))
    again.start()
    assert len(restarted.started_runs) == 1 and again.started_runs == []
    assert [f["run_id"] for f in history.publishing.fires(schedule.id)] == restarted.started_runs
    assert len(history.runs.list()) == 1


def _reader_on_upload(ws, project, script="import sys\nprint('read', open(sys.argv[1]).read())\n"):
    """A published pipeline printing the file its DataPath parameter names, and a datastore schedule
    of the default datastore's ``incoming/`` giving it each file added there (``seed.txt`` is there
    before it); the schedule."""
    project("src/read.py", script)
    blob = ws.get_default_datastore()
    param = PipelineParameter("input_datapath", default_value=DataPath(blob, "incoming/seed.txt"))
    (ws.state_dir / "datastores" / "workspaceblobstore" / "incoming").mkdir(parents=True)
    (ws.state_dir / "datastores" / "workspaceblobstore" / "incoming" / "seed.txt").write_text("seed")
    bound = (param, DataPathComputeBinding(mode="mount"))
    step = PythonScriptStep("read.py", name="read", source_directory=str(ws.root / "src"), inputs=[bound],
                            arguments=[bound])  # fmt: skip
    published = Pipeline(ws, [step]).publish("reader")
    return Schedule.create(ws, "on-upload", published.id, "uploads", datastore=blob, path_on_datastore="incoming",
                           data_path_parameter_name="input_datapath", polling_interval=60)  # fmt: skip


def test_a_datastore_schedule_fires_on_a_new_file_and_passes_its_path(ws, project, history):
    schedule = _reader_on_upload(ws, project)
    runner = ScheduleRunner(ws)
    with schedule_loop(runner, []) as loop:
        wait_for(lambda: loop.watched, what="the folder watched")
        assert runner.started_runs == []  # seed.txt was there before the schedule
        incoming = ws.state_dir / "datastores" / "workspaceblobstore" / "incoming"
        (incoming / "nested").mkdir()
        (incoming / "nested" / "deep.txt").write_text("not watched")
        (incoming / "new.txt").write_text("fresh data")
        wait_for(lambda: runner.started_runs, what="a run started by the new file")
    assert len(runner.started_runs) == 1
    run = schedule.get_last_pipeline_run()
    assert run.wait_for_completion(show_output=False) == "Completed"
    assert "read fresh data" in (history.layout.step_dir(run.id, "read") / "stdout.log").read_text()
    assert [f["key"].split(":")[1] for f in history.publishing.fires(schedule.id)] == ["new.txt"]


def test_files_added_at_once_start_at_most_max_runs_runs_together_and_each_fires_once(ws, project, history):
    # Defect (restrev's review): 10,000 files copied in at once started 10,000 schedulers together.
    schedule = _reader_on_upload(ws, project, "import sys, time\ntime.sleep(0.5)\nprint(open(sys.argv[1]).read())\n")
    incoming = ws.state_dir / "datastores" / "workspaceblobstore" / "incoming"
    for number in range(8):
        (incoming / f"part{number}.txt").write_text(f"part {number}")
    past = time.time() - 2 * SETTLING_SECONDS  # already still: fired at the first scan that has room
    for number in range(8):
        os.utime(incoming / f"part{number}.txt", (past, past))
    runner = ScheduleRunner(ws, max_runs=2)
    wait_for(lambda: runner.tick() or len(runner.started_runs) == 8, timeout=120, what="a run for each file")
    runs = schedule.get_pipeline_runs()
    assert all(run.wait_for_completion(show_output=False) == "Completed" for run in runs)
    spans = [history.runs.get(run.number) for run in runs]
    assert overlaps([{"start": r["started_at"], "end": r["ended_at"]} for r in spans]) <= 2
    keys = [f["key"].split(":")[1] for f in history.publishing.fires(schedule.id)]
    assert sorted(keys) == [f"part{n}.txt" for n in range(8)]  # each once


def test_a_bad_schedule_max_runs_is_one_line_and_exit_2(ws, localpipe):
    ran = localpipe("schedules", "run", env={"LOCALPIPE_SCHEDULE_MAX_RUNS": "0"}, timeout=30)
    assert ran.returncode == 2 and "Traceback" not in ran.stderr
    assert ran.stderr.strip() == (
        'error: LOCALPIPE_SCHEDULE_MAX_RUNS="0" is not a number of runs of at least 1: set one like 4, '
        "or unset it for as many as the machine's CPUs"
    )


def test_a_file_still_being_written_is_fired_for_once_whole(ws, project, history):
    # Its name appears before its bytes: a scan between two writes fired for the first part (the
    # key names the size), and again for the whole (seen one run in six in the test above).
    schedule = _reader_on_upload(ws, project)
    runner = ScheduleRunner(ws)
    with open(ws.state_dir / "datastores" / "workspaceblobstore" / "incoming" / "new.txt", "w") as upload:
        upload.write("fresh ")
        upload.flush()
        runner.scan(schedule.id)
        time.sleep(0.2)
        upload.write("data")
    runner.tick()
    assert runner.started_runs == []  # still settling
    wait_for(lambda: runner.tick() or runner.started_runs, what="the fire once the file is still")
    assert len(runner.started_runs) == 1
    run = schedule.get_last_pipeline_run()
    assert run.wait_for_completion(show_output=False) == "Completed"
    assert "read fresh data" in (history.layout.step_dir(run.id, "read") / "stdout.log").read_text()


def test_a_file_dated_ahead_of_the_clock_is_fired_for_at_once(ws, project):
    # Copied with its times from a machine whose clock runs ahead: its stillness cannot be told from
    # its time, which would keep it "changing" for an hour.
    schedule = _reader_on_upload(ws, project)
    runner = ScheduleRunner(ws)
    ahead = ws.state_dir / "datastores" / "workspaceblobstore" / "incoming" / "ahead.txt"
    ahead.write_text("from a fast clock")
    os.utime(ahead, (time.time() + 3600, time.time() + 3600))
    runner.scan(schedule.id)
    assert len(runner.started_runs) == 1


PIPELINE_FILE = """
from azureml.core import Workspace
from azureml.pipeline.core import Pipeline, PipelineParameter
from azureml.pipeline.steps import PythonScriptStep

ws = Workspace.from_config()
n = PipelineParameter("n", default_value=1)
pipeline = Pipeline(ws, [PythonScriptStep("job.py", name="job", source_directory="src", arguments=["--n", n])])
"""


def test_the_commands_publish_submit_and_schedule(ws, project, history, localpipe):
    import json

    project("src/job.py", "import sys\nprint('job', sys.argv[1:])\n")
    project("pipeline.py", PIPELINE_FILE)
    made = localpipe(
        "publish", "pipeline.py", "--name", "nightly", "--version", "1", "--endpoint", "nightly", check=True
    )
    assert 'endpoint "nightly" runs it as its default version 0' in made.stdout
    project("src/job.py", "print('edited')\n")
    listed = json.loads(localpipe("published", "--json", check=True).stdout)
    assert [(p["name"], p["version"], p["parameters"]) for p in listed] == [("nightly", "1", {"n": 1})]
    assert json.loads(localpipe("endpoints", "--json", check=True).stdout)[0]["versions"] == {"0": listed[0]["id"]}
    started = localpipe("submit-published", "nightly", "--param", "n=4", check=True)
    run_id = int(started.stdout.strip())
    wait_for(lambda: history.runs.get(run_id)["status"] == "Completed", what="the published run")
    assert "job ['--n', '4']" in (history.layout.step_dir(run_id, "job") / "stdout.log").read_text()
    bad = localpipe("submit-published", "nightly", "--param", "epochs=4")
    assert (bad.returncode, bad.stderr.strip()) == (
        2, 'error: parameter "epochs" is not a parameter of published pipeline "nightly" (its parameters: n)'
    )  # fmt: skip
    unknown = localpipe("submit-published", "nightly", "--version", "99")
    assert (unknown.returncode, unknown.stderr.strip()) == (
        2, 'error: pipeline endpoint "nightly" has no version "99" (it has 0): pass one of them'
    )  # fmt: skip
    refused = localpipe(
        "schedule", "create", "nightly", "--name", "s", "-e", "x", "--frequency", "Hour", "--hours", "3"
    )
    assert (refused.returncode, refused.stderr.strip()) == (
        2,
        "error: Can only specify hours if frequency is Week or Day.",
    )
    neither = localpipe("schedule", "create", "nightly", "--name", "s", "-e", "x")  # named Python's keywords
    assert (neither.returncode, neither.stderr.strip()) == (
        2,
        "error: a schedule fires on a recurrence or on new files: give --frequency or --datastore",
    )
    assert json.loads(localpipe("schedule", "list", "--all", "--json", check=True).stdout) == []
    localpipe("schedule", "create", "nightly", "--name", "daily", "-e", "timed", "--frequency", "Day", check=True)
    schedule_id = json.loads(localpipe("schedule", "list", "--json", check=True).stdout)[0]["id"]

    runner = subprocess.Popen([sys.executable, "-m", "localpipe", "schedules", "run"], cwd=ws.root,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        fired = wait_for(
            lambda: [f for f in history.publishing.fires(schedule_id) if f["run_id"]], what="the schedule's first run"
        )
    finally:
        runner.terminate()
        out, err = runner.communicate(timeout=30)
    assert runner.returncode == 0, err
    assert f"started run {fired[0]['run_id']}" in out
    shown = json.loads(localpipe("schedule", "show", schedule_id, "--json", check=True).stdout)
    assert [f["run_id"] for f in shown["fires"]] == [fired[0]["run_id"]]
    localpipe("schedule", "disable", schedule_id, check=True)
    assert json.loads(localpipe("schedule", "list", "--json", check=True).stdout) == []


def test_a_datastore_schedule_is_scanned_every_polling_interval_without_events(ws, project, history):
    """Where watchdog's events are lost (a network file system), the folder is scanned anyway."""
    published = _published(ws, project)
    schedule = Schedule.create(ws, "polled", published.id, "uploads", datastore=ws.get_default_datastore(),
                               path_on_datastore="drop", polling_interval=5)  # fmt: skip
    clock = Clock(_utc(2030, 1, 1))
    runner = ScheduleRunner(ws, clock)
    runner.start()  # the first scan: nothing there
    drop = ws.state_dir / "datastores" / "workspaceblobstore" / "drop"
    drop.mkdir(parents=True, exist_ok=True)
    (drop / "a.csv").write_text("1,2\n")
    time.sleep(SETTLING_SECONDS)  # an upload that has ended (a file still changing is not fired for yet)
    clock.now += 4 * 60
    runner.tick()
    assert runner.started_runs == []  # not due for a scan yet
    clock.now += 60
    runner.tick()
    assert len(runner.started_runs) == 1
    clock.now += 5 * 60
    runner.tick()  # the same file unchanged: no second fire
    (drop / "a.csv").write_text("1,2\n3,4\n")
    time.sleep(SETTLING_SECONDS)
    clock.now += 5 * 60
    runner.tick()  # changed: a fire of its own
    assert len(runner.started_runs) == 2
    assert [f["key"].split(":")[1] for f in history.publishing.fires(schedule.id)] == ["a.csv", "a.csv"]


RUNNER = """
import json, os, sys, time
from localpipe import Workspace
from localpipe.client.schedules import ScheduleRunner

root, clock_file, stop_file = sys.argv[1:4]
runner = ScheduleRunner(Workspace(root), lambda: float(open(clock_file).read()))
runner.start()
while not os.path.exists(stop_file):
    runner.tick()
    time.sleep(0.01)
print(json.dumps(runner.started_runs))
"""


def test_two_runner_processes_start_each_fire_once(ws, project, history, tmp_path):
    """Two processes firing the same workspace's schedules, as two servers would, on one moving clock."""
    import json

    every_minute = ScheduleRecurrence("Minute", 1, start_time="2030-01-01T00:00:00")
    schedule = Schedule.create(ws, "every-minute", _published(ws, project).id, "timed", recurrence=every_minute)
    clock_file, stop_file = tmp_path / "clock", tmp_path / "stop"
    start = _utc(2030, 1, 1)

    def set_clock(now: float) -> None:  # replaced whole: a runner never reads it half written
        (tmp_path / "clock.new").write_text(str(now))
        os.replace(tmp_path / "clock.new", clock_file)

    set_clock(start - 30)
    command = [sys.executable, "-c", RUNNER, str(ws.root), str(clock_file), str(stop_file)]
    runners = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for minute in range(5):
            set_clock(start + 60 * minute)
            fired = minute + 1
            wait_for(
                lambda n=fired: [bool(f["run_id"]) for f in history.publishing.fires(schedule.id)] == [True] * n,
                what=f"fire {minute}",
            )
    finally:
        stop_file.write_text("")
        outputs = [runner.communicate(timeout=60) for runner in runners]
    started = [run_id for out, err in outputs for run_id in json.loads(out or "[]")]
    assert all(runner.returncode == 0 for runner in runners), [err for _, err in outputs]
    assert sorted(started) == sorted(f["run_id"] for f in history.publishing.fires(schedule.id))
    assert len(started) == len(set(started)) == 5 == len(history.runs.list())
    assert [f["due"] for f in history.publishing.fires(schedule.id)] == [start + 60 * m for m in range(5)]


def test_an_endpoint_schedule_and_a_rest_body_pass_on_continue_on_step_failure(ws, project, history, monkeypatch):
    """Azure applies a schedule's ``continue_on_step_failure``, and a REST body's
    ``ContinueRunOnStepFailure``, to a pipeline endpoint's runs as to a published pipeline's."""
    from localpipe import InteractiveLoginAuthentication
    from localpipe.client.publishing import PipelineEndpoint
    from localpipe.client.rest import rest_submit

    endpoint = PipelineEndpoint.publish(ws, "nightly-endpoint", None, _published(ws, project))
    Schedule.create_for_pipeline_endpoint(ws, "go-on", endpoint.id, "timed", recurrence=ScheduleRecurrence("Day", 1),
                                          continue_on_step_failure=True)  # fmt: skip
    runner = ScheduleRunner(ws)
    runner.start()
    assert len(runner.started_runs) == 1
    monkeypatch.chdir(ws.root)
    header = InteractiveLoginAuthentication().get_authentication_header()["Authorization"]
    status, answer = rest_submit(ws, "endpoint", endpoint.id, {"ExperimentName": "rest", "ContinueRunOnStepFailure":
                                                                True}, header)  # fmt: skip
    assert status == 200, answer
    for run_id in (*runner.started_runs, int(answer["Id"])):
        assert history.runs.for_scheduler(run_id).continue_on_step_failure, run_id


def test_a_broken_datastore_schedule_does_not_stop_the_others_and_paths_stay_inside(ws, project, history):
    """A schedule whose folder cannot be watched (a file stands where it should be) is named in one
    line, once, and the loop goes on firing the others; a path_on_datastore leaving the datastore
    is refused at create and update."""
    published = _published(ws, project)
    blob = ws.get_default_datastore()
    store = ws.state_dir / "datastores" / "workspaceblobstore"
    store.mkdir(parents=True, exist_ok=True)
    (store / "blocked").write_text("a file where the folder should be")
    for path in ("/tmp/elsewhere", "../../etc", "in/../../out"):
        with pytest.raises(UserErrorException, match="leaves its datastore"):
            Schedule.create(ws, "bad", published.id, "x", datastore=blob, path_on_datastore=path)
    Schedule.create(ws, "blocked", published.id, "x", datastore=blob, path_on_datastore="blocked")
    good = Schedule.create(ws, "good", published.id, "x", datastore=blob, path_on_datastore="incoming")
    with pytest.raises(UserErrorException, match="leaves its datastore"):
        good.update(path_on_datastore="../outside")
    said: list[str] = []
    runner = ScheduleRunner(ws)
    with schedule_loop(runner, said) as loop:
        wait_for(lambda: os.path.normpath(store / "incoming") in loop.watched, what="the good folder watched")
        (store / "incoming" / "new.txt").write_text("data")
        wait_for(lambda: runner.started_runs, what="the good schedule to fire")
    blocked = [line for line in said if "blocked" in line]  # each said once, not at every tick
    assert blocked == [
        f"cannot watch {store / 'blocked'} (File exists): its schedule is not fired",
        f"schedule \"blocked\" cannot be fired: [Errno 20] Not a directory: '{store / 'blocked'}'",
    ], said


def test_schedule_list_says_at_what_time_of_day_and_on_which_days_it_fires(ws, project, localpipe):
    import json

    published = _published(ws, project)
    pacific = TimeZone.PacificStandardTime
    made = {
        "daily": ScheduleRecurrence("Day", 1, time_of_day="02:30", time_zone=pacific),
        "weekly": ScheduleRecurrence("Week", 2, week_days=["Monday", "Friday"], hours=[17, 9], minutes=[30, 0]),
        "monthly": ScheduleRecurrence("Month", 1, start_time="2026-01-31T08:00:00"),
        "minutely": ScheduleRecurrence("Minute", 5, start_time="2026-01-01T00:00:00", time_zone=pacific),
        "hourly": ScheduleRecurrence("Hour", 1, start_time=datetime(2026, 1, 1, 6, 15, 30)),
    }
    for name, recurrence in made.items():
        Schedule.create(ws, name, published.id, "timed", recurrence=recurrence)
    listed = {r["name"]: r["when"] for r in json.loads(localpipe("schedule", "list", "--json", check=True).stdout)}
    assert listed == {
        "daily": "every day at 02:30 (Pacific Standard Time)",
        "weekly": "every 2 weeks on Monday, Friday at 09:00, 09:30, 17:00, 17:30 (UTC)",
        "monthly": "every month on day 31 at 08:00 (UTC)",
        "minutely": "every 5 minutes from 2026-01-01 00:00 (Pacific Standard Time)",
        "hourly": "every hour from 2026-01-01 06:15:30 (UTC)",
    }
    table = localpipe("schedule", "list", check=True).stdout
    assert "every day at 02:30 (Pacific Standard Time)" in table
    assert "on Monday, Friday at 09:00, 09:30, 17:00, 17:30 (UTC)" in table


def test_a_parameter_value_of_the_wrong_type_is_refused_at_create_and_update_not_at_every_fire(ws, project, history):
    # It was recorded, and each fire then failed ("could not start its run"), one line per fire in a runner's output.
    published = _published(ws, project)
    every_minute = ScheduleRecurrence("Minute", 1)
    for value, said in [("abc", '"abc" is not an integer: pass one'), (2.5, "2.5 is a float, expected a int")]:
        with pytest.raises(UserErrorException) as refused:
            Schedule.create(ws, "s", published.id, "e", recurrence=every_minute, pipeline_parameters={"n": value})
        assert str(refused.value) == (
            f'parameter "n" of published pipeline "nightly": {said} like the default 1 (each fire of the schedule '
            "would be refused)"
        )
    assert Schedule.list(ws, active_only=False) == []
    schedule = Schedule.create(ws, "s", published.id, "e", recurrence=every_minute, pipeline_parameters={"n": "5"})
    with pytest.raises(UserErrorException, match='parameter "n" of published pipeline "nightly": True is a bool'):
        schedule.update(pipeline_parameters={"n": True})
    runner = ScheduleRunner(ws, clock=Clock(time.time()))
    runner.start()
    assert (runner.errors, len(runner.started_runs)) == ([], 1)
    assert history.publishing.schedule(schedule.id)["pipeline_parameters"] == {"n": "5"}


def test_a_data_path_parameter_that_is_no_datapath_parameter_is_refused_at_create_and_update(ws, project):
    # It was recorded, and each file added then failed its fire: "DataPath(...) is a DataPath, expected a int".
    blob = ws.get_default_datastore()
    n = PipelineParameter("n", default_value=1)
    data = (PipelineParameter("data", default_value=DataPath(blob, "incoming/a.txt")), DataPathComputeBinding())
    project("src/job.py", "print('job')\n")
    project(".localpipe/datastores/workspaceblobstore/incoming/a.txt", "a")
    step = PythonScriptStep("job.py", name="job", source_directory=str(ws.root / "src"), arguments=["--n", n, data],
                            inputs=[data])  # fmt: skip
    published = Pipeline(ws, [step]).publish("counter")
    said = (
        'data_path_parameter_name "n" is not a DataPath parameter of published pipeline "counter" (its DataPath '
        "parameters: data): name one, which each fire sets to the file's DataPath"
    )
    with pytest.raises(UserErrorException) as refused:
        Schedule.create(ws, "s", published.id, "e", datastore=blob, path_on_datastore="incoming",
                        data_path_parameter_name="n")  # fmt: skip
    assert str(refused.value) == said
    assert Schedule.list(ws, active_only=False) == []
    schedule = Schedule.create(ws, "s", published.id, "e", datastore=blob, path_on_datastore="incoming",
                               data_path_parameter_name="data")  # fmt: skip
    with pytest.raises(UserErrorException) as refused:
        schedule.update(data_path_parameter_name="n")
    assert str(refused.value) == said
    assert Schedule.get(ws, schedule.id).data_path_parameter_name == "data"


def test_a_recurrence_changed_by_update_fires_first_at_its_next_time_not_at_one_already_past(ws, project, history):
    # Moved from 18:00 to 19:30 at 20:04, it fired at once for today's 19:30, a time before the change.
    published = _published(ws, project)
    now = time.time()

    def hourly(offset: float) -> ScheduleRecurrence:
        return ScheduleRecurrence("Hour", 1, datetime.fromtimestamp(now + offset, UTC).strftime("%Y-%m-%dT%H:%M:%S"))

    schedule = Schedule.create(ws, "hourly", published.id, "e", recurrence=hourly(1200))  # first in 20 minutes
    publishing = history.publishing
    publishing.update_schedule(schedule.id, {"created_at": now - 3 * 3600})  # made three hours ago
    clock = Clock(now)
    runner = ScheduleRunner(ws, clock=clock)
    runner.start()
    assert runner.started_runs == []
    schedule.update(recurrence=hourly(-600))  # its times now: ten minutes ago (before the change), 50 minutes on
    clock.now = time.time() + 1
    runner.tick()
    assert runner.started_runs == []
    clock.now = now + 3000 + 1
    runner.tick()
    assert [f["due"] for f in publishing.fires(schedule.id) if f["run_id"]] == [pytest.approx(now + 3000, abs=1)]


def test_a_watched_folder_deleted_and_made_again_is_watched_again(ws, project, history):
    # rm -rf incoming; mkdir incoming (or a folder moved into its place) left the watch on the old folder:
    # a file dropped after waited for the polling_interval scan (60 minutes here), and so did every later one.
    import shutil

    schedule = _reader_on_upload(ws, project)
    incoming = ws.state_dir / "datastores" / "workspaceblobstore" / "incoming"
    runner = ScheduleRunner(ws)
    with schedule_loop(runner, []) as loop:
        wait_for(lambda: loop.watched, what="the folder watched")
        shutil.rmtree(incoming)
        time.sleep(0.5)
        assert not incoming.exists()  # not made again while it is gone: a folder moved into its place would land in it
        staged = incoming.with_name("staged")
        staged.mkdir()
        (staged / "first.txt").write_text("one")
        staged.rename(incoming)
        wait_for(lambda: len(runner.started_runs) == 1, timeout=10, what="a run for the file that came with the folder")
        (incoming / "second.txt").write_text("two")
        wait_for(lambda: len(runner.started_runs) == 2, timeout=10, what="a run for a file added since")
    assert sorted(f["key"].split(":")[1] for f in history.publishing.fires(schedule.id)) == ["first.txt", "second.txt"]
