"""A supervisor for an embedded runner (``agentcg run``, the shim, ``agentcg-prefix``): if the runner dies
without cleaning up (SIGKILL, an OOM kill of the runner itself), its call still ends: within a fraction of a
second nothing of it runs and its cgroups are gone.

The runner forks the supervisor before it starts any thread (:func:`start`), then tells it over a pipe which
cgroup directories are the call's (:meth:`Supervisor.own`, before the command starts) and, at the end, either
that all is done (:meth:`Supervisor.done`) or that the call's background processes are kept
(:meth:`Supervisor.keep`: it then waits for them to end and removes the call's cgroups after them). The
supervisor waits for the pipe's end: the kernel closes the runner's end however the runner dies, so a SIGKILL
is seen at once. Without ``done`` or ``keep`` first, it kills every process in those directories (thawing them
first: a frozen task cannot die), removes them bottom-up, then removes the session's directories if no other
call is in them, and the root if it is empty.

The child touches the kernel with plain ``os`` calls, not :mod:`agentcgroup.cgroupfs`: it is a fork of a Python
process and must not need anything a lock of the parent's could hold. It runs in a session of its own with
SIGINT, SIGTERM and SIGHUP ignored, so a signal to the runner's process group does not take it away too.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterable

#: how long the supervisor keeps trying to empty and remove the call's cgroups
CLEANUP_S = 5.0


class Supervisor:
    """The runner's end: a pipe to the forked supervisor."""

    def __init__(self, pid: int, fd: int) -> None:
        self.pid, self._fd = pid, fd

    def _send(self, kind: str, paths: Iterable[str]) -> None:
        if self._fd < 0:
            return
        data = "".join(f"{kind} {p}\n" for p in paths if "\n" not in p).encode()
        try:
            while data:
                data = data[os.write(self._fd, data) :]
        except OSError:  # the supervisor is gone (killed with us by a group kill): nothing more to tell it
            self.close()

    def own(self, paths: Iterable[str]) -> None:
        """Directories to empty and remove, with everything beneath them, if the runner dies."""
        self._send("T", paths)

    def remove_session(self, paths: Iterable[str]) -> None:
        """A session's directories (one per hierarchy), removed after the call's if no other call is in them."""
        self._send("S", paths)

    def remove_if_empty(self, paths: Iterable[str]) -> None:
        """Directories to remove last, if nothing is in them (the root)."""
        self._send("R", paths)

    def keep(self) -> None:
        """The call's processes were kept (keep_background) and the runner goes: once they have all ended,
        remove the call's directories (then the session's and the root, if empty). The supervisor stays for that
        long, on its own."""
        self._send("K", [""])
        self.close()

    def done(self) -> None:
        """The runner ended normally: the supervisor exits without touching anything."""
        self._send("D", [""])
        self.close()
        try:
            os.waitpid(self.pid, 0)
        except ChildProcessError:
            pass

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def start() -> Supervisor | None:
    """Fork the supervisor (call before any thread starts). None where it cannot be forked."""
    r, w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = os.fork()
    except OSError:
        os.close(r)
        os.close(w)
        return None
    if pid == 0:  # pragma: no cover - the child (its effects are what the kernel tests check)
        code = 0
        try:
            os.close(w)
            _child(r)
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    os.close(r)
    return Supervisor(pid, w)


def _child(fd: int) -> None:
    os.setsid()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_IGN)
    null = os.open(os.devnull, os.O_RDWR)
    for std in (0, 1, 2):  # hold none of the runner's pipes: whoever reads its output sees their end at once
        os.dup2(null, std)
    os.closerange(3, fd)
    os.closerange(fd + 1, 65536)
    trees: list[str] = []
    sessions: list[str] = []
    empties: list[str] = []
    keep = False
    buf = b""
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            kind, _, path = line.decode(errors="surrogateescape").partition(" ")
            if kind == "D":
                return
            if kind == "K":
                keep = True
                continue
            {"T": trees, "S": sessions}.get(kind, empties).append(path)
    if keep:
        while any(_populated(t) for t in trees):
            time.sleep(0.2)
    end_trees(trees, sessions, empties)


def _populated(top: str) -> bool:
    return any(_pids(d) for d in _dirs_bottom_up(top)) if os.path.isdir(top) else False


def _dirs_bottom_up(top: str) -> list[str]:
    return [d for d, _, _ in os.walk(top, topdown=False)]


def _write(path: str, data: str) -> None:
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError:
        return
    try:
        os.write(fd, data.encode())
    except OSError:
        pass
    finally:
        os.close(fd)


def _pids(d: str) -> list[int]:
    try:
        with open(f"{d}/cgroup.procs", "rb") as f:
            return [int(p) for p in f.read().split()]
    except (OSError, ValueError):
        return []


def end_trees(trees: list[str], sessions: list[str], empties: list[str], limit: float = CLEANUP_S) -> None:
    """Kill everything in ``trees`` and remove them; then the ``sessions`` no other call is in, and ``empties``
    that are empty."""
    deadline = time.monotonic() + limit
    live = [t for t in trees if os.path.isdir(t)]
    for top in live:
        for d in _dirs_bottom_up(top):
            _write(f"{d}/cgroup.freeze", "0")  # a frozen task cannot die (v2)
            _write(f"{d}/freezer.state", "THAWED")  # (v1)
            _write(f"{d}/cgroup.kill", "1")  # v2 (5.14+): the whole tree at once, forks included
    while live and time.monotonic() < deadline:
        left = False
        for top in live:
            for d in _dirs_bottom_up(top):
                for pid in _pids(d):
                    left = True
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                try:
                    os.rmdir(d)
                except FileNotFoundError:
                    pass
                except OSError:
                    left = True
        live = [t for t in live if os.path.isdir(t)]
        if not left and not live:
            break
        time.sleep(0.005)
    for sdir in sessions:
        try:
            if any(e.is_dir() for e in os.scandir(f"{sdir}/tools")):
                continue  # another runner's call: the session is still in use
        except OSError:
            pass
        for d in (f"{sdir}/tools", f"{sdir}/agent", sdir):
            try:
                os.rmdir(d)
            except OSError:
                pass
    for d in empties:
        try:
            os.rmdir(d)
        except OSError:
            pass
