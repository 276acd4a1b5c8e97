"""Where each step of one run is in its life cycle, and what that allows next: no I/O.

The scheduler moves a step only through ``Progress.move``, which refuses a transition the life
cycle does not allow (``status.STEP_TRANSITIONS``, docs/lifecycle.md), counts down what each
step still waits for, and says which steps can be decided next, which can no longer run, and
what the run's status is once every step has ended.
"""

from __future__ import annotations

from localpipe.status import STEP_TRANSITIONS, RunStatus

_ENDED_BADLY = (RunStatus.FAILED, RunStatus.CANCELED)


class Progress:
    """The statuses of one run's steps; ``upstream`` maps each step to the steps it waits for, and
    ``settle`` a step to those of them it needs only to have ended, however they ended (a
    HyperDriveStep's own step and its trials, some of which a policy cancels)."""

    def __init__(self, upstream: dict[str, set[str]], settle: dict[str, set[str]] | None = None):
        self.upstream = upstream
        self.settle = settle or {}
        self.status = dict.fromkeys(upstream, RunStatus.NOT_STARTED)
        self.consumers: dict[str, list[str]] = {name: [] for name in upstream}
        for name, before in upstream.items():
            for other in before:
                self.consumers[other].append(name)
        self._awaiting = {name: len(before) for name, before in upstream.items()}
        self._decidable = [name for name, before in upstream.items() if not before]
        self._ended_badly = False  # a step failed or was canceled since blocked() last looked

    def move(self, name: str, status: RunStatus) -> None:
        """Move ``name`` to ``status``; RuntimeError when the life cycle does not allow it."""
        current = self.status[name]
        if status not in STEP_TRANSITIONS.get(current, ()):
            raise RuntimeError(f'step "{name}": {current} -> {status} is not a valid transition')
        self.status[name] = status
        if status.is_final:
            for consumer in self.consumers[name]:
                if status.succeeded or name in self.settle.get(consumer, ()):
                    self._awaiting[consumer] -= 1
                    if self._awaiting[consumer] == 0:
                        self._decidable.append(consumer)
        if status in _ENDED_BADLY:
            self._ended_badly = True

    def take_decidable(self) -> list[str]:
        """The steps whose upstream steps all succeeded since the last call, not yet decided."""
        found = [name for name in self._decidable if self.status[name] is RunStatus.NOT_STARTED]
        self._decidable = []
        return found

    @property
    def has_decidable(self) -> bool:
        return bool(self._decidable) or self._ended_badly

    def blocked(self) -> list[tuple[str, str]]:
        """Steps not started that can no longer run, each with its reason, in an order that lets
        the caller cancel them one by one (a step after the upstream step that blocks it)."""
        if not self._ended_badly:
            return []
        self._ended_badly = False
        found: list[tuple[str, str]] = []
        ended = {name for name, status in self.status.items() if status in _ENDED_BADLY}
        changed = True
        while changed:
            changed = False
            for name, status in self.status.items():
                if status is not RunStatus.NOT_STARTED or name in ended:
                    continue
                bad = sorted(u for u in self.upstream[name] if u in ended and u not in self.settle.get(name, ()))
                if bad:
                    failed = self.status[bad[0]] is RunStatus.FAILED
                    found.append((name, f'not run: upstream step "{bad[0]}" {"failed" if failed else "did not run"}'))
                    ended.add(name)
                    changed = True
        return found

    def unfinished(self) -> list[str]:
        return [name for name, status in self.status.items() if not status.is_final]

    def outcome(self) -> RunStatus:
        """The run's status once every step has ended: Completed only when every step succeeded."""
        return run_outcome(self.status.values())


def run_outcome(statuses) -> RunStatus:
    """A run's final status from its steps' (SPEC §3): Failed if one failed, else Canceled if one
    was canceled, else Completed."""
    statuses = set(statuses)
    if RunStatus.FAILED in statuses:
        return RunStatus.FAILED
    if RunStatus.CANCELED in statuses:
        return RunStatus.CANCELED
    return RunStatus.COMPLETED
