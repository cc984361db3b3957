"""What policies ask for, and the one actuator that carries it out.

Every action becomes one structured log line and a step in the call's outcome. Tests replace the actuator with
:class:`RecordingActuator`; ``dry_run`` logs and records without touching the kernel.
"""

from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import AgentCgroupError

if TYPE_CHECKING:
    from .state import CallState

log = logging.getLogger("agentcgroup")

VERBS = ("throttle", "release", "freeze", "thaw", "kill", "note", "timer")


@dataclass
class Action:
    verb: str
    call: CallState
    reason: str
    level: int | None = None  # throttle/release: the soft limit to set (None: lift it)
    by: str = "policy"  # kill: "memory" | "timeout" | "policy"
    delay: float = 0.0  # timer
    key: str = ""  # timer
    figures: dict[str, Any] = field(default_factory=dict)


class Actuator:
    """Carries out actions through the Manager verbs, one at a time, on the loop thread."""

    def __init__(self, dry_run: bool = False) -> None:
        self.dry_run = dry_run
        #: (monotonic time the action completed, verb, call label, reason), the last 10000
        self.log: collections.deque[tuple[float, str, str, str]] = collections.deque(maxlen=10_000)

    def execute(self, action: Action) -> None:
        cs = action.call
        call = cs.call
        m = call.manager
        try:
            self._execute(action, cs, call, m)
        finally:
            self.log.append((time.monotonic(), action.verb, cs.label, action.reason))

    def _execute(self, action: Action, cs: CallState, call: Any, m: Any) -> None:
        if action.verb == "note":
            call.step("note", action.reason, **action.figures)
            return
        if self.dry_run or call.cg is None:
            call.step(action.verb, f"(dry run) {action.reason}" if self.dry_run else action.reason, **action.figures)
            return
        try:
            if action.verb == "throttle":
                m.set_soft_limit(call.cg, action.level)
                call.step("throttle", action.reason, **action.figures)
            elif action.verb == "release":
                m.set_soft_limit(call.cg, action.level)
                call.step("release", action.reason, **action.figures)
            elif action.verb == "freeze":
                call.freeze(action.reason, **action.figures)
            elif action.verb == "thaw":
                call.thaw(action.reason, **action.figures)
            elif action.verb == "kill":
                call.kill(action.by, action.reason, **action.figures)
            else:
                raise ValueError(f"unknown action {action.verb!r}")
        except AgentCgroupError as exc:
            log.warning(
                "event=action-failed verb=%s call=%s reason=%r error=%r", action.verb, cs.label, action.reason, str(exc)
            )


class RecordingActuator(Actuator):
    """Records actions without carrying them out (for policy tests)."""

    def __init__(self) -> None:
        super().__init__(dry_run=True)
        self.actions: list[Action] = []

    def execute(self, action: Action) -> None:
        self.actions.append(action)
        super().execute(action)
