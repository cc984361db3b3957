"""All cgroupfs I/O, in one place.

A :class:`Dir` is an open cgroup directory (a directory fd). Children are created and opened relative to their
parent's fd with ``O_NOFOLLOW``, one validated name at a time, so no path from a user ever reaches the kernel
unchecked. Every failure is translated into :mod:`agentcgroup.errors`, naming the path and the value written.

Retries are only for what the kernel documents as transient: ``EBUSY`` from ``rmdir`` while a cgroup drains
(its last tasks are still exiting), and ``EINTR`` (which Python retries itself).
"""

from __future__ import annotations

import errno
import os
import re
import time
from collections.abc import Callable

from .errors import Busy, InvalidName, NotFound, from_oserror

#: files backed by a task iterator: re-reading them through a kept fd lags one read behind, so they are
#: always opened afresh (measured on 6.18: an empty list while a task is in the cgroup, the dead task after)
_ITERATED = frozenset({"cgroup.procs", "tasks", "cgroup.threads"})

#: test seam: called with the path of every directory this module creates (a fake cgroupfs fills in the
#: control files the kernel would). ``None`` on a real system.
MKDIR_HOOK: Callable[[str], None] | None = None
#: test seam: called with the path of a directory about to be removed (a fake deletes its control files)
RMDIR_HOOK: Callable[[str], None] | None = None

_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:@+-]{0,127}$")
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def check_name(name: str, what: str = "name") -> str:
    """Return ``name`` if it is a safe single cgroup path component, else raise :class:`InvalidName`.

    Rejected: empty, ``/``, ``..``, NUL, a leading dot or dash, anything outside ``[A-Za-z0-9_.:@+-]``, and
    over 128 characters.
    """
    if not isinstance(name, str):
        raise InvalidName(repr(name), "must be a string", what)
    if not name:
        raise InvalidName(name, "must not be empty", what)
    if "/" in name:
        raise InvalidName(name, "must not contain '/'", what)
    if "\0" in name:
        raise InvalidName(name, "must not contain NUL", what)
    if name.startswith("."):
        raise InvalidName(name, "must not start with '.' (no '..', no hidden names)", what)
    if not _NAME_RE.match(name):
        raise InvalidName(name, "may only use letters, digits and _ . : @ + - (at most 128, not starting with -)", what)
    return name


def _check_listed(name: str) -> str:
    """A name readdir gave: one path component, never ``.``/``..`` (those are not cgroups)."""
    if not name or "/" in name or "\0" in name or name in (".", ".."):
        raise InvalidName(name, "is not a single directory name", "cgroup")
    return name


def remove_empty_up(path: str, stop_at: str) -> None:
    """Remove the empty cgroup directory ``path``, then its empty parents up to and including the one named
    ``stop_at``; never beyond it. Stops quietly at the first that is not empty or not there (for directories
    another program made in our name, e.g. a container runtime in hierarchies we do not manage)."""
    while True:
        try:
            os.rmdir(path)
        except OSError:
            return
        if os.path.basename(path) == stop_at:
            return
        path = os.path.dirname(path)


def read_proc_cgroup(pid: int, proc_root: str = "/proc") -> str | None:
    """``/proc/<pid>/cgroup``: which cgroup the process is in, per hierarchy (None once it is gone)."""
    try:  # os.open/os.read: a buffered text file costs more than the read itself (fstat, ioctl, lseeks)
        fd = os.open(f"{proc_root}/{int(pid)}/cgroup", os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks).decode(errors="surrogateescape")
    except OSError:
        return None
    finally:
        os.close(fd)


class Dir:
    """An open cgroup directory: one fd, plus the control files it has read (kept open: a ``pread`` costs a
    microsecond, an open/read/close eight, and figures are read at every tool call's end)."""

    __slots__ = ("_files", "fd", "path")

    def __init__(self, fd: int, path: str) -> None:
        self.fd, self.path = fd, path
        self._files: dict[str, int] = {}

    # --- opening -------------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str) -> Dir:
        """Open an existing directory by absolute path (a hierarchy's mount or base)."""
        try:
            return cls(os.open(path, _DIR_FLAGS), path)
        except OSError as exc:
            raise from_oserror(exc, path, "open") from None

    def child(self, name: str, *, create: bool = False, listed: bool = False) -> Dir:
        """Open child ``name``; with ``create`` make it first (an existing one is fine).

        ``listed``: ``name`` is one the kernel listed (:meth:`children`), not ours: any single path component
        (a tool running as root may make ``.hidden`` in its leaf), opened to be emptied and removed."""
        (_check_listed if listed else check_name)(name)
        path = f"{self.path}/{name}"
        if create:
            try:
                os.mkdir(name, 0o755, dir_fd=self.fd)
                if MKDIR_HOOK is not None:
                    MKDIR_HOOK(path)
            except FileExistsError:
                pass
            except OSError as exc:
                raise from_oserror(exc, path, "mkdir") from None
        try:
            return Dir(os.open(name, _DIR_FLAGS, dir_fd=self.fd), path)
        except OSError as exc:
            raise from_oserror(exc, path, "open") from None

    def make_child(self, name: str) -> Dir:
        """Create child ``name``, which must not exist yet (raises ``FileExistsError``)."""
        check_name(name)
        path = f"{self.path}/{name}"
        try:
            os.mkdir(name, 0o755, dir_fd=self.fd)
        except FileExistsError:
            raise
        except OSError as exc:
            raise from_oserror(exc, path, "mkdir") from None
        if MKDIR_HOOK is not None:
            MKDIR_HOOK(path)
        try:
            return Dir(os.open(name, _DIR_FLAGS, dir_fd=self.fd), path)
        except OSError as exc:
            raise from_oserror(exc, path, "open") from None

    def close(self) -> None:
        for fd in self._files.values():
            os.close(fd)
        self._files.clear()
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __repr__(self) -> str:
        return f"Dir({self.path!r})"

    # --- control files -------------------------------------------------------------------------------
    def read(self, fname: str) -> str:
        fd = self._files.get(fname)
        if fd is None:
            try:
                fd = os.open(fname, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd)
            except OSError as exc:
                raise from_oserror(exc, f"{self.path}/{fname}", "read") from None
            if fname in _ITERATED:
                return self._read_once(fd, fname)
            self._files[fname] = fd
        try:
            chunk = os.pread(fd, 65536, 0)
            if len(chunk) < 65536:
                # a kept file is one seq_file record (the whole file, the buffer grown to fit): a short read is
                # its end. One pread, not a second one only to see 0 bytes: the metrics read 4 files of every
                # session at every scrape
                return chunk.decode()
            chunks, offset = [chunk], len(chunk)
            while chunk := os.pread(fd, 65536, offset):
                chunks.append(chunk)
                offset += len(chunk)
            return b"".join(chunks).decode()
        except OSError as exc:
            raise from_oserror(exc, f"{self.path}/{fname}", "read") from None

    def _read_once(self, fd: int, fname: str) -> str:
        try:
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
            return b"".join(chunks).decode()
        except OSError as exc:
            raise from_oserror(exc, f"{self.path}/{fname}", "read") from None
        finally:
            os.close(fd)

    def read_optional(self, fname: str) -> str | None:
        """Like :meth:`read`, ``None`` if the file does not exist (a feature this kernel lacks)."""
        try:
            return self.read(fname)
        except NotFound:
            return None

    def write(self, fname: str, value: str) -> None:
        """One ``write(2)`` of ``value`` (cgroup files take one value per write)."""
        data = value.encode()
        try:
            # O_TRUNC is a no-op on cgroupfs (as for `echo x > file`) and makes a fake cgroupfs behave
            fd = os.open(fname, os.O_WRONLY | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd)
        except OSError as exc:
            raise from_oserror(exc, f"{self.path}/{fname}", "write", value) from None
        try:
            os.write(fd, data)
        except OSError as exc:
            raise from_oserror(exc, f"{self.path}/{fname}", "write", value) from None
        finally:
            os.close(fd)

    def open_file(self, fname: str, flags: int = os.O_RDONLY) -> int:
        """An fd on a control file, for polling (events, PSI triggers) or placing (cgroup.procs)."""
        try:
            return os.open(fname, flags | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=self.fd)
        except OSError as exc:
            raise from_oserror(exc, f"{self.path}/{fname}", "open") from None

    def has(self, fname: str) -> bool:
        try:
            os.stat(fname, dir_fd=self.fd, follow_symlinks=False)
            return True
        except OSError:
            return False

    def xattr(self, name: str) -> bytes | None:
        """An extended attribute of this cgroup, None if it has none (systemd marks delegated units with
        ``trusted.delegate``)."""
        try:
            return os.getxattr(self.fd, name)
        except OSError:
            return None

    def writable(self, fname: str) -> bool:
        """Whether this process may write control file ``fname`` (a cgroup delegated to a user is chowned)."""
        return os.access(fname, os.W_OK, dir_fd=self.fd, follow_symlinks=False)

    def children(self) -> list[str]:
        """Names of child cgroups."""
        try:
            fd = os.open(".", _DIR_FLAGS, dir_fd=self.fd)
        except OSError as exc:
            raise from_oserror(exc, self.path, "list") from None
        try:
            return sorted(e.name for e in os.scandir(fd) if e.is_dir(follow_symlinks=False))
        finally:
            os.close(fd)

    # --- removal -------------------------------------------------------------------------------------
    def remove_child(self, name: str, timeout: float = 5.0, *, listed: bool = False) -> bool:
        """``rmdir`` child ``name``, retrying ``EBUSY`` (tasks still exiting) until ``timeout``.

        Returns False if it did not exist. Raises :class:`Busy` if it still had tasks or children.
        ``listed``: as for :meth:`child`.
        """
        (_check_listed if listed else check_name)(name)
        deadline = None
        delay = 0.0005
        while True:
            try:
                if RMDIR_HOOK is not None:
                    RMDIR_HOOK(f"{self.path}/{name}")
                os.rmdir(name, dir_fd=self.fd)
                return True
            except FileNotFoundError:
                return False
            except OSError as exc:
                if exc.errno != errno.EBUSY:
                    raise from_oserror(exc, f"{self.path}/{name}", "rmdir") from None
                now = time.monotonic()
                if deadline is None:
                    deadline = now + timeout
                if now >= deadline:
                    raise Busy(
                        f"rmdir {self.path}/{name}: still busy after {timeout:g} s (tasks or child cgroups left)",
                        f"{self.path}/{name}",
                    ) from None
                time.sleep(delay)
                delay = min(delay * 2, 0.05)
