"""Commands that read history: runs, show, logs, metrics."""

from __future__ import annotations

import os

import click

from localpipe.cli.common import clock, duration, history, json_option, print_json, size, table, workspace
from localpipe.cli.progress import describe_placement
from localpipe.formats import number
from localpipe.parallel.progress import describe as describe_batches
from localpipe.parallel.progress import read as read_batches


@click.command()
@click.option("-n", "--limit", default=20, show_default=True, type=click.IntRange(min=1), help="How many runs to list.")
@click.option("-e", "--experiment", default=None, help="Only the runs of this experiment.")
@json_option
def runs(limit, experiment, as_json) -> None:
    """List the latest runs, newest first.

    \b
    Example:
      localpipe runs -n 5 --json
    """
    from localpipe.engine.recovery import recover_abandoned_runs

    found_history = history()
    recover_abandoned_runs(found_history)
    found = found_history.runs.list(min(limit, 2**63 - 1), experiment)  # SQLite's integers end there
    if as_json:
        print_json(found)
        return
    if not found:
        click.echo(
            f'experiment "{experiment}" has no runs: see `localpipe runs` for those there are'
            if experiment is not None
            else "no runs yet: start one with `localpipe submit PIPELINE.py`"
        )
        return
    table(
        [
            [
                r["id"],
                r["experiment"],
                r["status"],
                _counts(r["steps"]),
                clock(r["submitted_at"]),
                duration(r["started_at"], r["ended_at"]),
            ]
            for r in found
        ],
        ["RUN", "EXPERIMENT", "STATUS", "STEPS", "SUBMITTED", "DURATION"],
    )


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {status.lower()}" for status, n in sorted(counts.items()))


@click.command()
@click.argument("run_id")
@json_option
def show(run_id, as_json) -> None:
    """Show a run: each step's status, the reason it ran or was reused, exit code, memory, outputs.

    \b
    Example:
      localpipe show 3
    """
    from localpipe.engine.recovery import recover_abandoned_runs

    found_history = history()
    recover_abandoned_runs(found_history)
    details = found_history.runs.details(run_id)
    if as_json:
        print_json(details)
        return
    click.echo(
        f"run {details['id']}  experiment {details['experiment']}  {details['status']}  "
        f"submitted {clock(details['submitted_at'])}  took {duration(details['started_at'], details['ended_at'])}"
    )
    if details["parameters"]:
        click.echo("parameters: " + ", ".join(f"{k}={v!r}" for k, v in details["parameters"].items()))
    for root, repo in details["git"].items():
        dirty = " (dirty: uncommitted changes)" if repo["dirty"] else ""
        click.echo(f"git: {root} {repo['branch']}@{repo['commit'][:12]}{dirty}")
    if details["error"]:  # why it did not complete: a reason, not an error of this command
        click.echo(f"why it {details['status'].lower()}: {details['error']}")
    _echo_trials(found_history, details)
    for step in details["steps"]:
        click.echo(f"\n{step['name']}: {step['status']}  {step['reason'] or ''}".rstrip())
        if step["ran_because"] and step["started_at"] and step["ran_because"] != step["reason"]:
            click.echo(f"  ran because: {step['ran_because']}")  # the reason above says how it ended
        facts = [
            f"took {duration(step['started_at'], step['ended_at'])}" if step["started_at"] else None,
            f"exit code {step['exit_code']}" if step["exit_code"] is not None else None,
            f"signal {step['signal']}" if step["signal"] else None,
            f"peak memory {size(step['peak_memory'])}" if step["peak_memory"] else None,
            f"attempt {step['attempt']}" if step["attempt"] and step["attempt"] > 1 else None,
            f"placed on {describe_placement(step['placement'])}" if step["placement"] else None,
            f"cache key {step['cache_key'][:12]}" if step["cache_key"] else None,
        ]
        if any(facts):
            click.echo("  " + ", ".join(f for f in facts if f))
        build = step["environment_build"]
        if build:
            from localpipe.envs.cache import BUILD_LOG

            click.echo(
                f'  environment "{build["name"]}" {build["digest"][:12]} (Python {build["python"]}, '
                f"{len(build['packages'])} packages), build log {os.path.join(build['path'], BUILD_LOG)}"
            )
        batches = describe_batches(
            read_batches(found_history.layout.step_dir(run_id, step["name"])), running=step["status"] == "Running"
        )
        if batches:
            click.echo(f"  parallel run: {batches}")
        for name, digest in step["outputs"].items():
            click.echo(f"  output {name}: {digest[:12]}")
        if step["log_tail"] and step["status"] == "Failed":
            click.echo("  log tail:")
            for line in step["log_tail"].splitlines():
                click.echo(f"    {line}")
        _echo_children(step["children"], "  ")


def _echo_trials(found_history, details: dict) -> None:
    """Each sweep's trials (a HyperDrive run's, a HyperDriveStep's), best primary metric first."""
    from localpipe.client.hyperdrive import trial_rows

    for metric, rows in trial_rows(found_history, details["id"], {s["name"]: s for s in details["steps"]}):
        click.echo(f"trials by {metric['name']} ({metric['goal']}), best first:")
        width = max(len(row["name"]) for row in rows)
        for row in rows:
            values = " ".join(f"{name}={value!r}" for name, value in row["values"].items())
            best = (
                f"{metric['name']} {number(row['best'])}" if row["best"] is not None else f"no {metric['name']} logged"
            )
            click.echo(f"  {row['name']:<{width}} {row['status']:<10} {best:<24} {values}")


def _echo_children(children: list[dict], indent: str) -> None:
    """A step's child runs (Run.child_run, create_children), each under its parent."""
    for child in children:
        named = f' "{child["display_name"]}"' if child["display_name"] else ""
        took = f"  took {duration(child['started_at'], child['ended_at'])}" if child["started_at"] else ""
        reason = f"  {child['reason']}" if child["reason"] else ""
        click.echo(f"{indent}child {child['name']}{named}: {child['status']}{took}{reason}")
        _echo_children(child["children"], indent + "  ")


@click.command()
@click.argument("run_id")
@click.argument("step", required=False)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new output until the run ends.")
def logs(run_id, step, follow) -> None:
    """Print the stdout and stderr of a run's steps (or of one STEP).

    \b
    Example:
      localpipe logs 3 train -f
    """
    from localpipe.engine.logs import follow_logs, print_logs

    (follow_logs if follow else print_logs)(history(), run_id, step, click.echo)


@click.command()
@click.argument("run_id")
@click.option("-s", "--step", default=None, help="Only the metrics of this step.")
@json_option
def metrics(run_id, step, as_json) -> None:
    """Print the metrics a run's steps logged through Run.get_context().

    With --json, a NaN or an infinity (which JSON has no number for) is null; the table shows it.

    \b
    Example:
      localpipe metrics 3 --step evaluate
    """
    from localpipe.state import reader
    from localpipe.state.layout import Layout

    text = reader.metrics_text(Layout.of(workspace().state_dir), run_id, step, as_json=as_json)
    # color=True: the text holds no escape codes, and scanning megabytes for them is most of the cost.
    click.echo(text or f"run {run_id} logged no metrics", color=True)


@click.command()
@click.argument("run_id")
def cancel(run_id) -> None:
    """Cancel a run: its steps' process trees are ended and the run is marked Canceled.

    \b
    Example:
      localpipe cancel 3
    """
    from localpipe.engine.recovery import cancel_run

    click.echo(cancel_run(history(), run_id))


@click.command()
@json_option
def resources(as_json) -> None:
    """Show this machine's CPUs, memory and GPUs, and whether a Docker daemon answers.

    \b
    Example:
      localpipe resources --json
    """
    from localpipe.engine.inventory import inventory

    found = inventory()
    if as_json:
        print_json(found)
        return
    click.echo(f"CPUs: {found['cpus']}")
    click.echo(f"memory: {size(found['memory_total'])} total, {size(found['memory_available'])} available")
    if found["gpu_problem"]:
        click.echo(f"GPUs: none ({found['gpu_problem']})")
    for gpu in found["gpus"]:
        util = f", {gpu['utilization']}% busy" if gpu["utilization"] is not None else ""
        click.echo(
            f"GPU {gpu['index']}: {gpu['name']} {gpu['uuid']}, {size(gpu['memory_free'])} free of "
            f"{size(gpu['memory_total'])}{util}"
        )
    click.echo(f"Docker: {found['docker']}")


COMMANDS = [runs, show, logs, metrics, cancel, resources]
