"""Entry point of a detached scheduler: ``python -m localpipe.engine.runner WORKSPACE RUN_ID``."""

from __future__ import annotations

import sys

from localpipe.engine.scheduler import Scheduler
from localpipe.sdk.workspace import Workspace
from localpipe.status import RunStatus


def main(argv: list[str]) -> int:
    workspace, run_id = argv
    status = Scheduler(Workspace(workspace), int(run_id)).execute()
    return 0 if status is RunStatus.COMPLETED else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
