"""What each request does: validated on the loop, the controller's part handed to a worker as a job.

:class:`Ops` is the half of a :class:`~agentcgroup.daemon.connection.Connection` that knows the ops (the other
half reads, writes and keeps state); :class:`RunningCall` follows a ``run`` from ``started`` to its outcome,
whether or not its connection is still there.
"""

from __future__ import annotations

import base64
import logging
from typing import TYPE_CHECKING, Any, cast

from ..errors import AgentCgroupError, NotFound
from ..limits import Limits
from ..outcome import Outcome
from ..spawn import DEVNULL, STDOUT
from . import calltiming, tenants
from .policy import Caps, check_cap, check_count, check_priority_cap
from .protocol import VERSION, ProtocolError, Request, name_from, run_from, session_from

if TYPE_CHECKING:
    from ..controller.core import CallHandle
    from .connection import Connection
    from .server import Daemon

log = logging.getLogger("agentcgroup")

ROOT = 0
#: captured output a call's outcome carries per stream (``capture_output``); the rest is dropped, and said so
MAX_CAPTURE = 1 << 20


def outcome_dict(out: Outcome, uid: int) -> dict[str, Any]:
    d = out.to_dict()
    d["session"] = tenants.external_name(uid, out.session)
    for name in ("stdout", "stderr"):
        data = getattr(out, name)
        if data is not None:
            d[name + "_b64"] = base64.b64encode(data).decode()
    return d


class RunningCall:
    """A call of the daemon's, from ``started`` until its outcome (its connection may be gone by then)."""

    def __init__(
        self, daemon: Daemon, conn: Connection | None, handle: CallHandle, req: Request, args: dict[str, Any]
    ) -> None:
        self.daemon, self.conn, self.handle = daemon, conn, handle
        self.req_id, self.uid = req.id, conn.uid if conn is not None else ROOT
        self.on_disconnect = args["on_disconnect"]
        self.own_session: str | None = args.get("own_session_name")
        self.finished = False
        self.marks: dict[str, float] | None = None  # calltiming's stamps (only when it is on)

    def finish(self) -> None:
        """On the loop, once: the outcome to the client (if it is still there), the counts released, a session
        made for this call alone closed."""
        if self.finished:
            return
        self.finished = True
        if self.marks is not None:
            self.marks["finish"] = calltiming.now()
        d = self.daemon
        d.calls.discard(self)
        d.calls_of[self.uid] -= 1
        if d.calls_of[self.uid] <= 0:
            del d.calls_of[self.uid]
        conn, self.conn = self.conn, None
        if conn is not None and not conn.closed:
            try:
                out = self.handle.wait(0)
                assert out is not None
                conn.send({"id": self.req_id, "ok": True, "outcome": outcome_dict(out, conn.ns)})
                if self.marks is not None:
                    self._write_marks(out)
                out.stdout = out.stderr = None  # delivered: the outcomes kept for later need not hold it
            except BaseException as exc:  # the outcome could not be built: the client hears why
                conn.send_error(self.req_id, exc)
            conn.call = None
            conn.idle()
        if self.own_session is not None:
            name, uid = self.own_session, self.uid
            d.submit(lambda: d.controller.close_session(name, uid=uid), _log_close(name), uid)

    def _write_marks(self, out: Outcome) -> None:
        """calltiming's record of this call (the reply is sent already: nothing here may fail it)."""
        marks = self.marks
        assert marks is not None
        try:
            marks["replied"] = calltiming.now()
            call = getattr(getattr(self.handle, "_cs", None), "call", None)
            if call is not None:
                marks["spawn"] = call._t0
                if call.proc is not None and call.proc.ended is not None:
                    marks["reaped"] = call.proc.ended
            calltiming.write({"call_id": self.handle.call_id, "uid": self.uid, "rc": out.returncode, **marks})
        except Exception:
            log.debug("event=call-timing-failed call=%s", self.handle.call_id, exc_info=True)

    def client_gone(self) -> None:
        self.conn = None
        if self.on_disconnect == "kill" or (self.own_session is not None and self.on_disconnect != "detach"):
            try:
                self.handle.kill("the client disconnected")
            except AgentCgroupError:
                pass
        log.info("event=client-gone uid=%d call=%s action=%s", self.uid, self.handle.call_id, self.on_disconnect)


def _log_close(name: str):  # type: ignore[no-untyped-def]
    def then(_result: Any, error: BaseException | None) -> None:
        if error is not None and not isinstance(error, NotFound):
            log.warning("event=close-failed session=%s error=%r", name, str(error))

    return then


class Ops:
    """The ops of a connection (mixed into :class:`~agentcgroup.daemon.connection.Connection`)."""

    daemon: Daemon
    uid: int
    gid: int
    ns: int
    caps: Caps
    t_accepted: float
    busy: bool
    closed: bool
    call: RunningCall | None

    def send(self, obj: dict[str, Any]) -> None: ...
    def send_error(self, req_id: Any, exc: BaseException) -> None: ...
    def idle(self) -> None: ...
    def _close(self, fds: list[int]) -> None: ...

    def _hello(self) -> dict[str, Any]:
        ctl = self.daemon.controller
        return {
            "version": VERSION,
            "backend": ctl.manager.kind,
            "uid": self.uid,
            "features": ctl.manager.features.to_dict(),
            "policy": self.caps.to_dict(),
        }

    def _name(self, name: str) -> str:
        return tenants.internal_name(self.ns, name)

    def op_open_session(self, req: Request):  # type: ignore[no-untyped-def]
        args = session_from(req.body)
        name = self._name(args["name"])
        owner = self.uid
        if self.ns == ROOT and (named := tenants.owner_named(name)) is not None:
            owner = named  # root opens a tenant's session on its behalf
        limits, agent_memory = self._session_caps(args)
        ctl, d, caps, ns = self.daemon.controller, self.daemon, self.caps, self.ns

        def job() -> dict[str, Any]:
            with d.lock:
                exists = any(s.name == name for s in ctl.session_states())
                if not exists:
                    mine = sum(1 for s in ctl.session_states() if s.uid == owner)
                    check_count(mine, caps.max_sessions, "sessions", owner)
                s = ctl.open_session(
                    name, uid=owner, priority=args["priority"], limits=limits, agent_memory=agent_memory
                )
            info = s.info()
            info["name"] = tenants.external_name(ns, info["name"])
            return {"session": info}

        return job

    def _session_caps(self, args: dict[str, Any]) -> tuple[Limits, int | None]:
        """The session's limits and agent protection within this uid's caps (or NotAllowed naming the value)."""
        caps, uid = self.caps, self.uid
        limits: Limits = args["limits"]
        check_priority_cap(caps, args["priority"], uid)
        check_cap(limits.cpu_weight, caps.max_cpu_weight, "cpu-weight", uid)
        check_cap(limits.memory_low, caps.max_memory_protection, "memory-low", uid)
        check_cap(limits.memory_max, caps.max_session_memory, "memory", uid)
        check_cap(args["agent_memory"], caps.max_memory_protection, "agent_memory", uid)
        from ..controller.config import PRIORITIES

        if limits.cpu_weight is None and caps.max_cpu_weight is not None:
            weight = PRIORITIES[args["priority"]][1]
            if weight > caps.max_cpu_weight:
                limits = limits.merged(Limits(cpu_weight=caps.max_cpu_weight))
        if limits.memory_max is None and caps.max_session_memory is not None:
            limits = limits.merged(Limits(memory_max=caps.max_session_memory))
        agent_memory = args["agent_memory"]
        if agent_memory is None and caps.max_memory_protection is not None:
            default = self.daemon.controller.config.agent_memory_low
            if default > caps.max_memory_protection:
                agent_memory = caps.max_memory_protection
        return limits, agent_memory

    def op_close_session(self, req: Request):  # type: ignore[no-untyped-def]
        name = self._name(name_from(req.body))
        ctl, uid = self.daemon.controller, self.uid

        def close() -> dict[str, Any]:
            ctl.close_session(name, uid=uid)
            return {}

        return close

    def op_status(self, req: Request):  # type: ignore[no-untyped-def]
        ctl, uid, ns = self.daemon.controller, self.uid, self.ns

        def job() -> dict[str, Any]:
            st = ctl.status(uid=uid)
            for s in st["sessions"]:
                s["name"] = tenants.external_name(ns, s["name"])
            return {"status": st}

        return job

    def op_outcome(self, req: Request):  # type: ignore[no-untyped-def]
        call_id = name_from(req.body, "call_id")
        ctl, uid, ns = self.daemon.controller, self.uid, self.ns

        def job() -> dict[str, Any]:
            out = ctl.outcome(call_id, uid=uid)
            return {"outcome": None if out is None else outcome_dict(out, ns), "running": out is None}

        return job

    def op_kill(self, req: Request):  # type: ignore[no-untyped-def]
        session = self._name(name_from(req.body, "session"))
        call_id = name_from(req.body, "call_id")
        reason = req.body.get("reason")
        reason = str(reason)[:200] if isinstance(reason, str) and reason else "killed on request"
        ctl, uid = self.daemon.controller, self.uid

        def kill() -> dict[str, Any]:
            ctl.kill_call(session, call_id, reason, uid=uid)
            return {}

        return kill

    def _run(self, req: Request, fds: list[int]) -> None:
        """Validate, check the caps, then admit and start on a worker; the outcome comes from the call's
        completion (:class:`RunningCall`). Owns ``fds`` from here: every path closes them."""
        d, uid, caps = self.daemon, self.uid, self.caps
        marks = {"accepted": self.t_accepted, "read": calltiming.now()} if calltiming.ON else None
        try:
            a = run_from(req.body)
            wanted = sum(a["stdio"])
            if len(fds) != wanted:
                raise ProtocolError(f"the request's stdio asks for {wanted} fds; {len(fds)} came with it", req.id)
            name = self._name(a["session"])
            intent, limits = a["intent"], a["limits"]
            check_priority_cap(caps, intent.priority if intent is not None else None, uid, "intent priority")
            check_cap(limits.cpu_weight, caps.max_cpu_weight, "cpu-weight", uid)
            check_cap(limits.memory_low, caps.max_memory_protection, "memory-low", uid)
            check_cap(limits.pids_max, caps.max_call_pids, "pids", uid)
            if limits.pids_max is None and caps.max_call_pids is not None:
                limits = limits.merged(Limits(pids_max=caps.max_call_pids))  # no fork bomb past the cap
            if intent is not None and intent.cpu is not None and limits.cpu_weight is None:
                weight = max(1, min(10_000, round(intent.cpu * 100)))
                if caps.max_cpu_weight is not None and weight > caps.max_cpu_weight:
                    limits = limits.merged(Limits(cpu_weight=caps.max_cpu_weight))  # a documented clamp
            check_count(d.calls_of[uid], caps.max_calls, "calls running", uid)
            if not a["own_session"]:
                d.controller.session(name, uid)  # NotFound / AccessDenied at once, on the loop
            run_as = None if uid == ROOT else (uid, self.gid)
            env = tenants.call_env(uid, a["env"])
            session_args = {"name": a["session"], "priority": "normal", "limits": Limits(), "agent_memory": None}
            own_limits, own_agent = self._session_caps(session_args) if a["own_session"] else (None, None)
        except BaseException:
            self._close(fds)
            raise
        d.calls_of[uid] += 1  # held from here; released by RunningCall.finish or a failed start
        it = iter(fds)
        stdio = [next(it) if want else None for want in a["stdio"]]
        ctl = d.controller
        conn = self

        def job() -> tuple[CallHandle, str | None]:
            if marks is not None:
                marks["job"] = calltiming.now()
            own = None
            try:
                if a["own_session"]:
                    with d.lock:
                        if not any(s.name == name for s in ctl.session_states()):
                            mine = sum(1 for s in ctl.session_states() if s.uid == uid)
                            check_count(mine, caps.max_sessions, "sessions", uid)
                            ctl.open_session(name, uid=uid, limits=own_limits, agent_memory=own_agent)
                            own = name
                try:
                    handle = ctl.submit(
                        name,
                        a["argv"],
                        limits=limits,
                        intent=intent,
                        timeout=a["timeout"],
                        uid=uid,
                        run_as=run_as,
                        env=env,
                        cwd=a["cwd"] or "/",
                        stdin=stdio[0] if stdio[0] is not None else DEVNULL,
                        stdout=DEVNULL if stdio[1] is None and not a["capture_output"] else stdio[1],
                        stderr=STDOUT
                        if a["merge_stderr"]
                        else DEVNULL
                        if stdio[2] is None and not a["capture_output"]
                        else stdio[2],
                        capture_output=a["capture_output"],
                        keep_background=a["keep_background"],
                        new_session=True,
                        capture_limit=MAX_CAPTURE,
                    )
                except BaseException:
                    if own is not None:
                        ctl.close_session(own, uid=uid)
                    raise
                if marks is not None:
                    marks["spawned"] = calltiming.now()
                return handle, own
            finally:
                conn._close([fd for fd in stdio if fd is not None])  # the command has its own copies now

        def then(result: Any, error: BaseException | None) -> None:
            if error is not None:
                d.calls_of[uid] -= 1
                self.send_error(req.id, error)
                self.idle()
                return
            handle, own = result
            if marks is not None:
                marks["then"] = calltiming.now()
            rc = RunningCall(
                d, None if self.closed else cast("Connection", self), handle, req, {**a, "own_session_name": own}
            )
            d.calls.add(rc)
            if marks is not None:
                rc.marks = marks
                handle.future.callbacks.append(lambda _out: marks.__setitem__("done", calltiming.now()))
            handle.future.callbacks.append(lambda _out: d.call_soon(rc.finish))
            if self.closed:  # the client left while its call was being started
                rc.client_gone()
            else:
                self.call = rc
                self.send({"id": req.id, "event": "started", "call_id": handle.call_id})
            if handle.done():
                rc.finish()

        self.busy = True
        d.submit(job, then, uid)
