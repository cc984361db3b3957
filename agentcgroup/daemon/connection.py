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
import logging
import os
import select
import socket
from typing import TYPE_CHECKING, Any

from ..errors import AgentCgroupError
from ..spawn import SpawnError
from . import calltiming, tenants
from .observe_ops import ObserveOps
from .ops import ROOT, Ops, RunningCall
from .policy import Caps, TooMany
from .protocol import MAX_FDS, MAX_LINE, ProtocolError, Request, TooLarge, encode, error_reply, parse_request
from .ratelimit import VIOLATION_COST

if TYPE_CHECKING:
    from .server import Daemon

log = logging.getLogger("agentcgroup")

#: replies waiting to be written past which no further request of this connection is read
OUT_HIGH = 1 << 20
READ_CHUNK = 65536
#: request lines of one connection handled in one turn of the loop
LINES_PER_TURN = 8
EPOLLRDHUP = getattr(select, "EPOLLRDHUP", 0x2000)
# plain ints: ``socket.MSG_*`` are IntFlag members, and ``flags & socket.MSG_CTRUNC`` builds a flag through
# enum's Python code on every read of every request (~3 % of the daemon's samples a call)
_MSG_CTRUNC = int(socket.MSG_CTRUNC)
_RECV_FLAGS = int(socket.MSG_CMSG_CLOEXEC)
_ANC_SPACE = socket.CMSG_SPACE(MAX_FDS * 4)
#: the errors a request may end with (anything else is a bug: logged, and the client still gets an answer)
INLINE = ("outcome", "kill")
EXPECTED = (AgentCgroupError, ValueError, SpawnError, FileNotFoundError, PermissionError)


class Connection(Ops, ObserveOps):
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
        self._deferred = False  # lines left for the loop's next turn
        self._backoff = 0.0
        self._armed = 0  # the events the loop watches for us
        self.t_accepted = calltiming.now() if calltiming.ON else 0.0

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
                data, anc, flags, _ = self.sock.recvmsg(READ_CHUNK, _ANC_SPACE, _RECV_FLAGS)
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
            if flags & _MSG_CTRUNC or len(self.fds) > MAX_FDS:
                self.fail(ProtocolError(f"more than {MAX_FDS} fds sent (at most one stdin, stdout and stderr)"))
                return
            if not data:
                self.eof = True
                if self.call is not None:
                    self.close(reason="hung up during its call")
                elif self in self.daemon.followers.conns:
                    self.close(reason="hung up")
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
        """Handle the next complete request lines, if no other is under way and replies are being read: at
        most :data:`LINES_PER_TURN` in one turn of the loop; the rest wait for the next turn, after every other
        client's events (a burst of one client's lines does not hold the loop)."""
        handled = 0
        while not self.closed and not self.busy and not self.paused and len(self.outbuf) < OUT_HIGH:
            nl = self.inbuf.find(b"\n")
            if nl < 0:
                if self.eof:
                    self._close_fds(len(self.inbuf) + self.consumed + 1)  # an incomplete request's fds
                    if not self.outbuf:
                        self.close(reason="hung up")
                return
            if nl > 0 and not self.daemon.buckets.take(self.uid, self.caps.max_requests_per_s):
                self.pause()  # its uid is over its rate: this line waits (a token first, then the work)
                return
            if handled >= LINES_PER_TURN:
                if not self._deferred:
                    self._deferred = True
                    self.daemon.loop.call_later(0, self._next_turn)
                return
            handled += 1
            self._backoff = 0.0
            line = bytes(self.inbuf[:nl])
            del self.inbuf[: nl + 1]
            self.consumed += nl + 1
            fds = self._take_fds(self.consumed)
            if not line.strip():
                self._close(fds)
                continue
            self.handle(line, fds)

    def _next_turn(self) -> None:
        self._deferred = False
        if not self.closed:
            self.pump()
            self.rearm()

    def pause(self) -> None:
        """Stop reading until the uid's bucket may have a token again. Its paused connections share one bucket:
        each waits twice as long after every wake-up that found none (at most 0.1 s), so that many of them
        do not wake the loop for nothing."""
        rate = self.caps.max_requests_per_s
        assert rate is not None
        self.paused = True
        self.rearm()
        self._backoff = min(0.1, max(self.daemon.buckets.wait(self.uid, rate), self._backoff * 2))
        self.daemon.loop.call_later(self._backoff, self._resume)

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
            # a run is logged when it ends (event=call-end, at INFO); its request line only with -v / AGENTCG_LOG
            level = logging.DEBUG if req.op == "run" else logging.INFO
            if log.isEnabledFor(level) and self.daemon.logs.allow(self.uid):
                log.log(
                    level,
                    "event=request op=%s uid=%d pid=%d %s",
                    req.op,
                    self.uid,
                    self.pid,
                    " ".join(
                        f"{k}={str(v)[:80]!r}" for k, v in req.body.items() if k in ("name", "session", "call_id")
                    ),
                )
            if req.op == "events":  # answered here, or followed until the client hangs up
                self.op_events(req)
            elif req.op == "run":
                owned, fds = fds, []  # _run owns them now: it closes them on every path (never twice)
                self._run(req, owned)
            elif req.op in INLINE:  # a dict lookup or a message to the controller's loop: no worker needed
                reply = getattr(self, "op_" + req.op)(req)()
                self.send({"id": req_id, "ok": True, **reply})
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

        self.daemon.submit(job, then, self.uid)

    def idle(self) -> None:
        """The request under way is answered: read the next (on the loop's next turn)."""
        self.busy = False
        if not self.closed:
            self.daemon.call_soon(self.pump)

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
        """A violation after which the stream cannot be trusted: say why, then close (and charge its uid)."""
        self.daemon.buckets.charge(self.uid, self.caps.max_requests_per_s, VIOLATION_COST)
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
