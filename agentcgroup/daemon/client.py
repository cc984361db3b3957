"""A client of the daemon with the embedded controller's surface: open_session, run, outcome, kill, status.

Errors come back as the same exception classes the embedded controller raises. If the daemon dies while a call
runs, :meth:`Client.run` reconnects (for ``reconnect_s``) and fetches the call's outcome from the restarted
daemon, which adopted it.
"""

from __future__ import annotations

import array
import itertools
import os
import socket
import time
from collections.abc import Iterator, Mapping, Sequence

from ..errors import AccessDenied, AgentCgroupError, CgroupError, InvalidValue, NotFound, PermissionDenied, Unsupported
from ..limits import Limits
from ..outcome import Outcome, outcome_from_dict
from .refusals import NotAllowed, TooMany
from .wire import ProtocolError, TooLarge
from .wire import encode_request as encode

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (a process per call pays for it)
if TYPE_CHECKING:
    from typing import Any

DEFAULT_SOCKET = "/run/agentcg.sock"

_ERRORS: dict[str, type[Exception]] = {
    "InvalidValue": InvalidValue,
    "InvalidName": InvalidValue,
    "NotFound": NotFound,
    "AccessDenied": AccessDenied,
    "PermissionDenied": PermissionDenied,
    "Unsupported": Unsupported,
    "CgroupError": CgroupError,
    "BadRequest": ProtocolError,
    "TooLarge": TooLarge,
    "NotAllowed": NotAllowed,
    "TooMany": TooMany,
}


class Unreachable(AgentCgroupError):
    """The daemon's socket cannot be reached."""


class Untrusted(Unreachable):
    """Whoever listens on the socket is neither root nor this user: nothing is sent to it."""


def check_listener(sock: socket.socket, path: str) -> None:
    """Before the environment and stdio fds go out: the peer must be root or ourselves (SO_PEERCRED), not
    another user who took the socket's path."""
    import struct

    _pid, uid, _gid = struct.unpack("3i", sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))
    if uid not in (0, os.geteuid()):
        raise Untrusted(f"{path!r} is served by uid {uid}, neither root nor you: not sending it anything")


def default_socket() -> str:
    return os.environ.get("AGENTCG_SOCKET") or DEFAULT_SOCKET


def _raise(error: dict[str, Any]) -> None:
    """Raise the daemon's error as the exception the embedded controller would have raised."""
    kind, message = error.get("type", "AgentCgroupError"), str(error.get("message", ""))
    if kind == "FileNotFoundError":  # as the embedded path raises them: `agentcg run` exits 127 / 126
        raise FileNotFoundError(2, message)
    if kind == "PermissionError":
        raise PermissionError(13, message)
    code = error.get("errno")
    if kind == "SpawnError" and isinstance(code, int) and code > 0:
        from ..spawn import SpawnError

        raise SpawnError(code, message.removeprefix(f"[Errno {code}] "), "start")
    raise _ERRORS.get(kind, AgentCgroupError)(message)


def outcome_from(d: dict[str, Any]) -> Outcome:
    out = outcome_from_dict(d)
    if "stdout_b64" in d or "stderr_b64" in d:
        import base64

        for name in ("stdout", "stderr"):
            data = d.get(name + "_b64")
            if data is not None:
                setattr(out, name, base64.b64decode(data))
    return out


def _limits_dict(limits: Limits | Mapping[str, Any] | None) -> dict[str, Any]:
    if limits is None:
        return {}
    if isinstance(limits, Limits):
        out = {}
        for key, value in limits.to_dict().items():
            out[{"memory_max": "memory", "pids_max": "pids"}.get(key, key)] = value
        return out
    return dict(limits)


class Client:
    def __init__(self, socket_path: str | None = None, *, connect_timeout: float = 5.0) -> None:
        self.path = socket_path or default_socket()
        self.shown = self.path if self.path.isprintable() else repr(self.path)  # one line, whatever the path
        self.connect_timeout = connect_timeout
        self._ids = itertools.count(1)

    # --- plumbing ---------------------------------------------------------------------------------------
    def _connect(self) -> socket.socket:
        deadline = time.monotonic() + self.connect_timeout
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.connect_timeout)
            try:
                sock.connect(self.path)
                break
            except BlockingIOError:  # its backlog is full (a busy moment): wait for room, as a blocking connect would
                sock.close()
                if time.monotonic() > deadline:
                    raise Unreachable(f"the agentcgroup daemon at {self.shown} accepts no connection") from None
                time.sleep(0.005)
            except OSError as exc:
                sock.close()
                raise Unreachable(
                    f"cannot reach the agentcgroup daemon at {self.shown}: {exc.strerror or exc}"
                ) from None
        try:
            check_listener(sock, self.path)
        except BaseException:
            sock.close()
            raise
        sock.settimeout(None)
        return sock

    @staticmethod
    def _lines(sock: socket.socket) -> Iterator[bytes]:
        buf = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                yield line

    def request(self, op: str, fds: Sequence[int] = (), **body: Any) -> dict[str, Any]:
        """One request, one reply (``ok`` checked: errors raise)."""
        import json

        sock = self._connect()
        try:
            msg = encode({"op": op, "id": next(self._ids), **body})
            if fds:
                sock.sendmsg([msg], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
            else:
                sock.sendall(msg)
            for line in self._lines(sock):
                reply: dict[str, Any] = json.loads(line)
                if reply.get("ok") is False:
                    _raise(reply.get("error", {}))
                if "event" not in reply:
                    return reply
            raise Unreachable(f"the daemon at {self.shown} closed the connection without an answer")
        except ConnectionError as exc:  # it went away mid-request (killed, restarting): as unreachable as above
            why = exc.strerror or exc
            raise Unreachable(f"the daemon at {self.shown} went away during the request: {why}") from None
        finally:
            sock.close()

    # --- the controller's surface -----------------------------------------------------------------------
    def hello(self) -> dict[str, Any]:
        return self.request("hello")

    def open_session(
        self,
        name: str,
        *,
        priority: str = "normal",
        limits: Limits | Mapping[str, Any] | None = None,
        agent_memory: str | int | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {"name": name, "priority": priority, "limits": _limits_dict(limits)}
        if agent_memory is not None:
            body["agent_memory"] = agent_memory
        session: dict[str, Any] = self.request("open_session", **body)["session"]
        return session

    def close_session(self, name: str) -> None:
        self.request("close_session", name=name)

    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self.request("status")["status"]
        return status

    def top(self) -> dict[str, Any]:
        """What ``agentcg top`` draws (agentcgroup.observe.view): your sessions (all, as root), the last actions."""
        view: dict[str, Any] = self.request("top")["view"]
        return view

    def events(self, *, follow: bool = False, session: str | None = None, last: int = 200) -> Iterator[dict[str, Any]]:
        """The event log's records (yours; all, as root): the last ``last``, then, with ``follow``, each new one
        as it happens (until the daemon goes away or the caller stops iterating)."""
        import json

        body: dict[str, Any] = {"follow": follow, "last": last}
        if session is not None:
            body["session"] = session
        sock = self._connect()
        try:
            sock.sendall(encode({"op": "events", "id": next(self._ids), **body}))
            for line in self._lines(sock):
                reply: dict[str, Any] = json.loads(line)
                if reply.get("ok") is False:
                    _raise(reply.get("error", {}))
                if reply.get("event") == "log":
                    yield reply["record"]
                elif "event" not in reply:
                    return
        except ConnectionError as exc:
            raise Unreachable(f"the daemon at {self.shown} went away: {exc.strerror or exc}") from None
        finally:
            sock.close()

    def kill(self, session: str, call_id: str, reason: str = "killed on request") -> None:
        self.request("kill", session=session, call_id=call_id, reason=reason)

    def outcome(self, call_id: str) -> Outcome | None:
        """The outcome of a call, or None while it runs."""
        reply = self.request("outcome", call_id=call_id)
        return None if reply.get("outcome") is None else outcome_from(reply["outcome"])

    def run(
        self,
        session: str,
        argv: Sequence[str],
        *,
        limits: Limits | Mapping[str, Any] | None = None,
        intent: Mapping[str, Any] | None = None,
        timeout: float | str | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        capture_output: bool = False,
        stdin: int | None = None,
        stdout: int | None = None,
        stderr: int | None = None,
        keep_background: bool = False,
        on_disconnect: str = "kill",
        reconnect_s: float = 30.0,
        on_started: Any = None,
        own_session: bool = False,
        merge_stderr: bool = False,
    ) -> Outcome:
        """Run a tool call in ``session`` and return its outcome. stdin/stdout/stderr: fds to hand over (the
        command writes to them directly); with ``capture_output`` the outcome carries its output instead.
        ``own_session``: the daemon opens ``session`` if it does not exist, for this call alone, and closes it
        when the call ends or this client goes away. ``merge_stderr``: stderr goes where stdout goes (one pipe
        for both, their order kept as a terminal shows it; captured, it all comes back in ``outcome.stdout``)."""
        import json

        stdio = [stdin, None, None] if capture_output else [stdin, stdout, None if merge_stderr else stderr]
        fds = [fd for fd in stdio if fd is not None]
        body: dict[str, Any] = {
            "session": session,
            "argv": list(argv),
            "limits": _limits_dict(limits),
            "timeout": timeout,
            "env": dict(os.environ if env is None else env),
            "cwd": cwd or os.getcwd(),
            "capture_output": capture_output,
            "keep_background": keep_background,
            "on_disconnect": on_disconnect,
            "stdio": [fd is not None for fd in stdio],
        }
        if own_session:
            body["own_session"] = True
        if merge_stderr:
            body["merge_stderr"] = True
        if intent:
            body["intent"] = dict(intent)
        sock = self._connect()
        call_id = None
        try:
            msg = encode({"op": "run", "id": next(self._ids), **body})
            anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
            sock.sendmsg([msg], anc)
            for line in self._lines(sock):
                reply: dict[str, Any] = json.loads(line)
                if reply.get("ok") is False:
                    _raise(reply.get("error", {}))
                if reply.get("event") == "started":
                    call_id = reply["call_id"]
                    if on_started is not None:
                        on_started(call_id)
                    continue
                return outcome_from(reply["outcome"])
        except (ConnectionError, OSError):
            if call_id is None:
                raise
        finally:
            sock.close()
        if call_id is None:
            raise Unreachable(f"the daemon at {self.shown} closed the connection before starting the call")
        return self._await_outcome(call_id, reconnect_s)

    def _await_outcome(self, call_id: str, reconnect_s: float) -> Outcome:
        """The daemon went away while the call ran: wait for a successor to adopt it and tell its outcome."""
        deadline = time.monotonic() + reconnect_s
        while True:
            try:
                out = self.outcome(call_id)
                if out is not None:
                    return out
            except Unreachable:
                if time.monotonic() > deadline:
                    raise
            time.sleep(0.1)
