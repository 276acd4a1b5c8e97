"""Built environments: ``localpipe envs`` lists them (``localpipe gc --envs`` removes old ones)."""

from __future__ import annotations

import click

from localpipe.cli.common import clock, json_option, print_json, size, table
from localpipe.errors import UsageError


@click.command()
@click.option("--images", is_flag=True, help="List the Docker images localpipe built instead (docs/docker.md).")
@json_option
def envs(images, as_json) -> None:
    """List the environments built on this machine, shared by every workspace: digest, name,
    Python, size, packages installed, when a step last used it. The cache is
    ~/.cache/localpipe/envs (LOCALPIPE_CACHE_DIR moves it). With --images, the Docker images
    localpipe built in this machine's daemon (from a Dockerfile, a build context, or with an
    environment's packages): tag, what from, id, size, when built, when a step last ran in it
    (`localpipe gc --envs` removes those no step used for a while).

    \b
    Example:
      localpipe envs
      localpipe envs --json
      localpipe envs --images
    """
    if images:
        _images(as_json)
        return
    from dataclasses import asdict

    from localpipe.envs import cache_root
    from localpipe.envs.cache import EnvironmentCache

    cache = EnvironmentCache(cache_root() / "envs")
    built = [asdict(b) | {"last_used": cache.last_used(b.digest)} for b in cache.all()]
    if as_json:
        print_json(built)
        return
    if not built:
        click.echo(f"no environment built yet in {cache.root}")
        return
    rows = [
        [b["digest"][:12], b["name"], b["python"], size(b["size"]), len(b["packages"]), clock(b["last_used"])]
        for b in built
    ]
    table(rows, ["digest", "name", "python", "size", "packages", "last used"])


def _images(as_json: bool) -> None:
    try:
        from localpipe.engine.executors.docker.images import START_DAEMON, built_images
    except ImportError:
        raise UsageError(
            "--images asks the Docker daemon, through the docker Python package: pip install docker"
        ) from None

    built = built_images()
    if built is None:
        raise UsageError(f"no Docker daemon answers: {START_DAEMON}")
    if as_json:
        print_json(built)
    elif not built:
        click.echo("no Docker image built by localpipe in this machine's daemon")
    else:
        rows = [
            [b["tag"], b["kind"], b["id"].removeprefix("sha256:"), size(b["size"]), b["created"], clock(b["last_used"])]
            for b in built
        ]
        table(rows, ["tag", "from", "id", "size", "created (UTC)", "last used"])


COMMANDS = [envs]
