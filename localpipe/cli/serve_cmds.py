"""``localpipe serve``: the studio, a local web page of the workspace's runs (docs/studio.md), with
Azure's REST submission routes and the workspace's schedules (docs/publishing.md)."""

from __future__ import annotations

import click

from localpipe.cli.common import workspace


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (others need the token).")
@click.option(
    "--port",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on; 0 takes a free one.",
)
@click.option("-w", "--workspace", "workspace_dir", type=click.Path(file_okay=False), help="The workspace folder.")
@click.pass_context
def serve(ctx, host, port, workspace_dir) -> None:
    """Serve the studio: runs, their graphs, timelines, logs and metrics in a browser.

    It also answers the REST submissions of published pipelines and pipeline endpoints (their
    `endpoint` addresses name port 8765) and fires the workspace's schedules while it runs.

    \b
    Example:
      localpipe serve --port 8765
    """
    from localpipe.studio.rest import BASE, rest_routes
    from localpipe.studio.server import serve as serve_studio

    if workspace_dir:
        ctx.meta["localpipe.workspace_dir"] = workspace_dir
    ws = workspace()
    serve_studio(ws.state_dir, host, port, click.echo, extra_routes=rest_routes(ws), background=[_schedules(ws)],
                 self_authenticating=(BASE + "/",))  # fmt: skip


def _schedules(ws):
    """The server's background task: a schedule loop, as `localpipe schedules run` runs one, in a thread."""
    import asyncio

    from localpipe.client.schedules import ScheduleRunner
    from localpipe.watch import ScheduleLoop

    async def fire(app) -> None:
        loop = ScheduleLoop(ScheduleRunner(ws), echo=click.echo)
        try:
            await asyncio.to_thread(loop.run)
        finally:
            loop.stop()  # cancelled as the server stops: the thread ends within a second

    return fire


COMMANDS = [serve]
