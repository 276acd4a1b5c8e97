"""``azureml.telemetry``: Azure ML's switch for the diagnostics its SDK sends to Microsoft.

localpipe sends nothing anywhere, so there is nothing to switch: the samples that turn it on
(``set_diagnostics_collection(send_diagnostics=True)``, in many of Azure's framework notebooks) run on.
"""

from __future__ import annotations

import logging


def set_diagnostics_collection(send_diagnostics=True, verbosity=logging.INFO, reason="", path=None) -> None:
    """Accepted and ignored: localpipe collects no diagnostics, whatever ``send_diagnostics`` says
    (Azure's SDK writes it to its telemetry settings file and prints that collection is on)."""
