"""A call past its time limit is killed with its whole tree."""

from __future__ import annotations

from ..actions import Action
from .base import Policy


class TimeoutPolicy(Policy):
    name = "timeout"

    def on_start(self, view, cs):  # type: ignore[no-untyped-def]
        t = cs.call.timeout
        if not t:
            return []
        left = max(0.0, t - cs.call.elapsed())  # an adopted call has already used some of it
        return [Action("timer", cs, "time limit", delay=left, key="timeout")]

    def on_timer(self, view, cs, key):  # type: ignore[no-untyped-def]
        t = cs.call.timeout
        return [Action("kill", cs, f"{t:g} s", by="timeout", figures={"timeout_s": t})]
