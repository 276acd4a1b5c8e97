"""Schedules of published pipelines (Azure ML's ``Schedule``, ``ScheduleRecurrence``, ``TimeZone``)
and the engine that fires them (docs/publishing.md).

A schedule is a row of history.db; nothing fires it until a process runs a ``ScheduleRunner``
(`localpipe schedules run`, or `localpipe serve`). Every fire is decided once across processes:
its key (``at:<due time>`` for a recurrence, ``file:<path>:<mtime>:<size>`` for a datastore
schedule) is claimed in history.db, and the run it starts is recorded in the transaction that
notes the run on the claim. A process killed between the claim and that transaction leaves a
claim without a run, which the next runner (its holder being dead) takes over: the fire happens
once. Fires missed while no runner ran collapse to one run per schedule, the latest, when a
runner starts (and likewise when a runner's clock jumps past several fires at once).
"""

from __future__ import annotations

import os
import re
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from enum import Enum

from localpipe.client.publishing import check_continue_on_step_failure, check_name, known_parameters
from localpipe.errors import NotFoundError, PipelineYamlError, UsageError, UserErrorException
from localpipe.faults import fault_point
from localpipe.plan.recurrence import (
    FREQUENCIES,
    START_TIME_FORMAT,
    WEEK_DAYS,
    WINDOWS_ZONES,
    anchor,
    fires,
    latest_due,
)

ACTIVE, DISABLED = "Active", "Disabled"
# The keys Schedule.load_yaml reads, the SDK's (_yaml_keys.py)
SCHEDULE_KEYS = ("description", "pipeline_parameters", "wait_for_provisioning", "wait_timeout", "datastore_name",
                 "polling_interval", "data_path_parameter_name", "continue_on_step_failure", "path_on_datastore",
                 "recurrence")  # fmt: skip
RECURRENCE_KEYS = ("frequency", "interval", "start_time", "time_zone", "hours", "minutes", "time_of_day", "week_days")
SCHEDULE_PROPERTY = "azureml.pipelinescheduleid"  # on each run a schedule starts
NO_RUN = 0  # the run id noted on a fire that could not start its run (no run has id 0)
# A file changed this recently may still be being written (its name appears before its bytes):
# a datastore schedule fires for it once it has been still that long, not for each part.
SETTLING_SECONDS = 0.5

TimeZone = Enum("TimeZone", {re.sub(r"[^A-Za-z0-9]", "", name.replace("UTC-", "UTC").replace("+", "")):
                             name for name in WINDOWS_ZONES})  # fmt: skip
TimeZone.__doc__ = (
    "Azure's time zones of a recurrence's ``start_time`` (Windows names: ``TimeZone.PacificStandardTime``)."
)


def time_zone_named(name: str) -> TimeZone:
    """Azure's time zone ``name`` ("Pacific Standard Time"); a ValueError saying which names are."""
    try:
        return TimeZone(name)
    except ValueError:
        raise ValueError(
            f'time_zone "{name}" is not one of Azure\'s time zones: use a Windows name such as "UTC" or '
            '"Pacific Standard Time"'
        ) from None


class ScheduleRecurrence:
    """How often a schedule fires (``azureml.pipeline.core.ScheduleRecurrence``)."""

    def __init__(self, frequency, interval, start_time=None, time_zone=None, hours=None, minutes=None,
                 week_days=None, time_of_day=None):  # fmt: skip
        self.frequency = frequency
        self.interval = interval
        self.start_time = None
        if start_time is not None:
            if isinstance(start_time, datetime):
                if start_time.tzinfo is not None:
                    raise ValueError("Can not specify tzinfo for start_time, use time_zone instead.")
                self.start_time = start_time.strftime(START_TIME_FORMAT)
            else:
                self.start_time = start_time
        # A start time without a zone is UTC, as the SDK's ScheduleRecurrence sets it (1.62)
        self.time_zone = time_zone if time_zone is not None or self.start_time is None else TimeZone.UTC
        self.hours = hours
        self.minutes = minutes
        if time_of_day is not None and (hours is not None or minutes is not None):
            raise ValueError("Can not specify time_of_day and hours or minutes.")
        if time_of_day is not None:
            if not isinstance(time_of_day, str) or re.match(r"[0-9]{1,2}:[0-9]{2}$", time_of_day) is None:
                raise ValueError("time_of_day should be in the format hh:mm.")
            hour, minute = (int(part) for part in time_of_day.split(":"))
            if not 0 <= hour <= 23:
                raise ValueError("Time of day hour value must be between 0 and 23.")
            if not 0 <= minute <= 59:
                raise ValueError("Time of day minute value must be between 0 and 59.")
            self.hours, self.minutes = [hour], [minute]
        self.week_days = week_days

    def validate(self) -> None:
        """Azure's rules, each a one-line ValueError (its own words), and the start time's format."""
        if self.frequency not in FREQUENCIES:
            raise ValueError("Invalid value for frequency, only one of Minute, Hour, Day, Week, or Month accepted")
        if not isinstance(self.interval, int) or isinstance(self.interval, bool) or self.interval < 1:
            raise ValueError("Interval must be an integer greater than 0.")
        if self.frequency not in ("Day", "Week") and self.hours is not None:
            raise ValueError("Can only specify hours if frequency is Week or Day.")
        if self.frequency not in ("Day", "Week") and self.minutes is not None:
            raise ValueError("Can only specify minutes if frequency is Week or Day.")
        if self.frequency != "Week" and self.week_days is not None:
            raise ValueError("Can only specify week days if frequency is Week.")
        for values, what in ((self.hours, "Hours"), (self.minutes, "Minutes"), (self.week_days, "Week days")):
            if values is not None and not isinstance(values, (list, tuple)):  # 25 or "Friday" (a YAML's)
                raise ValueError(f"{what} must be a list: write [{values!r}]")
        if any(not isinstance(h, int) or not 0 <= h <= 23 for h in self.hours or []):
            raise ValueError("Hours must be between 0 and 23.")
        if any(not isinstance(m, int) or not 0 <= m <= 59 for m in self.minutes or []):
            raise ValueError("Minutes must be between 0 and 59.")
        if any(day not in WEEK_DAYS for day in self.week_days or []):
            raise ValueError(
                "Week days must be a list of str, accepted values: Monday, Tuesday, Wednesday, "
                "Thursday, Friday, Saturday, Sunday."
            )
        if self.time_zone is not None and not isinstance(self.time_zone, TimeZone):
            raise ValueError("Time zone is not a valid TimeZone enum.")
        if self.start_time is not None:
            try:
                datetime.strptime(self.start_time, START_TIME_FORMAT)
            except (TypeError, ValueError):
                raise ValueError(
                    f"start_time {self.start_time!r} is not a datetime nor a string YYYY-MM-DDThh:mm:ss"
                ) from None
        self._check_fires()

    def _check_fires(self) -> None:
        """Its next two fires are times Python counts (years 1 to 9999): else every runner would say,
        at every start, that it cannot be fired (year 1 in Tonga is in year 0 in UTC)."""
        data, now = self.to_dict(), time.time()
        shown = f"start_time {self.start_time!r}"
        try:
            anchor(data, now)
            shown = f"interval {self.interval!r}"
            ahead = fires(data, now, now)
            next(ahead), next(ahead)
        except (OverflowError, ValueError):
            raise ValueError(
                f"{shown} gives no time to fire at within the years 1 to 9999 (time zone "
                f"{data['time_zone'] or 'UTC'}): pass a nearer one"
            ) from None

    def to_dict(self) -> dict:
        """Plain data, as stored (``plan.recurrence`` reads it)."""
        return {
            "frequency": self.frequency,
            "interval": self.interval,
            "start_time": self.start_time,
            "time_zone": self.time_zone.value if self.time_zone is not None else None,
            "hours": self.hours,
            "minutes": self.minutes,
            "week_days": self.week_days,
        }

    @classmethod
    def _from_dict(cls, data: dict) -> ScheduleRecurrence:
        zone = TimeZone(data["time_zone"]) if data.get("time_zone") else None
        return cls(data["frequency"], data["interval"], data.get("start_time"), zone, data.get("hours"),
                   data.get("minutes"), data.get("week_days"))  # fmt: skip

    def __repr__(self) -> str:
        shown = ", ".join(f"{k}={v!r}" for k, v in self.to_dict().items() if v is not None)
        return f"ScheduleRecurrence({shown})"


def _history(workspace):
    from localpipe.client.workspace import history_of

    return history_of(workspace)


class Schedule:
    """When a published pipeline (or an endpoint's default version) runs: a recurrence, or files
    added to or changed in a local datastore's folder (``azureml.pipeline.core.Schedule``)."""

    def __init__(self, workspace, id, name, description, pipeline_id, status, recurrence, datastore_name,
                 polling_interval, data_path_parameter_name, continue_on_step_failure, path_on_datastore,
                 _schedule_provider=None, pipeline_endpoint_id=None):  # fmt: skip
        self._workspace = workspace
        self._id = id
        self._name = name
        self._description = description
        self._pipeline_id = pipeline_id
        self._status = status
        self._recurrence = recurrence
        self._datastore_name = datastore_name
        self._polling_interval = polling_interval
        self._data_path_parameter_name = data_path_parameter_name
        self._continue_on_step_failure = continue_on_step_failure
        self._path_on_datastore = path_on_datastore
        self._pipeline_endpoint_id = pipeline_endpoint_id

    @classmethod
    def _from_record(cls, workspace, record: dict) -> Schedule:
        recurrence = ScheduleRecurrence._from_dict(record["recurrence"]) if record["recurrence"] else None
        return cls(workspace, record["schedule_id"], record["name"], record["description"], record["pipeline_id"],
                   record["status"], recurrence, record["datastore"], record["polling_interval"],
                   record["data_path_parameter_name"], record["continue_on_step_failure"],
                   record["path_on_datastore"], pipeline_endpoint_id=record["pipeline_endpoint_id"])  # fmt: skip

    id = property(lambda self: self._id, doc="Its id (a GUID).")
    name = property(lambda self: self._name, doc="Its name (names need not be unique).")
    description = property(lambda self: self._description, doc="The description given, or None.")
    pipeline_id = property(
        lambda self: self._pipeline_id, doc="The published pipeline it runs; None for an endpoint's schedule."
    )
    pipeline_endpoint_id = property(
        lambda self: self._pipeline_endpoint_id,
        doc="The endpoint whose default version it runs; None for a published pipeline's schedule.",
    )
    status = property(lambda self: self._status, doc="Active or Disabled.")
    recurrence = property(
        lambda self: self._recurrence, doc="When it fires (a ScheduleRecurrence); None for a datastore schedule."
    )
    datastore_name = property(
        lambda self: self._datastore_name,
        doc="The datastore it watches, a folder of this machine (Azure's is a blob container); None for a "
        "recurring schedule.",
    )
    polling_interval = property(lambda self: self._polling_interval, doc="Minutes between scans of the folder.")
    data_path_parameter_name = property(
        lambda self: self._data_path_parameter_name,
        doc="The DataPath parameter each run gets as the file that fired it, or None.",
    )
    continue_on_step_failure = property(
        lambda self: self._continue_on_step_failure,
        doc="Overrides the published pipeline's (or the endpoint's version's) setting for the runs it starts "
        "(None keeps it).",
    )
    path_on_datastore = property(
        lambda self: self._path_on_datastore,
        doc="The folder of the datastore it watches (None: the datastore's root); files in its sub-folders "
        "do not fire it.",
    )

    @staticmethod
    def create(workspace, name, pipeline_id, experiment_name, recurrence=None, description=None,
               pipeline_parameters=None, wait_for_provisioning=False, wait_timeout=3600, datastore=None,
               polling_interval=5, data_path_parameter_name=None, continue_on_step_failure=None,
               path_on_datastore=None, _workflow_provider=None, _service_endpoint=None) -> Schedule:  # fmt: skip
        """A schedule of the published pipeline ``pipeline_id``: ``recurrence`` or ``datastore``.
        Nothing is recorded when a rule is broken (Azure's ValueError) or the pipeline is disabled."""
        record = _history(workspace).publishing.published(pipeline_id)
        if record["status"] != ACTIVE:
            raise UserErrorException(
                f'published pipeline "{record["name"]}" ({pipeline_id}) is disabled: enable it before scheduling it'
            )
        return _create(workspace, name, experiment_name, recurrence, description, pipeline_parameters, datastore,
                       polling_interval, data_path_parameter_name, continue_on_step_failure, path_on_datastore,
                       published_id=pipeline_id)  # fmt: skip

    @staticmethod
    def create_for_pipeline_endpoint(workspace, name, pipeline_endpoint_id, experiment_name, recurrence=None,
                                     description=None, pipeline_parameters=None, wait_for_provisioning=False,
                                     wait_timeout=3600, datastore=None, polling_interval=5,
                                     data_path_parameter_name=None, continue_on_step_failure=None,
                                     path_on_datastore=None, _workflow_provider=None,
                                     _service_endpoint=None) -> Schedule:  # fmt: skip
        """A schedule of the endpoint ``pipeline_endpoint_id``: each fire runs its default version then."""
        endpoint = _history(workspace).publishing.endpoint(pipeline_endpoint_id)
        if endpoint["status"] != ACTIVE:
            raise UserErrorException(
                f'pipeline endpoint "{endpoint["name"]}" is disabled: enable it before scheduling it'
            )
        return _create(workspace, name, experiment_name, recurrence, description, pipeline_parameters, datastore,
                       polling_interval, data_path_parameter_name, continue_on_step_failure, path_on_datastore,
                       endpoint_id=pipeline_endpoint_id)  # fmt: skip

    @staticmethod
    def get(workspace, id, _workflow_provider=None, _service_endpoint=None) -> Schedule:
        """The schedule ``id``; NotFoundError when the workspace has none."""
        return Schedule._from_record(workspace, _history(workspace).publishing.schedule(id))

    @staticmethod
    def list(workspace, active_only=True, pipeline_id=None, pipeline_endpoint_id=None, _workflow_provider=None,
             _service_endpoint=None) -> list[Schedule]:  # fmt: skip
        """The workspace's schedules, oldest first: only the Active ones unless ``active_only`` is False, only
        those of ``pipeline_id`` or ``pipeline_endpoint_id`` when given. Unlike Azure's, ``active_only`` applies
        with those too (Azure's then lists disabled schedules as well)."""
        records = _history(workspace).publishing.schedules(active_only, pipeline_id, pipeline_endpoint_id)
        return [Schedule._from_record(workspace, r) for r in records]

    @staticmethod
    def get_all(workspace, active_only=True, pipeline_id=None, pipeline_endpoint_id=None, _workflow_provider=None,
                _service_endpoint=None) -> list[Schedule]:  # fmt: skip
        """(Deprecated in the SDK.) ``Schedule.list``."""
        return Schedule.list(workspace, active_only, pipeline_id, pipeline_endpoint_id)

    @staticmethod
    def get_schedules_for_pipeline_id(workspace, pipeline_id, _workflow_provider=None, _service_endpoint=None):
        """The schedules of the published pipeline ``pipeline_id``, disabled ones included."""
        return Schedule.list(workspace, active_only=False, pipeline_id=pipeline_id)

    @staticmethod
    def get_schedules_for_pipeline_endpoint_id(workspace, pipeline_endpoint_id, _workflow_provider=None,
                                               _service_endpoint=None):  # fmt: skip
        """The schedules of the endpoint ``pipeline_endpoint_id``, disabled ones included."""
        return Schedule.list(workspace, active_only=False, pipeline_endpoint_id=pipeline_endpoint_id)

    def enable(self, wait_for_provisioning=False, wait_timeout=3600) -> None:
        """Make it Active again. At a runner's next tick a recurring schedule runs only the latest of the fires
        due while it was disabled; a datastore schedule fires for each file added or changed meanwhile. Nothing
        is provisioned here: ``wait_for_provisioning`` and ``wait_timeout`` change nothing."""
        self.update(status=ACTIVE)

    def disable(self, wait_for_provisioning=False, wait_timeout=3600) -> None:
        """Disable it: no runner fires it until it is enabled (``enable`` says what it catches up then)."""
        self.update(status=DISABLED)

    def update(self, name=None, description=None, recurrence=None, pipeline_parameters=None, status=None,
               wait_for_provisioning=False, wait_timeout=3600, datastore=None, polling_interval=None,
               data_path_parameter_name=None, continue_on_step_failure=None, path_on_datastore=None):  # fmt: skip
        """Change what is given (None leaves a field as it is), with Azure's rules."""
        changes = {}
        if recurrence is not None:
            if self._recurrence is None:
                raise ValueError("Can not specify a recurrence for a Datastore schedule.")
            recurrence.validate()
            changes["recurrence"] = recurrence.to_dict()
        if datastore is not None:
            if self._recurrence is not None:
                raise ValueError("Can not specify a Datastore for a Recurrence schedule.")
            changes["datastore"] = _local_datastore(self._workspace, datastore)
        if polling_interval is not None:
            _check_polling_interval(polling_interval)
        if name is not None:
            check_name(name, "schedule")
        if status is not None and status not in (ACTIVE, DISABLED):
            raise ValueError("Status must be either Active or Disabled")
        given = {"name": name, "description": description, "pipeline_parameters": pipeline_parameters,
                 "status": status, "polling_interval": polling_interval,
                 "data_path_parameter_name": data_path_parameter_name,
                 "continue_on_step_failure": continue_on_step_failure,
                 "path_on_datastore": path_on_datastore}  # fmt: skip
        _check_path_on_datastore(path_on_datastore)
        _check_parameters(pipeline_parameters)
        _check_known(self._workspace, pipeline_parameters, data_path_parameter_name, self._pipeline_id,
                     self._pipeline_endpoint_id)  # fmt: skip
        check_continue_on_step_failure(continue_on_step_failure)
        changes.update({key: value for key, value in given.items() if value is not None})
        _history(self._workspace).publishing.update_schedule(self._id, changes, at=time.time())
        self.__dict__.update(Schedule.get(self._workspace, self._id).__dict__)

    @staticmethod
    def load_yaml(workspace, filename, _workflow_provider=None, _service_endpoint=None) -> dict:
        """The schedule settings of the YAML file ``filename`` (a ``Schedule:`` section, the SDK's two
        forms: a ``recurrence`` or a ``datastore_name`` to watch), as the dict ``Schedule.create`` takes
        them from: ``recurrence`` a ScheduleRecurrence, ``datastore_name`` a Datastore, the rest as
        written (docs/pipeline-yaml.md). A file that is not one raises PipelineYamlError (a ValueError)."""
        from localpipe.sdk.data import Datastore
        from localpipe.sdk.pipeline_yaml import read

        where = os.fspath(filename)
        document = read(where)
        if not isinstance(document, dict) or not isinstance(document.get("Schedule"), dict):
            raise PipelineYamlError(
                f'{where}: Schedule Yaml file must have a "Schedule:" section: put description, recurrence or '
                "datastore_name, ... under a top-level Schedule:"
            )
        section = document["Schedule"]
        found = {key: section[key] for key in SCHEDULE_KEYS if key in section}
        for key, value in found.items():
            if value == "None":  # the SDK's own sample writes it for "none"
                found[key] = None
        if found.get("datastore_name") is not None:
            found["datastore_name"] = Datastore(workspace, found["datastore_name"])
        if found.get("recurrence") is not None:
            recurrence = found["recurrence"]
            if not isinstance(recurrence, dict) or "frequency" not in recurrence or "interval" not in recurrence:
                raise PipelineYamlError(
                    f"{where}: recurrence needs frequency and interval: add them (frequency: Day, interval: 1)"
                )
            fields = {key: recurrence.get(key) for key in RECURRENCE_KEYS}
            written = fields["time_of_day"]
            if isinstance(written, int) and not isinstance(written, bool):  # YAML 1.1: 10:30 is 630, 09:30 text
                shown = f"{written // 60}:{written % 60:02d}"
                raise PipelineYamlError(
                    f"{where}: time_of_day {written} is a number (YAML reads {shown} unquoted as {written} minutes, "
                    f"in base 60): quote it, time_of_day: '{shown}'"
                )
            if fields["time_zone"] is not None:
                try:
                    fields["time_zone"] = time_zone_named(fields["time_zone"])
                except ValueError as exc:
                    raise PipelineYamlError(f"{where}: {exc}") from None
            found["recurrence"] = ScheduleRecurrence(**fields)
        return found

    def get_pipeline_runs(self) -> list:
        """The runs it started, newest first."""
        history = _history(self._workspace)
        return [self._workspace.service.get_run(r) for r in history.publishing.runs_with_property(
            SCHEDULE_PROPERTY, self._id)]  # fmt: skip

    def get_last_pipeline_run(self):
        """The run it started last, or None."""
        runs = self.get_pipeline_runs()
        return runs[0] if runs else None

    def __repr__(self) -> str:
        what = f"Recurrence: {self._recurrence!r}" if self._recurrence else f"Datastore: {self._datastore_name}"
        return f"Schedule(Name: {self._name}, Id: {self._id}, Status: {self._status}, {what})"


def _check_polling_interval(minutes) -> None:
    """A whole number of minutes that the database keeps (Azure's service: a 32-bit int)."""
    if isinstance(minutes, bool) or not isinstance(minutes, int) or not 1 <= minutes <= 2**31 - 1:
        raise ValueError(
            f"polling_interval {minutes!r} is not a number of minutes: pass a whole number from 1 to 2147483647"
        )


def _check_path_on_datastore(path: str | None) -> None:
    """A folder below the datastore's: never an absolute path or one that climbs out with ``..``."""
    if path is not None and (os.path.isabs(path) or ".." in path.replace("\\", "/").split("/")):
        raise UserErrorException(
            f'path_on_datastore "{path}" leaves its datastore: give a folder inside it, like "incoming"'
        )


def _check_parameters(parameters: dict | None) -> None:
    """A schedule keeps its parameters' values as they are given: text, numbers and booleans."""
    for name, value in (parameters or {}).items():
        if value is not None and not isinstance(value, (str, int, float, bool)):
            raise UserErrorException(
                f'pipeline_parameters "{name}" is a {type(value).__name__}, which a schedule keeps no form of (its '
                "parameters are strings, numbers and booleans): publish the pipeline with it as the parameter's default"
            )


def _check_known(workspace, parameters: dict | None, data_path_name: str | None, published_id: str | None,
                 endpoint_id: str | None) -> None:  # fmt: skip
    """Each parameter given, and the data path parameter, is one of the pipeline's (an endpoint's default
    version's): else every fire would fail, hours later, where a submission is refused at once."""
    publishing = _history(workspace).publishing
    if published_id is None:
        endpoint = publishing.endpoint(endpoint_id)
        published_id = endpoint["versions"][endpoint["default_version"]]
    from localpipe.plan.graph import coerce_parameter

    record = publishing.published(published_id)
    label = f'published pipeline "{record["name"]}"'
    names = {**(parameters or {}), **({data_path_name: None} if data_path_name else {})}
    known_parameters(names, record["graph"], label)
    data_paths = sorted(k for k, v in record["graph"]["parameters"].items() if isinstance(v, dict) and "datapath" in v)
    if data_path_name and data_path_name not in data_paths:  # else each file's fire is refused
        raise UserErrorException(
            f'data_path_parameter_name "{data_path_name}" is not a DataPath parameter of {label} (its DataPath '
            f"parameters: {', '.join(data_paths) or 'none'}): name one, which each fire sets to the file's DataPath"
        )
    for name, value in (parameters or {}).items():  # as a submission checks them: else every fire is refused
        default = record["graph"]["parameters"][name]
        if isinstance(default, dict):  # a data parameter: a string is a path in its datastore
            continue
        try:
            coerce_parameter(value, default)
        except ValueError as exc:
            raise UserErrorException(
                f'parameter "{name}" of {label}: {exc} (each fire of the schedule would be refused)'
            ) from None


def _create(workspace, name, experiment_name, recurrence, description, pipeline_parameters, datastore,
            polling_interval, data_path_parameter_name, continue_on_step_failure, path_on_datastore,
            published_id=None, endpoint_id=None) -> Schedule:  # fmt: skip
    if recurrence is not None:
        if datastore is not None:
            raise ValueError("Can not specify both a Recurrence and a Datastore")
        if data_path_parameter_name is not None:
            raise ValueError("Data Path parameter name can only be specified for Datastore schedules.")
        if path_on_datastore is not None:
            raise ValueError("Path on datastore parameter can only be specified for Datastore schedules.")
        recurrence.validate()
    elif datastore is None:
        raise ValueError("A schedule needs a recurrence= (a ScheduleRecurrence) or a datastore= to watch")
    check_name(name, "schedule")
    if not isinstance(experiment_name, str) or not experiment_name.strip():
        raise UserErrorException(f"experiment_name {experiment_name!r} is not a name: pass the experiment to run in")
    _check_polling_interval(polling_interval)
    _check_path_on_datastore(path_on_datastore)
    _check_parameters(pipeline_parameters)
    _check_known(workspace, pipeline_parameters, data_path_parameter_name, published_id, endpoint_id)
    check_continue_on_step_failure(continue_on_step_failure)
    row = {
        "schedule_id": str(uuid.uuid4()),
        "name": name,
        "description": description,
        "experiment_name": experiment_name,
        "recurrence": recurrence.to_dict() if recurrence is not None else None,
        "pipeline_parameters": dict(pipeline_parameters or {}),
        "continue_on_step_failure": continue_on_step_failure,
        "datastore": _local_datastore(workspace, datastore) if datastore is not None else None,
        "path_on_datastore": path_on_datastore,
        "polling_interval": polling_interval,
        "data_path_parameter_name": data_path_parameter_name,
    }
    _history(workspace).publishing.create_schedule(row, published_id, endpoint_id)
    return Schedule.get(workspace, row["schedule_id"])


def _local_datastore(workspace, datastore) -> str:
    """The datastore's name, when it is a folder of this machine (a datastore schedule watches it)."""
    name = getattr(datastore, "name", datastore)
    location = workspace.service.datastore_location(name)
    if location is None:
        raise UserErrorException(f'datastore "{name}" is not registered: see `localpipe datastores`')
    if location[1] is not None:
        raise UserErrorException(
            f'datastore "{name}" is not local (it mirrors {location[1]}): a datastore schedule watches a folder of '
            "this machine: use a local one (workspaceblobstore, or Datastore.register_local)"
        )
    return name


# -- the firing engine ----------------------------------------------------------------------------


class ScheduleRunner:
    """Fires a workspace's active schedules: ``start()`` once (the one catch-up per schedule, and
    fires whose claimer died), then ``tick()`` whenever the clock may have passed a fire or a
    watched folder changed. ``clock`` gives epoch seconds (tests give a fake one); ``pid`` and
    ``started`` identify this process on its claims."""

    def __init__(self, workspace, clock: Callable[[], float] = time.time, pid: int | None = None,
                 started: float | None = None, max_runs: int | None = None):  # fmt: skip
        from localpipe.engine.resources import process_start

        self.workspace = workspace
        self.clock = clock
        self.pid = pid or os.getpid()
        self.started = started if started is not None else process_start(self.pid)
        self.history = _history(workspace)
        self._scanned: dict[str, float] = {}  # datastore schedule -> when its folder was last scanned
        self._unsettled: set[str] = set()  # datastore schedules with a file still changing: scanned at each tick
        self.started_runs: list[int] = []
        # A datastore schedule's runs not ended, at most (the files beyond wait for one to end): 10,000
        # files copied in at once would start 10,000 schedulers (35 MB each) together.
        self.max_runs = max_runs or _max_runs()
        self.errors: list[str] = []  # one line per fire that could not start (a disabled pipeline, say)
        self._said: set[str] = set()

    def start(self) -> None:
        """Finish fires claimed by a process that died before recording their run, start the runs a
        process recorded and died before starting, then catch up: for each recurring schedule, the
        latest fire missed since its last one (at most one run)."""
        from localpipe.engine.resources import process_alive
        from localpipe.engine.submit import run_in_background

        publishing = self.history.publishing
        for record in publishing.schedules():
            for fire in publishing.unstarted_fires(record["schedule_id"]):
                self._fire(record, fire["key"], fire["due"], self._data_path(record, fire["key"]))
            for run_id in publishing.adopt_unstarted_runs(record["schedule_id"], self.pid, self.started, process_alive):
                run_in_background(self.history, run_id)
                self.started_runs.append(run_id)
        self.tick()

    def tick(self) -> None:
        """Fire what is due now: each recurring schedule's latest fire not yet claimed, and each
        datastore schedule's added or changed files (scanned when due or told of a change)."""
        now = self.clock()
        for record in self.history.publishing.schedules():
            try:
                if record["recurrence"]:
                    self._tick_recurrence(record, now)
                elif (
                    record["schedule_id"] in self._unsettled
                    or self._scanned.get(record["schedule_id"], -1.0) + record["polling_interval"] * 60 <= now
                ):
                    self.scan(record["schedule_id"])
            except Exception as exc:  # noqa: BLE001  (one broken schedule must not stop the others)
                self.report_once(f'schedule "{record["name"]}" cannot be fired: {exc}')

    def report_once(self, line: str) -> bool:
        """Add ``line`` to ``errors`` unless it was said already (a broken schedule fails every tick);
        whether it was new."""
        if line in self._said:
            return False
        self._said.add(line)
        self.errors.append(line)
        return True

    def _tick_recurrence(self, record: dict, now: float) -> None:
        last = self.history.publishing.last_due(record["schedule_id"])
        after = last if last is not None else _first_reference(record)
        due = latest_due(record["recurrence"], record["created_at"], after, now)
        if due is not None:
            self._fire(record, f"at:{due:.0f}", due, None)

    def scan(self, schedule_id: str) -> None:
        """Fire the datastore schedule for each file of its folder (not its sub-folders) added or
        changed since the schedule was created and not fired for yet, once it has stopped changing
        (``SETTLING_SECONDS``; until then the schedule is scanned again at each tick), while fewer
        than ``max_runs`` of its runs are unfinished (the rest at a later tick, in name order)."""
        record = self.history.publishing.schedule(schedule_id)
        self._scanned[schedule_id] = self.clock()
        self._unsettled.discard(schedule_id)
        if record["status"] != ACTIVE:
            return
        now = time.time()  # a file's own clock: the schedule's may be a test's
        # One read, not a claim (a write transaction) per file fired for already: a folder keeps them
        fired = {f["key"] for f in self.history.publishing.fires(schedule_id) if f["run_id"] is not None}
        room = self.max_runs - self.history.publishing.unfinished_runs(schedule_id)
        for relative, stat in _files(self.watched_folder(record)):
            # There before the schedule: not an addition. Its ctime says when it came (a copy keeping
            # its times, cp -p or rsync -a, or a file moved in has an older mtime), or was last changed.
            if max(stat.st_mtime, stat.st_ctime) < record["created_at"]:
                continue
            if 0 <= now - stat.st_mtime < SETTLING_SECONDS:  # one dated ahead (a skewed clock's) can tell nothing
                self._unsettled.add(schedule_id)
                continue
            key = f"file:{relative}:{stat.st_mtime_ns}:{stat.st_size}"
            if key in fired:
                continue
            if room <= 0:
                self._unsettled.add(schedule_id)  # scanned again at each tick, until its runs make room
                break
            room -= self._fire(record, key, stat.st_mtime, self._data_path(record, key))

    def watched_folder(self, record: dict) -> str:
        """The folder the datastore schedule ``record`` watches; NotFoundError when its datastore was
        unregistered since."""
        location = self.workspace.service.datastore_location(record["datastore"])
        if location is None:
            raise NotFoundError(
                f'datastore "{record["datastore"]}" is not registered (unregistered since the schedule was made): '
                "register it again, or disable the schedule"
            )
        return os.path.join(location[0], record["path_on_datastore"] or "")

    def _data_path(self, record: dict, key: str):
        if not key.startswith("file:") or not record["data_path_parameter_name"]:
            return None
        from localpipe.sdk.data import DataPath, Datastore

        relative = key[len("file:") :].rsplit(":", 2)[0]
        path = "/".join(p for p in (record["path_on_datastore"] or "", relative) if p)
        return {record["data_path_parameter_name"]: DataPath(Datastore(self.workspace, record["datastore"]), path)}

    def _fire(self, record: dict, key: str, due: float, data_path: dict | None) -> bool:
        """Start the fire's run, unless another runner holds the fire or it has its run; whether this one did."""
        from localpipe.client.publishing import submit_endpoint, submit_published
        from localpipe.engine.resources import process_alive

        publishing = self.history.publishing
        fire_id = publishing.claim_fire(record["schedule_id"], key, due, self.pid, self.started, process_alive)
        if fire_id is None:
            return False  # another runner holds it, or it has its run
        fault_point("schedule-claimed")
        parameters = {**record["pipeline_parameters"], **(data_path or {})}
        properties = {SCHEDULE_PROPERTY: record["schedule_id"]}
        try:
            if record["pipeline_endpoint_id"]:
                run_id = submit_endpoint(self.workspace, record["pipeline_endpoint_id"], record["experiment_name"],
                                         parameters, None, properties, fire_id,
                                         continue_on_step_failure=record["continue_on_step_failure"])  # fmt: skip
            else:
                run_id = submit_published(self.workspace, publishing.published(record["pipeline_id"]),
                                          record["experiment_name"], parameters, record["continue_on_step_failure"],
                                          properties, fire_id)  # fmt: skip
        except Exception as exc:  # a fire that cannot start is reported, and the runner goes on
            self.errors.append(f'schedule "{record["name"]}" could not start its run ({key}): {exc}')
            publishing.fire_started(fire_id, NO_RUN)  # decided: not retried at every tick
            return False
        self.started_runs.append(run_id)
        return True


def _max_runs() -> int:
    """``LOCALPIPE_SCHEDULE_MAX_RUNS``, else the machine's CPUs."""
    text = os.environ.get("LOCALPIPE_SCHEDULE_MAX_RUNS", "").strip()
    if not text:
        return os.cpu_count() or 1
    if not text.isdigit() or int(text) < 1:
        raise UsageError(
            f'LOCALPIPE_SCHEDULE_MAX_RUNS="{text}" is not a number of runs of at least 1: set one like 4, '
            "or unset it for as many as the machine's CPUs"
        )
    return int(text)


def _first_reference(record: dict) -> float:
    """Fires are counted after this: just before the schedule's creation, so that a schedule without a
    start time fires at once, as Azure's does."""
    return record["created_at"] - 1e-3


def _files(folder: str) -> list[tuple[str, os.stat_result]]:
    """The files directly in ``folder`` (sub-folders are not watched, as on Azure), by name."""
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except FileNotFoundError:
        return []
    return [(e.name, e.stat()) for e in entries if e.is_file(follow_symlinks=False)]
