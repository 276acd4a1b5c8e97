"""Loading a pipeline file: run it as a module and find the Pipeline it builds.

The file runs with ``__name__ == "__localpipe__"`` (so an ``if __name__ == "__main__":`` block
that submits is skipped), with its own folder as the current directory (so relative paths in
it mean the same wherever the command is run), and with ``Workspace.from_config()`` answering
the workspace the command uses.
"""

from __future__ import annotations

import os
import runpy
import sys
from pathlib import Path

from localpipe.errors import PipelineFileError, UsageError
from localpipe.sdk.pipeline import Pipeline
from localpipe.sdk.workspace import current_workspace


def load_pipeline(path: str | os.PathLike, ws) -> Pipeline:
    """The Pipeline built by the file at ``path``: the one named ``pipeline``, or the only one."""
    file = Path(path).resolve()
    if not file.is_file():
        raise PipelineFileError(f"pipeline file {path} does not exist: pass the path of a .py file")
    token = current_workspace.set(ws)
    old_cwd, old_path = os.getcwd(), list(sys.path)
    os.chdir(file.parent)
    sys.path.insert(0, str(file.parent))
    try:
        namespace = runpy.run_path(str(file), run_name="__localpipe__")
    except SystemExit as exc:
        raise PipelineFileError(
            f"pipeline file {path} called exit({exc.code}) while loading: "
            "guard its submitting code with if __name__ == '__main__'"
        ) from None
    except UsageError:
        raise
    except SyntaxError as exc:
        raise PipelineFileError(
            f"pipeline file {path} has a syntax error at line {exc.lineno}: {exc.msg}: fix the file"
        ) from exc
    except Exception as exc:
        raise PipelineFileError(
            f"pipeline file {path} raised {type(exc).__name__}: {exc} "
            f"(line {_line(exc, file)}): fix the file, or use --debug for the traceback"
        ) from exc
    finally:
        os.chdir(old_cwd)
        sys.path[:] = old_path
        current_workspace.reset(token)
    return _pick(namespace, path)


def _pick(namespace: dict, path) -> Pipeline:
    if isinstance(namespace.get("pipeline"), Pipeline):
        return namespace["pipeline"]
    found = {name: value for name, value in namespace.items() if isinstance(value, Pipeline)}
    if len(found) == 1:
        return next(iter(found.values()))
    if not found:
        raise PipelineFileError(
            f"pipeline file {path} defines no Pipeline: build one with Pipeline(workspace=ws, steps=[...])"
        )
    names = ", ".join(sorted(found))
    raise PipelineFileError(
        f"pipeline file {path} defines {len(found)} Pipelines ({names}): name the one to run `pipeline`"
    )


def _line(exc: BaseException, file: Path) -> str:
    tb = exc.__traceback__
    line = "?"
    while tb is not None:
        if Path(tb.tb_frame.f_code.co_filename).resolve() == file:
            line = str(tb.tb_lineno)
        tb = tb.tb_next
    return line
