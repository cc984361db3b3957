"""The daemon's ops for looking on: ``events`` (the event log, and following it) and ``top`` (the view
``agentcg top`` draws). Root sees every session; any other uid only its own, in its own names.

``events``: ``{"op": "events", "follow": false, "session": null, "last": 200}``. The last ``last`` recorded
events (of ``session`` only, if given) come as ``{"id": ..., "event": "log", "record": {...}}`` lines; without
``follow`` a final ``{"id": ..., "ok": true, "count": n}`` ends the reply. With ``follow`` the daemon says
``{"id": ..., "event": "following"}`` and sends each new event as it happens until the client hangs up (a
client that does not read is dropped once :data:`FOLLOW_BACKLOG` bytes wait for it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..controller.events import Event
from ..observe.eventlog import EventLog
from ..observe.view import live_view
from . import tenants
from .protocol import ProtocolError, Request

if TYPE_CHECKING:
    from .connection import Connection
    from .server import Daemon

ROOT = 0
#: events a request may ask for from the past
MAX_LAST = 2000
#: bytes waiting for a follower past which it is dropped
FOLLOW_BACKLOG = 4 << 20

Match = Callable[[Event], bool]


def record_for(ev: Event, ns: int) -> dict[str, Any]:
    d = ev.to_dict()
    d["session"] = tenants.external_name(ns, ev.session)
    if ns == ROOT:
        d["uid"] = ev.uid
    return d


class Followers:
    """Connections following the event log; events reach them on the daemon's loop."""

    def __init__(self, daemon: Daemon, log: EventLog) -> None:
        self.daemon, self.log = daemon, log
        self.conns: dict[Connection, tuple[Any, Match]] = {}  # connection -> (request id, its filter)
        log.follow(self._on_event)

    def _on_event(self, ev: Event) -> None:  # any thread
        if self.conns:
            self.daemon.call_soon(lambda: self._push(ev))

    def _push(self, ev: Event) -> None:
        for conn, (req_id, match) in list(self.conns.items()):
            if conn.closed or not match(ev):
                continue
            conn.send({"id": req_id, "event": "log", "record": record_for(ev, conn.ns)})
            if len(conn.outbuf) > FOLLOW_BACKLOG:
                conn.close(reason="fell behind following the event log")

    def add(self, conn: Connection, req_id: Any, match: Match) -> None:
        self.conns[conn] = (req_id, match)

    def drop(self, conn: Connection) -> None:
        self.conns.pop(conn, None)

    def close(self) -> None:
        self.log.unfollow(self._on_event)
        self.conns.clear()


class ObserveOps:
    """Mixed into :class:`~agentcgroup.daemon.connection.Connection`."""

    daemon: Daemon
    ns: int
    busy: bool

    def send(self, obj: dict[str, Any]) -> None: ...

    def op_events(self, req: Request) -> None:
        body = req.body
        follow = body.get("follow", False)
        if not isinstance(follow, bool):
            raise ProtocolError("field 'follow': expected true/false", req.id)
        last = body.get("last", 200)
        if isinstance(last, bool) or not isinstance(last, int) or not 0 <= last <= MAX_LAST:
            raise ProtocolError(f"field 'last': expected an integer 0..{MAX_LAST}", req.id)
        session = body.get("session")
        if session is not None and not isinstance(session, str):
            raise ProtocolError("field 'session': expected a string", req.id)
        ns = self.ns
        wanted = None if session is None else tenants.internal_name(ns, session)

        def match(ev: Event) -> bool:
            return (ns == ROOT or ev.uid == ns) and (wanted is None or ev.session == wanted)

        past = [ev for ev in self.daemon.followers.log.snapshot() if match(ev)]
        past = past[len(past) - last :] if last else []
        for ev in past:
            self.send({"id": req.id, "event": "log", "record": record_for(ev, ns)})
        if not follow:
            self.send({"id": req.id, "ok": True, "count": len(past)})
            return
        self.busy = True  # no further request on this connection: it follows until the client hangs up
        self.daemon.followers.add(self, req.id, match)  # type: ignore[arg-type]  # self is a Connection
        self.send({"id": req.id, "event": "following"})

    def op_top(self, req: Request) -> Callable[[], dict[str, Any]]:
        ctl, ns, log = self.daemon.controller, self.ns, self.daemon.followers.log

        def job() -> dict[str, Any]:
            view = live_view(ctl, ns, log.snapshot())
            for s in view["sessions"]:
                s["name"] = tenants.external_name(ns, s["name"])
            for a in view["actions"]:
                a["session"] = tenants.external_name(ns, a["session"])
            if ns != ROOT:  # the host's budget and usage are the operator's
                view.pop("budget", None)
                view.pop("memory", None)
            return {"view": view}

        return job
