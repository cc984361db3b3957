"""One client connection: a state machine on the daemon's loop, with bounded buffers.

``idle`` (reading requests) -> ``busy`` (one request on a worker, or one call running) -> ``idle`` ...; on a
hang-up, a protocol violation or a buffer over its bound: ``closed``. Only the loop's thread touches a
connection; a worker hands its result back through :meth:`Daemon.submit`. Every write checks that the
connection is still open, so a late completion (a detached call's) never reaches a socket that is gone, let
alone another client's.

fds: each one received is tagged with the stream offset it came at; the request whose line covers that offset
owns it. A ``run`` takes as many as its ``stdio`` says; every other fd of a request, of a rejected request or
of a connection that closes is closed at once. At most :data:`MAX_FDS` may wait at a time, and one message may
not carry more (the kernel drops the rest: the connection is closed).
"""

from __future__ import annotations

import array
import base64
import logging
import os
import select
import socket
from typing import TYPE_CHECKING, Any

from ..errors import AgentCgroupError, NotFound
from ..limits import Limits
from ..outcome import Outcome
from ..spawn import DEVNULL, SpawnError
from . import tenants
from .policy import (
    Caps,
    TooMany,
    check_cap,
    check_count,
    check_priority_cap,
)
from .protocol import (
    MAX_FDS,
    MAX_LINE,
    VERSION,
    ProtocolError,
    Request,
    TooLarge,
    encode,
    error_reply,
    name_from,
    parse_request,
    run_from,
    session_from,
)

if TYPE_CHECKING:
    from ..controller.core import CallHandle
    from .server import Daemon

log = logging.getLogger("agentcgroup")

ROOT = 0
#: replies waiting to be written past which no further request of this connection is read
OUT_HIGH = 1 << 20
READ_CHUNK = 65536
#: captured output a call's outcome carries per stream (``capture_output``); the rest is dropped, and said so
MAX_CAPTURE = 1 << 20
EPOLLRDHUP = getattr(select, "EPOLLRDHUP", 0x2000)
#: the errors a request may end with (anything else is a bug: logged, and the client still gets an answer)
EXPECTED = (AgentCgroupError, ValueError, SpawnError, FileNotFoundError, PermissionError)


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

    def __init__(self, daemon: Daemon, conn: Connection | None, handle: CallHandle, req: Request, args: dict) -> None:
        self.daemon, self.conn, self.handle = daemon, conn, handle
        self.req_id, self.uid = req.id, conn.uid if conn is not None else ROOT
        self.on_disconnect = args["on_disconnect"]
        self.own_session: str | None = args.get("own_session_name")
        self.finished = False

    def finish(self) -> None:
        """On the loop, once: the outcome to the client (if it is still there), the counts released, a session
        made for this call alone closed."""
        if self.finished:
            return
        self.finished = True
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
                out.stdout = out.stderr = None  # delivered: the outcomes kept for later need not hold it
            except BaseException as exc:  # the outcome could not be built: the client hears why
                conn.send_error(self.req_id, exc)
            conn.call = None
            conn.idle()
        if self.own_session is not None:
            name, uid = self.own_session, self.uid
            d.submit(lambda: d.controller.close_session(name, uid=uid), _log_close(name))

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


class Connection:
    def __init__(self, daemon: Daemon, sock: socket.socket, pid: int, uid: int, gid: int, caps: Caps) -> None:
        self.daemon, self.sock = daemon, sock
        self.fd = sock.fileno()
        self.pid, self.uid, self.gid, self.caps = pid, uid, gid, caps
        #: whose namespace of session names it uses: root's (full names) for root and for the daemon's own uid
        #: (a private daemon of a user's, e.g. ``agentcg record``'s), its own for every other uid
        self.ns = ROOT if uid in (ROOT, daemon.owner) else uid
        self.inbuf = bytearray()
        self.consumed = 0  # stream offset of inbuf[0]
        self.fds: list[tuple[int, int]] = []  # (stream offset it came at, fd)
        self.outbuf = bytearray()
        self.busy = False
        self.eof = False
        self.closed = False
        self.call: RunningCall | None = None
        self.paused = False  # its uid is over its request rate: not read until the bucket refills
        self._armed = 0  # the events the loop watches for us

    # --- events -----------------------------------------------------------------------------------------
    def rearm(self) -> None:
        """Watch for input until the client's EOF (then no more: a hung-up socket would wake the loop for ever),
        and for room to write while replies wait."""
        if self.closed:
            return
        want = 0 if self.eof or self.paused else select.EPOLLIN | EPOLLRDHUP
        if self.outbuf:
            want |= select.EPOLLOUT
        if want == self._armed:
            return
        loop = self.daemon.loop
        if self._armed:
            loop.remove(self.fd)
        if want:
            loop.add(self.fd, want, self.on_event)
        self._armed = want

    def on_event(self, fd: int, events: int) -> None:
        if self.closed:
            return
        if events & select.EPOLLOUT:
            self.flush()
        if not self.closed and not self.eof and events & ~select.EPOLLOUT:
            self._read()
        if not self.closed:
            self.pump()
            self.rearm()

    def _read(self) -> None:
        for _ in range(16):  # a fair share per wakeup; level-triggered, so the rest comes next time
            try:
                data, anc, flags, _ = self.sock.recvmsg(
                    READ_CHUNK, socket.CMSG_SPACE(MAX_FDS * 4), socket.MSG_CMSG_CLOEXEC
                )
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                self.close(reason=f"read failed: {exc.strerror or exc}")
                return
            offset = self.consumed + len(self.inbuf)
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    got = array.array("i")
                    got.frombytes(payload[: len(payload) - len(payload) % got.itemsize])
                    self.fds.extend((offset, fd) for fd in got)
            if flags & socket.MSG_CTRUNC or len(self.fds) > MAX_FDS:
                self.fail(ProtocolError(f"more than {MAX_FDS} fds sent (at most one stdin, stdout and stderr)"))
                return
            if not data:
                self.eof = True
                if self.call is not None:
                    self.close(reason="hung up during its call")
                else:
                    self.rearm()
                return
            self.inbuf += data
            if len(self.inbuf) > MAX_LINE:
                self.fail(TooLarge(f"more than {MAX_LINE} bytes unread (a request line may not be longer)"))
                return
            if len(data) < READ_CHUNK:
                return

    # --- requests ---------------------------------------------------------------------------------------
    def pump(self) -> None:
        """Handle the next complete request line, if no other is under way and replies are being read."""
        while not self.closed and not self.busy and not self.paused and len(self.outbuf) < OUT_HIGH:
            nl = self.inbuf.find(b"\n")
            if nl < 0:
                if self.eof:
                    self._close_fds(len(self.inbuf) + self.consumed + 1)  # an incomplete request's fds
                    if not self.outbuf:
                        self.close(reason="hung up")
                return
            line = bytes(self.inbuf[:nl])
            del self.inbuf[: nl + 1]
            self.consumed += nl + 1
            fds = self._take_fds(self.consumed)
            if not line.strip():
                self._close(fds)
                continue
            self.handle(line, fds)
            if not self.daemon.buckets.take(self.uid, self.caps.max_requests_per_s):
                self.pause()

    def pause(self) -> None:
        rate = self.caps.max_requests_per_s
        assert rate is not None
        self.paused = True
        self.rearm()
        self.daemon.loop.call_later(self.daemon.buckets.wait(self.uid, rate), self._resume)

    def _resume(self) -> None:
        self.paused = False
        if not self.closed:
            self.rearm()
            self.pump()

    def _take_fds(self, end: int) -> list[int]:
        mine = [fd for off, fd in self.fds if off < end]
        self.fds = [(off, fd) for off, fd in self.fds if off >= end]
        return mine

    def _close_fds(self, end: int) -> None:
        self._close(self._take_fds(end))

    @staticmethod
    def _close(fds: list[int]) -> None:
        for fd in fds:
            try:
                os.close(fd)
            except OSError:
                pass

    def handle(self, line: bytes, fds: list[int]) -> None:
        req_id = None
        try:
            req = parse_request(line)
            req_id = req.id
            if req.op != "run" and fds:
                raise ProtocolError(f"{req.op} takes no fds; {len(fds)} came with it")
            if req.op == "hello":
                self.send({"id": req_id, "ok": True, **self._hello()})
                return
            if self.daemon.logs.allow(self.uid):
                log.info(
                    "event=request op=%s uid=%d pid=%d %s",
                    req.op,
                    self.uid,
                    self.pid,
                    " ".join(
                        f"{k}={str(v)[:80]!r}" for k, v in req.body.items() if k in ("name", "session", "call_id")
                    ),
                )
            if req.op == "run":
                self._run(req, fds)
                fds = []
            else:
                job = getattr(self, "op_" + req.op)(req)
                self._start(req, job)
        except EXPECTED as exc:
            self.send_error(getattr(exc, "req_id", None) or req_id, exc)
        finally:
            self._close(fds)

    def _start(self, req: Request, job: Any) -> None:
        """Run ``job`` (validated already) on a worker; its dict is the reply."""
        self.busy = True

        def then(result: Any, error: BaseException | None) -> None:
            if error is not None:
                self.send_error(req.id, error)
            else:
                self.send({"id": req.id, "ok": True, **result})
            self.idle()

        self.daemon.submit(job, then)

    def idle(self) -> None:
        """The request under way is answered: read the next (on the loop's next turn)."""
        self.busy = False
        if not self.closed:
            self.daemon.call_soon(self.pump)

    # --- ops (validated on the loop; the controller's part returned as a job for a worker) ---------------
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
        return lambda: (ctl.close_session(name, uid=uid), {})[1]

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
        return lambda: (ctl.kill_call(session, call_id, reason, uid=uid), {})[1]

    def _run(self, req: Request, fds: list[int]) -> None:
        """Validate, check the caps, then admit and start on a worker; the outcome comes from the call's
        completion (:class:`RunningCall`). Owns ``fds`` from here: every path closes them."""
        d, uid, caps = self.daemon, self.uid, self.caps
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
                        stderr=DEVNULL if stdio[2] is None and not a["capture_output"] else stdio[2],
                        capture_output=a["capture_output"],
                        keep_background=a["keep_background"],
                        new_session=True,
                        capture_limit=MAX_CAPTURE,
                    )
                except BaseException:
                    if own is not None:
                        ctl.close_session(own, uid=uid)
                    raise
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
            rc = RunningCall(d, None if self.closed else self, handle, req, {**a, "own_session_name": own})
            d.calls.add(rc)
            handle.future.callbacks.append(lambda _out: d.call_soon(rc.finish))
            if self.closed:  # the client left while its call was being started
                rc.client_gone()
            else:
                self.call = rc
                self.send({"id": req.id, "event": "started", "call_id": handle.call_id})
            if handle.done():
                rc.finish()

        self.busy = True
        d.submit(job, then)

    # --- writing ----------------------------------------------------------------------------------------
    def send(self, obj: dict[str, Any]) -> None:
        if self.closed:
            return
        self.outbuf += encode(obj)
        self.flush()

    def send_error(self, req_id: Any, exc: BaseException) -> None:
        if not isinstance(exc, EXPECTED):
            log.error("event=request-failed uid=%d error=%r", self.uid, exc, exc_info=exc)
        message = str(exc) if isinstance(exc, EXPECTED) else f"internal error: {type(exc).__name__}: {exc}"
        if isinstance(exc, FileNotFoundError) and exc.strerror:
            message = exc.strerror
        self.send(error_reply(req_id, exc, tenants.hide_prefix(self.ns, message)))

    def flush(self) -> None:
        while self.outbuf and not self.closed:
            try:
                n = self.sock.send(self.outbuf)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                self.close(reason=f"write failed: {exc.strerror or exc}")
                return
            del self.outbuf[:n]
        if self.closed:
            return
        self.rearm()
        if not self.outbuf and self.eof and not self.busy and b"\n" not in self.inbuf:
            self.close(reason="hung up")

    def fail(self, exc: ProtocolError) -> None:
        """A violation after which the stream cannot be trusted: say why, then close."""
        if self.daemon.logs.allow(self.uid):
            log.warning("event=request-refused uid=%d pid=%d reason=%r", self.uid, self.pid, str(exc))
        if self.outbuf:  # replies not yet read are dropped: this one must not wait behind them
            self.outbuf.clear()
        data = encode(error_reply(None, exc))
        try:
            self.sock.send(data, socket.MSG_DONTWAIT)
        except OSError:
            pass
        self.close(reason=str(exc))

    @staticmethod
    def refuse(sock: socket.socket, exc: TooMany) -> None:
        try:
            sock.send(encode(error_reply(None, exc)), socket.MSG_DONTWAIT)
        except OSError:
            pass
        sock.close()

    def close(self, reason: str = "", shutting_down: bool = False) -> None:
        if self.closed:
            return
        self.closed = True
        self.daemon.forget(self)
        self._close([fd for _, fd in self.fds])
        self.fds.clear()
        self.inbuf.clear()
        self.outbuf.clear()
        try:
            self.sock.close()
        except OSError:
            pass
        call, self.call = self.call, None
        if call is not None and not shutting_down:
            call.client_gone()
        if reason and reason != "hung up" and self.daemon.logs.allow(self.uid):
            log.info("event=connection-closed uid=%d pid=%d reason=%r", self.uid, self.pid, reason)
