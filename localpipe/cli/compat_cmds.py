"""``localpipe azureml-path``: the folder that makes ``import azureml...`` mean localpipe in your own scripts."""

from __future__ import annotations

import click


@click.command("azureml-path")
def azureml_path() -> None:
    """Print the folder to put on PYTHONPATH so that Azure ML SDK v1 imports (`from azureml.core
    import Workspace`) resolve to localpipe in a script you run yourself. localpipe's own
    processes (loading a pipeline file, steps) need nothing. Nothing is installed: a real
    azureml-core stays as it is everywhere else.

    \b
    Example:
      PYTHONPATH=$(localpipe azureml-path) python pipeline.py
    """
    from localpipe.compat import SHIM_DIR

    click.echo(SHIM_DIR)


COMMANDS = [azureml_path]
