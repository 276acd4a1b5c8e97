"""The workspace's compute targets: ``localpipe compute`` lists them, ``compute delete NAME`` removes one."""

from __future__ import annotations

import click

from localpipe.cli.common import json_option, print_json, size, table, workspace


@click.group(invoke_without_command=True)
@json_option
@click.pass_context
def compute(ctx, as_json) -> None:
    """List the workspace's compute targets and what each gives a step: its kind, CPU slots,
    GPUs and memory per step, how many of its steps run at once, the Azure VM size it was made
    from (which gives those figures), and Azure's scale settings it keeps (min nodes, idle
    seconds before scale-down); for a RayCompute target, the Ray cluster it runs on
    (docs/scale-out.md). Whether a step runs in Docker is its environment's choice, not its
    target's. A submission refused at validation keeps no target its code created.

    \b
    Example:
      localpipe compute
      localpipe compute --json
      localpipe compute delete gpu-cluster
    """
    if ctx.invoked_subcommand is not None:
        return
    from localpipe.sdk.compute import compute_targets

    listed = [_described(target) for target in compute_targets(workspace()).values()]
    if as_json:
        print_json(listed)
        return
    rows = [
        [
            t["name"],
            t["kind"],
            t["cpus_per_step"],
            t["gpus_per_step"],
            size(t["memory_per_step"]),
            t["max_concurrent_steps"] or "-",
            t["vm_size"] or "-",
            _scale(t),
        ]
        for t in listed
    ]
    table(rows, ["name", "kind", "cpus", "gpus", "memory", "at once", "vm size", "scale settings"])


def _described(target) -> dict:
    config = target.config
    return {
        "name": target.name,
        "kind": target.type,
        "cpus_per_step": config.cpus_per_step,
        "gpus_per_step": config.gpus_per_step,
        "memory_per_step": config.memory_per_step,
        "max_concurrent_steps": config.max_concurrent_steps,
        "vm_size": config.vm_size,
        "min_nodes": config.min_nodes,
        "idle_seconds_before_scaledown": config.idle_seconds_before_scaledown,
        **({"address": config.address, "resources": config.resources} if config.kind == "ray" else {}),
    }


def _scale(target: dict) -> str:
    if target["kind"] == "RayCompute":  # Ray scales its cluster itself: where it is stands here
        return f"Ray at {target['address']}" if target["address"] else "a local Ray per run"
    if target["kind"] != "AmlCompute":
        return "-"
    idle = target["idle_seconds_before_scaledown"]
    return f"min {target['min_nodes']}, idle {idle}s" if idle is not None else f"min {target['min_nodes']}"


@compute.command()
@click.argument("name")
def delete(name) -> None:
    """Delete the compute target NAME. A step that names it then fails validation; a target
    that an active run's steps use is refused until that run ends (`localpipe cancel RUN`).

    \b
    Example:
      localpipe compute delete gpu-cluster
    """
    from localpipe.errors import NotFoundError, UsageError
    from localpipe.sdk.compute import compute_targets

    ws = workspace()
    targets = compute_targets(ws)
    if name not in targets:
        raise NotFoundError(
            f'compute target "{name}" does not exist in workspace {ws.root} (its targets: '
            f"{', '.join(targets)}): see `localpipe compute`"
        )
    active = [run.id for run in ws.service.active_runs(name)]
    if active:
        runs = ", ".join(map(str, active))
        raise UsageError(
            f'compute target "{name}" is used by active run {runs}: wait for it to end or cancel it '
            f"(localpipe cancel RUN), then delete the target"
        )
    targets[name].delete()
    click.echo(f'deleted compute target "{name}"')


COMMANDS = [compute]
