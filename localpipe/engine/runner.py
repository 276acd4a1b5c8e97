"""Entry point of a detached scheduler: ``python -m localpipe.engine.runner STATE_DIR RUN_ID``."""

from __future__ import annotations

import sys

from localpipe.engine.submit import load_prepared, run_prepared
from localpipe.state.history import History
from localpipe.state.layout import Layout
from localpipe.status import RunStatus


def main(argv: list[str]) -> int:
    state_dir, run_id = argv
    history = History.open(Layout.of(state_dir))
    status = run_prepared(history, load_prepared(history, int(run_id)))
    return 0 if status is RunStatus.COMPLETED else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
