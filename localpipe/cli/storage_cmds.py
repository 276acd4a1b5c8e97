"""Commands about the workspace's storage: gc, du, fsck."""

from __future__ import annotations

import click

from localpipe.cli.common import count, history, json_option, print_json, size, table


@click.command()
@click.option(
    "--keep-last",
    type=click.IntRange(min=0),
    default=None,
    metavar="N",
    help="Keep the newest N runs of each experiment; forget the others.",
)
@click.option(
    "--older-than",
    default=None,
    metavar="DURATION",
    help="Forget the runs submitted longer ago than DURATION (90s, 30m, 12h, 7d).",
)
@click.option("--dry-run", is_flag=True, help="Say what would be removed; remove nothing.")
@click.option(
    "--envs",
    "built_environments",
    is_flag=True,
    help="Instead: remove the machine's built environments and the Docker images localpipe built that no step "
    "used for --older-than (default 30d).",
)
def gc(keep_last, older_than, dry_run, built_environments) -> None:
    """Free disk space: forget old runs, then remove what nothing kept references.

    Removes the step outputs in the object store that no kept run and no registered dataset
    version references, the folders (snapshots, inputs, logs) of forgotten runs and of no run,
    and old leftovers in .localpipe/tmp/. A run still going on is always kept, with all it uses,
    and so is a run whose steps a kept run reused (its logs and metrics are theirs).
    With neither --keep-last nor --older-than every run is kept; with both, a run either keeps
    is kept. A step whose outputs were removed runs again the next time it is submitted.
    With --envs it removes the machine's built environments instead (shared by every workspace),
    and the Docker images localpipe built (`localpipe envs --images`), but none a step uses.

    \b
    Example:
      localpipe gc --keep-last 5 --dry-run
      localpipe gc --older-than 7d
      localpipe gc --envs --older-than 30d
    """
    from localpipe.engine.recovery import recover_abandoned_runs
    from localpipe.state.gc import collect, parse_duration, plan_gc

    seconds = parse_duration(older_than) if older_than is not None else None
    if built_environments:
        _gc_environments(seconds if seconds is not None else 30 * 86400, keep_last, dry_run)
        return
    found = history()
    recover_abandoned_runs(found)  # a run whose scheduler died is not active: it must not pin its objects
    plan = plan_gc(found, keep_last, seconds)
    result = collect(found, plan, dry_run=dry_run)
    if dry_run:
        for run_id in plan.forget_runs:
            click.echo(f"would forget run {run_id}")
        for digest, nbytes in sorted(plan.objects.items()):
            click.echo(f"would remove object {digest[:12]}  {size(nbytes)}")
        for name, nbytes in sorted(plan.run_folders.items()):
            click.echo(f"would remove run folder {name}  {size(nbytes)}")
        for name, nbytes in sorted(plan.tmp.items()):
            click.echo(f"would remove tmp/{name}  {size(nbytes)}")
        for name, nbytes in sorted(plan.parallel.items()):
            what = "trim" if name.endswith(".jsonl") else "remove"
            click.echo(f"would {what} parallel-cache/{name}  {size(nbytes)}")
        for saved_id in plan.saved_datasets:
            click.echo(f"would forget saved dataset {saved_id}")
    for run_id, reusers in plan.producers.items():
        click.echo(f"kept run {run_id}: {_runs(reusers)} reused its steps")
    verb = "would free" if dry_run else "freed"
    counts = [
        count(result.objects_removed, "object"),
        count(result.run_folders_removed, "run folder"),
        count(result.runs_forgotten, "run") + " forgotten",
    ]
    if result.tmp_removed:
        counts.append(count(result.tmp_removed, "tmp entry", "tmp entries"))
    if result.parallel_removed:
        counts.append(count(result.parallel_removed, "parallel-cache entry", "parallel-cache entries"))
    if result.saved_datasets_removed:
        counts.append(count(result.saved_datasets_removed, "saved dataset") + " forgotten")
    click.echo(f"{verb} {size(result.bytes_freed)}: {', '.join(counts)}")
    if plan.active_runs:
        click.echo(
            f"kept active runs {', '.join(map(str, plan.active_runs))} and everything they use"
            + (
                f" ({count(len(plan.protected_objects), 'object')} that may be theirs)"
                if plan.protected_objects
                else ""
            )
        )
    for problem in result.problems:
        click.echo(f"warning: could not remove {problem}", err=True)


def _runs(ids: list[int]) -> str:
    return f"run {ids[0]}" if len(ids) == 1 else f"runs {', '.join(map(str, ids))}"


def _gc_environments(seconds: float, keep_last, dry_run: bool) -> None:
    """Remove the built environments (machine-wide) and the Docker images localpipe built that no
    step used for ``seconds``; one being built, or that a run uses, stays."""
    import time

    from localpipe.envs import cache_root
    from localpipe.envs.cache import EnvironmentCache
    from localpipe.errors import UsageError

    if keep_last is not None:
        raise UsageError("--keep-last counts runs, not environments: use --envs with --older-than")
    cache = EnvironmentCache(cache_root() / "envs")
    now = time.time()
    freed = removed = 0
    for built in cache.unused_for(seconds, now):
        if dry_run:
            click.echo(f'would remove environment "{built.name}" {built.digest[:12]}  {size(built.size)}')
        elif not cache.remove(built.digest):
            click.echo(f'kept environment "{built.name}" {built.digest[:12]}: a run uses it or builds it')
            continue
        freed, removed = freed + built.size, removed + 1
    for digest in cache.damaged():  # a folder without readable metadata serves no build
        click.echo(f"{'would remove' if dry_run else 'removed'} damaged environment folder {digest[:12]}")
        if not dry_run:
            cache.remove(digest)
    leftovers = cache.leftovers(seconds, now, remove=not dry_run)
    parts = [f"{removed} environments"]
    if (cache_root() / "image-builds").is_dir():  # localpipe built Docker images on this machine
        images = _gc_images(seconds, now, dry_run)
        freed += sum(images.values())
        parts.append(count(len(images), "image"))
    if leftovers:
        parts.append(count(len(leftovers), "old build leftover"))
    click.echo(f"{'would free' if dry_run else 'freed'} {size(freed)}: {', '.join(parts)}")


def _gc_images(seconds: float, now: float, dry_run: bool) -> dict[str, int]:
    """Remove the Docker images localpipe built that no step used for ``seconds``, saying each;
    returns the tags removed with the bytes each freed. A daemon that does not answer, or the
    docker package missing, is one warning: the images are then left as they are."""
    try:
        from localpipe.engine.executors.docker.images import remove_unused_images
    except ImportError:
        click.echo(
            "warning: Docker images not looked at: the docker Python package is not installed (pip install docker)",
            err=True,
        )
        return {}
    sweep = remove_unused_images(seconds, now, dry_run)
    for tag, nbytes in sweep.removed:
        click.echo(f"{'would remove' if dry_run else 'removed'} image {tag}  {size(nbytes)}")
    for tag, why in sweep.kept:
        click.echo(f"kept image {tag}: {why}")
    if sweep.problem:
        click.echo(f"warning: Docker images: {sweep.problem}", err=True)
    return dict(sweep.removed)


@click.command()
@click.option(
    "-n", "--limit", default=10, show_default=True, type=click.IntRange(min=0), help="How many run folders to list."
)
@json_option
def du(limit, as_json) -> None:
    """Show what takes the space in .localpipe/: objects, run folders (largest first), databases.

    \b
    Example:
      localpipe du
      localpipe du --json
    """
    from localpipe.state.gc import disk_usage

    usage = disk_usage(history())
    if as_json:
        print_json(usage)
        return
    parts = usage["parts"]
    notes = {
        "objects": count(usage["objects"], "object"),
        "runs": count(len(usage["runs"]), "run folder"),
        "tmp": count(usage["tmp_entries"], "entry", "entries"),
    }
    labels = {
        "objects": "objects/",
        "runs": "runs/",
        "history": "history.db",
        "statcache": "statcache.bin",
        "datastores": "datastores/",
        "tmp": "tmp/",
        "other": "other",
    }
    rows = [[labels[name], size(nbytes), notes.get(name, "")] for name, nbytes in parts.items()]
    rows.append(["total", size(usage["total"]), ""])
    table(rows, ["PART", "SIZE", ""])
    click.echo(
        f"\n`localpipe gc` would free {size(usage['reclaimable'])} without forgetting a run; "
        "`--keep-last N` and `--older-than D` forget old runs"
    )
    if usage["runs"]:
        click.echo()
        table(
            [
                [r["folder"], r["experiment"] or "-", r["status"] or "no run", size(r["bytes"])]
                for r in usage["runs"][:limit]
            ],
            ["RUN FOLDER", "EXPERIMENT", "STATUS", "SIZE"],
        )


@click.command()
@click.option("--repair", is_flag=True, help="Quarantine damaged objects and forget the cache entries that serve them.")
@json_option
@click.pass_context
def fsck(ctx, repair, as_json) -> None:
    """Check every object in the store against its digest (reads all of them).

    A damaged object (a file changed, truncated or removed) is named with what refers to it;
    exit code 1. With --repair it moves to .localpipe/quarantine/ and the cache entries it
    served are forgotten, so that the next submission computes those steps again.

    \b
    Example:
      localpipe fsck
      localpipe fsck --repair
    """
    from localpipe.state import fsck as checker

    found = history()
    report = checker.check(found)
    dropped = checker.repair(found, report.damaged) if repair and report.damaged else 0
    unrepaired = [d for d in report.damaged if not (repair and d.repairable)]
    if as_json:
        print_json(
            {
                "checked": report.checked,
                "damaged": [vars(d) for d in report.damaged],
                "repaired": repair,
                "cache_entries_dropped": dropped,
            }
        )
    else:
        for damaged in report.damaged:
            made = ", ".join(
                f'output "{o["output"]}" of run {o["run"]} (step "{o["step"]}")' for o in damaged.outputs[:3]
            )
            more = f" and {len(damaged.outputs) - 3} more" if len(damaged.outputs) > 3 else ""
            click.echo(f"damaged object {damaged.digest}: {damaged.problem}" + (f"; {made}{more}" if made else ""))
            for version in damaged.datasets:
                click.echo(
                    f'  dataset "{version["name"]}" version {version["version"]} is in it: register its files again '
                    "(it stays where it is)"
                )
            for version in damaged.models:
                click.echo(
                    f'  model "{version["name"]}" version {version["version"]} is in it: register its files again '
                    "(it stays where it is)"
                )
        click.echo(f"checked {count(report.checked, 'object')}: {len(report.damaged)} damaged")
        repaired = [d for d in report.damaged if d.repairable]
        if repair and repaired:
            click.echo(
                f"quarantined {count(len(repaired), 'object')} in {found.layout.state_dir / 'quarantine'}; "
                f"forgot {count(dropped, 'cache entry', 'cache entries')}: "
                "the next submission computes those steps again"
            )
        elif report.damaged:
            click.echo("run `localpipe fsck --repair` to quarantine them and recompute what they held")
    ctx.exit(1 if unrepaired else 0)


COMMANDS = [gc, du, fsck]
