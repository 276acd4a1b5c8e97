"""Put the example's images where the page's pipeline reads them: `train-images/` on the
workspace's blob datastore (the page assumes they are there already).

    PYTHONPATH=$(localpipe azureml-path) python examples/seed/upload_data.py
"""

import os

from azureml.core import Datastore, Workspace

ws = Workspace.from_config()
here = os.path.dirname(os.path.abspath(__file__))
Datastore(ws, "workspaceblobstore").upload(
    src_dir=os.path.join(here, "data", "train-images"), target_path="train-images", overwrite=True
)
