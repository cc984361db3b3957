"""The daemon's socket server: one event loop for every connection, a small worker pool for the controller.

No thread per connection or per session: the loop (the controller's own :class:`~agentcgroup.controller.loop.Loop`
class, a second instance on the daemon's main thread) accepts, reads and writes every socket without blocking;
each connection is a small state machine (:mod:`.connection`) with bounded buffers. What may block (the
controller's admission queue, creating and removing cgroups) runs on a bounded pool of worker threads, and a
call's completion comes back onto the loop through its future's callback. Connections refused unread are
closed on one more thread (:mod:`.closer`), so that the loop drains the listening queue briskly under a flood.

Limits (docs/security.md): a request line of at most 1 MiB, and at most that much unread input per
connection; at most 3 fds per request and per connection; per-uid caps on connections, sessions and running
calls from the operator's :class:`~agentcgroup.daemon.policy.Policy`; a global cap on connections. When the
process runs out of descriptors, accepting pauses for a moment and the daemon serves on.
"""

from __future__ import annotations

import collections
import errno
import logging
import os
import secrets
import select
import socket
import stat
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..controller.core import Controller
from ..controller.loop import Loop
from ..errors import AgentCgroupError
from ..observe.eventlog import EventLog
from ..threadnice import at_base
from .closer import Closer
from .connection import Connection
from .observe_ops import Followers
from .ops import RunningCall
from .policy import Policy, TooMany
from .ratelimit import Buckets, LogBudget

log = logging.getLogger("agentcgroup")

#: every connection of every uid together (each costs an fd; the controller needs its own)
MAX_CONNECTIONS = 4096
#: worker threads for controller operations (made on demand, up to this many)
WORKERS = 16
#: jobs of one uid (not root) on the workers at once
JOBS_PER_UID = 4
#: connections accepted per turn of the loop (the rest wait for the next turn, after the other clients' events;
#: a client that connects waits behind every connection queued before it, so the queue is drained briskly)
ACCEPT_BATCH = 64
#: how long accepting pauses after EMFILE/ENFILE
ACCEPT_BACKOFF_S = 0.1
#: how often running calls are checked for a completion whose callback did not come (a failed outcome)
SWEEP_S = 0.5
#: how long SIGTERM waits for operations under way on the workers
DRAIN_S = 5.0


def peer_credentials(sock: socket.socket) -> tuple[int, int, int]:
    """(pid, uid, gid) of the process at the other end (SO_PEERCRED)."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", raw)


def check_socket_path(path: str) -> None:
    """Make room for our socket at ``path``: only a stale socket (nobody answers on it) is removed. A live one,
    or anything that is not a socket (a regular file, a symlink, a directory), is an error naming it."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(st.st_mode):
        kind = "a symlink" if stat.S_ISLNK(st.st_mode) else "a directory" if stat.S_ISDIR(st.st_mode) else "a file"
        raise AgentCgroupError(f"{path} exists and is {kind}: refusing to replace it (remove it or pick another path)")
    probe = socket.socket(socket.AF_UNIX)
    try:
        probe.settimeout(1.0)
        probe.connect(path)
    except OSError:
        os.unlink(path)  # a stale socket of a dead daemon
        return
    finally:
        probe.close()
    raise AgentCgroupError(f"another daemon is serving {path}")


class Daemon:
    def __init__(
        self,
        socket_path: str,
        controller: Controller,
        policy: Policy | None = None,
        *,
        max_connections: int = MAX_CONNECTIONS,
        workers: int = WORKERS,
        eventlog: EventLog | None = None,
    ) -> None:
        self.path, self.controller = socket_path, controller
        self.policy = policy or Policy()
        self.owner = os.geteuid()  # its own uid is no tenant of its (root; or a user's private daemon)
        self.max_connections = max_connections
        self.stopping = False
        directory = os.path.dirname(os.path.abspath(socket_path))
        os.makedirs(directory, mode=0o755, exist_ok=True)
        check_socket_path(socket_path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_NONBLOCK | socket.SOCK_CLOEXEC)
        # bound, opened to all and listening under a temporary name, then renamed into place: a client that sees
        # the path can connect at once (bound but not yet listening, a connect is refused; not yet chmod-ed, a
        # tenant's is denied), and a stale socket at the path is replaced in one step
        tmp = os.path.join(directory, f".{os.path.basename(socket_path)}.{os.getpid()}.{secrets.token_hex(4)}")
        try:
            self.sock.bind(tmp)
            try:
                os.chmod(tmp, 0o666)  # anyone may connect; peer credentials decide what they may do
                self.sock.listen(1024)
                os.rename(tmp, socket_path)
            except BaseException:
                os.unlink(tmp)
                raise
        except BaseException:
            self.sock.close()
            raise
        self.loop = Loop()
        self.pool = ThreadPoolExecutor(
            max_workers=workers, thread_name_prefix="agentcg-op", initializer=at_base
        )  # made on demand by the loop's thread, which may run at a raised priority: tools start from workers
        self.conns: dict[int, Connection] = {}
        self.conns_of: collections.Counter[int] = collections.Counter()
        self.calls: set[RunningCall] = set()
        self.calls_of: collections.Counter[int] = collections.Counter()
        self.lock = threading.Lock()  # sessions counted and opened as one step, across workers
        self.buckets = Buckets()  # requests a second, per uid
        self.closer = Closer()  # closes connections refused unread, off this thread
        self.logs = LogBudget()  # log lines a uid may cause
        self._in_flight = 0
        self._jobs_of: collections.Counter[int] = collections.Counter()  # jobs on the workers, per uid
        self._waiting_of: dict[
            int, collections.deque[tuple[Callable[[], Any], Callable[[Any, BaseException | None], None]]]
        ] = {}  # jobs waiting for a worker, per uid
        self._wake_lock = threading.Lock()
        self._loop_closed = False
        self._accepting = False
        self._last_emfile = 0.0
        self._own_log = eventlog is None  # made here: closed here (one passed in is its maker's)
        self.followers = Followers(self, eventlog or EventLog(controller.events))  # `agentcg events`, `top`
        self._resume_accept()

    # --- the loop ---------------------------------------------------------------------------------------
    def serve_forever(self) -> None:
        log.info("event=daemon-ready socket=%s backend=%s", self.path, self.controller.manager.kind)
        self.loop.call_later(SWEEP_S, self._sweep)
        self.loop.thread = threading.current_thread()
        while not self.stopping:
            self.loop.run_once()

    def stop(self) -> None:
        """Stop serving (from a signal handler or another thread); serve_forever returns."""
        self.stopping = True
        self.loop.stop()

    def call_soon(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` on the loop (from any thread); after :meth:`close`, nothing (a call finishing as the
        controller shuts down must not write to a wake-up fd that is closed, or by now another file's)."""
        with self._wake_lock:
            if not self._loop_closed:
                self.loop.call_soon_threadsafe(fn)

    def submit(self, job: Callable[[], Any], then: Callable[[Any, BaseException | None], None], uid: int = 0) -> None:
        """Run ``job`` on a worker; ``then(result, error)`` runs on the loop afterwards. A uid other than root has
        at most :data:`JOBS_PER_UID` jobs on the workers at once; the rest wait their turn (FIFO per uid), so
        that one uid's many connections cannot hold every worker."""
        self._in_flight += 1
        if uid != 0 and self._jobs_of[uid] >= JOBS_PER_UID:
            self._waiting_of.setdefault(uid, collections.deque()).append((job, then))
            return
        self._start_job(job, then, uid)

    def _start_job(self, job: Callable[[], Any], then: Callable[[Any, BaseException | None], None], uid: int) -> None:
        self._jobs_of[uid] += 1

        def work() -> None:
            try:
                result, error = job(), None
            except BaseException as exc:
                result, error = None, exc
            self.call_soon(lambda: self._done(then, result, error, uid))

        self.pool.submit(work)

    def _done(self, then: Callable[[Any, BaseException | None], None], result: Any, error: Any, uid: int) -> None:
        self._in_flight -= 1
        self._jobs_of[uid] -= 1
        waiting = self._waiting_of.get(uid)
        if waiting:
            job, then_next = waiting.popleft()
            self._start_job(job, then_next, uid)
            if not waiting:
                del self._waiting_of[uid]
        elif self._jobs_of[uid] <= 0:
            del self._jobs_of[uid]
        then(result, error)

    def _sweep(self) -> None:
        for rc in list(self.calls):
            if rc.handle.done():
                rc.finish()
        self.loop.call_later(SWEEP_S, self._sweep)

    # --- accepting --------------------------------------------------------------------------------------
    def _resume_accept(self) -> None:
        if not self._accepting and not self.stopping:
            self.loop.add(self.sock.fileno(), select.EPOLLIN, self._on_accept)
            self._accepting = True

    def _pause_accept(self, why: str) -> None:
        now = time.monotonic()
        if now - self._last_emfile > 5:  # one line per episode, not one per attempt
            log.warning("event=accept-paused reason=%r for_s=%g", why, ACCEPT_BACKOFF_S)
        self._last_emfile = now
        if self._accepting:
            self.loop.remove(self.sock.fileno())
            self._accepting = False
        self.loop.call_later(ACCEPT_BACKOFF_S, self._resume_accept)

    def _on_accept(self, fd: int, events: int) -> None:
        refused: list[int] = []  # closed by the closer thread, after the batch
        try:
            for _ in range(ACCEPT_BATCH):
                try:
                    conn_fd, _ = self.sock._accept()  # type: ignore[attr-defined]  # a bare fd: no enum lookups
                except BlockingIOError:
                    return
                except OSError as exc:
                    if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                        self._pause_accept(os.strerror(exc.errno))
                        return
                    if exc.errno in (errno.ECONNABORTED, errno.EPROTO, errno.EINTR):
                        continue
                    self._pause_accept(str(exc))
                    return
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM, 0, conn_fd)
                if not self._admit(sock):
                    refused.append(sock.detach())
        finally:
            if refused:
                self.closer.close_later(refused)

    def _admit(self, sock: socket.socket) -> bool:
        """Serve, answer or close ``sock``; False: the caller closes it (refused unread: its uid is over its
        rate, the cheapest answer to a flood of connections)."""
        try:
            pid, uid, gid = peer_credentials(sock)
        except OSError:
            sock.close()
            return True
        caps = self.policy.caps(0 if uid == self.owner else uid, gid)
        if not self.buckets.take(uid, caps.max_requests_per_s):
            return False
        refusal = None
        if len(self.conns) >= self.max_connections:
            refusal = TooMany(f"the daemon has {len(self.conns)} connections open, its most ({self.max_connections})")
        elif caps.max_connections is not None and self.conns_of[uid] >= caps.max_connections:
            refusal = TooMany(
                f"uid {uid} has {self.conns_of[uid]} connections open, the most the operator allows it "
                f"({caps.max_connections})"
            )
        if refusal is not None:
            if self.logs.allow(uid):
                log.warning("event=connection-refused uid=%d pid=%d reason=%r", uid, pid, str(refusal))
            Connection.refuse(sock, refusal)
            return True
        try:
            sock.setblocking(False)
        except OSError:
            sock.close()
            return True
        c = Connection(self, sock, pid, uid, gid, caps)
        self.conns[c.fd] = c
        self.conns_of[uid] += 1
        c.rearm()
        return True

    def forget(self, c: Connection) -> None:
        """A connection closed (the loop's side of :meth:`Connection.close`)."""
        self.followers.drop(c)
        if self.conns.pop(c.fd, None) is not None:
            self.loop.remove(c.fd)
            self.conns_of[c.uid] -= 1
            if self.conns_of[c.uid] <= 0:
                del self.conns_of[c.uid]

    # --- shutdown ---------------------------------------------------------------------------------------
    def close(self) -> None:
        """After serve_forever: close every connection (calls are the controller's to stop or keep), let
        operations under way finish (a few seconds at most), remove the socket."""
        self.stopping = True
        if self._accepting:
            self.loop.remove(self.sock.fileno())
            self._accepting = False
        self.sock.close()
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        self.followers.close()
        if self._own_log:
            self.followers.log.close()
        for c in list(self.conns.values()):
            c.close(shutting_down=True)
        deadline = time.monotonic() + DRAIN_S
        while self._in_flight and time.monotonic() < deadline:
            self.loop.run_once(0.05)
        self.pool.shutdown(wait=False, cancel_futures=True)
        self.closer.stop()
        with self._wake_lock:
            self._loop_closed = True
            self.loop.close()
