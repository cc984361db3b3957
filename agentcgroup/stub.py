"""A pre-forked process that moves itself into a leaf's cgroups off the critical path, then execs a call's
command (the warm pool's spares: :mod:`agentcgroup.warm`). Its C side is ``_stub.c``."""

from __future__ import annotations

import array
import os
import socket
import struct
from collections.abc import Mapping, Sequence
from typing import Any

from .errors import InvalidValue
from .spawn import (
    _STAGES,
    STUB_PATH,
    STUBS,
    Process,
    SpawnError,
    _as_other_user,
    _attach_pipes,
    _env_bytes,
    _fd_for,
    _ids,
    _raise_spawn_error,
    _spawn_c,
    exec_paths,
    resolve,
)


class Stub:
    """A pre-forked process that moves itself into cgroups on request, then execs a command.

    Moving a task between cgroups costs an RCU grace period (several ms) after a quiet spell; a stub pays it
    off the critical path (see ``_spawn.c``). ``place()`` blocks the caller's thread, not the GIL.
    """

    def __init__(self) -> None:
        if not STUBS:
            raise SpawnError(0, f"pre-placed stubs need {STUB_PATH} and the C spawner (built at install)", "stub")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            fd = theirs.fileno()
            # no environment: the stub reads none, and execs the command with the one it is sent (encoding
            # this process's for every spare was a fifth of the spawn's CPU)
            self.pid: int = _spawn_c(STUB_PATH, [STUB_PATH, str(fd)], {}, None, [-1, -1, -1], (), False, (), (fd,))
        finally:
            theirs.close()
        self.sock = ours
        self.used = False

    def _send(self, op: bytes, fds: Sequence[int], payload: bytes = b"") -> None:
        hdr = struct.pack("=IIII", op[0], len(fds), len(payload), 0)
        anc = [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))] if fds else []
        self.sock.sendmsg([hdr], anc)
        if payload:
            self.sock.sendall(payload)

    def place(self, procs_fds: Sequence[int]) -> None:
        """Move the stub into the cgroups whose ``cgroup.procs`` fds are given."""
        self._send(b"P", procs_fds)
        reply = self.sock.recv(4)
        if len(reply) != 4:
            raise SpawnError(0, "the stub died while moving into its cgroup", "placing it in its cgroup")
        (err,) = struct.unpack("=i", reply)
        if err:
            raise SpawnError(
                err, f"moving the stub into its cgroup failed: {os.strerror(err)}", "placing it in its cgroup"
            )

    def exec(
        self,
        argv: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        stdin: Any = None,
        stdout: Any = None,
        stderr: Any = None,
        new_session: bool = False,
        rlimits: Sequence[tuple[int, int, int]] = (),
        executable: str | None = None,
        uid: int | None = None,
        gid: int | None = None,
        oom_score_adj: int | None = None,
    ) -> Process:
        """Make the stub exec ``argv``; the stub *becomes* the command (same pid, our child)."""
        if self.used:
            raise SpawnError(0, "this stub was already used", "exec")
        argv = [os.fspath(a) for a in argv]
        paths = [executable] if executable else exec_paths(argv, env) if _as_other_user(uid) else None
        if paths is None:
            paths = [resolve(argv, env, cwd)]
        env_map = os.environ if env is None else env
        child_side: list[int] = []
        ours: dict[str, int | None] = {}
        fds, mask = [], 0
        out_fd = -1
        try:
            for n, (name, spec, mode) in enumerate(
                (("stdin", stdin, "r"), ("stdout", stdout, "w"), ("stderr", stderr, "w"))
            ):
                fd, mine = _fd_for(spec, mode, child_side, out_fd)
                if name == "stdout":
                    out_fd = fd
                ours[name] = mine
                if fd >= 0:
                    fds.append(fd)
                    mask |= 1 << n
            flags = (1 if new_session else 0) | (2 if cwd is not None else 0) | (len(paths) << 8)
            parts = [struct.pack("=iiiiii", flags, mask, len(rlimits), *_ids(uid, gid, oom_score_adj))]
            parts += [struct.pack("=iqq", r, soft, hard) for r, soft, hard in rlimits]
            env_list = _env_bytes(env_map)
            parts.append(struct.pack("=ii", len(argv), len(env_list)))
            strings = [os.fsencode(p) for p in paths] + ([os.fsencode(cwd)] if cwd is not None else [])
            strings += [a.encode() for a in argv] + env_list
            for item in strings:
                if b"\0" in item:
                    raise InvalidValue("command", argv, "embedded NUL byte")
            parts.append(b"".join(item + b"\0" for item in strings))
            self.used = True
            self._send(b"X", fds, b"".join(parts))
            reply = b""
            while len(reply) < 8:
                chunk = self.sock.recv(8 - len(reply))
                if not chunk:
                    break
                reply += chunk
        except BaseException:
            for mine in ours.values():
                if mine is not None:
                    os.close(mine)
            raise
        finally:
            for fd in child_side:
                os.close(fd)
        self.sock.close()
        if reply:  # exec failed: the stub sent (stage, errno) and exits
            stage, err = struct.unpack("=ii", reply.ljust(8, b"\0"))
            os.waitpid(self.pid, 0)
            for mine in ours.values():
                if mine is not None:
                    os.close(mine)
            _raise_spawn_error(OSError(err, os.strerror(err)), _STAGES.get(stage, "exec"), argv)
        return _attach_pipes(Process(self.pid, argv), ours)

    def close(self) -> None:
        """Dismiss an unused stub (it exits on EOF) and reap it."""
        if not self.used:
            self.used = True
            self.sock.close()
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass
