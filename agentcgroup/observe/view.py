"""What ``agentcg top`` shows, as plain data: the sessions a uid may see with their figures and running calls,
the host budget, and the last actions with their reasons. Built by the daemon (op ``top``) from the live
controller, or from a recording (:mod:`.recorded`); drawn by :mod:`.screen`."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..controller.events import ACTIONS, Event
from ..errors import CgroupError
from ..feedback import command_text
from ..units import MAX_BYTES

if TYPE_CHECKING:
    from ..controller.core import Controller

ROOT = 0
#: actions listed at the bottom
LAST_ACTIONS = 12


def visible(ev: Event, uid: int) -> bool:
    return uid == ROOT or ev.uid == uid


def live_view(ctl: Controller, uid: int, events: Iterable[Event] = ()) -> dict[str, Any]:
    """The view of ``uid`` (root: everything) now."""
    snap = ctl.snapshot()
    sessions = []
    for s in ctl.session_states():
        if uid not in (ROOT, s.uid):
            continue
        st = snap.cgroup_stats(s.cg)
        try:
            some, full = ctl.manager.memory_pressure(s.cg)
        except CgroupError:
            some = full = None
        calls = []
        for cs in list(s.calls.values()):
            cst = snap.stats(cs)
            calls.append(
                {
                    "call_id": cs.id,
                    "command": command_text(cs.call.argv)[:200],
                    "age_s": round(cs.call.elapsed(), 3),
                    "memory": cst.memory_current,
                    "peak": cst.memory_peak,
                    "cpu_s": None if cst.cpu_usec is None else cst.cpu_usec / 1e6,
                    "phase": cs.phase,
                }
            )
        sessions.append(
            {
                "name": s.name,
                "uid": s.uid,
                "priority": s.priority,
                "budget": s.budget if s.budget is not None and s.budget < MAX_BYTES else None,
                "memory": st.memory_current,
                "peak": st.memory_peak,
                "cpu_s": None if st.cpu_usec is None else st.cpu_usec / 1e6,
                "psi_some": some,
                "psi_full": full,
                "calls": calls,
            }
        )
    view: dict[str, Any] = {"t": time.time(), "backend": ctl.manager.kind, "sessions": sessions}
    if ctl.config.budget is not None:
        view["budget"] = ctl.config.budget
        root = snap.root
        view["memory"] = None if root is None else snap.cgroup_stats(root).memory_current
    view["actions"] = last_actions(events, uid)
    return view


def last_actions(events: Iterable[Event], uid: int, most: int = LAST_ACTIONS) -> list[dict[str, Any]]:
    acts = [ev for ev in events if ev.kind in (*ACTIONS, "refuse") and visible(ev, uid)]
    return [
        {
            "t": ev.t,
            "kind": ev.kind,
            "session": ev.session,
            "call": ev.call,
            "reason": ev.fields.get("reason"),
            "policy": ev.fields.get("policy"),
        }
        for ev in acts[-most:]
    ]
