"""A hostile review of published pipelines, endpoints, schedules and their REST calls: each test
is a defect found by using them as a hostile user or local process would (tests written first,
each failing before its fix)."""

from __future__ import annotations

import re

import pytest

from localpipe import Pipeline, PipelineParameter, PythonScriptStep
from localpipe.client.publishing import PipelineEndpoint
from localpipe.client.rest import rest_submit
from localpipe.errors import NotFoundError, UserErrorException


def _published(ws, project, name="trainer"):
    project("src/train.py", "import sys\nprint('ran', sys.argv[1:])\n")
    n = PipelineParameter("n", default_value=3)
    step = PythonScriptStep("train.py", name="train", source_directory=str(ws.root / "src"), arguments=["--n", n])
    return Pipeline(ws, [step]).publish(name)


@pytest.fixture
def bearer(ws) -> str:
    """The Authorization header a REST client sends."""
    from localpipe.state.layout import Layout
    from localpipe.state.token import api_token

    return f"Bearer {api_token(Layout.of(ws.state_dir))}"


def test_an_empty_endpoint_name_or_id_names_no_endpoint(ws, project, history, bearer):
    """A POST to ``PipelineEndpointSubmit/Name`` without ``?name=`` ran the workspace's first
    endpoint, and ``PipelineEndpoint.get(ws, name="")`` returned it: an empty name matched any."""
    first = PipelineEndpoint.publish(ws, "first", None, _published(ws, project))
    for kwargs in ({"name": ""}, {"id": ""}):
        with pytest.raises(NotFoundError, match="no pipeline endpoint has"):
            PipelineEndpoint.get(ws, **kwargs)
    status, answer = rest_submit(ws, "endpoint-name", "", {"ExperimentName": "rest"}, bearer)
    assert (status, answer["error"]["message"]) == (
        400, "the address names no pipeline endpoint: add ?name=<its name> (or post to PipelineEndpointSubmit/Id/<id>)"
    )  # fmt: skip
    assert rest_submit(ws, "endpoint", "", {"ExperimentName": "rest"}, bearer)[0] == 404
    assert history.runs.list() == []
    assert PipelineEndpoint.get(ws, name="first").id == first.id


def test_a_refused_rest_submission_leaves_no_run(ws, project, history, bearer):
    """A body whose ``Description`` UTF-8 cannot hold (JSON's ``"\\ud800"``) was answered 400 after its
    run was recorded: the run stayed NotStarted, never started, until recovery marked it Failed."""
    published = _published(ws, project)
    body = {"ExperimentName": "rest", "Description": "\ud800"}
    status, answer = rest_submit(ws, "published", published.id, body, bearer)
    assert status == 400 and "Description" in answer["error"]["message"], answer
    assert history.runs.list() == []
    status, answer = rest_submit(ws, "published", published.id, {**body, "Description": "été"}, bearer)
    assert status == 200, answer
    assert answer["Id"] == "1" and history.runs.get(int(answer["Id"]))["description"] == "été"


def test_continue_on_step_failure_must_be_a_boolean(ws, project, history, bearer):
    """``"ContinueRunOnStepFailure": "false"`` (a string) ran with continue on step failure on: it
    was read as ``bool("false")``; as was a schedule's ``continue_on_step_failure="no"``."""
    from localpipe.client.schedules import Schedule, ScheduleRecurrence

    published = _published(ws, project)
    message = (
        "continue_on_step_failure 'false' is not True or False (ContinueRunOnStepFailure in a REST body): "
        "pass a boolean, or None to keep the pipeline's"
    )
    body = {"ExperimentName": "rest", "ContinueRunOnStepFailure": "false"}
    status, answer = rest_submit(ws, "published", published.id, body, bearer)
    assert (status, answer["error"]["message"]) == (400, message)
    with pytest.raises(UserErrorException, match="^continue_on_step_failure 'no' is not True or False"):
        Schedule.create(ws, "s", published.id, "e", recurrence=ScheduleRecurrence("Day", 1),
                        continue_on_step_failure="no")  # fmt: skip
    with pytest.raises(UserErrorException, match="^continue_on_step_failure 1 is not True or False"):
        published.submit(ws, "sdk", continue_on_step_failure=1)
    assert history.runs.list() == [] and Schedule.list(ws, active_only=False) == []
    status, answer = rest_submit(ws, "published", published.id, {**body, "ContinueRunOnStepFailure": False}, bearer)
    assert status == 200 and not history.runs.for_scheduler(int(answer["Id"])).continue_on_step_failure


@pytest.mark.parametrize("what", ["pipeline", "endpoint"])
def test_a_pipeline_disabled_while_a_submission_plans_gets_no_run(ws, project, history, bearer, monkeypatch, what):
    """The disabled check came before planning (unpickling, hashing the snapshots: seconds for a big
    pipeline) and not again: a ``disable()`` that returned in that time was followed by a run of the
    disabled pipeline or endpoint."""
    import localpipe.engine.submit as submit
    from localpipe.client.publishing import PublishedPipeline

    published = _published(ws, project)
    endpoint = PipelineEndpoint.publish(ws, "training", None, published)
    planned = submit.plan

    def disabled_meanwhile(*args, **kwargs):
        if what == "pipeline":
            PublishedPipeline.get(ws, published.id).disable()  # another process's handle, say
        else:
            PipelineEndpoint.get(ws, id=endpoint.id).disable()
        return planned(*args, **kwargs)

    monkeypatch.setattr(submit, "plan", disabled_meanwhile)
    status, answer = rest_submit(ws, "endpoint", endpoint.id, {"ExperimentName": "rest"}, bearer)
    assert status == 400 and "is disabled: enable it" in answer["error"]["message"], answer
    assert history.runs.list() == []


def _at(zone: str, *args) -> float:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    return datetime(*args, tzinfo=ZoneInfo(zone)).timestamp()


def test_a_start_time_long_past_costs_a_runner_nothing_more():
    """A runner ticks every second, and each tick walked a Day, Week or Month recurrence day by day
    from its start time: a Day schedule started in 2000 cost 12 ms of CPU a tick, one started in
    year 1 0.8 s (a runner at 80% of a core for ever). The walk now starts next to the time asked."""
    import time
    from datetime import date, timedelta

    from localpipe.plan.recurrence import latest_due

    now = _at("UTC", 2026, 12, 2, 15)
    cases = [  # (recurrence, the latest fire at or before now, worked out by hand)
        ({"frequency": "Day", "interval": 1, "start_time": "0001-01-02T00:00:00"}, _at("UTC", 2026, 12, 2)),
        ({"frequency": "Month", "interval": 5, "start_time": "2000-01-15T10:00:00"}, _at("UTC", 2026, 9, 15, 10)),
    ]
    # Day, every 3rd day from 1 January 2000 at 09:30 New York time (14:30 UTC in December)
    day = date(2026, 12, 2) - timedelta(days=(date(2026, 12, 2) - date(2000, 1, 1)).days % 3)
    cases.append(({"frequency": "Day", "interval": 3, "start_time": "2000-01-01T09:30:00",
                   "time_zone": "Eastern Standard Time"},
                  _at("America/New_York", day.year, day.month, day.day, 9, 30)))  # fmt: skip
    # Week, every 2nd week from Monday 1 January 2001, on Mondays and Fridays at 06:00
    week = (date(2026, 11, 30) - date(2001, 1, 1)).days // 7
    latest = date(2026, 11, 30) if week % 2 == 0 else date(2026, 11, 27)
    cases.append(({"frequency": "Week", "interval": 2, "start_time": "2001-01-01T00:00:00", "hours": [6],
                   "minutes": [0], "week_days": ["Monday", "Friday"]},
                  _at("UTC", latest.year, latest.month, latest.day, 6)))  # fmt: skip
    for recurrence, expected in cases:
        recurrence = {"time_zone": "UTC", "hours": None, "minutes": None, "week_days": None, **recurrence}
        spent = time.process_time()
        due = latest_due(recurrence, now - 86400 * 400, now - 86400 * 400, now)
        spent = time.process_time() - spent
        assert due == expected, (recurrence, due, expected)
        assert spent < 0.05, (recurrence, spent)


def _datastore_schedule(ws, project):
    from localpipe.client.schedules import Schedule

    return Schedule.create(ws, "uploads", _published(ws, project).id, "e", datastore=ws.get_default_datastore())


def test_update_checks_polling_interval_as_create_does(ws, project):
    """``update(polling_interval="5")`` raised TypeError ('<' not supported between 'str' and 'int');
    0 and 2.5, which ``create`` refuses, were kept (0: the folder scanned at every tick); a number
    SQLite cannot hold raised OverflowError from the database."""
    from localpipe.client.schedules import Schedule

    schedule = _datastore_schedule(ws, project)
    for bad in ("5", 0, 2.5, True, -1, 2**63):
        with pytest.raises(ValueError, match=rf"^polling_interval {bad!r} is not a number of minutes: pass a whole "
                           r"number from 1 to 2147483647$"):  # fmt: skip
            schedule.update(polling_interval=bad)
        with pytest.raises(ValueError, match=rf"^polling_interval {bad!r} is not a number of minutes"):
            Schedule.create(ws, "x", schedule.pipeline_id, "e", datastore="workspaceblobstore", polling_interval=bad)
    assert Schedule.get(ws, schedule.id).polling_interval == 5
    schedule.update(polling_interval=60)
    assert Schedule.get(ws, schedule.id).polling_interval == 60
    assert [s.id for s in Schedule.list(ws)] == [schedule.id]


def test_a_schedule_needs_a_name(ws, project):
    """``Schedule.create(ws, None, ...)`` raised IntegrityError ('NOT NULL constraint failed:
    schedule.name') from the database; a dict was kept as its text, and ``update(name="")`` blanked it."""
    from localpipe.client.schedules import Schedule, ScheduleRecurrence

    published = _published(ws, project)
    for bad in (None, "", "  ", {"a": 1}):
        with pytest.raises(UserErrorException, match=rf"^a schedule needs a name \(got {bad!r}\): pass name='\.\.\.'$"):
            Schedule.create(ws, bad, published.id, "e", recurrence=ScheduleRecurrence("Day", 1))
    schedule = Schedule.create(ws, "nightly", published.id, "e", recurrence=ScheduleRecurrence("Day", 1))
    with pytest.raises(UserErrorException, match="^a schedule needs a name"):
        schedule.update(name=" ")
    assert [s.name for s in Schedule.list(ws, active_only=False)] == ["nightly"]


def test_a_scan_claims_no_file_it_has_fired_for(ws, project, history, monkeypatch):
    """Each scan of a datastore schedule's folder claimed every file in it again, one write
    transaction each, to find the fired ones: with 10,000 files fired, one more upload cost a scan of
    4 s of CPU and 10,000 BEGIN IMMEDIATE (every tick while it settles, and at each polling interval)."""
    from localpipe.client.schedules import ScheduleRunner

    from .conftest import wait_for

    schedule = _datastore_schedule(ws, project)
    folder = ws.state_dir / "datastores" / "workspaceblobstore"
    for name in ("a.csv", "b.csv", "c.csv"):
        (folder / name).write_text(name)
    # Room for every fire at once: with the default cap (the CPUs: 2 here) the third waited for a run
    # to end, which a loaded machine (CI) took more than the 30 s below to do.
    runner = ScheduleRunner(ws, max_runs=4)
    wait_for(lambda: runner.scan(schedule.id) or len(runner.started_runs) == 3, what="a fire for each file")
    claimed = []
    claim = history.publishing.claim_fire
    monkeypatch.setattr(history.publishing, "claim_fire", lambda schedule_id, key, *a: claimed.append(key) or
                        claim(schedule_id, key, *a))  # fmt: skip
    runner.scan(schedule.id)
    assert claimed == [] and len(runner.started_runs) == 3
    (folder / "d.csv").write_text("d")
    wait_for(lambda: runner.scan(schedule.id) or len(runner.started_runs) == 4, what="a fire for the new file")
    assert {key.split(":")[1] for key in claimed} == {"d.csv"}


def test_a_deeply_nested_body_is_a_bad_body(ws, project, history, bearer):
    """A body nested 100,000 deep (``[[[...]]]``, 200 kB) made ``request.json()`` raise RecursionError:
    500 Internal Server Error and a traceback in the server's output, where any other unreadable body
    is 400."""
    from starlette.testclient import TestClient

    from localpipe.studio.app import create_app
    from localpipe.studio.rest import BASE, rest_routes

    published = _published(ws, project)
    app = create_app(ws.state_dir, "studio-token", extra_routes=rest_routes(ws), self_authenticating=(BASE + "/",))
    url = f"{BASE}/PipelineSubmit/{published.id}"
    with TestClient(app, base_url="http://127.0.0.1:8765", raise_server_exceptions=False) as client:
        # NaN is no JSON either (Python's parser took it: a float parameter ran with nan)
        nan = b'{"ExperimentName": "x", "ParameterAssignments": {"f": NaN}}'
        for body in (b"[" * 100_000 + b"]" * 100_000, b'{"ExperimentName": "x", "Description": ' + b"[" * 5000, nan):
            answer = client.post(url, headers={"Authorization": bearer}, content=body)
            assert answer.status_code == 400, answer.text
            assert answer.json()["error"]["message"].startswith("the body is not a JSON object")
    assert history.runs.list() == []


def test_an_unknown_datastore_in_the_body_is_a_bad_body_not_a_missing_pipeline(ws, project, history, bearer):
    """docs/publishing.md: 404 for an unknown pipeline or endpoint, 400 for a bad body. A
    ``DataPathAssignments`` naming a datastore the workspace has not (or ``"DataStoreName": 5``) was
    answered 404, as if the pipeline were missing; and a body was read before the address was found."""
    published = _published(ws, project)
    body = {"ExperimentName": "rest", "DataPathAssignments": {"n": {"DataStoreName": "nope", "RelativePath": "a"}}}
    status, answer = rest_submit(ws, "published", published.id, body, bearer)
    assert (status, answer["error"]["code"]) == (400, "UserError"), answer
    assert answer["error"]["message"].startswith('datastore "nope" is not registered')
    status, answer = rest_submit(ws, "published", "no-such-id", body, bearer)
    assert (status, answer["error"]["code"]) == (404, "NotFound") and "no published pipeline" in answer["error"][
        "message"
    ]
    assert history.runs.list() == []


def test_set_default_version_of_a_missing_version_is_a_value_error_as_in_the_sdk(ws, project):
    """The SDK's ``set_default_version`` raises ValueError for a version the endpoint has not (as
    ``get_pipeline`` does here); localpipe raised UsageError, which ``except ValueError`` misses."""
    endpoint = PipelineEndpoint.publish(ws, "training", None, _published(ws, project))
    with pytest.raises(ValueError, match=r'^pipeline endpoint "training" has no version "9" \(it has 0\)'):
        endpoint.set_default_version("9")
    assert PipelineEndpoint.get(ws, id=endpoint.id).default_version == "0"


def test_a_runner_killed_between_recording_a_fires_run_and_starting_it_is_taken_over(ws, project, history):
    """A runner SIGKILLed after the transaction that records a fire's run, before it starts the run's
    scheduler (a few ms of each fire: 'serve' killed at a random moment, then restarted): the fire had
    its run, so no later runner touched it, and the run stayed NotStarted until recovery marked it
    Failed ('scheduler exited'), never run. The next runner to start now starts that run, once."""
    import os
    import subprocess
    import sys
    import textwrap
    from datetime import UTC, datetime

    from localpipe.client.schedules import Schedule, ScheduleRecurrence, ScheduleRunner

    schedule = Schedule.create(ws, "once", _published(ws, project).id, "timed",
                               recurrence=ScheduleRecurrence("Hour", 1, start_time="2030-01-01T00:00:00"))  # fmt: skip
    now = datetime(2030, 1, 1, 0, 10, tzinfo=UTC).timestamp()
    script = textwrap.dedent(f"""
        from localpipe import Workspace
        from localpipe.client.schedules import ScheduleRunner
        ScheduleRunner(Workspace({str(ws.root)!r}), lambda: {now}).start()
    """)
    env = {**os.environ, "LOCALPIPE_FAULT": "run-recorded"}
    killed = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60)
    assert killed.returncode == -9, killed.stderr
    [fire] = history.publishing.fires(schedule.id)
    assert history.runs.get(fire["run_id"])["status"] == "NotStarted"
    restarted = ScheduleRunner(ws, lambda: now)
    restarted.start()
    again = ScheduleRunner(ws, lambda: now)
    again.start()
    assert restarted.started_runs == [fire["run_id"]] and again.started_runs == []
    run = schedule.get_last_pipeline_run()
    assert run.number == fire["run_id"] and run.wait_for_completion(show_output=False) == "Completed"
    assert len(history.runs.list()) == 1


def test_a_pipeline_endpoint_needs_a_name(ws, project):
    """``PipelineEndpoint.publish(ws, None, ...)``, ``set_name(None)`` and ``reactivate(None)`` raised
    IntegrityError ('NOT NULL constraint failed: pipeline_endpoint.name') from the database; "" and a
    dict were kept, "" an endpoint the REST address by name cannot reach."""
    published = _published(ws, project)
    for bad in (None, "", " ", {"a": 1}):
        with pytest.raises(UserErrorException, match=rf"^a pipeline endpoint needs a name \(got {bad!r}\): "):
            PipelineEndpoint.publish(ws, bad, None, published)
    endpoint = PipelineEndpoint.publish(ws, "training", None, published)
    for rename in (endpoint.set_name, endpoint.reactivate):
        with pytest.raises(UserErrorException, match=r"^a pipeline endpoint needs a name \(got None\): "):
            rename(None)
    assert [e.name for e in PipelineEndpoint.list(ws, active_only=False)] == ["training"]


def test_a_schedule_with_a_parameter_its_pipeline_has_not_is_refused_at_create(ws, project, history):
    """``Schedule.create(..., pipeline_parameters={"epochs": 1})`` of a pipeline without "epochs" (or a
    ``data_path_parameter_name`` it has not) was kept, and each of its fires failed ('could not start
    its run'), at 2 a.m. say, where a submission is refused at once."""
    from localpipe.client.schedules import Schedule, ScheduleRecurrence

    published = _published(ws, project)
    endpoint = PipelineEndpoint.publish(ws, "training", None, published)
    unknown = r'^parameter "epochs" is not a parameter of published pipeline "trainer" \(its parameters: n\)$'
    with pytest.raises(UserErrorException, match=unknown):
        Schedule.create(ws, "s", published.id, "e", recurrence=ScheduleRecurrence("Day", 1),
                        pipeline_parameters={"epochs": 1})  # fmt: skip
    with pytest.raises(UserErrorException, match=unknown):
        Schedule.create_for_pipeline_endpoint(ws, "s", endpoint.id, "e", recurrence=ScheduleRecurrence("Day", 1),
                                              pipeline_parameters={"n": 2, "epochs": 1})  # fmt: skip
    with pytest.raises(UserErrorException, match=r'^parameter "input" is not a parameter of published pipeline'):
        Schedule.create(ws, "s", published.id, "e", datastore="workspaceblobstore", data_path_parameter_name="input")
    schedule = Schedule.create(ws, "s", published.id, "e", recurrence=ScheduleRecurrence("Day", 1),
                               pipeline_parameters={"n": 2})  # fmt: skip
    with pytest.raises(UserErrorException, match=unknown):
        schedule.update(pipeline_parameters={"epochs": 1})
    assert [s.id for s in Schedule.list(ws)] == [schedule.id]
    assert history.publishing.schedule(schedule.id)["pipeline_parameters"] == {"n": 2}


@pytest.mark.parametrize(
    ("kwargs", "shown"),
    [
        ({"frequency": "Minute", "interval": 1, "start_time": "0001-01-01T00:00:00", "time_zone": "Tonga"},
         "start_time '0001-01-01T00:00:00'"),
        ({"frequency": "Day", "interval": 1, "start_time": "9999-12-31T23:00:00", "time_zone": "Hawaiian"},
         "start_time '9999-12-31T23:00:00'"),
        ({"frequency": "Day", "interval": 10**18}, "interval 1000000000000000000"),
    ],
)  # fmt: skip
def test_a_recurrence_that_cannot_fire_is_refused_at_create(ws, project, kwargs, shown):
    """A start time whose instant lies outside the years Python counts (year 1 in Tonga, 9999 in Hawaii),
    or an interval of 10**18 days, was kept, and every runner then said 'cannot be fired: date value out
    of range' (or 'Python int too large to convert to C int') instead of firing it."""
    from localpipe.client.schedules import Schedule, ScheduleRecurrence, TimeZone

    zones = {"Tonga": TimeZone.TongaStandardTime, "Hawaiian": TimeZone.HawaiianStandardTime}
    if "time_zone" in kwargs:
        kwargs = {**kwargs, "time_zone": zones[kwargs["time_zone"]]}
    with pytest.raises(ValueError, match=rf"^{re.escape(shown)} gives no time to fire at within the years 1 to 9999 "):
        Schedule.create(ws, "s", _published(ws, project).id, "e", recurrence=ScheduleRecurrence(**kwargs))
    assert Schedule.list(ws, active_only=False) == []


def test_a_time_zone_the_cli_does_not_know_says_which_names_it_takes(ws, project, invoke):
    """`localpipe schedule create ... --time-zone Nowhere` said only "'Nowhere' is not a valid
    TimeZone" (the Enum's words), with no hint that Azure's are Windows names; a Schedule YAML's
    time_zone said so already, in its own words (one function makes both now)."""
    published = _published(ws, project)
    result = invoke("schedule", "create", published.id, "--name", "s", "-e", "e", "--frequency", "Day",
                    "--time-zone", "Europe/Paris")  # fmt: skip
    assert result.exit_code == 2
    assert result.output.strip() == (
        'error: time_zone "Europe/Paris" is not one of Azure\'s time zones: use a Windows name such as "UTC" or '
        '"Pacific Standard Time"'
    )


@pytest.mark.parametrize("name", ["../../escaped", "é" * 200, "team/trainer"])
def test_save_of_a_published_pipeline_keeps_its_file_in_the_folder_given(ws, project, tmp_path, name):
    """``published.save(folder)`` wrote ``folder/NAME.yml``: a pipeline published as "../../escaped"
    wrote two folders above the one given, a name of 200 "é" raised OSError (File name too long), and
    "team/trainer" was refused for a folder "team" the caller never named. A name that is no plain file
    name is made one (as a step's folder is)."""
    from localpipe.state.layout import safe_name

    published = _pipeline_named(ws, project, name)
    folder = tmp_path / "out" / "here"
    folder.mkdir(parents=True)
    written = published.save(str(folder))
    assert written == str(folder / f"{safe_name(name)}.yml") and (folder / f"{safe_name(name)}.yml").is_file()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["here"]


def _pipeline_named(ws, project, name):
    project("src/train.py", "print('ran')\n")
    return Pipeline(ws, [PythonScriptStep("train.py", name="train", source_directory=str(ws.root / "src"))]).publish(
        name
    )


def test_a_file_added_with_an_older_modification_time_fires_its_datastore_schedule(ws, project, history):
    """A file is "added after the schedule was made" when it came into the folder after, not when its
    bytes were written: a copy keeping its times (cp -p, rsync -a, shutil.copy2) of yesterday's file, or
    a file written aside before the schedule and moved in after (docs/publishing.md's way to upload),
    was taken for one there before, by its modification time, and never fired. Its ctime says when it
    came (a copy's, a rename's); a file there before the schedule still does not fire."""
    import os
    import shutil
    import time

    from localpipe.client.schedules import Schedule, ScheduleRunner

    folder = ws.state_dir / "datastores" / "workspaceblobstore" / "incoming"
    folder.mkdir(parents=True)
    (folder / "there-before.csv").write_text("old")
    yesterday = ws.root / "yesterday.csv"
    yesterday.write_text("a,b\n")
    os.utime(yesterday, (time.time() - 86400, time.time() - 86400))
    aside = ws.root / "aside.csv"
    aside.write_text("written before the schedule\n")
    os.utime(aside, (time.time() - 60, time.time() - 60))  # and still since
    schedule = Schedule.create(ws, "uploads", _published(ws, project).id, "e", datastore=ws.get_default_datastore(),
                               path_on_datastore="incoming")  # fmt: skip
    assert os.stat(aside).st_ctime < history.publishing.schedule(schedule.id)["created_at"]
    shutil.copy2(yesterday, folder / "copied.csv")
    os.replace(aside, folder / "moved.csv")
    runner = ScheduleRunner(ws)
    runner.scan(schedule.id)
    assert sorted(f["key"].split(":")[1] for f in history.publishing.fires(schedule.id)) == ["copied.csv", "moved.csv"]
    assert len(runner.started_runs) == 2


def test_a_schedule_disabled_while_its_fire_plans_starts_no_run(ws, project, history, monkeypatch):
    """As a pipeline disabled during a submission: ``schedule.disable()`` returning while a runner
    planned the schedule's fire was followed by the fire's run. The fire is decided without a run."""
    import localpipe.engine.submit as submit
    from localpipe.client.schedules import Schedule, ScheduleRecurrence, ScheduleRunner

    schedule = Schedule.create(ws, "now", _published(ws, project).id, "e", recurrence=ScheduleRecurrence("Day", 1))
    planned = submit.plan

    def disabled_meanwhile(*args, **kwargs):
        Schedule.get(ws, schedule.id).disable()  # another process's handle, say
        return planned(*args, **kwargs)

    monkeypatch.setattr(submit, "plan", disabled_meanwhile)
    runner = ScheduleRunner(ws)
    runner.start()
    assert runner.started_runs == [] and history.runs.list() == []
    [fire] = history.publishing.fires(schedule.id)
    assert fire["run_id"] == 0  # decided: no run
    assert runner.errors == [
        f'schedule "now" could not start its run ({fire["key"]}): schedule "now" ({schedule.id}) was disabled as '
        "it fired: enable it to fire again"
    ]


def test_a_draft_refuses_a_continue_on_step_failure_that_is_no_boolean(ws, project, history):
    """A draft kept ``continue_on_step_failure="no"`` (create and update), which its submit_run and
    publish then refused (or, before, read as true): refused where it is given, nothing recorded."""
    from localpipe.client.drafts import PipelineDraft

    project("src/train.py", "print('ran')\n")
    pipeline = Pipeline(ws, [PythonScriptStep("train.py", name="train", source_directory=str(ws.root / "src"))])
    with pytest.raises(UserErrorException, match="^continue_on_step_failure 'no' is not True or False"):
        PipelineDraft.create(ws, pipeline, name="d", experiment_name="e", continue_on_step_failure="no")
    assert PipelineDraft.list(ws) == []
    draft = PipelineDraft.create(ws, pipeline, name="d", experiment_name="e")
    with pytest.raises(UserErrorException, match="^continue_on_step_failure 'no' is not True or False"):
        draft.update(continue_on_step_failure="no")
    assert history.drafts.draft(draft.id)["continue_on_step_failure"] is None


def test_a_monthly_fire_missed_long_ago_is_still_caught_up():
    """latest_due looked back two periods, taking every period to hold a fire: a Month recurrence on
    the 31st every 2nd month from August fires in August, October and December, then not until the
    next August (February, April and June have no 31st). A runner started in July, after the December
    fire was missed, ran no catch-up (docs/publishing.md: one run, for the latest fire missed)."""
    from localpipe.plan.recurrence import latest_due

    recurrence = {"frequency": "Month", "interval": 2, "start_time": "2025-08-31T09:00:00", "time_zone": "UTC",
                  "hours": None, "minutes": None, "week_days": None}  # fmt: skip
    october = _at("UTC", 2025, 10, 31, 9)
    assert latest_due(recurrence, _at("UTC", 2025, 8, 1), october, _at("UTC", 2026, 7, 15)) == _at(
        "UTC", 2025, 12, 31, 9
    )
    leap_day = {**recurrence, "interval": 12, "start_time": "2028-02-29T09:00:00"}  # every 4 years, 2100 none
    assert latest_due(leap_day, _at("UTC", 2028, 1, 1), _at("UTC", 2028, 1, 1), _at("UTC", 2031, 5, 1)) == _at(
        "UTC", 2028, 2, 29, 9
    )


def test_a_schedule_whose_datastore_was_unregistered_does_not_stop_the_others(ws, project, history, tmp_path):
    """A datastore schedule whose datastore was unregistered since (``Datastore.unregister()``) raised
    TypeError ('cannot unpack non-iterable NoneType object') out of the schedule loop's thread: `localpipe
    schedules run` ended with a traceback, and `localpipe serve` went on serving with no schedule firing
    again. It is named in one line, once, and the others fire."""
    from localpipe import Datastore
    from localpipe.client.schedules import Schedule, ScheduleRecurrence, ScheduleRunner

    from .conftest import schedule_loop, wait_for

    published = _published(ws, project)
    (tmp_path / "drop").mkdir()
    drop = Datastore.register_local(ws, "drop", str(tmp_path / "drop"))
    Schedule.create(ws, "gone", published.id, "e", datastore="drop")
    drop.unregister()
    good = Schedule.create(ws, "good", published.id, "e", recurrence=ScheduleRecurrence("Minute", 1))
    said: list[str] = []
    runner = ScheduleRunner(ws)
    with schedule_loop(runner, said):
        wait_for(lambda: runner.started_runs, what="the good schedule to fire")
        wait_for(lambda: len(said) >= 2, what="the broken one named")
    assert [f["run_id"] for f in history.publishing.fires(good.id)] == runner.started_runs
    line = (
        'schedule "gone" cannot be fired: datastore "drop" is not registered (unregistered since the schedule was made)'
    )
    assert [said for said in said if "gone" in said] == [line + ": register it again, or disable the schedule"]
