"""Give a killed process's memory back now, not when it next gets the CPU to exit (``process_mrelease``).

A SIGKILLed process frees its memory in its own exit path, on its own CPU share. A victim of a low-priority
session, next to a high-priority one that wants every CPU, can take seconds to get there, while the memory it
holds is what the others are waiting for. ``process_mrelease(2)`` (Linux 5.15) reaps its address space from
the caller, as the kernel's OOM reaper does for the kernel's own victims (and as oomd and Android's lmkd do).

The kernel refuses it (EINVAL) for a process that has not been killed, so a pid reused in between is safe.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable

#: process_mrelease's number in the unified syscall table (every architecture but alpha and ia64)
_NR_PROCESS_MRELEASE = 448
_ARCHES = {"x86_64", "aarch64", "arm64", "riscv64", "ppc64le", "s390x", "loongarch64"}

#: False once the kernel said it has no such call (before 5.15), or on an architecture numbered otherwise
_supported = os.uname().machine in _ARCHES


def release_memory(pids: Iterable[int]) -> int:
    """Reap the memory of each killed process in ``pids``; returns how many were reaped. Never raises: where
    the kernel cannot, the processes free it themselves as they exit."""
    global _supported
    if not _supported:
        return 0
    import ctypes  # here: a process per call that kills nothing does not pay for it

    syscall = ctypes.CDLL(None, use_errno=True).syscall
    done = 0
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except OSError:
            continue  # already gone
        try:
            if syscall(_NR_PROCESS_MRELEASE, fd, 0) == 0:
                done += 1
            elif ctypes.get_errno() == errno.ENOSYS:
                _supported = False
                break
        finally:
            os.close(fd)
    return done
