"""What a tool-call leaf holds, seen from ``/proc``: nothing yet, a warm spare, a command about to exec, a call.

A warm pool's spare leaf holds one ``agentcg-stub`` process (see :mod:`agentcgroup.warm`) until a call takes it
and the stub execs the command: until then it is not a call. A command spawned into a fresh leaf is placed
before it execs: for that moment its ``cmdline`` is still its parent's (``pending``), so the command is read
once it differs. Every root (``proc_root``) is a parameter, so tests run on a fake ``/proc``.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import NamedTuple

STUB_NAME = "agentcg-stub"

EMPTY = "empty"
SPARE = "spare"
PENDING = "pending"
CALL = "call"


class Leaf(NamedTuple):
    state: str  # EMPTY, SPARE, PENDING or CALL
    argv: list[str] | None = None  # the call's command (CALL)
    pid: int | None = None  # the call's first process (CALL, PENDING)


def cmdline(pid: int, proc_root: str = "/proc") -> list[str] | None:
    """``argv`` of ``pid`` (``[]`` for a kernel thread or a zombie), ``None`` if it is gone."""
    try:
        with open(f"{proc_root}/{pid}/cmdline", "rb") as f:
            raw = f.read()
    except OSError:
        return None
    return [a.decode(errors="replace") for a in raw.split(b"\0")[:-1]] if raw else []


def parent(pid: int, proc_root: str = "/proc") -> int | None:
    """The parent pid of ``pid`` (from ``/proc/<pid>/stat``), ``None`` if it is gone."""
    try:
        with open(f"{proc_root}/{pid}/stat", "rb") as f:
            raw = f.read().decode(errors="replace")
        return int(raw[raw.rindex(")") + 2 :].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def is_stub(argv: Sequence[str] | None) -> bool:
    return argv is not None and len(argv) > 0 and os.path.basename(argv[0]) == STUB_NAME


def classify(pids: Sequence[int], proc_root: str = "/proc") -> Leaf:
    """What a leaf holding ``pids`` is. The call's command is that of its first process: the one whose
    parent is outside the leaf (the lowest pid if several are)."""
    argvs = {p: cmdline(p, proc_root) for p in pids}
    alive = {p: a for p, a in argvs.items() if a is not None}
    if not alive:
        return Leaf(EMPTY)
    if all(is_stub(a) for a in alive.values()):
        return Leaf(SPARE)
    parents = {p: parent(p, proc_root) for p in alive}
    roots = sorted(p for p, pp in parents.items() if pp not in alive) or sorted(alive)
    root = roots[0]
    argv = alive[root]
    pp = parents[root]
    if is_stub(argv) or not argv or (pp is not None and cmdline(pp, proc_root) == argv):
        return Leaf(PENDING, None, root)  # not exec'd yet (still its parent's image, or the stub's)
    return Leaf(CALL, argv, root)
