"""Graduated enforcement of a call's own soft limit: throttle, then freeze, then kill, each within a deadline.

Over its soft limit the kernel throttles the call (v2 ``memory.high``; v1 stalls it at the limit). If it is
still there after ``stall_grace`` it is frozen, unless it has a hard limit above and the session and the host
have room, in which case the soft limit is lifted (it may grow to the hard limit). If it is still frozen
``kill_after`` later and no room has appeared, it is killed. Nothing livelocks.
"""

from __future__ import annotations

from ...units import MAX_BYTES, format_size
from ..actions import Action
from .base import Policy

NEAR = 0.95  # "at its soft limit": usage within 5 %


class SoftLimitPolicy(Policy):
    name = "soft-limit"

    def on_memory(self, view, cs, stats):  # type: ignore[no-untyped-def]
        if cs.soft is None or cs.phase != "running":
            return []
        at_limit = stats.under_oom or (stats.memory_current or 0) >= NEAR * cs.soft
        if not at_limit:
            return []
        cs.phase, cs.throttled_by, cs.throttled_at = "throttled", "soft", view.now
        soft = format_size(cs.soft)
        return [
            Action(
                "throttle",
                cs,
                f"at its soft memory limit {soft}",
                level=cs.soft,
                figures={"usage": stats.memory_current, "soft": soft},
            ),
            Action("timer", cs, "stall deadline", delay=view.config.stall_grace, key="soft-stalled"),
        ]

    def on_timer(self, view, cs, key):  # type: ignore[no-untyped-def]
        if cs.throttled_by != "soft":
            return []
        st = view.stats(cs)
        soft = format_size(cs.soft)
        if key == "soft-stalled" and cs.phase == "throttled":
            if not (st.under_oom or (st.memory_current or 0) >= NEAR * cs.soft):
                cs.phase, cs.throttled_by = "running", None  # it came back under by itself
                return []
            if self._room(view, cs, st):
                return self._release(view, cs, f"stalled {view.config.stall_grace:g} s at the soft limit")
            return [
                Action(
                    "freeze",
                    cs,
                    f"stalled {view.config.stall_grace:g} s at its soft memory limit {soft}",
                    figures={"usage": st.memory_current, "soft": soft},
                ),
                Action("timer", cs, "kill deadline", delay=view.config.kill_after, key="soft-frozen"),
            ]
        if key == "soft-frozen" and cs.phase == "frozen":
            if self._room(view, cs, st):
                return [
                    *self._release(view, cs, "room appeared while frozen"),
                    Action("thaw", cs, "memory available again"),
                ]
            return [
                Action(
                    "kill",
                    cs,
                    f"stayed at its soft memory limit {soft} and no more memory could be given",
                    by="memory",
                    figures={"usage": st.memory_current, "soft": soft},
                )
            ]
        return []

    @staticmethod
    def _room(view, cs, st) -> bool:  # type: ignore[no-untyped-def]
        """May the call grow past its soft limit: a hard limit above it, and room up to it (or a step of it)."""
        hard = cs.call.limits.memory_max
        if hard is None or hard >= MAX_BYTES or hard <= (cs.soft or 0):
            return False
        want = min(hard - (st.memory_current or 0), view.config.checkpoint_step)
        return view.headroom(cs) >= want

    @staticmethod
    def _release(view, cs, why):  # type: ignore[no-untyped-def]
        hard = cs.call.limits.memory_max
        soft = format_size(cs.soft)
        cs.soft = None
        cs.phase, cs.throttled_by = "running", None
        return [
            Action(
                "release",
                cs,
                f"{why}; it may grow to its hard limit {format_size(hard)}",
                level=None,
                figures={
                    "soft": soft,
                    "hard": format_size(hard),
                    "held_s": round(view.now - (cs.throttled_at or view.now), 3),
                },
            )
        ]
