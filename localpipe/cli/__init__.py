"""The ``localpipe`` command: a thin click shell over the library; the only package importing click.

Exit codes (documented once, here and in the README): 0 success, 1 a step failed,
2 an invalid pipeline or command line, 130 interrupted.
"""

from __future__ import annotations

import errno
import gc
import os
import sys
import warnings

import click

from localpipe.cli.common import drop_stdout
from localpipe.errors import DAMAGED, LocalpipeError, damaged

EXIT_OK, EXIT_STEP_FAILED, EXIT_INVALID, EXIT_INTERRUPTED = 0, 1, 2, 130


class LocalpipeGroup(click.Group):
    """Turns library errors into one line on stderr and their exit code (a traceback with --debug)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        """click's own usage errors, too, become one ``error:`` line with exit code 2."""
        try:
            result = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
            code = result if isinstance(result, int) else EXIT_OK
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else "localpipe"
            click.echo(
                f"error: {_global_option_misplaced(exc) or exc.format_message()} (see `{where} --help`)", err=True
            )
            code = EXIT_INVALID
        except click.Abort:
            click.echo("interrupted", err=True)
            code = EXIT_INTERRUPTED
        except click.ClickException as exc:
            exc.show()
            code = exc.exit_code
        if standalone_mode:
            sys.exit(code)
        return code

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except LocalpipeError as exc:
            self._fail(ctx, str(exc), exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:  # stdout's reader left (`localpipe show 3 | head -1`, a pager quit): it had enough
            drop_stdout()  # click would exit 1
            ctx.exit(EXIT_OK)
        except Exception as exc:
            full = _disk_full(exc)
            if full is not None:
                self._fail(ctx, f"the disk is full ({full}): free space (localpipe gc, localpipe du) and try again", 1)
            if "database is locked" in str(exc):  # another process held history.db's write lock past busy_timeout
                from localpipe.state.db import write_failure

                self._fail(ctx, write_failure(exc), 1)
            if DAMAGED in str(exc):
                self._fail(ctx, damaged(exc, _history_path()), 1)
            raise

    @staticmethod
    def _fail(ctx: click.Context, message: str, code: int) -> None:
        if ctx.meta.get("localpipe.debug"):
            import traceback

            traceback.print_exc()
        click.echo(f"error: {message}", err=True)
        ctx.exit(code)


def _history_path() -> object:
    """The command's history.db, named in an error about it; "history.db" when no workspace is found."""
    from localpipe.cli.common import workspace

    try:
        return workspace().state_dir / "history.db"
    except Exception:  # noqa: BLE001  (the error being reported matters more)
        return "history.db"


def _global_option_misplaced(exc: click.UsageError) -> str | None:
    """What to say when an option of ``localpipe`` itself (``-w``, ``--debug``) follows a command
    that lacks it (``localpipe runs -w ../proj``): click's "No such option" names no fix."""
    if not isinstance(exc, click.NoSuchOption) or exc.ctx is None or exc.ctx.parent is None:
        return None
    root = exc.ctx.find_root()
    for param in root.command.params:
        if exc.option_name in getattr(param, "opts", ()):
            command = exc.ctx.command_path[len(root.command_path) + 1 :]
            example = f"{exc.option_name} DIR" if param.metavar or not param.is_flag else exc.option_name
            return (
                f"{exc.option_name} is an option of localpipe itself: put it before the command, "
                f"`{root.command_path} {example} {command} ...`"
            )
    return None


def _disk_full(exc: BaseException) -> str | None:
    """What says that the disk is full in ``exc`` or the exceptions it arose from, if anything does
    (SQLite's own error, through the ORM, or an OSError of errno ENOSPC)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
        if "database or disk is full" in str(exc):
            return "history.db: database or disk is full"
        exc = exc.__cause__ or exc.__context__
    return None


@click.group(cls=LocalpipeGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks of errors.")
@click.option(
    "-w",
    "--workspace",
    "workspace_dir",
    type=click.Path(file_okay=False),
    help="The workspace folder (default: the nearest one above the pipeline file, else above the current directory).",
)
@click.version_option(package_name="localpipe")
@click.pass_context
def cli(ctx: click.Context, debug: bool, workspace_dir: str | None) -> None:
    """Run machine-learning pipelines on this machine, reusing what has not changed.

    \b
    Example:
      localpipe submit examples/iris/pipeline.py
      localpipe runs
      localpipe show 1
    """
    ctx.meta["localpipe.debug"] = debug
    ctx.meta["localpipe.workspace_dir"] = workspace_dir


from localpipe.cli import (  # noqa: E402  (registers the commands)
    compat_cmds,
    compute_cmds,
    data_cmds,
    env_cmds,
    inspect_cmds,
    model_cmds,
    publish_cmds,
    run_cmds,
    serve_cmds,
    storage_cmds,
)

for module in (
    run_cmds,
    inspect_cmds,
    data_cmds,
    model_cmds,
    storage_cmds,
    env_cmds,
    compute_cmds,
    compat_cmds,
    publish_cmds,
    serve_cmds,
):
    for command in module.COMMANDS:
        cli.add_command(command)


PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def show_warning(message, category, filename, lineno, file=None, line=None, _python=warnings.showwarning) -> None:
    """A warning localpipe raises is one ``warning:`` line, as its errors are one ``error:`` line;
    one raised in the user's own code keeps Python's form, which says where it was raised."""
    if filename.startswith(PACKAGE + os.sep):
        click.echo(f"warning: {message}", err=True)
    else:
        _python(message, category, filename, lineno, file, line)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    warnings.showwarning = show_warning
    try:
        cli.main(args=argv, prog_name="localpipe")
    finally:
        # The process ends here and every object left is about to be freed: keep the collector
        # from tracing them all once more on the way out (about 0.1 s after a run).
        gc.freeze()


__all__ = ["cli", "main", "EXIT_OK", "EXIT_STEP_FAILED", "EXIT_INVALID", "EXIT_INTERRUPTED"]
if __name__ == "__main__":  # pragma: no cover
    main(sys.argv[1:])
