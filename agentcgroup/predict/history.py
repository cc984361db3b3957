"""What earlier tool calls used, indexed by their signature keys: per session, and host-wide per session.

An :class:`Observation` is one finished call: its command, session, when it ran and what it used (each figure
``None`` when not known, never 0). :class:`History` keeps, bounded:

* per session and key (every level of :data:`~.signature.LEVELS`), the last :data:`KEEP` observations;
* per session, its last :data:`KEEP_SESSION` observations (the session-wide fallback);
* host-wide, per key (levels ``signature@cwd``, ``signature``, ``command``, ``program``: the literal command
  means little in another session's directory), one :class:`Summary` per session that ran it: the most it
  used, and how often; the last :data:`KEEP_HOST_SESSIONS` sessions per key.

Sessions (and host keys) beyond :data:`MAX_SESSIONS` (:data:`MAX_HOST_KEYS`) are forgotten oldest first, so a
daemon that runs for months holds a bounded amount. Lookups are dictionary reads.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from .signature import Signature, signature

#: observations kept per session and key (the most recent)
KEEP = 32
#: observations kept per session for its session-wide fallback
KEEP_SESSION = 256
#: sessions remembered per host key
KEEP_HOST_SESSIONS = 64
#: sessions remembered at all (their own keys and calls)
MAX_SESSIONS = 1024
#: host keys remembered
MAX_HOST_KEYS = 20_000
#: what a prediction is made of
FIGURES = ("memory", "cpu", "duration")
#: levels kept host-wide
HOST_LEVELS = ("signature@cwd", "signature", "command", "program")


@dataclass(frozen=True)
class Observation:
    """One finished tool call. ``memory``: its peak (bytes); ``cpu_s``: CPU seconds; times: epoch seconds."""

    session: str
    command: str | tuple[str, ...]
    start: float
    end: float
    memory: int | None = None
    cpu_s: float | None = None
    cwd: str | None = None
    failed: bool | None = None
    source: str = ""

    @property
    def duration(self) -> float:
        return max(0.0, self.end - self.start)

    @property
    def cpu(self) -> float | None:
        """Mean CPU cores over the call."""
        if self.cpu_s is None or self.duration <= 0:
            return None
        return self.cpu_s / self.duration

    def value(self, figure: str) -> float | None:
        if figure == "memory":
            return None if self.memory is None else float(self.memory)
        if figure == "cpu":
            return self.cpu
        if figure == "duration":
            return self.duration
        raise KeyError(figure)

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"session": self.session, "start": self.start, "end": self.end}
        d["command"] = self.command if isinstance(self.command, str) else list(self.command)
        for k in ("memory", "cpu_s", "cwd", "failed", "source"):
            v = getattr(self, k)
            if v is not None and v != "":
                d[k] = v
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Observation:
        """The inverse of :meth:`to_dict`; raises ``KeyError``/``TypeError``/``ValueError`` on a bad record."""
        cmd = d["command"]
        if not isinstance(cmd, (str, list)):
            raise TypeError(f"command: {cmd!r}")
        failed = d.get("failed")
        return cls(
            session=str(d["session"]),
            command=cmd if isinstance(cmd, str) else tuple(str(a) for a in cmd),
            start=float(d["start"]),
            end=float(d["end"]),
            memory=None if d.get("memory") is None else int(d["memory"]),
            cpu_s=None if d.get("cpu_s") is None else float(d["cpu_s"]),
            cwd=None if d.get("cwd") is None else str(d["cwd"]),
            failed=None if failed is None else bool(failed),
            source=str(d.get("source", "")),
        )


@dataclass
class Summary:
    """One session's use of one key, host-wide: the largest of each figure, and how many calls."""

    calls: int = 0
    most: dict[str, float] = field(default_factory=dict)

    def add(self, obs: Observation) -> None:
        self.calls += 1
        for f in FIGURES:
            v = obs.value(f)
            if v is not None and v > self.most.get(f, -1.0):
                self.most[f] = v


@lru_cache(maxsize=8192)
def _signature(command: str | tuple[str, ...], cwd: str | None) -> Signature:
    return signature(command, cwd)


class _Session:
    __slots__ = ("by_key", "calls")

    def __init__(self) -> None:
        self.by_key: dict[tuple[str, str], deque[Observation]] = {}
        self.calls: deque[Observation] = deque(maxlen=KEEP_SESSION)


class History:
    """Observations of one host. ``lookup(level, key, session)``: that session's; ``host(level, key)``: every
    session's summary (the asking session's included: callers skip it)."""

    def __init__(self, observations: Iterable[Observation] = (), keep: int = KEEP) -> None:
        self.keep = keep
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._host: OrderedDict[tuple[str, str], OrderedDict[str, Summary]] = OrderedDict()
        self.count = 0
        for o in observations:
            self.add(o)

    @staticmethod
    def signature_of(obs: Observation) -> Signature:
        return _signature(obs.command, obs.cwd)

    def add(self, obs: Observation, sig: Signature | None = None, *, host: bool = True, own: bool = True) -> None:
        """Remember ``obs``; with ``host=False`` for its own session only (what the others see is unchanged);
        with ``own=False`` host-wide only (its session's own lookups do not see it)."""
        sig = sig or self.signature_of(obs)
        if not own:
            if host:
                for key in sig.history_keys():
                    if key[0] in HOST_LEVELS:
                        self._add_host(key, obs)
                self.count += 1
            return
        s = self._sessions.get(obs.session)
        if s is None:
            s = self._sessions[obs.session] = _Session()
            while len(self._sessions) > MAX_SESSIONS:
                self._sessions.popitem(last=False)
        else:
            self._sessions.move_to_end(obs.session)
        s.calls.append(obs)
        for key in sig.history_keys():
            q = s.by_key.get(key)
            if q is None:
                q = s.by_key[key] = deque(maxlen=self.keep)
            q.append(obs)
            if host and key[0] in HOST_LEVELS:
                self._add_host(key, obs)
        self.count += 1

    def _add_host(self, key: tuple[str, str], obs: Observation) -> None:
        per = self._host.get(key)
        if per is None:
            per = self._host[key] = OrderedDict()
            while len(self._host) > MAX_HOST_KEYS:
                self._host.popitem(last=False)
        else:
            self._host.move_to_end(key)
        summary = per.get(obs.session)
        if summary is None:
            summary = per[obs.session] = Summary()
            while len(per) > KEEP_HOST_SESSIONS:
                per.popitem(last=False)
        else:
            per.move_to_end(obs.session)
        summary.add(obs)

    def lookup(self, level: str, key: str, session: str) -> Sequence[Observation]:
        s = self._sessions.get(session)
        if s is None:
            return ()
        return s.by_key.get((level, key), ())

    def host(self, level: str, key: str) -> dict[str, Summary]:
        return self._host.get((level, key), {})

    def session_calls(self, session: str) -> Sequence[Observation]:
        s = self._sessions.get(session)
        return s.calls if s is not None else ()

    def sessions(self) -> list[str]:
        return list(self._sessions)
