"""Recovery and cancellation of runs from outside their scheduler.

A scheduler killed without a chance to clean up (SIGKILL, power loss) leaves its run active in
history.db. The first command that looks (``runs``, ``show``, ``status``, a claim, a run
handle) notices that the scheduler's process is gone, ends what is left of its step processes,
releases its claims and marks the run Failed with the reason "scheduler exited". This is the
only state transition made outside a scheduler, and only for a scheduler that no longer exists.
"""

from __future__ import annotations

import os
import signal
import time

from localpipe.errors import UsageError
from localpipe.parallel_files import write_aside
from localpipe.state.db import WriteFailed
from localpipe.state.history import History
from localpipe.status import RunStatus

SCHEDULER_EXITED = "scheduler exited"
CANCELED = "canceled"  # the reason a canceled run gives, as its scheduler records it
FAILED_MARK = "failed: "  # a request to end a run as Failed (Run.fail) starts so, then the details
# A run recorded but not yet picked up by its scheduler is left alone for this long.
START_GRACE_SECONDS = 30.0


def recover_abandoned_runs(history: History) -> list[int]:
    """Mark Failed every active run whose scheduler is gone (Canceled when it was asked to cancel);
    returns their ids."""
    candidates = history.runs.active()
    if not candidates:  # the common case: nothing to look at, not even a process
        return []
    abandoned = [run["id"] for run in candidates if _abandoned(run)]
    for run_id in abandoned:
        for step in history.runs.active_steps(run_id):
            if step["status"] == RunStatus.RUNNING.value:
                kill_step_processes(step["pid"], step["started_at"])
        remove_step_containers(str(history.layout.root), run_id)
    if abandoned:
        end_orphaned_launches(str(history.layout.root))
    for run_id in abandoned:
        # A scheduler asked to end may die of that SIGTERM before it handles it (a run canceled as
        # it starts, as manage-runs.ipynb does): the run ends as asked (Canceled, or Run.fail's Failed).
        ended, reason = requested_end(history.layout, run_id) or (RunStatus.FAILED, SCHEDULER_EXITED)
        try:
            history.runs.mark_abandoned(run_id, reason, ended)
        except WriteFailed:
            pass  # a full disk: readers still read; the next command that can write records it
    return abandoned


def _abandoned(run: dict) -> bool:
    from localpipe.engine.resources import process_alive  # imported only when a run is active: `runs` stays quick

    if run["scheduler_pid"] is None:
        return time.time() - run["submitted_at"] > START_GRACE_SECONDS
    return not process_alive(run["scheduler_pid"], run["scheduler_started"])


def kill_step_processes(pid: int | None, started_at: float | None) -> None:
    """End the process group a step ran in, if its leader is still the process the step started."""
    import psutil

    if not pid:
        return
    try:
        leader = psutil.Process(pid)
        if started_at and leader.create_time() < started_at - 1.0:
            return  # the pid was reused by an unrelated process
        group = [leader, *leader.children(recursive=True)]
    except psutil.Error:
        group = []
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for process in group:
        try:
            process.kill()
        except psutil.Error:
            pass


def end_orphaned_launches(workspace: str) -> None:
    """End what steps of this workspace started that outlived their step supervisor: a scheduler
    and its supervisor killed together (``kill -9`` of their process group) leave, say, a step's
    ``setsid`` grandchild running under init, with nothing left to end it but this."""
    from localpipe.engine.executors.local import end_launched
    from localpipe.engine.resources import process_alive

    def orphaned(env: dict) -> bool:
        supervisor = env.get("LOCALPIPE_LAUNCH", "").partition(".")[0]
        return (
            env.get("LOCALPIPE_WORKSPACE") == workspace
            and supervisor.isdigit()
            and not process_alive(int(supervisor), None)
        )

    end_launched(orphaned)


def remove_step_containers(workspace: str, run_id: int) -> None:
    """Remove the containers of the run's Docker steps (found by their labels: a container does not
    die with its scheduler)."""
    try:
        from localpipe.engine.executors.docker import remove_containers
    except ImportError:
        return  # no docker package: no step of this machine ran in a container
    remove_containers(workspace, run_id)


def requested_end(layout, run_id: int) -> tuple[RunStatus, str] | None:
    """How ``cancel_run`` asked ``run_id`` to end: (Canceled, "canceled"), or (Failed, the details
    ``Run.fail`` gave); None when nothing was asked."""
    for request in (layout.cancel_request(run_id), layout.cancel_taken(run_id)):  # the newer first
        try:
            asked = request.read_text(encoding="utf-8")
            break
        except FileNotFoundError:
            continue
    else:
        return None
    if asked.startswith(FAILED_MARK):
        return RunStatus.FAILED, asked.removeprefix(FAILED_MARK)
    return RunStatus.CANCELED, CANCELED


def cancel_run(history: History, run_id, failure: str | None = None) -> str:
    """Ask the scheduler of ``run_id`` to cancel it (SIGTERM); returns what was done, in words.
    With ``failure`` (``Run.fail``'s details), the run ends Failed with them rather than Canceled."""
    from localpipe.engine.resources import process_alive

    recover_abandoned_runs(history)
    run = history.runs.get(run_id)
    if RunStatus(run["status"]).is_final:
        what = "cancel" if failure is None else "fail"
        raise UsageError(f"run {run['id']} is already {run['status']}: there is nothing to {what}")
    if run["scheduler_pid"] is None:
        raise UsageError(f"run {run['id']} has no scheduler yet: try again in a moment")
    if not process_alive(run["scheduler_pid"], run["scheduler_started"]):
        recover_abandoned_runs(history)
        return f"run {run['id']}: its scheduler had exited; marked Failed"
    request = history.layout.cancel_request(run["id"])
    request.parent.mkdir(parents=True, exist_ok=True)
    # Aside, then renamed: a scheduler reading it as a second fail() rewrites it never finds it empty.
    write_aside(request, "" if failure is None else FAILED_MARK + failure, encoding="utf-8")
    os.kill(run["scheduler_pid"], signal.SIGTERM)
    return f"run {run['id']}: cancel requested"
