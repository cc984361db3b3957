"""What policies ask for, and the one actuator that carries it out in the kernel.

Every action names the policy that asked for it and becomes one structured log line and a step in the call's
outcome. Which phase an action puts its call in is decided in :mod:`.apply`; the :class:`Actuator` only speaks
the Manager's verbs (through the call's :class:`~agentcgroup.toolcall.ToolCall`). Tests replace it.
"""

from __future__ import annotations

import collections
import time
from typing import TYPE_CHECKING, Any

from .._lazy import lazy_logger
from .._record import Record
from ..errors import AgentCgroupError

if TYPE_CHECKING:
    from .policies.base import CallInfo
    from .state import CallState

log = lazy_logger("agentcgroup")


class Action(Record):
    """``verb``: throttle | release | cap | recover | freeze | thaw | kill | note | timer.

    throttle/release  set the call's soft limit to ``level`` (release: ``None`` lifts it; a cap still holds)
    cap               the call's share of a shared budget (``None``: none), in force while it runs
    recover           the call came back under its limit by itself: it runs on, nothing to write
    kill              ``by``: "memory" | "timeout" | "policy" | "error"
    timer             after ``delay`` s, the policy's ``on_timer`` with ``key``
    """

    FIELDS = ("verb", "call", "reason", "policy", "level", "by", "delay", "key", "figures")

    def __init__(
        self,
        verb: str,
        call: CallInfo,
        reason: str,
        policy: str = "controller",
        level: int | None = None,
        by: str = "policy",
        delay: float = 0.0,
        key: str = "",
        figures: dict[str, Any] | None = None,
    ) -> None:
        self.verb = verb
        self.call = call
        self.reason = reason
        self.policy = policy
        self.level = level
        self.by = by
        self.delay = delay
        self.key = key
        self.figures: dict[str, Any] = {} if figures is None else figures


def least(*levels: int | None) -> int | None:
    """The lowest of the soft levels set (None: none is)."""
    set_ = [v for v in levels if v is not None]
    return min(set_) if set_ else None


class Actuator:
    """Carries out actions through the Manager verbs, one at a time, on the loop thread."""

    def __init__(self) -> None:
        #: (monotonic time the action completed, verb, call label, reason), the last 10000
        self.log: collections.deque[tuple[float, str, str, str]] = collections.deque(maxlen=10_000)

    def execute(self, action: Action, cs: CallState) -> None:
        try:
            self._execute(action, cs)
        finally:
            self.log.append((time.monotonic(), action.verb, cs.label, action.reason))

    def _execute(self, action: Action, cs: CallState) -> None:
        call = cs.call
        if action.verb == "note" or call.cg is None:
            call.step(action.verb, action.reason, **action.figures)
            return
        try:
            if action.verb == "cap":
                if cs.phase == "running":  # a held call's throttle is in force; its release writes the cap
                    call.manager.set_soft_limit(call.cg, least(cs.cap, cs.soft, cs.checkpoint))
                return
            if action.verb in ("throttle", "release"):
                level = action.level if action.verb == "throttle" else least(action.level, cs.cap)
                call.manager.set_soft_limit(call.cg, level)
                call.step(action.verb, action.reason, **action.figures)
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
                "event=action-failed verb=%s call=%s policy=%s reason=%r error=%r",
                action.verb,
                cs.label,
                action.policy,
                action.reason,
                str(exc),
            )
            call.step("note", f"{action.verb} failed: {exc}")  # the outcome says what did not happen
