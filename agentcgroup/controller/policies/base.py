"""The policy interface. A policy reads the view, returns actions; the controller carries them out.

Hooks (all optional, all return a list of actions):
    on_start(view, cs)              a call started
    on_memory(view, cs, stats)      a kernel memory notification for a call (threshold, high, OOM, stall)
    on_pressure(view)               a budget threshold or PSI trigger fired, or a call ended
    on_timer(view, cs, key)         a timer this policy asked for (``Action("timer", ...)``) expired
    on_end(view, cs)                a call ended (its outcome is being built)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ...backends.base import Stats

if TYPE_CHECKING:
    from ..actions import Action
    from ..state import CallState
    from ..view import View


class Policy:
    name = "policy"

    def on_start(self, view: View, cs: CallState) -> list[Action]:
        return []

    def on_memory(self, view: View, cs: CallState, stats: Stats) -> list[Action]:
        return []

    def on_pressure(self, view: View) -> list[Action]:
        return []

    def on_timer(self, view: View, cs: CallState, key: str) -> list[Action]:
        return []

    def on_end(self, view: View, cs: CallState) -> list[Action]:
        return []
