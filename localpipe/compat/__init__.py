"""Azure ML SDK v1's ``azureml.*`` imports, answered by localpipe (docs/azureml-imports.md).

``names.py`` is the table (an ``azureml`` module -> the names it exports -> where each lives in
localpipe); ``shim/`` holds the ``azureml`` package that reads it, put on ``sys.path`` only in
localpipe's own processes or by a user who opts in; ``runtime.py`` makes the folder that steps
running in another interpreter get on their ``PYTHONPATH``. Nothing here imports the rest of
localpipe until a name is used.
"""

from __future__ import annotations

import os

# The folder to put on sys.path (or PYTHONPATH) for `import azureml...` to mean localpipe.
SHIM_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim")
