"""Start a process that is already in its cgroups when it execs, and wait for it by pidfd.

Two ways, same result:

* the C spawner (``agentcgroup._spawn``, built at install when a compiler is present): ``vfork``, write ``0``
  to each ``cgroup.procs`` fd, exec. Costs about what ``subprocess.run`` costs.
* the fallback: ``subprocess.Popen`` with a ``preexec_fn`` doing the same writes. Correct, but ``fork`` instead
  of ``vfork`` (~1-2 ms more per call on a small VM). ``agentcg doctor`` says which one is in use.

``stdin``/``stdout``/``stderr`` take ``None`` (inherit), an fd, a file object, :data:`PIPE` or :data:`DEVNULL`;
``stderr`` also :data:`STDOUT` (the same pipe or file as stdout).
"""

from __future__ import annotations

import os
import select
import signal
import threading
import time
import types
from collections.abc import Mapping, Sequence
from typing import IO, TYPE_CHECKING, Any

from .errors import InvalidValue
from .execpath import exec_paths, resolve

__all__ = ["DEVNULL", "PIPE", "STDOUT", "ForeignProcess", "Process", "SpawnError", "exec_paths", "resolve", "spawn"]

_c: types.ModuleType | None
try:
    from . import _spawn as _c
except ImportError:  # no compiler at install time
    _c = None

if TYPE_CHECKING:
    import subprocess

# subprocess's values, without importing it (only the fallback spawner needs it: a process per call pays for
# what it imports)
PIPE = -1
DEVNULL = -3
#: ``stderr=STDOUT``: stderr goes where stdout goes (one pipe for both: their order kept, as a terminal shows it)
STDOUT = -2
FAST_SPAWN = _c is not None
#: the pre-placed exec stub program (built at install next to the extension)
STUB_PATH = os.path.join(os.path.dirname(os.path.abspath(__file__)), "agentcg-stub")
STUBS = FAST_SPAWN and os.access(STUB_PATH, os.X_OK)

_STAGES = {
    1: "placing it in its cgroup",
    2: "setsid",
    3: "setting its rlimits",
    4: "setting up its stdio",
    5: "changing directory",
    6: "exec",
    7: "setting oom_score_adj",
    8: "switching user",
}
#: ``oom_score_adj`` value meaning "leave it as inherited"
NO_OOM_ADJ = -100000


def _ids(uid: int | None, gid: int | None, oom_score_adj: int | None) -> tuple[int, int, int]:
    return (
        -1 if uid is None else int(uid),
        -1 if gid is None else int(gid),
        NO_OOM_ADJ if oom_score_adj is None else int(oom_score_adj),
    )


class SpawnError(OSError):
    """The command could not be started. ``stage`` says which step failed; nothing of it is left running."""

    def __init__(self, errno_: int, message: str, stage: str) -> None:
        super().__init__(errno_, message)
        self.stage = stage


#: CAP_SYS_RESOURCE's bit in /proc/self/status CapEff: what lowering an oom_score_adj takes
_CAP_SYS_RESOURCE = 24
_can_lower: bool | None = None


def can_lower_oom_adj() -> bool:
    """Whether this process may give a child an oom_score_adj below its own (CAP_SYS_RESOURCE): an unprivileged
    controller (a delegated user cgroup) leaves its agents at what they inherit rather than fail to start them."""
    global _can_lower
    if _can_lower is None:
        _can_lower = False
        try:
            with open("/proc/self/status", encoding="ascii") as f:
                for line in f:
                    if line.startswith("CapEff:"):
                        _can_lower = bool(int(line.split()[1], 16) >> _CAP_SYS_RESOURCE & 1)
                        break
        except OSError:
            pass
    return _can_lower


def _as_other_user(uid: int | None) -> bool:
    return uid is not None and int(uid) != os.geteuid()


def _env_bytes(env: Mapping[str, str]) -> list[bytes]:
    """``KEY=value`` entries; this process's own environment is taken as bytes, as the kernel keeps it."""
    if env is os.environ:
        return [k + b"=" + v for k, v in os.environb.items()]
    return [f"{k}={v}".encode() for k, v in env.items()]


def _attach_pipes(proc: Process, ours: dict[str, int | None]) -> Process:
    """Our ends of the pipes (PIPE was asked for) become the process's stdin/stdout/stderr files."""
    for name, mode in (("stdin", "wb"), ("stdout", "rb"), ("stderr", "rb")):
        fd = ours[name]
        if fd is not None:
            setattr(proc, name, open(fd, mode, buffering=0))  # noqa: SIM115 - owned by proc, closed by close()
    return proc


_DEVNULL_FD = -1
_devnull_lock = threading.Lock()


def _devnull() -> int:
    """One ``/dev/null`` fd for every child's DEVNULL, opened once and kept (close-on-exec, never 0-2, so a
    child's dup2 of its stdio in order cannot clobber it): a daemon call gave it up to three opens and closes."""
    global _DEVNULL_FD
    if _DEVNULL_FD < 0:
        with _devnull_lock:
            if _DEVNULL_FD < 0:
                fd = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
                if fd < 3:
                    low, fd = fd, _dup_high(fd)
                    os.close(low)
                _DEVNULL_FD = fd
    return _DEVNULL_FD


def _forget_devnull() -> None:
    """In a forked child: it may close every fd it inherited (the supervisor does), so it opens its own."""
    global _DEVNULL_FD, _devnull_lock
    _DEVNULL_FD, _devnull_lock = -1, threading.Lock()


os.register_at_fork(after_in_child=_forget_devnull)


def _fd_for(spec: Any, mode: str, to_close: list[int], stdout_fd: int = -1) -> tuple[int, int | None]:
    """(fd for the child, our end of a pipe or None). ``stdout_fd``: the child's stdout, for ``STDOUT``."""
    if spec is None:
        return -1, None
    if isinstance(spec, int) and spec == STDOUT:
        if mode != "w":
            raise InvalidValue("stdin", "STDOUT", "only stderr can go where stdout goes")
        return (stdout_fd if stdout_fd >= 0 else 1), None
    if spec == PIPE:
        r, w = os.pipe2(os.O_CLOEXEC)
        if mode == "r":
            to_close.append(r)
            return r, w
        to_close.append(w)
        return w, r
    if spec == DEVNULL:
        return _devnull(), None
    if isinstance(spec, int):
        return spec, None
    return spec.fileno(), None


class Process:
    """A started command. Waited for through its pidfd, so it can be multiplexed with cgroup events."""

    def __init__(self, pid: int, argv: list[str], popen: subprocess.Popen[bytes] | None = None) -> None:
        self.pid, self.argv, self._popen = pid, argv, popen
        self.returncode: int | None = None
        self.started = time.monotonic()
        self.ended: float | None = None
        self.rusage: Any = None
        self.stdin: IO[bytes] | None = None
        self.stdout: IO[bytes] | None = None
        self.stderr: IO[bytes] | None = None
        try:
            self.pidfd: int = os.pidfd_open(pid)
        except (OSError, AttributeError):  # kernel < 5.3: poll with a short timeout instead
            self.pidfd = -1

    def fileno(self) -> int:
        return self.pidfd

    def poll(self) -> int | None:
        if self.returncode is None:
            self._reap(os.WNOHANG)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait up to ``timeout`` s (forever if None); the return code, or None if still running."""
        if self.returncode is not None:
            return self.returncode
        if timeout is None:
            self._reap(0)
            return self.returncode
        if self.pidfd >= 0:
            ready, _, _ = select.select([self.pidfd], [], [], max(timeout, 0))
            if ready:
                self._reap(0)
            return self.returncode
        deadline = time.monotonic() + timeout
        while self.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        return self.returncode

    def _reap(self, flags: int) -> None:
        try:
            pid, status, rusage = os.wait4(self.pid, flags)
        except ChildProcessError:
            pid, status, rusage = self.pid, 0, None
        if pid == 0:
            return
        self.ended = time.monotonic()
        self.rusage = rusage
        self.returncode = os.waitstatus_to_exitcode(status) if rusage is not None else 0
        if self._popen is not None:
            self._popen.returncode = self.returncode
        # the pidfd stays open (readable from now on) until close(): an event loop may still be watching it

    def send_signal(self, sig: int) -> None:
        """Signal the process itself (not its tree: kill the cgroup for that); no-op once reaped."""
        if self.returncode is None:
            try:
                if self.pidfd >= 0:
                    signal.pidfd_send_signal(self.pidfd, sig)
                else:
                    os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        for f in (self.stdin, self.stdout, self.stderr):
            if f is not None:
                f.close()
        if self.pidfd >= 0:
            os.close(self.pidfd)
            self.pidfd = -1


class ForeignProcess(Process):
    """A process that is not our child (adopted after a controller restart): its end is seen through a pidfd,
    its exit status is not ours to read (``returncode`` stays None, ``exited`` becomes True)."""

    def __init__(self, pid: int, argv: list[str]) -> None:
        super().__init__(pid, argv)
        self.exited = self.pidfd < 0

    def poll(self) -> int | None:
        if not self.exited and self.pidfd >= 0:
            ready, _, _ = select.select([self.pidfd], [], [], 0)
            if ready:
                self.exited, self.ended = True, time.monotonic()
        return None

    def wait(self, timeout: float | None = None) -> int | None:
        if not self.exited and self.pidfd >= 0:
            ready, _, _ = select.select([self.pidfd], [], [], timeout)
            if ready:
                self.exited, self.ended = True, time.monotonic()
        return None

    def send_signal(self, sig: int) -> None:
        if not self.exited and self.pidfd >= 0:
            try:
                signal.pidfd_send_signal(self.pidfd, sig)
            except ProcessLookupError:
                pass


def spawn(
    argv: Sequence[str],
    *,
    procs_fds: Sequence[int] = (),
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
    stdin: Any = None,
    stdout: Any = None,
    stderr: Any = None,
    new_session: bool = False,
    rlimits: Sequence[tuple[int, int, int]] = (),
    keep_fds: Sequence[int] = (),
    executable: str | None = None,
    uid: int | None = None,
    gid: int | None = None,
    oom_score_adj: int | None = None,
) -> Process:
    """Start ``argv`` placed in the cgroups whose ``cgroup.procs`` fds are given, before it execs.

    ``rlimits`` is a list of ``(resource, soft, hard)`` (-1 = unlimited) applied in the child; ``uid``/``gid``
    drop to that user (supplementary groups cleared) after placement; ``oom_score_adj`` is set in the child.
    Raises ``FileNotFoundError``/``PermissionError`` for a bad command, :class:`SpawnError` for the rest.
    """
    argv = [os.fspath(a) for a in argv]
    path: str | list[str] = executable or (exec_paths(argv, env) if _as_other_user(uid) else resolve(argv, env, cwd))
    env_map = os.environ if env is None else env
    ids = _ids(uid, gid, oom_score_adj)
    child_side: list[int] = []
    ours: dict[str, int | None] = {}
    fds: list[int] = []
    try:
        for name, spec, mode in (("stdin", stdin, "r"), ("stdout", stdout, "w"), ("stderr", stderr, "w")):
            fd, mine = _fd_for(spec, mode, child_side, fds[1] if len(fds) > 1 else -1)
            fds.append(fd)
            ours[name] = mine
        if _c is not None:
            pid = _spawn_c(path, argv, env_map, cwd, fds, procs_fds, new_session, rlimits, keep_fds, ids)
            proc = Process(pid, argv)
        else:
            proc = _spawn_popen(path, argv, env_map, cwd, fds, procs_fds, new_session, rlimits, keep_fds, ids)
    except BaseException:
        for mine in ours.values():
            if mine is not None:
                os.close(mine)
        raise
    finally:
        for fd in child_side:
            os.close(fd)
    return _attach_pipes(proc, ours)


def _raise_spawn_error(exc: OSError, stage: str, argv: list[str]) -> None:
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    msg = f"cannot start {argv[0]!r}: {stage} failed: {reason}"
    if isinstance(exc, FileNotFoundError) and stage == "exec":
        raise FileNotFoundError(exc.errno, f"command not found: {argv[0]}", argv[0]) from None
    if isinstance(exc, PermissionError) and stage == "exec":
        raise PermissionError(exc.errno, f"permission denied: {argv[0]}", argv[0]) from None
    raise SpawnError(exc.errno or 0, msg, stage) from None


def _spawn_c(
    path: str | list[str],
    argv: list[str],
    env: Mapping[str, str],
    cwd: str | None,
    fds: Sequence[int],
    procs_fds: Sequence[int],
    new_session: bool,
    rlimits: Sequence[tuple[int, int, int]],
    keep_fds: Sequence[int],
    ids: tuple[int, int, int] = (-1, -1, NO_OOM_ADJ),
) -> int:
    assert _c is not None, "the C spawner is not built"
    # stdio sources that are themselves 0-2 but go elsewhere would be clobbered by an earlier dup2
    moved = []
    try:
        fds = list(fds)
        for i, fd in enumerate(fds):
            if 0 <= fd <= 2 and fd != i:
                fds[i] = _dup_high(fd)
                moved.append(fds[i])
        env_list = _env_bytes(env)
        try:
            pid: int = _c.spawn(
                os.fsencode(path) if isinstance(path, str) else [os.fsencode(p) for p in path],
                [a.encode() for a in argv],
                env_list,
                os.fsencode(cwd) if cwd is not None else None,
                fds[0],
                fds[1],
                fds[2],
                list(procs_fds),
                new_session,
                [(r, s, h) for r, s, h in rlimits],
                list(keep_fds),
                *ids,
            )
            return pid
        except OSError as exc:
            stage = _STAGES.get(getattr(exc, "spawn_stage", 6), "exec")
            _raise_spawn_error(exc, stage, argv)
            raise AssertionError("unreachable") from None
    finally:
        for fd in moved:
            os.close(fd)


def _dup_high(fd: int) -> int:
    import fcntl

    return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 3)


def _spawn_popen(
    path: str | list[str],
    argv: list[str],
    env: Mapping[str, str],
    cwd: str | None,
    fds: Sequence[int],
    procs_fds: Sequence[int],
    new_session: bool,
    rlimits: Sequence[tuple[int, int, int]],
    keep_fds: Sequence[int],
    ids: tuple[int, int, int],
) -> Process:
    import resource
    import subprocess

    procs = list(procs_fds)
    limits = list(rlimits)
    uid, gid, adj = ids
    adj_text = str(adj).encode()

    def place() -> None:  # runs in the child, after fork, before exec
        for fd in procs:
            os.write(fd, b"0")
        if adj != NO_OOM_ADJ:
            with open("/proc/self/oom_score_adj", "wb", buffering=0) as f:
                f.write(adj_text)
        for res, soft, hard in limits:
            resource.setrlimit(
                res,
                (resource.RLIM_INFINITY if soft < 0 else soft, resource.RLIM_INFINITY if hard < 0 else hard),
            )
        # the user switch comes last, here rather than through Popen(user=): Popen switches before preexec_fn,
        # and the new user may neither move itself into a cgroup nor lower its oom_score_adj
        if gid >= 0:
            os.setgroups([])
            os.setgid(gid)
        if uid >= 0:
            os.setuid(uid)
        if late_cwd is not None:  # as the new user: a directory it may not enter stays closed to it
            os.chdir(late_cwd)

    late_cwd = cwd if uid >= 0 else None
    try:
        popen = subprocess.Popen(
            argv,
            executable=path if isinstance(path, str) else None,  # a list: Popen's child walks PATH itself
            env=dict(env),
            cwd=None if late_cwd is not None else cwd,
            stdin=fds[0] if fds[0] >= 0 else None,
            stdout=fds[1] if fds[1] >= 0 else None,
            stderr=fds[2] if fds[2] >= 0 else None,
            start_new_session=new_session,
            preexec_fn=place if (procs or limits or adj != NO_OOM_ADJ or uid >= 0 or gid >= 0 or late_cwd) else None,
            pass_fds=tuple(keep_fds),
        )
    except subprocess.SubprocessError as exc:
        raise SpawnError(
            0,
            f"cannot start {argv[0]!r}: placing it in its cgroup failed ({exc})",
            "placing it in its cgroup",
        ) from None
    return Process(popen.pid, argv, popen)
