"""A call past its time limit is killed with its whole tree."""

from __future__ import annotations

from ..actions import Action
from .base import CallInfo, Policy, View


class TimeoutPolicy(Policy):
    name = "timeout"

    def on_start(self, view: View, call: CallInfo) -> list[Action]:
        t = call.timeout
        if not t:
            return []
        left = max(0.0, t - call.elapsed())  # an adopted call has already used some of it
        return [self.timer(call, "time limit", left, "timeout")]

    def on_timer(self, view: View, call: CallInfo, key: str) -> list[Action]:
        t = call.timeout or 0.0
        return [self.act("kill", call, f"{t:g} s", by="timeout", figures={"timeout_s": t})]
