"""``localpipe serve``: the studio, a local web page of the workspace's runs (docs/studio.md)."""

from __future__ import annotations

import click

from localpipe.cli.common import workspace


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (others need the token).")
@click.option("--port", default=8765, show_default=True, type=int, help="Port to listen on; 0 takes a free one.")
@click.option("-w", "--workspace", "workspace_dir", type=click.Path(file_okay=False), help="The workspace folder.")
@click.pass_context
def serve(ctx, host, port, workspace_dir) -> None:
    """Serve the studio: runs, their graphs, timelines, logs and metrics in a browser.

    \b
    Example:
      localpipe serve --port 8765
    """
    from localpipe.studio.server import serve as serve_studio

    if workspace_dir:
        ctx.meta["localpipe.workspace_dir"] = workspace_dir
    serve_studio(workspace().state_dir, host, port, lambda line: click.echo(line, nl=True))


COMMANDS = [serve]
