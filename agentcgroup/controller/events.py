"""What the controller does, as it does it: one :class:`Event` per step, handed to whoever listens.

The same steps an outcome records (throttle, release, recover, freeze, thaw, kill, note), plus a session's
open and close, admission decisions (admit, refuse) and a call's start and end. The event log, the metrics and
``agentcg top`` subscribe (:mod:`agentcgroup.observe`); with no subscriber an emit costs one attribute test.

Subscribers are called on the thread that emits (the controller's loop for actions and a call's end, the
caller's thread for sessions, admission and a call's start): they must be quick and must not block.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from .._lazy import lazy_logger
from .._record import Frozen
from ..outcome import Outcome

log = lazy_logger("agentcgroup")

#: every kind of event there is
KINDS = (
    "session-open",
    "session-close",
    "admit",
    "refuse",
    "call-start",
    "call-end",
    "throttle",
    "release",
    "recover",
    "freeze",
    "thaw",
    "kill",
    "note",
)
#: the kinds that are a policy's (or a request's) action on a call
ACTIONS = ("throttle", "release", "recover", "freeze", "thaw", "kill")
#: how a call ended (``outcome_kind``), a bounded set
OUTCOME_KINDS = ("exit", "memory", "timeout", "policy", "signal", "refused", "error")


class Event(Frozen):
    FIELDS = ("kind", "session", "uid", "t", "call", "fields")
    kind: str
    session: str  # the controller's name (a tenant's sessions are ``u<uid>:<name>``)
    uid: int  # the session's owner
    t: float  # wall clock (time.time())
    call: str | None
    fields: dict[str, Any]

    def __init__(
        self,
        kind: str,
        session: str,
        uid: int,
        t: float,
        call: str | None = None,
        fields: dict[str, Any] | None = None,
    ) -> None:
        self._set("kind", kind)
        self._set("session", session)
        self._set("uid", uid)
        self._set("t", t)
        self._set("call", call)
        self._set("fields", {} if fields is None else fields)

    def to_dict(self) -> dict[str, Any]:
        return {"t": round(self.t, 6), "kind": self.kind, "session": self.session, "call": self.call, **self.fields}


Subscriber = Callable[[Event], None]


class EventBus:
    def __init__(self) -> None:
        self._subs: tuple[Subscriber, ...] = ()
        self._lock = threading.Lock()

    @property
    def active(self) -> bool:
        return bool(self._subs)

    def subscribe(self, fn: Subscriber) -> None:
        with self._lock:
            self._subs = (*self._subs, fn)

    def unsubscribe(self, fn: Subscriber) -> None:
        with self._lock:
            self._subs = tuple(s for s in self._subs if s is not fn)

    def emit(self, kind: str, session: str, uid: int, call: str | None = None, **fields: Any) -> None:
        subs = self._subs
        if not subs:
            return
        ev = Event(kind, session, uid, time.time(), call, fields)
        for fn in subs:
            try:
                fn(ev)
            except Exception:  # a listener's bug must not cost the controller its step
                log.exception("event=subscriber-failed kind=%s", kind)


def outcome_kind(out: Outcome) -> str:
    """How a call ended, one of :data:`OUTCOME_KINDS`."""
    if out.refused:
        return "refused"
    if out.killed_by in ("memory", "timeout", "policy", "signal", "error"):
        return out.killed_by
    if out.error is not None:
        return "error"
    if out.oom_kills:
        return "memory"
    if out.signal is not None:
        return "signal"
    return "exit"
