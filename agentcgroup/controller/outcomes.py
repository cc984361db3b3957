"""The outcomes' room: the last outcomes (for clients that ask again, or reconnect after a restart), who may
read them, and the status of what runs."""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

from .._lazy import lazy_logger
from ..errors import NotFound
from ..feedback import command_text
from ..outcome import Outcome
from .persist import StateDir, StateWriteError
from .sessions import ROOT_UID, AccessDenied, Sessions
from .snapshot import Snapshot

log = lazy_logger("agentcgroup")

#: outcomes kept in memory (and as files in the state dir)
KEEP_OUTCOMES = 1000


class Outcomes:
    def __init__(self, sessions: Sessions, store: StateDir | None) -> None:
        self.sessions, self.store = sessions, store
        self._kept: collections.OrderedDict[str, tuple[int, Outcome]] = collections.OrderedDict()

    def load(self) -> None:
        """The outcomes a previous controller wrote down."""
        if self.store is not None:
            for owner, out in self.store.outcomes():
                self.remember(owner, out)

    def remember(self, owner: int, out: Outcome) -> None:
        with self.sessions.lock:
            self._kept[out.call_id] = (owner, out)
            while len(self._kept) > KEEP_OUTCOMES:
                self._kept.popitem(last=False)

    def save(self, owner: int, out: Outcome) -> None:
        """Write it down for a successor; a failed write costs only that (the waiter has it already)."""
        if self.store is None:
            return
        try:
            self.store.save_outcome(owner, out)
        except (StateWriteError, OSError) as exc:
            log.warning("event=outcome-not-saved call=%s error=%r", out.call_id, str(exc))

    def get(self, call_id: str, uid: int = ROOT_UID) -> Outcome | None:
        """The outcome of a finished call, ``None`` while it runs; raises NotFound (or AccessDenied)."""
        with self.sessions.lock:
            found = self._kept.get(call_id)
            running = next((cs for cs in self.sessions.calls() if cs.id == call_id), None)
        if found is not None:
            owner, out = found
            if uid not in (ROOT_UID, owner):
                raise AccessDenied(f"call {call_id} belongs to uid {owner}, not {uid}")
            return out
        if running is not None:
            self.sessions.check_owner(running.session, uid)
            return None
        raise NotFound(f"no call {call_id!r} (unknown, or its outcome is no longer kept)", call_id)


def status(
    snapshot: Callable[[], Snapshot], sessions: Sessions, backend: str, budget: int | None, uid: int = ROOT_UID
) -> dict[str, Any]:
    """Sessions (those ``uid`` may see) with their running calls, and the host budget."""
    snap = snapshot()
    shown = []
    for s in sessions.all():
        if uid not in (ROOT_UID, s.uid):
            continue
        info = s.info()
        info["memory_current"] = snap.cgroup_stats(s.cg).memory_current
        info["calls"] = [
            {
                "call_id": cs.id,
                "command": command_text(cs.call.argv),
                "phase": cs.phase,
                "memory_current": snap.stats(cs).memory_current,
                "elapsed_s": round(cs.call.elapsed(), 3),
            }
            for cs in list(s.calls.values())
        ]
        shown.append(info)
    out: dict[str, Any] = {"backend": backend, "sessions": shown}
    root = snap.root
    if budget is not None and root is not None:
        out["budget"] = budget
        out["memory_current"] = snap.cgroup_stats(root).memory_current
    return out
