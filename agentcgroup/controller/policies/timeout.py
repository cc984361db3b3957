"""A call past its time limit is killed with its whole tree.

The limit counts the time the call was let run: while the controller holds it (throttled or frozen, so that
others may have the memory it would take), its clock stops, so that a call slowed for others is not then killed
for being slow. Never more than one limit more, though: a call still unfinished at twice its limit, held or not,
is killed (nothing waits for ever).
"""

from __future__ import annotations

from ..actions import Action
from .base import CallInfo, Policy, View

#: at most this many times its limit, in all, however long it was held
MOST = 2.0


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
        age = call.elapsed()
        held = min(call.held(view.now), age)
        left = min(t - (age - held), MOST * t - age)
        if left > 0.01:  # it was held: the time it was held is added to its limit
            return [self.timer(call, f"time limit ({held:.1f} s held)", left, "timeout")]
        if held < 0.01:
            why = f"{t:g} s"
        elif age - held >= t - 0.01:
            why = f"{t:g} s of running, besides {held:.1f} s held"
        else:
            why = f"{MOST * t:g} s in all, {held:.1f} s of them held (at most {MOST:g}x its {t:g} s)"
        return [self.act("kill", call, why, by="timeout", figures={"timeout_s": t, "held_s": round(held, 3)})]
