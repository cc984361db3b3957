"""The error tree. Every error names what it is about.

``CgroupError`` and its subclasses come from the kernel side (translated from ``OSError`` in one place,
:mod:`agentcgroup.cgroupfs`). ``InvalidValue`` is bad user input: it is also a ``ValueError``.
"""

from __future__ import annotations

import errno

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (a process per call pays for it)
if TYPE_CHECKING:
    from typing import Any


class AgentCgroupError(Exception):
    """Base of everything this package raises on purpose."""


_WHOLE = object()


class InvalidValue(AgentCgroupError, ValueError):
    """A value given by the user (a size, a name, a priority) is not acceptable.

    ``InvalidValue(what, value, why)``; or ``InvalidValue(message)`` for one already written (from the daemon).
    """

    def __init__(self, what: str, value: object = _WHOLE, why: str = "") -> None:
        self.what, self.value, self.why = what, value, why
        super().__init__(what if value is _WHOLE else f"invalid {what} {value!r}: {why}")


class CgroupError(AgentCgroupError):
    """An operation on a cgroup failed. ``path`` is the cgroup (or file) it was about, ``value`` what was written,
    ``errno`` the kernel's error number (decisions are made on it, never on the message)."""

    value: Any  # a str written to a file (an InvalidName's is the name)

    def __init__(
        self, message: str, path: str | None = None, value: str | None = None, errno: int | None = None
    ) -> None:
        self.path, self.value, self.errno = path, value, errno
        super().__init__(message)


class NotFound(CgroupError):
    """The cgroup, or a control file of it, does not exist."""


class PermissionDenied(CgroupError):
    """The kernel refused the operation for lack of privilege or delegation."""


class Unsupported(CgroupError):
    """This host (kernel, cgroup version, mount) cannot do what was asked."""


class FreezeTimeout(CgroupError):
    """A freeze was asked for and is under way, but not every task had stopped within the wait.

    The kernel finishes it as each task reaches a stopping point: a task the kernel is holding (the v2
    ``memory.high`` penalty sleeps up to 2 s; v1 reclaim at the limit) stops as soon as it is let go.
    """


class LimitRejected(CgroupError):
    """The kernel rejected a value written to a control file."""


class AccessDenied(AgentCgroupError):
    """A session belongs to another user."""


class InvalidName(CgroupError, InvalidValue):
    """A cgroup path component is not a safe name."""

    def __init__(self, name: str, why: str, what: str = "name") -> None:
        InvalidValue.__init__(self, what, name, why)
        self.path, self.value, self.errno = None, name, None


class Busy(CgroupError):
    """The cgroup still has processes or children (rmdir gave EBUSY past its retries)."""


def from_oserror(exc: OSError, path: str, op: str, value: str | None = None) -> CgroupError:
    """Translate an ``OSError`` from cgroupfs into the error tree, naming the path and the value."""
    what = f"{op} {path}" + (f" <- {value!r}" if value is not None else "")
    reason = exc.strerror or str(exc)
    code = exc.errno
    kind: type[CgroupError] = CgroupError
    text = f"{what}: {reason}"
    if code == errno.ENOENT:
        kind, text = NotFound, f"{what}: no such cgroup or control file"
    elif code in (errno.EACCES, errno.EPERM, errno.EROFS):
        kind, text = PermissionDenied, f"{what}: permission denied ({reason})"
    elif code == errno.EBUSY:
        kind, text = Busy, f"{what}: busy ({reason})"
    elif code in (errno.EINVAL, errno.ERANGE, errno.EOVERFLOW) and value is not None:
        kind, text = LimitRejected, f"{what}: the kernel rejected the value ({reason})"
    elif code in (errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENODEV):
        kind, text = Unsupported, f"{what}: not supported here ({reason})"
    return kind(text, path, value, code)
