"""Commands about data: datastores, datasets (versions and lineage), step outputs and downloads."""

from __future__ import annotations

import os

import click

from localpipe.cli.common import clock, history, json_option, print_json, say, size, table, workspace


@click.command()
@json_option
def datastores(as_json) -> None:
    """List the datastores: the two built in and those registered, with what they hold (for a public
    blob container: its address, and the files fetched from it so far).

    \b
    Example:
      localpipe datastores --json
    """
    from localpipe.state.datastores import folder_summary

    ws = workspace()
    rows = []
    for name, store in ws.datastores.items():
        files, nbytes = folder_summary(store.folder)
        rows.append(
            {
                "name": name,
                "path": str(store.folder),
                "url": store.url,
                "files": files,
                "bytes": nbytes,
                "builtin": name in ("workspaceblobstore", "workspacefilestore"),
            }
        )
    if as_json:
        print_json(rows)
        return
    table(
        [[r["name"], r["url"] or r["path"], r["files"], size(r["bytes"])] for r in rows],
        ["NAME", "PATH", "FILES", "SIZE"],
    )


@click.command()
@click.argument("name", required=False)
@json_option
def datasets(name, as_json) -> None:
    """List registered datasets; with NAME, its versions and their lineage.

    Lineage: the step run that produced each version (register_on_complete) and the step runs
    that consumed it.

    \b
    Example:
      localpipe datasets iris_prepared
    """
    found = history().datasets.list(name)
    if as_json:
        print_json(found)
        return
    if not found:
        say("no datasets registered: dataset.register(ws, name) registers one")
        return
    if name is None:
        latest: dict[str, dict] = {}
        for row in found:
            latest.setdefault(row["name"], row)
        table(
            [[r["name"], r["version"], r["kind"], clock(r["created_at"])] for r in latest.values()],
            ["NAME", "LATEST", "KIND", "REGISTERED"],
        )
        return
    for row in found:
        made = (
            f'produced by run {row["produced_by"]["run"]} (step "{row["produced_by"]["step"]}")'
            if row["produced_by"]
            else "registered by hand"
        )
        say(
            f"{row['name']} version {row['version']}  {row['kind']}  {clock(row['created_at'])}  "
            f"{row['digest'][:12]}  {made}"
        )
        for use in row["consumed_by"]:
            say(f'  consumed by run {use["run"]} (step "{use["step"]}")')


@click.command()
@click.argument("run_id")
@click.argument("step", required=False)
@json_option
def outputs(run_id, step, as_json) -> None:
    """List the outputs of a run's steps (or of one STEP): name, size and path in the store.

    \b
    Example:
      localpipe outputs 3 train
    """
    from localpipe.state.store import ObjectStore

    found_history = history()
    store = ObjectStore(found_history.layout.objects)
    found = [row | {"path": str(store.path(row["digest"]))} for row in found_history.runs.outputs(run_id, step)]
    if as_json:
        print_json(found)
    elif not found:  # a step that failed, or one that declares none
        say(f'step "{step}" of run {run_id} has no outputs' if step else f"run {run_id} has no outputs")
    else:
        table([[r["step"], r["name"], size(r["size"]), r["path"]] for r in found], ["STEP", "OUTPUT", "SIZE", "PATH"])


@click.command()
@click.argument("run_id")
@click.argument("step")
@click.argument("output")
@click.argument("dest", type=click.Path(file_okay=False))
@click.option("--overwrite", is_flag=True, help="Replace DEST/OUTPUT if it exists.")
def download(run_id, step, output, dest, overwrite) -> None:
    """Copy output OUTPUT of STEP in run RUN_ID into DEST/OUTPUT.

    \b
    Example:
      localpipe download 3 train model ./models
    """
    from localpipe.client.experiment import Experiment
    from localpipe.client.runs import StepRun
    from localpipe.client.workspace import history_of

    ws = workspace()
    history = history_of(ws)
    run = history.runs.get(run_id)
    row = history.runs.find_step(run["id"], step)  # NotFoundError lists the run's steps
    data = StepRun(Experiment(ws, run["experiment"]), row["id"], run["id"], step).get_output_data(output)
    click.echo(data.copy_to(os.path.join(dest, output), overwrite=overwrite))


COMMANDS = [datastores, datasets, outputs, download]
