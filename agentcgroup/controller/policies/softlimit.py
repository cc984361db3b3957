"""Graduated enforcement of a call's own soft limit: throttle, then freeze, then kill, each within a deadline.

Over its soft limit the kernel throttles the call (v2 ``memory.high``; v1 stalls it at the limit). If it is
still there after ``stall_grace`` it is frozen, unless it has a hard limit above and the session and the host
have room, in which case the soft limit is lifted (it may grow to the hard limit). If it is still frozen
``kill_after`` later and no room has appeared, it is killed. Nothing livelocks.
"""

from __future__ import annotations

from ...backends.base import Stats
from ...units import MAX_BYTES, format_size
from ..actions import Action
from .base import CallInfo, Policy, View

NEAR = 0.95  # "at its soft limit": usage within 5 %


def _at_limit(st: Stats, soft: int) -> bool:
    """Near its own soft limit. A v1 stall (``under_oom``) further below is at a cap the pressure policy set
    (its share of a shared budget): not the call's own limit, nor this policy's business."""
    return (st.memory_current or 0) >= NEAR * soft


class SoftLimitPolicy(Policy):
    name = "soft-limit"

    def on_memory(self, view: View, call: CallInfo, stats: Stats) -> list[Action]:
        if call.soft is None or call.phase != "running" or not _at_limit(stats, call.soft):
            return []
        soft = format_size(call.soft)
        return [
            self.act(
                "throttle",
                call,
                f"at its soft memory limit {soft}",
                level=call.soft,
                figures={"usage": stats.memory_current, "soft": soft},
            ),
            self.timer(call, "stall deadline", view.config.stall_grace, "stalled"),
        ]

    def on_timer(self, view: View, call: CallInfo, key: str) -> list[Action]:
        if call.throttled_by != self.name or call.soft is None:
            return []
        st = view.stats(call)
        soft = format_size(call.soft)
        if key == "stalled" and call.phase == "throttled":
            if not _at_limit(st, call.soft):
                return [self.act("recover", call, "back under its soft limit by itself")]
            if self._room(view, call, st):
                return [self._release(view, call, f"stalled {view.config.stall_grace:g} s at the soft limit")]
            return [
                self.act(
                    "freeze",
                    call,
                    f"stalled {view.config.stall_grace:g} s at its soft memory limit {soft}",
                    figures={"usage": st.memory_current, "soft": soft},
                ),
                self.timer(call, "kill deadline", view.config.kill_after, "frozen"),
            ]
        if key == "frozen" and call.phase == "frozen":
            if self._room(view, call, st):
                return [
                    self._release(view, call, "room appeared while frozen"),
                    self.act("thaw", call, "memory available again"),
                ]
            return [
                self.act(
                    "kill",
                    call,
                    f"stayed at its soft memory limit {soft} and no more memory could be given",
                    by="memory",
                    figures={"usage": st.memory_current, "soft": soft},
                )
            ]
        return []

    @staticmethod
    def _room(view: View, call: CallInfo, st: Stats) -> bool:
        """May the call grow past its soft limit: a hard limit above it, and room up to it (or a step of it)."""
        hard = call.hard
        if hard is None or hard >= MAX_BYTES or hard <= (call.soft or 0):
            return False
        want = min(hard - (st.memory_current or 0), view.config.checkpoint_step)
        return view.headroom(call) >= want

    def _release(self, view: View, call: CallInfo, why: str) -> Action:
        """Lift the call's soft limit (``level`` None): it may grow to its hard limit."""
        hard = call.hard
        return self.act(
            "release",
            call,
            f"{why}; it may grow to its hard limit {format_size(hard)}",
            level=None,
            figures={
                "soft": format_size(call.soft),
                "hard": format_size(hard),
                "held_s": round(view.now - (call.throttled_at or view.now), 3),
            },
        )
