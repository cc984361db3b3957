"""The daemon's socket server: a thread per connection, peer credentials for every request.

A session belongs to the uid that opened it; root administers all. A non-root client's commands run as its own
uid and gid. While a call runs, its connection's thread sleeps in ``poll()`` on the socket and on an eventfd
the call's completion writes: an idle daemon costs no CPU, and a client that goes away is noticed at once
(its call is killed, or left running with ``on_disconnect="detach"``).
"""

from __future__ import annotations

import array
import base64
import logging
import os
import select
import socket
import struct
import threading
from typing import Any

from ..controller.core import Controller
from ..errors import AgentCgroupError
from ..outcome import Outcome
from ..spawn import SpawnError
from .protocol import (
    MAX_LINE,
    VERSION,
    ProtocolError,
    Request,
    TooLarge,
    encode,
    error_reply,
    parse_request,
    run_from,
    session_from,
)

log = logging.getLogger("agentcgroup")

ROOT = 0
MAX_FDS = 3


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end (SO_PEERCRED)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", raw)


def outcome_dict(out: Outcome) -> dict[str, Any]:
    d = out.to_dict()
    for name in ("stdout", "stderr"):
        data = getattr(out, name)
        if data is not None:
            d[name + "_b64"] = base64.b64encode(data).decode()
    return d


class Connection:
    """One client: its credentials, its socket, the fds it sent and not yet claimed."""

    def __init__(self, daemon: Daemon, sock: socket.socket) -> None:
        self.daemon, self.sock = daemon, sock
        self.pid, self.uid, self.gid = peer_credentials(sock)
        self.buf = bytearray()
        self.fds: list[int] = []

    # --- I/O --------------------------------------------------------------------------------------------
    def send(self, obj: dict[str, Any]) -> None:
        self.sock.sendall(encode(obj))

    def read_line(self) -> bytes | None:
        """The next request line (fds that came with it are queued); None at EOF. Raises TooLarge."""
        while True:
            nl = self.buf.find(b"\n")
            if nl >= 0:
                line = bytes(self.buf[:nl])
                del self.buf[: nl + 1]
                return line
            if len(self.buf) > MAX_LINE:
                raise TooLarge(f"request longer than {MAX_LINE} bytes")
            data, anc, _, _ = self.sock.recvmsg(65536, socket.CMSG_SPACE(MAX_FDS * 4))
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                    fds = array.array("i")
                    fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
                    self.fds.extend(fds)
            if not data:
                return None
            self.buf += data

    def take_fds(self, wanted: list[bool]) -> list[int | None]:
        out: list[int | None] = []
        for want in wanted:
            if want:
                if not self.fds:
                    raise ProtocolError("the request says it sent stdio fds, but none came with it")
                out.append(self.fds.pop(0))
            else:
                out.append(None)
        return out

    def close(self) -> None:
        for fd in self.fds:
            os.close(fd)
        self.fds.clear()
        self.sock.close()

    # --- serving ----------------------------------------------------------------------------------------
    def serve(self) -> None:
        try:
            while not self.daemon.stopping:
                try:
                    line = self.read_line()
                except TooLarge as exc:
                    self.send(error_reply(None, exc))
                    log.warning("event=request-refused uid=%d reason=%r", self.uid, str(exc))
                    return  # its rest would be read as requests: close the connection
                if line is None:
                    return
                if not line.strip():
                    continue
                self.handle(line)
        except (ConnectionError, OSError) as exc:
            log.info("event=client-gone uid=%d pid=%d reason=%r", self.uid, self.pid, str(exc))
        finally:
            self.close()

    def handle(self, line: bytes) -> None:
        req_id = None
        try:
            req = parse_request(line)
            req_id = req.id
            log.info(
                "event=request op=%s uid=%d pid=%d %s",
                req.op,
                self.uid,
                self.pid,
                " ".join(f"{k}={v!r}" for k, v in req.body.items() if k in ("name", "session", "call_id")),
            )
            reply = getattr(self, "op_" + req.op)(req)
            if reply is not None:
                self.send({"id": req_id, "ok": True, **reply})
        except (AgentCgroupError, ValueError, SpawnError, FileNotFoundError, PermissionError) as exc:
            self.send(error_reply(req_id, exc))
        finally:
            for fd in self.fds:  # fds no request claimed
                os.close(fd)
            self.fds.clear()

    @property
    def ctl(self) -> Controller:
        return self.daemon.controller

    def op_hello(self, req: Request) -> dict[str, Any]:
        return {
            "version": VERSION,
            "backend": self.ctl.manager.kind,
            "uid": self.uid,
            "features": self.ctl.manager.features.to_dict(),
        }

    def op_open_session(self, req: Request) -> dict[str, Any]:
        args = session_from(req.body)
        s = self.ctl.open_session(
            args["name"],
            uid=self.uid,
            priority=args["priority"],
            limits=args["limits"],
            agent_memory=args["agent_memory"],
        )
        return {"session": s.info()}

    def op_close_session(self, req: Request) -> dict[str, Any]:
        name = req.body.get("name")
        if not isinstance(name, str):
            raise ProtocolError(f"field 'name': expected a string, got {name!r}")
        self.ctl.close_session(name, uid=self.uid)
        return {}

    def op_status(self, req: Request) -> dict[str, Any]:
        return {"status": self.ctl.status(uid=self.uid)}

    def op_outcome(self, req: Request) -> dict[str, Any]:
        call_id = req.body.get("call_id")
        if not isinstance(call_id, str):
            raise ProtocolError(f"field 'call_id': expected a string, got {call_id!r}")
        out = self.ctl.outcome(call_id, uid=self.uid)
        return {"outcome": None if out is None else outcome_dict(out), "running": out is None}

    def op_kill(self, req: Request) -> dict[str, Any]:
        session, call_id = req.body.get("session"), req.body.get("call_id")
        if not isinstance(session, str) or not isinstance(call_id, str):
            raise ProtocolError("fields 'session' and 'call_id' are required strings")
        self.ctl.kill_call(session, call_id, str(req.body.get("reason") or "killed on request"), uid=self.uid)
        return {}

    def op_run(self, req: Request) -> None:
        a = run_from(req.body)
        fds = self.take_fds(a["stdio"])
        run_as = None if self.uid == ROOT else (self.uid, self.gid)
        done = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        try:
            handle = self.ctl.submit(
                a["session"],
                a["argv"],
                limits=a["limits"],
                intent=a["intent"],
                timeout=a["timeout"],
                uid=self.uid,
                run_as=run_as,
                env=a["env"],
                cwd=a["cwd"],
                stdin=fds[0],
                stdout=fds[1],
                stderr=fds[2],
                capture_output=a["capture_output"],
                keep_background=a["keep_background"],
            )
        finally:
            for fd in fds:  # the command has its own copies now
                if fd is not None:
                    os.close(fd)
        done_lock, done_open = threading.Lock(), [True]

        def notify(_out: object) -> None:  # never into a closed fd (its number may be another client's by then)
            with done_lock:
                if done_open[0]:
                    os.eventfd_write(done, 1)

        handle.future.callbacks.append(notify)
        try:
            self.send({"id": req.id, "event": "started", "call_id": handle.call_id})
            if not handle.done() and not self._wait(done):
                # the client went away while its call ran
                if a["on_disconnect"] == "kill":
                    handle.kill("the client disconnected")
                log.info("event=client-gone uid=%d call=%s action=%s", self.uid, handle.call_id, a["on_disconnect"])
                raise ConnectionResetError("client disconnected during its call")
            out = handle.wait()
            assert out is not None
            self.send({"id": req.id, "ok": True, "outcome": outcome_dict(out)})
        finally:
            with done_lock:
                done_open[0] = False
                os.close(done)

    def _wait(self, done: int) -> bool:
        """Sleep until the call is done (True) or the client hangs up (False)."""
        poller = select.poll()
        poller.register(done, select.POLLIN)
        poller.register(self.sock.fileno(), select.POLLIN | select.POLLRDHUP)
        while True:
            for fd, ev in poller.poll():
                if fd == done:
                    return True
                if ev & (select.POLLRDHUP | select.POLLHUP | select.POLLERR):
                    return False
                if ev & select.POLLIN:  # a client may not talk during its call: read it; EOF is a hang-up
                    if not self.sock.recv(4096, socket.MSG_PEEK):
                        return False
                    self.buf += self.sock.recv(65536)


class Daemon:
    def __init__(self, socket_path: str, controller: Controller) -> None:
        self.path, self.controller = socket_path, controller
        self.stopping = False
        directory = os.path.dirname(os.path.abspath(socket_path))
        os.makedirs(directory, mode=0o755, exist_ok=True)
        if os.path.exists(socket_path):
            probe = socket.socket(socket.AF_UNIX)
            try:
                probe.connect(socket_path)
                raise AgentCgroupError(f"another daemon is serving {socket_path}")
            except OSError:
                os.unlink(socket_path)  # a stale socket of a dead daemon
            finally:
                probe.close()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(socket_path)
        os.chmod(socket_path, 0o666)  # anyone may connect; peer credentials decide what they may do
        self.sock.listen(128)
        self._threads: set[threading.Thread] = set()

    def serve_forever(self) -> None:
        log.info("event=daemon-ready socket=%s backend=%s", self.path, self.controller.manager.kind)
        while not self.stopping:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                if self.stopping:
                    break
                raise
            c = Connection(self, conn)
            t = threading.Thread(target=self._serve, args=(c,), name=f"agentcg-client-{c.pid}", daemon=True)
            self._threads.add(t)
            t.start()

    def _serve(self, c: Connection) -> None:
        try:
            c.serve()
        finally:
            self._threads.discard(threading.current_thread())

    def stop(self) -> None:
        """Stop accepting (from a signal handler or another thread); serve_forever returns."""
        self.stopping = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def close(self) -> None:
        self.sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
