"""Commands for published pipelines, endpoints, drafts and schedules (docs/publishing.md)."""

from __future__ import annotations

import click

from localpipe.cli.common import clock, json_option, print_json, table, workspace
from localpipe.cli.run_cmds import param_option, parse_params, pipeline_file


@click.command()
@pipeline_file
@click.option("--name", required=True, help="The name it is published under.")
@click.option("--version", "version", default=None, help="A version label (free text).")
@click.option("--description", default=None, help="What it does.")
@click.option("--endpoint", default=None, help="Add it to this pipeline endpoint as its default (made when missing).")
@click.option("--continue-on-step-failure", is_flag=True, help="Its runs run every step not downstream of a failure.")
def publish(pipeline_file, name, version, description, endpoint, continue_on_step_failure) -> None:
    """Publish the pipeline built by PIPELINE_FILE: its code and the sources of its steps are frozen
    in the workspace, so later edits change nothing it runs.

    \b
    Example:
      localpipe publish examples/iris/pipeline.py --name iris --version 1 --endpoint iris
      localpipe submit-published iris --param max_iter=200
    """
    from localpipe.client.publishing import PipelineEndpoint
    from localpipe.engine.loader import load_file, naming_yaml
    from localpipe.errors import NotFoundError

    ws = workspace(create=True, near=pipeline_file)
    pipeline = load_file(pipeline_file, ws).pipeline
    with naming_yaml(pipeline_file):
        published = pipeline.publish(name, description, version, continue_on_step_failure)
    click.echo(f'published "{name}" as {published.id}')
    if endpoint:
        try:
            found = PipelineEndpoint.get(ws, name=endpoint)
        except NotFoundError:
            found = PipelineEndpoint.publish(ws, endpoint, description, published)
        else:
            found.add_default(published)
        click.echo(f'endpoint "{endpoint}" runs it as its default version {found.default_version}')
    click.echo(f"REST: POST {published.endpoint} (served by `localpipe serve`)")


@click.command()
@click.option("--all", "show_all", is_flag=True, help="Disabled ones too.")
@json_option
def published(show_all, as_json) -> None:
    """List the published pipelines.

    \b
    Example:
      localpipe published --json
    """
    from localpipe.client.publishing import published_endpoint

    found = workspace().service.history.publishing.published_list(active_only=not show_all)
    rows = [
        {
            "id": r["published_id"],
            "name": r["name"],
            "version": r["version"],
            "description": r["description"],
            "status": r["status"],
            "steps": len(r["graph"]["steps"]),
            "parameters": r["graph"]["parameters"],
            "published_at": r["created_at"],
            "endpoint": published_endpoint(r["published_id"]),
        }
        for r in found
    ]
    _listing(
        rows,
        as_json,
        "no published pipelines: publish one with `localpipe publish PIPELINE.py --name NAME`",
        {"ID": "id", "NAME": "name", "VERSION": "version", "STATUS": "status", "STEPS": "steps"},
    )


@click.command()
@click.option("--all", "show_all", is_flag=True, help="Disabled ones too.")
@json_option
def endpoints(show_all, as_json) -> None:
    """List the pipeline endpoints, with their versions.

    \b
    Example:
      localpipe endpoints --json
    """
    from localpipe.client.publishing import endpoint_url

    found = workspace().service.history.publishing.endpoints(active_only=not show_all)
    rows = [
        {
            "id": r["endpoint_id"],
            "name": r["name"],
            "description": r["description"],
            "status": r["status"],
            "default_version": r["default_version"],
            "versions": r["versions"],
            "endpoint": endpoint_url(r["endpoint_id"]),
        }
        for r in found
    ]
    _listing(
        rows,
        as_json,
        "no pipeline endpoints: make one with `localpipe publish PIPELINE.py --name N --endpoint E`",
        {"ID": "id", "NAME": "name", "STATUS": "status", "DEFAULT": "default_version", "VERSIONS": "versions"},
    )


@click.command()
@json_option
def drafts(as_json) -> None:
    """List the pipeline drafts (PipelineDraft.create): name, id, experiment, last update and the
    run last submitted from each.

    \b
    Example:
      localpipe drafts --json
    """
    rows = [
        {
            "id": r["draft_id"],
            "name": r["name"],
            "experiment": r["experiment_name"],
            "tags": r["tags"],
            "parameters": r["pipeline_parameters"],
            "updated": clock(r["updated_at"]),
            "last_run": r["last_submitted_run"],
        }
        for r in workspace().service.history.drafts.drafts()
    ]
    _listing(
        rows,
        as_json,
        "no pipeline drafts: make one with PipelineDraft.create(ws, pipeline, name=..., experiment_name=...)",
        {"NAME": "name", "ID": "id", "EXPERIMENT": "experiment", "UPDATED": "updated", "LAST RUN": "last_run"},
    )


@click.command()
@click.argument("name", required=False)
@json_option
def modules(name, as_json) -> None:
    """List the modules (Module.create): name, id, status, default version and how many versions;
    with NAME, that module's versions: version, id, status, script and description.

    \b
    Example:
      localpipe modules
      localpipe modules AddAndMultiply --json
    """
    from localpipe.errors import NotFoundError

    found = workspace().service.history.modules.modules()
    if name is None:
        rows = [
            {"name": m["name"], "id": m["module_id"], "status": m["status"], "default": m["default_version"],
             "versions": len(m["versions"]), "description": m["description"], "updated": clock(m["updated_at"])}
            for m in found
        ]  # fmt: skip
        empty = "no modules: make one with Module.create(ws, name, description)"
        columns = {"NAME": "name", "ID": "id", "STATUS": "status", "DEFAULT": "default", "VERSIONS": "versions"}
        _listing(rows, as_json, empty, columns)
        return
    module = next((m for m in found if m["name"] == name), None)
    if module is None:
        raise NotFoundError(f'no module is named "{name}": see `localpipe modules`')
    rows = [
        {"version": v["version"], "id": v["module_version_id"], "status": v["status"], "script": v["script_name"],
         "description": v["description"], "created": clock(v["created_at"])}
        for v in module["versions"]
    ]  # fmt: skip
    empty = f'module "{name}" has no versions: publish one with module.publish_python_script(...)'
    columns = {"VERSION": "version", "ID": "id", "STATUS": "status", "SCRIPT": "script", "DESCRIPTION": "description"}
    _listing(rows, as_json, empty, columns)


def _listing(rows: list[dict], as_json: bool, empty: str, columns: dict[str, str]) -> None:
    """``rows`` as JSON, or as a table of ``columns`` (header -> key; a dict cell shows its size)."""
    if as_json:
        print_json(rows)
    elif not rows:
        click.echo(empty)
    else:
        cells = [[len(r[k]) if isinstance(r[k], dict) else "" if r[k] is None else r[k] for k in columns.values()]
                 for r in rows]  # fmt: skip
        table(cells, list(columns))


@click.command("submit-published")
@click.argument("target", metavar="ID_OR_ENDPOINT")
@param_option
@click.option("--version", "version", default=None, help="The endpoint's version to run (default: its default).")
@click.option("-e", "--experiment", default=None, help="Experiment name (default: the pipeline's or endpoint's name).")
def submit_published(target, params, version, experiment) -> None:
    """Run a published pipeline (by id) or a pipeline endpoint (by id or name) in the background.

    \b
    Example:
      localpipe submit-published iris --param max_iter=200 --version 0
    """
    from localpipe.client.publishing import submit_endpoint, submit_published
    from localpipe.errors import NotFoundError, UsageError

    ws = workspace()
    publishing = ws.service.history.publishing
    parameters = parse_params(params)
    try:
        record = publishing.published(target)
    except NotFoundError:
        record = None
    if record is not None:
        if version is not None:
            raise UsageError(f"{target} is a published pipeline: --version picks a version of an endpoint")
        run_id = submit_published(ws, record, experiment or record["name"], parameters)
    else:
        endpoint = _endpoint(publishing, target)
        try:
            run_id = submit_endpoint(ws, endpoint["endpoint_id"], experiment or endpoint["name"], parameters, version)
        except ValueError as exc:  # the SDK's error for a version the endpoint does not have
            raise UsageError(str(exc)) from None
    click.echo(run_id)
    click.echo(f"run {run_id} goes on in the background: `localpipe logs {run_id} -f` follows it", err=True)


def _endpoint(publishing, target: str) -> dict:
    from localpipe.errors import NotFoundError

    try:
        return publishing.endpoint(endpoint_id=target)
    except NotFoundError:
        try:
            return publishing.endpoint(name=target)
        except NotFoundError:
            raise NotFoundError(
                f'"{target}" is neither a published pipeline nor a pipeline endpoint: see `localpipe published` '
                "and `localpipe endpoints`"
            ) from None


@click.group()
def schedule() -> None:
    """Create, list, enable, disable and show schedules of published pipelines; `localpipe schedules
    run` fires them.

    \b
    Example:
      localpipe schedule create iris --name nightly --experiment iris --frequency Day --time-of-day 02:00
      localpipe schedule list
    """


@schedule.command("create")
@click.argument("target", metavar="ID_OR_ENDPOINT")
@click.option("--name", required=True, help="The schedule's name.")
@click.option("-e", "--experiment", required=True, help="The experiment its runs go to.")
@click.option("--frequency", type=click.Choice(["Minute", "Hour", "Day", "Week", "Month"]), help="A recurrence.")
@click.option("--interval", type=int, default=1, show_default=True, help="Every INTERVAL frequency units.")
@click.option("--start-time", default=None, help="YYYY-MM-DDThh:mm:ss, local to --time-zone.")
@click.option("--time-zone", default=None, help='Azure\'s time zone name, e.g. "Pacific Standard Time" (default UTC).')
@click.option("--hours", default=None, help="Day or Week: hours of the day, e.g. 9,17.")
@click.option("--minutes", default=None, help="Day or Week: minutes of the hour, e.g. 0,30.")
@click.option("--week-days", default=None, help="Week: e.g. Monday,Thursday.")
@click.option("--time-of-day", default=None, help="Day or Week: hh:mm.")
@click.option("--datastore", default=None, help="Instead: fire on files added to this local datastore's folder.")
@click.option("--path-on-datastore", default=None, help="The folder watched inside the datastore.")
@click.option("--data-path-parameter", default=None, help="The DataPath parameter given the added file's path.")
@click.option("--polling-interval", type=int, default=5, show_default=True, help="Minutes between scans anyway.")
@click.option("--description", default=None)
@param_option
def schedule_create(
    target,
    name,
    experiment,
    frequency,
    interval,
    start_time,
    time_zone,
    hours,
    minutes,
    week_days,
    time_of_day,
    datastore,
    path_on_datastore,
    data_path_parameter,
    polling_interval,
    description,
    params,
) -> None:
    """Schedule a published pipeline (by id) or an endpoint (by id or name): a recurrence
    (--frequency) or a datastore's folder (--datastore).

    \b
    Example:
      localpipe schedule create iris --name weekly -e iris --frequency Week --week-days Monday --hours 9 --minutes 0
      localpipe schedule create iris --name on-upload -e iris --datastore workspaceblobstore --path-on-datastore in
    """
    from localpipe.client.schedules import Schedule, ScheduleRecurrence, time_zone_named
    from localpipe.errors import NotFoundError, UsageError

    if not frequency and not datastore:  # Schedule.create's own refusal names its keywords, not these options
        raise UsageError("a schedule fires on a recurrence or on new files: give --frequency or --datastore")
    ws = workspace()
    publishing = ws.service.history.publishing
    try:
        recurrence = None
        if frequency:
            zone = time_zone_named(time_zone) if time_zone else None
            recurrence = ScheduleRecurrence(
                frequency,
                interval,
                start_time,
                zone,
                _numbers(hours),
                _numbers(minutes),
                _names(week_days),
                time_of_day,
            )
        arguments = dict(
            recurrence=recurrence,
            description=description,
            pipeline_parameters=parse_params(params),
            datastore=datastore,
            polling_interval=polling_interval,
            data_path_parameter_name=data_path_parameter,
            path_on_datastore=path_on_datastore,
        )
        try:
            publishing.published(target)
            made = Schedule.create(ws, name, target, experiment, **arguments)
        except NotFoundError:
            endpoint = _endpoint(publishing, target)
            made = Schedule.create_for_pipeline_endpoint(ws, name, endpoint["endpoint_id"], experiment, **arguments)
    except ValueError as exc:  # Azure's rules are ValueErrors in the SDK: one line, exit code 2 here
        raise UsageError(str(exc)) from None
    click.echo(f'schedule "{name}" created as {made.id}: `localpipe schedules run` fires it')


def _numbers(text: str | None) -> list[int] | None:
    from localpipe.errors import UsageError

    try:
        return None if text is None else [int(part) for part in text.split(",")]
    except ValueError:
        raise UsageError(f'"{text}" is not a list of numbers: write it like 9,17') from None


def _names(text: str | None) -> list[str] | None:
    return None if text is None else [part.strip() for part in text.split(",")]


@schedule.command("list")
@click.option("--all", "show_all", is_flag=True, help="Disabled ones too.")
@json_option
def schedule_list(show_all, as_json) -> None:
    """List the schedules.

    \b
    Example:
      localpipe schedule list --all --json
    """
    rows = [_schedule_row(r) for r in workspace().service.history.publishing.schedules(active_only=not show_all)]
    _listing(
        rows,
        as_json,
        "no schedules: create one with `localpipe schedule create ID_OR_ENDPOINT --name N -e EXPERIMENT ...`",
        {"ID": "id", "NAME": "name", "STATUS": "status", "PIPELINE OR ENDPOINT": "target", "WHEN": "when"},
    )


def _schedule_row(record: dict) -> dict:
    from localpipe.plan.recurrence import describe

    recurrence = record["recurrence"]
    if recurrence:
        when = describe(recurrence, record["created_at"])
    else:
        when = f"files in {record['datastore']}/{record['path_on_datastore'] or ''}"
    return {
        "id": record["schedule_id"],
        "name": record["name"],
        "description": record["description"],
        "status": record["status"],
        "pipeline_id": record["pipeline_id"],
        "pipeline_endpoint_id": record["pipeline_endpoint_id"],
        "target": record["pipeline_id"] or record["pipeline_endpoint_id"],
        "experiment": record["experiment_name"],
        "recurrence": recurrence,
        "datastore": record["datastore"],
        "path_on_datastore": record["path_on_datastore"],
        "pipeline_parameters": record["pipeline_parameters"],
        "when": when,
    }


@schedule.command("enable")
@click.argument("schedule_id")
def schedule_enable(schedule_id) -> None:
    """Enable a schedule.

    \b
    Example:
      localpipe schedule enable 0f3c...
    """
    from localpipe.client.schedules import Schedule

    Schedule.get(workspace(), schedule_id).enable()
    click.echo(f"schedule {schedule_id} is Active")


@schedule.command("disable")
@click.argument("schedule_id")
def schedule_disable(schedule_id) -> None:
    """Disable a schedule: it no longer fires, and fires due while disabled are not caught up.

    \b
    Example:
      localpipe schedule disable 0f3c...
    """
    from localpipe.client.schedules import Schedule

    Schedule.get(workspace(), schedule_id).disable()
    click.echo(f"schedule {schedule_id} is Disabled")


@schedule.command("show")
@click.argument("schedule_id")
@json_option
def schedule_show(schedule_id, as_json) -> None:
    """Show a schedule and the runs it started.

    \b
    Example:
      localpipe schedule show 0f3c... --json
    """
    publishing = workspace().service.history.publishing
    row = {**_schedule_row(publishing.schedule(schedule_id)), "fires": publishing.fires(schedule_id)}
    if as_json:
        print_json(row)
        return
    for key in ("id", "name", "status", "pipeline_id", "pipeline_endpoint_id", "experiment", "when"):
        if row[key] is not None:
            click.echo(f"{key}: {row[key]}")
    for fire in row["fires"]:
        click.echo(f"  {clock(fire['due'])}  {fire['key']}  run {fire['run_id'] or '-'}")


@click.group()
def schedules() -> None:
    """Fire the workspace's schedules.

    \b
    Example:
      localpipe schedules run
    """


@schedules.command("run")
def schedules_run() -> None:
    """Fire the schedules in the foreground until Ctrl-C or SIGTERM (a systemd user unit or a cron
    @reboot line keeps it running: docs/publishing.md). Fires missed while nothing ran are caught
    up once per schedule at start.

    \b
    Example:
      localpipe -w ~/project schedules run
    """
    import signal
    import threading

    from localpipe.client.schedules import ScheduleRunner
    from localpipe.watch import ScheduleLoop

    loop = ScheduleLoop(ScheduleRunner(workspace()), echo=click.echo)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: loop.stop())
    click.echo("firing schedules: Ctrl-C stops", err=True)
    try:
        loop.run()
    except KeyboardInterrupt:
        loop.stop()


COMMANDS = [publish, published, endpoints, drafts, modules, submit_published, schedule, schedules]
