"""Give a killed process's memory back now, not when it next gets the CPU to exit (``process_mrelease``).

A SIGKILLed process frees its memory in its own exit path, on its own CPU share. A victim of a low-priority
session, next to a high-priority one that wants every CPU, can take seconds to get there, while the memory it
holds is what the others are waiting for. ``process_mrelease(2)`` (Linux 5.15) reaps its address space from
the caller, as the kernel's OOM reaper does for the kernel's own victims (and as oomd and Android's lmkd do).

The kernel refuses it (EINVAL) for a process that has not been killed, so a pid reused in between is safe.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
from collections.abc import Iterable

#: process_mrelease's number in the unified syscall table (every architecture but alpha and ia64)
_NR_PROCESS_MRELEASE = 448
_ARCHES = {"x86_64", "aarch64", "arm64", "riscv64", "ppc64le", "s390x", "loongarch64"}

_syscall = None
_works: bool | None = None if platform.machine() in _ARCHES else False


def _libc_syscall():  # type: ignore[no-untyped-def]
    global _syscall
    if _syscall is None:
        libc = ctypes.CDLL(None, use_errno=True)
        _syscall = libc.syscall
        _syscall.restype = ctypes.c_long
    return _syscall


def release_memory(pids: Iterable[int]) -> int:
    """Reap the memory of each killed process in ``pids``; returns how many were reaped. Never raises: where
    the kernel cannot (before 5.15, another architecture), the processes free it themselves as they exit."""
    global _works
    if _works is False:
        return 0
    call = _libc_syscall()
    done = 0
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            continue  # already gone
        try:
            if call(_NR_PROCESS_MRELEASE, fd, 0) == 0:
                done += 1
                _works = True
            elif ctypes.get_errno() == errno.ENOSYS:
                _works = False
                return done
        finally:
            os.close(fd)
    return done
