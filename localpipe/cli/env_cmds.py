"""Built environments: ``localpipe envs`` lists them (``localpipe gc --envs`` removes old ones)."""

from __future__ import annotations

import click

from localpipe.cli.common import clock, json_option, print_json, size, table


@click.command()
@json_option
def envs(as_json) -> None:
    """List the environments built on this machine, shared by every workspace: digest, name,
    Python, size, packages installed, when a step last used it. The cache is
    ~/.cache/localpipe/envs (LOCALPIPE_CACHE_DIR moves it).

    \b
    Example:
      localpipe envs
      localpipe envs --json
    """
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


COMMANDS = [envs]
