"""v1 has no memory.oom.group: when the kernel OOM-kills one process of a call, the rest of the call follows."""

from __future__ import annotations

from ..actions import Action
from .base import Policy


class OomGroupPolicy(Policy):
    name = "oom-group"

    def on_memory(self, view, cs, stats):  # type: ignore[no-untyped-def]
        if stats.oom_kills <= cs.oom_seen:
            return []
        cs.oom_seen = stats.oom_kills
        if view.kernel_oom_group or cs.call.proc is None or cs.call.proc.poll() is not None:
            return []
        return [
            Action(
                "kill",
                cs,
                "OOM kill in the call: the whole call goes (oom group)",
                by="memory",
                figures={"oom_kills": stats.oom_kills, "peak": stats.memory_peak},
            )
        ]
