"""The operator's policy: what each uid may ask the daemon for (docs/security.md).

Caps on values (priority, CPU weight, memory protection, a session's budget) and on counts (sessions, running
calls, connections), per uid, from built-in defaults, a TOML file and command-line flags. Root is unlimited
unless the file says otherwise; every other uid gets :data:`TENANT_DEFAULTS`. A file::

    [tenants]            # every uid but root (over the built-in defaults)
    max_sessions = 32
    [group.agents]       # members of group "agents" (primary or supplementary), in file order
    max_priority = "high"
    [user.ci]            # one user, by name or uid: last word
    max_calls = 200
    [root]               # uid 0 (unlimited by default)

A value ``"max"`` lifts a cap.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, fields, replace
from typing import Any

from ..controller.config import PRIORITIES
from ..errors import InvalidValue
from ..limits import WEIGHT_MAX, WEIGHT_MIN
from ..units import format_size_arg, parse_count, parse_size
from .refusals import NotAllowed as NotAllowed  # re-exported: in refusals.py for the client's import time
from .refusals import TooMany as TooMany

ROOT = 0
MiB = 1 << 20


@dataclass(frozen=True)
class Caps:
    """What one uid may ask for. ``None``: no cap."""

    max_priority: str | None = None  # the highest priority of its sessions and calls
    max_cpu_weight: int | None = None  # of a session or a call
    max_memory_protection: int | None = None  # bytes of memory.low (agent_memory, limits.memory_low)
    max_session_memory: int | None = None  # a session's budget; a session opened without one gets this one
    max_sessions: int | None = None  # sessions it owns at once
    max_calls: int | None = None  # calls of its running at once (detached ones included)
    max_connections: int | None = None  # connections of its open at once
    max_requests_per_s: int | None = None  # requests and new connections a second (a flood is read slower)
    max_call_pids: int | None = None  # processes/threads of one call at once; a call without pids gets this

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            v = getattr(self, f.name)
            if f.name in ("max_memory_protection", "max_session_memory") and v is not None:
                v = format_size_arg(v)
            out[f.name] = "max" if v is None else v
        return out


#: root: no cap
UNLIMITED = Caps()
#: every other uid, unless the operator says otherwise: no high priority, no more CPU weight than a normal
#: session, 64M of memory protection, a bounded number of sessions, calls and connections
TENANT_DEFAULTS = Caps(
    max_priority="normal",
    max_cpu_weight=100,
    max_memory_protection=64 * MiB,
    max_session_memory=None,
    max_sessions=16,
    max_calls=32,
    max_connections=64,
    max_requests_per_s=400,
    max_call_pids=4096,
)


def parse_caps(raw: dict[str, Any], where: str) -> dict[str, Any]:
    """The fields of one table (only those given), validated; errors name ``where`` and the key."""
    known = {f.name for f in fields(Caps)}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        what = f"{where}-{key.replace('_', '-')}" if where.startswith("--") else f"{where}.{key}"
        if key not in known:
            raise InvalidValue(what, value, f"unknown setting; known: {', '.join(sorted(known))}")
        if isinstance(value, str) and value.strip().lower() in ("max", "unlimited"):
            out[key] = None
        elif key == "max_priority":
            if not isinstance(value, str) or value not in PRIORITIES:
                raise InvalidValue(what, value, f"expected one of {', '.join(PRIORITIES)}")
            out[key] = value
        elif key == "max_cpu_weight":
            w = parse_count(value, what)
            if not WEIGHT_MIN <= w <= WEIGHT_MAX:
                raise InvalidValue(what, value, f"must be {WEIGHT_MIN}..{WEIGHT_MAX}")
            out[key] = w
        elif key in ("max_memory_protection", "max_session_memory"):
            if isinstance(value, int) and not isinstance(value, bool) and value == 0:
                out[key] = 0  # no protection at all
            else:
                out[key] = parse_size(value, what)
        else:
            out[key] = parse_count(value, what) if value != 0 else 0
    return out


class Policy:
    """Caps per uid: built-in defaults, then the file's tables, then the flags (over ``[tenants]``)."""

    def __init__(self, tables: dict[str, Any] | None = None, *, tenant_flags: dict[str, Any] | None = None) -> None:
        tables = tables or {}
        unknown = sorted(set(tables) - {"tenants", "root", "group", "user"})
        if unknown:
            raise InvalidValue("policy table", unknown[0], "known tables: tenants, root, group.NAME, user.NAME")
        self.tenants = replace(TENANT_DEFAULTS, **parse_caps(_table(tables, "tenants"), "tenants"))
        if tenant_flags:
            self.tenants = replace(self.tenants, **tenant_flags)
        self.root = replace(UNLIMITED, **parse_caps(_table(tables, "root"), "root"))
        self.groups = [(g, parse_caps(_table(tables["group"], g), f"group.{g}")) for g in _table(tables, "group")]
        self.users = {str(u): parse_caps(_table(tables["user"], u), f"user.{u}") for u in _table(tables, "user")}
        self._cache: dict[tuple[int, int], tuple[float, Caps]] = {}

    @classmethod
    def load(cls, path: str | None, **kwargs: Any) -> Policy:
        """From a TOML file (None: the defaults); raises InvalidValue naming the file and what is wrong."""
        if path is None:
            return cls(**kwargs)
        try:
            import tomllib  # type: ignore[import-not-found,unused-ignore]
        except ImportError:  # Python 3.10
            try:
                import tomli as tomllib  # type: ignore[import-not-found,no-redef,unused-ignore]
            except ImportError:
                raise InvalidValue("policy", path, "reading TOML needs Python 3.11 or the tomli package") from None
        try:
            with open(path, "rb") as f:
                tables = tomllib.load(f)
        except OSError as exc:
            raise InvalidValue("policy", path, exc.strerror or str(exc)) from None
        except tomllib.TOMLDecodeError as exc:
            raise InvalidValue("policy", path, f"not TOML: {exc}") from None
        return cls(tables, **kwargs)

    def caps(self, uid: int, gid: int) -> Caps:
        """The caps of ``uid`` (``gid``: its primary group as the socket saw it); cached for a minute."""
        now = time.monotonic()
        hit = self._cache.get((uid, gid))
        if hit is not None and now - hit[0] < 60:
            return hit[1]
        caps = self._resolve(uid, gid)
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[(uid, gid)] = (now, caps)
        return caps

    def _resolve(self, uid: int, gid: int) -> Caps:
        import grp
        import pwd

        if uid == ROOT:
            return self.root  # only [root] speaks for root
        base = self.tenants
        try:
            pw = pwd.getpwuid(uid)
            name, groups = pw.pw_name, set(os.getgrouplist(pw.pw_name, gid))
        except KeyError:
            name, groups = None, {gid}
        if self.groups:
            names = set()
            for g in groups:
                try:
                    names.add(grp.getgrgid(g).gr_name)
                except KeyError:
                    pass
                names.add(str(g))
            for group, caps in self.groups:
                if group in names:
                    base = replace(base, **caps)
        for key in (name, str(uid)):
            if key is not None and key in self.users:
                base = replace(base, **self.users[key])
        return base


def _table(tables: dict[str, Any], key: str) -> dict[str, Any]:
    value = tables.get(key, {})
    if not isinstance(value, dict):
        raise InvalidValue("policy table", key, "expected a table")
    return value


def rank(priority: str) -> int:
    return PRIORITIES[priority][0]


def check_priority_cap(caps: Caps, priority: str | None, uid: int, what: str = "priority") -> None:
    if priority is not None and caps.max_priority is not None and rank(priority) > rank(caps.max_priority):
        raise NotAllowed(what, priority, f"above what the operator allows uid {uid} (at most {caps.max_priority})")


def check_cap(value: int | None, cap: int | None, what: str, uid: int, show: Any = None) -> None:
    if value is not None and cap is not None and value > cap:
        memory = "memory" in what
        shown = format_size_arg(cap) if memory else cap
        if show is None:
            show = format_size_arg(value) if memory else value
        raise NotAllowed(what, show, f"above what the operator allows uid {uid} (at most {shown})")


def check_count(current: int, cap: int | None, what: str, uid: int) -> None:
    if cap is not None and current >= cap:
        raise TooMany(f"uid {uid} has {current} {what} open, the most the operator allows it ({cap})")
