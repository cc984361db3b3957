"""The daemon's control threads at a higher CPU priority than the tools it starts.

Under load (issue 10: 50 hostile clients), every step of a call waits for a CPU: the daemon's event loop, the
controller's loop, the workers. A root daemon may run its two loops (they only wait and dispatch) at a lower nice
value, as systemd's ``Nice=`` does for a service and oomd runs its own control loop ahead of the workloads it
watches. What the daemon starts must not inherit it: Linux keeps a nice value per thread, and a thread or a
process inherits its creator's. So a raised thread's value is set by its tid (:func:`raise_thread`), and every
thread that a raised thread may create and that starts tools or does background work puts itself back at the
process's own value first (:func:`at_base`): the workers (direct spawns), the warm pool's refiller (it forks the
stubs a call's command is exec'ed from), the predictor's calibration. A tool runs at the nice value it would have
had without this module.
"""

from __future__ import annotations

import os
import threading

from .errors import InvalidValue

#: the process's own nice value, once some thread was raised (None: nothing raised, nothing to put back)
_base: int | None = None


def parse(value: str | int, what: str = "--control-nice") -> int:
    """A nice value, -20..19; the error names the value."""
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise InvalidValue(f"{what}: {value!r} is not an integer nice value (-20..19)") from None
    if not -20 <= n <= 19:
        raise InvalidValue(f"{what}: {n} is outside the nice range -20..19")
    return n


def raise_thread(native_id: int, nice: int) -> None:
    """Set thread ``native_id``'s nice value (from any thread of this process); the value every other thread
    has now is remembered as the base that :func:`at_base` restores."""
    global _base
    if _base is None:
        _base = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
    os.setpriority(os.PRIO_PROCESS, native_id, nice)


def at_base() -> None:
    """Put the calling thread back at the process's own nice value (it may have inherited a raised one)."""
    if _base is not None:
        try:
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), _base)
        except OSError:  # never more than the base, which is lower: only a raise can be refused
            pass
