"""The Manager interface every backend implements, and the figures it reports.

Policies and sessions speak these verbs; only backends know ``memory.high`` from ``memory.limit_in_bytes``.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Callable, Sequence
from typing import Any

from .._record import Frozen, Record
from ..detect import HostLayout
from ..errors import Unsupported
from ..limits import Limits
from ..spawn import Process


class Stats(Record):
    """A cgroup's figures at one moment. ``None``: this backend or kernel cannot tell."""

    FIELDS = (
        "memory_current",
        "memory_peak",
        "cpu_usec",
        "cpu_throttled_usec",
        "nr_throttled",
        "oom_kills",
        "memory_max_events",
        "memory_high_events",
        "under_oom",
        "pids_current",
        "pids_denied",
        "populated",
        "frozen",
    )

    def __init__(
        self,
        memory_current: int | None = None,
        memory_peak: int | None = None,
        cpu_usec: int | None = None,
        cpu_throttled_usec: int | None = None,
        nr_throttled: int | None = None,
        oom_kills: int = 0,
        memory_max_events: int = 0,
        memory_high_events: int = 0,
        under_oom: bool = False,
        pids_current: int | None = None,
        pids_denied: int = 0,
        populated: bool | None = None,
        frozen: bool | None = None,
    ) -> None:
        self.memory_current = memory_current
        self.memory_peak = memory_peak  # since creation (v2 memory.peak, v1 max_usage_in_bytes, or sampled)
        self.cpu_usec = cpu_usec  # user + system
        self.cpu_throttled_usec = cpu_throttled_usec
        self.nr_throttled = nr_throttled
        self.oom_kills = oom_kills  # processes the kernel OOM-killed in this cgroup
        self.memory_max_events = memory_max_events  # times usage hit the hard limit
        self.memory_high_events = memory_high_events  # times usage went over the soft limit (v2) / stalled at it (v1)
        self.under_oom = under_oom  # v1: tasks are stalled at the limit right now (oom_kill_disable=1)
        self.pids_current = pids_current
        self.pids_denied = pids_denied  # forks refused by pids.max
        self.populated = populated
        self.frozen = frozen

    def to_dict(self) -> dict[str, Any]:
        return self.as_dict()


class Cgroup(Record):
    """A handle on one cgroup the manager created or opened. ``path`` is relative to the manager's root."""

    FIELDS = ("path", "parent", "limits", "backend_data", "closed")

    def __init__(
        self,
        path: tuple[str, ...],
        parent: Cgroup | None = None,
        limits: Limits | None = None,
        backend_data: dict[str, Any] | None = None,
        closed: bool = False,
    ) -> None:
        self.path = path
        self.parent = parent
        self.limits = Limits() if limits is None else limits
        self.backend_data: dict[str, Any] = {} if backend_data is None else backend_data
        self.closed = closed

    @property
    def name(self) -> str:
        return "/".join(self.path)

    def __repr__(self) -> str:
        return f"Cgroup({self.name!r})"


class EventSource(Record):
    """A kernel notification to poll: ``fd`` becomes ready (``events``: select.EPOLLIN or EPOLLPRI) when
    something happened; call ``drain()`` after each wakeup (re-arms it), ``close()`` when done."""

    FIELDS = ("fd", "events", "kind", "drain", "level")

    def __init__(self, fd: int, events: int, kind: str, drain: Callable[[], None], level: int | None = None) -> None:
        self.fd = fd
        self.events = events
        self.kind = kind  # "memory-events", "oom", "threshold", "psi"
        self.drain = drain
        self.level = level  # the usage level of a threshold

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


class Features(Frozen):
    """What this host can do, probed once. ``notes`` explain what is missing and what we do instead."""

    FIELDS = (
        "backend",
        "enforce_memory",
        "enforce_cpu",
        "enforce_pids",
        "memory_high",
        "freeze",
        "kill",
        "memory_peak",
        "oom_group",
        "events",
        "psi",
        "psi_min_window_us",
        "fast_spawn",
        "notes",
    )
    backend: str
    enforce_memory: bool
    enforce_cpu: bool
    enforce_pids: bool
    memory_high: str  # "memory.high", "v1-stall" or ""
    freeze: str  # "cgroup.freeze", "freezer", "" (SIGSTOP is not offered: it does not stop a tree)
    kill: str  # "cgroup.kill", "freezer+SIGKILL", "SIGKILL-loop", "process-group"
    memory_peak: str  # "memory.peak", "max_usage_in_bytes", "sampled"
    oom_group: str  # "memory.oom.group", "cgroup.kill on OOM", ""
    events: str  # "cgroup2 notifications", "eventfd", "polling"
    psi: str  # "per-cgroup", "system", ""
    psi_min_window_us: int
    fast_spawn: bool
    notes: tuple[str, ...]

    def __init__(
        self,
        backend: str,
        enforce_memory: bool,
        enforce_cpu: bool,
        enforce_pids: bool,
        memory_high: str,
        freeze: str,
        kill: str,
        memory_peak: str,
        oom_group: str,
        events: str,
        psi: str,
        psi_min_window_us: int,
        fast_spawn: bool,
        notes: tuple[str, ...] = (),
    ) -> None:
        values: tuple[Any, ...] = (backend, enforce_memory, enforce_cpu, enforce_pids, memory_high, freeze, kill)
        values += (memory_peak, oom_group, events, psi, psi_min_window_us, fast_spawn, notes)
        for name, value in zip(self.FIELDS, values, strict=True):
            self._set(name, value)

    def to_dict(self) -> dict[str, Any]:
        return self.as_dict()


class Manager(abc.ABC):
    """Create, fill, watch and remove cgroups beneath one root, on one kind of host.

    What a backend can do beyond the verbs every one has is declared here, never probed with ``hasattr``:
    ``has_root`` (:meth:`root_cgroup` gives the root as a cgroup: the host budget and its figures) and
    ``preplace`` (:meth:`open_placement`: a process can place itself, e.g. a warm spare's stub).
    """

    kind: str = "abstract"
    layout: HostLayout
    root_name: str
    features: Features
    has_root: bool = False
    preplace: bool = False

    # --- lifecycle ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def create(
        self,
        path: Sequence[str],
        limits: Limits | None = None,
        *,
        exist_ok: bool = True,
        full: bool = False,
        shape: Limits | None = None,
    ) -> Cgroup:
        """Create the cgroup at ``path`` (and missing parents) with ``limits``; nothing is left on failure.

        ``full``: create it in every hierarchy this backend uses, so that any limit can be set later without
        moving its processes (for pre-placed spare leaves). ``shape``: create it also in the hierarchies that
        limits like these need, without setting them (a spare leaf for calls like the ones seen so far)."""

    @abc.abstractmethod
    def open(self, path: Sequence[str]) -> Cgroup:
        """A handle on an existing cgroup (e.g. to adopt it after a restart); raises NotFound."""

    @abc.abstractmethod
    def children(self, path: Sequence[str]) -> list[str]:
        """Names of the child cgroups of ``path`` (``()`` is the root)."""

    @abc.abstractmethod
    def destroy(self, cg: Cgroup, timeout: float = 5.0) -> None:
        """Kill what is left in ``cg`` and its children, then remove them, waiting for them to drain."""

    def remove_if_empty(self, cg: Cgroup) -> bool:
        """Remove ``cg`` now if the kernel lets it go at once (no process, no child), without reading anything
        first or waiting; False (and ``cg`` still usable by :meth:`destroy`) otherwise."""
        return False

    def release(self, cg: Cgroup) -> None:  # noqa: B027 - optional, a no-op where handles hold nothing
        """Let go of the handle's open files (the cgroup stays: :meth:`open` gives a new handle). Left alone while
        a handle beneath it is open. An idle session holds only its own directory this way."""

    def close(self) -> None:  # noqa: B027 - optional hook, a no-op by default
        """Release fds; remove the root if it is empty (another process may still be using it)."""

    # --- limits and processes ------------------------------------------------------------------------
    @abc.abstractmethod
    def set_limits(self, cg: Cgroup, limits: Limits) -> None:
        """Apply every field ``limits`` sets; raises LimitRejected naming the value the kernel refused."""

    @abc.abstractmethod
    def spawn(self, cg: Cgroup, argv: Sequence[str], **kwargs: Any) -> Process:
        """Start ``argv`` inside ``cg`` (placed before it execs). kwargs as :func:`agentcgroup.spawn.spawn`."""

    @abc.abstractmethod
    def attach(self, cg: Cgroup, pid: int) -> None:
        """Move an existing process (one we started) into ``cg``."""

    @abc.abstractmethod
    def pids(self, cg: Cgroup) -> list[int]:
        """Processes in ``cg`` and below."""

    # --- figures and control ---------------------------------------------------------------------------
    @abc.abstractmethod
    def stats(self, cg: Cgroup) -> Stats: ...

    def memory_current(self, cg: Cgroup) -> int:
        """Memory in use now, in bytes: the one figure the pressure path needs, read in one go."""
        return self.stats(cg).memory_current or 0

    def usage_stats(self, cg: Cgroup) -> Stats:
        """Memory now, its peak and CPU time only (the rest unset): what a dashboard reads of every session at
        every scrape, in a few reads rather than every file :meth:`stats` reads."""
        return self.stats(cg)

    @abc.abstractmethod
    def freeze(self, cg: Cgroup, timeout: float = 1.0) -> None:
        """Stop every process in ``cg`` (and below) until :meth:`thaw`; raises Unsupported if impossible."""

    @abc.abstractmethod
    def thaw(self, cg: Cgroup) -> None: ...

    @abc.abstractmethod
    def kill(self, cg: Cgroup, timeout: float = 5.0) -> int:
        """SIGKILL every process in ``cg`` and below, forks racing included; wait until none is left.

        Returns how many processes were seen to be killed (best effort; 0 if it was already empty).
        """

    def root_cgroup(self) -> Cgroup:
        """The root itself (when ``has_root``): not destroyable; :meth:`close` removes it when empty."""
        raise Unsupported(f"the {self.kind} backend has no root cgroup")

    def open_placement(self, cg: Cgroup) -> list[int]:
        """When ``preplace``: fds on ``cgroup.procs`` of every hierarchy a process of ``cg`` belongs in (the
        caller writes a pid to each, then closes them)."""
        raise Unsupported(f"the {self.kind} backend cannot place a process by itself")

    def holds(self, cg: Cgroup, pid: int) -> bool | None:
        """Whether process ``pid`` (alive, or exited and not yet reaped) is in ``cg`` or beneath it; ``None``
        when this host cannot tell."""
        return None

    def memory_pressure(self, cg: Cgroup) -> tuple[float | None, float | None]:
        """(some, full) memory PSI avg10 of ``cg``, where there is per-cgroup PSI."""
        return None, None

    # --- the controller's verbs: soft limit and kernel notifications -------------------------------------
    def set_soft_limit(self, cg: Cgroup, value: int | None) -> None:
        """Throttle ``cg`` above ``value`` bytes (``None``: no soft limit). v2 ``memory.high``; v1: the stall at
        ``memory.limit_in_bytes`` with the OOM killer off. Never set below current usage (the kernel would
        reclaim synchronously in our thread); callers pass ``max(level, usage)``."""
        raise NotImplementedError

    def memory_events(self, cg: Cgroup) -> EventSource | None:
        """Notification of ``cg``'s memory events (v2 memory.events; v1 OOM/stall eventfd)."""
        return None

    def usage_threshold(self, cg: Cgroup, level: int) -> EventSource | None:
        """Notification when ``cg``'s memory usage crosses ``level`` either way (v1 only; ``None`` elsewhere)."""
        return None

    def psi_trigger(self, cg: Cgroup | None, resource: str, stall_us: int, window_us: int) -> EventSource | None:
        """A PSI trigger on ``cg`` (``None``: the whole host): ready when tasks stalled ``stall_us`` within
        ``window_us``. The window is rounded up to what this process may use. ``None`` if unsupported."""
        return None
