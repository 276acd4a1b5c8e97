"""Named kill points for fault-injection tests (tests/faults/).

``LOCALPIPE_FAULT=POINT[:N]`` makes the process kill itself with SIGKILL the N-th time (default:
the first) it reaches ``fault_point(POINT)``, so a test can stop the scheduler at an exact moment
instead of sleeping and hoping. Unset, a point costs one dictionary lookup.
"""

from __future__ import annotations

import os
import signal

# A scheduler's, each reached by a submission of tests/faults/test_kill_points.py's pipeline.
POINTS = (
    "run-started",  # the run is marked Running, nothing decided yet
    "in-reuse-wave",  # inside the transaction recording a wave of decisions
    "after-reuse-wave",  # a wave of decisions committed
    "before-step-start",  # a step's folder is ready, its process not started
    "step-running",  # a step's process runs and is recorded as Running
    "before-commit",  # a step exited 0 and is Finalizing, no output in the store yet
    "mid-commit",  # one output is in the store, the next is not
    "store-rename",  # an output folder is read-only, not yet renamed into the store
    "before-cache-entry",  # every output is in the store, nothing recorded yet
    "in-cache-entry",  # inside the transaction writing outputs, cache entry and Completed
    "after-completed",  # a step's completion is committed
    "during-delivery",  # an output's write-back to its datastore is half copied
)
# A schedule runner (`localpipe schedules run`, `localpipe serve`) reaches two more, "schedule-claimed":
# a fire is claimed, its run not recorded yet (tests/test_schedules.py kills it there), and
# "run-recorded": a published pipeline's run is recorded, its scheduler not started yet (REST and
# SDK submissions pass it too; tests/test_rest_review.py kills a runner there).

_spec = os.environ.get("LOCALPIPE_FAULT", "")
_point, _, _nth = _spec.partition(":")
_remaining = int(_nth or 1) if _point else 0


def fault_point(name: str) -> None:
    """Kill this process here if LOCALPIPE_FAULT names this point (and this is the N-th time)."""
    global _remaining
    if name != _point:
        return
    _remaining -= 1
    if _remaining == 0:
        os.kill(os.getpid(), signal.SIGKILL)
