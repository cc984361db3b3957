"""v1 has no memory.oom.group: when the kernel OOM-kills one process of a call, the rest of the call follows."""

from __future__ import annotations

from ...backends.base import Stats
from ..actions import Action
from .base import CallInfo, Policy, View


class OomGroupPolicy(Policy):
    name = "oom-group"

    def __init__(self) -> None:
        self.seen: dict[str, int] = {}  # call id -> OOM kills already acted on

    def on_memory(self, view: View, call: CallInfo, stats: Stats) -> list[Action]:
        if stats.oom_kills <= self.seen.get(call.id, 0):
            return []
        self.seen[call.id] = stats.oom_kills
        if view.kernel_oom_group or call.exited:
            return []
        return [
            self.act(
                "kill",
                call,
                "OOM kill in the call: the whole call goes (oom group)",
                by="memory",
                figures={"oom_kills": stats.oom_kills, "peak": stats.memory_peak},
            )
        ]

    def on_end(self, view: View, call: CallInfo) -> list[Action]:
        self.seen.pop(call.id, None)
        return []
