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

from localpipe.errors import UsageError
from localpipe.state import models as m
from localpipe.state.db import open_history
from localpipe.state.models import now
from localpipe.status import ACTIVE, RunStatus

SCHEDULER_EXITED = "scheduler exited"
# A run recorded but not yet picked up by its scheduler is left alone for this long.
START_GRACE_SECONDS = 30.0


def recover_abandoned_runs(ws) -> list[int]:
    """Mark Failed every active run whose scheduler is gone; returns their ids."""
    db = open_history(ws)
    active = [s.value for s in ACTIVE]
    candidates = list(m.PipelineRun.select().where(m.PipelineRun.status.in_(active)))
    if not candidates:  # the common case: nothing to look at, not even a process
        return []
    abandoned = [run for run in candidates if _abandoned(run)]
    for run in abandoned:
        steps = list(m.StepRun.select().where(m.StepRun.run == run.id, m.StepRun.status.in_(active)))
        for step in steps:
            if step.status == RunStatus.RUNNING.value:
                kill_step_processes(step)
        with db.atomic("IMMEDIATE"):
            fresh = m.PipelineRun.get_by_id(run.id)
            if fresh.status not in active:  # someone else recovered it meanwhile
                continue
            for step in steps:
                was_running = step.status in (RunStatus.RUNNING.value, RunStatus.FINALIZING.value)
                status = RunStatus.FAILED if was_running else RunStatus.CANCELED
                reason = SCHEDULER_EXITED if was_running else f"not run: {SCHEDULER_EXITED}"
                m.StepRun.update(status=status.value, reason=reason, ended_at=now()).where(
                    m.StepRun.id == step.id).execute()
            m.ResourceClaim.delete().where(m.ResourceClaim.run == run.id).execute()
            m.PipelineRun.update(status=RunStatus.FAILED.value, error=SCHEDULER_EXITED, ended_at=now()).where(
                m.PipelineRun.id == run.id).execute()
    return [run.id for run in abandoned]


def _abandoned(run: m.PipelineRun) -> bool:
    from localpipe.engine.resources import process_alive

    if run.scheduler_pid is None:
        return now() - run.submitted_at > START_GRACE_SECONDS
    return not process_alive(run.scheduler_pid, run.scheduler_started)


def kill_step_processes(step: m.StepRun) -> None:
    """End the process group a step ran in, if its leader is still the process the step started."""
    import psutil

    if not step.pid:
        return
    try:
        leader = psutil.Process(step.pid)
        if step.started_at and leader.create_time() < step.started_at - 1.0:
            return  # the pid was reused by an unrelated process
        group = [leader, *leader.children(recursive=True)]
    except psutil.Error:
        group = []
    try:
        os.killpg(step.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for process in group:
        try:
            process.kill()
        except psutil.Error:
            pass


def cancel_run(ws, run_id: int) -> str:
    """Ask the scheduler of ``run_id`` to cancel it (SIGTERM); returns what was done, in words."""
    from localpipe.engine.resources import process_alive
    from localpipe.state import records

    recover_abandoned_runs(ws)
    run = records.get_run(ws, run_id)
    if RunStatus(run.status).is_final:
        raise UsageError(f"run {run.id} is already {run.status}: there is nothing to cancel")
    if run.scheduler_pid is None:
        raise UsageError(f"run {run.id} has no scheduler yet: try again in a moment")
    if not process_alive(run.scheduler_pid, run.scheduler_started):
        recover_abandoned_runs(ws)
        return f"run {run.id}: its scheduler had exited; marked Failed"
    os.kill(run.scheduler_pid, signal.SIGTERM)
    return f"run {run.id}: cancel requested"
