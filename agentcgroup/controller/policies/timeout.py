"""A call past its time limit is killed with its whole tree."""

from __future__ import annotations

from ..actions import Action
from .base import Policy


class TimeoutPolicy(Policy):
    name = "timeout"

    def on_start(self, view, cs):  # type: ignore[no-untyped-def]
        t = cs.call.timeout
        return [Action("timer", cs, "time limit", delay=t, key="timeout")] if t else []

    def on_timer(self, view, cs, key):  # type: ignore[no-untyped-def]
        t = cs.call.timeout
        return [Action("kill", cs, f"{t:g} s", by="timeout", figures={"timeout_s": t})]
