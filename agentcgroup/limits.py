"""Backend-neutral resource limits, validated when built (so nothing is created for bad input)."""

from __future__ import annotations

from .errors import InvalidValue
from .units import MAX_BYTES, format_cpu, format_size_arg, parse_count, parse_cpu, parse_size

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (a process per call pays for it)
if TYPE_CHECKING:
    from typing import Any

#: the smallest memory limit a user may give: below it not even ``true`` starts (exec fails inside the leaf, or
#: the kernel OOM-kills it at once), and the caller would see a bare exit 127 or 137
MIN_MEMORY_LIMIT = 1 << 20

#: cgroup v2 cpu.weight range; v1 cpu.shares is derived from it (100 <-> 1024)
WEIGHT_MIN, WEIGHT_MAX = 1, 10_000


class Limits:
    """What a cgroup may use. ``None`` leaves a field as it is (a new cgroup: unlimited / default).

    memory_max   hard limit in bytes: over it the kernel reclaims, then OOM-kills (MAX_BYTES = unlimited)
    memory_high  soft limit: over it the kernel throttles (v2 memory.high; v1: the stall at the limit with
                 oom_kill_disable=1, released or escalated by the controller within a deadline)
    memory_low   protection from reclaim (v2 memory.low; v1: soft_limit_in_bytes on everything else)
    cpu          CPU quota in cores (0.2 = 20 % of one core)
    cpu_weight   relative CPU share, 1..10000 (100 = default)
    pids_max     most processes/threads at once
    oom_group    kill the whole cgroup on OOM, not one task (v2 memory.oom.group)

    Immutable, compared and hashed by value. A plain class, not a dataclass: ``agentcg run`` imports it in a
    process per tool call, and ``dataclasses`` (with ``inspect``) and making the class cost more than the rest
    of this module (docs/performance.md).
    """

    __slots__ = FIELDS = ("memory_max", "memory_high", "memory_low", "cpu", "cpu_weight", "pids_max", "oom_group")

    memory_max: int | None
    memory_high: int | None
    memory_low: int | None
    cpu: float | None
    cpu_weight: int | None
    pids_max: int | None
    oom_group: bool | None

    def __init__(
        self,
        memory_max: int | None = None,
        memory_high: int | None = None,
        memory_low: int | None = None,
        cpu: float | None = None,
        cpu_weight: int | None = None,
        pids_max: int | None = None,
        oom_group: bool | None = None,
    ) -> None:
        put = object.__setattr__
        put(self, "memory_max", memory_max)
        put(self, "memory_high", memory_high)
        put(self, "memory_low", memory_low)
        put(self, "cpu", cpu)
        put(self, "cpu_weight", cpu_weight)
        put(self, "pids_max", pids_max)
        put(self, "oom_group", oom_group)
        self._check()

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"cannot assign to field {name!r}: Limits are immutable (use merged)")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"cannot delete field {name!r}: Limits are immutable")

    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.FIELDS)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not self.__class__:
            return NotImplemented
        assert isinstance(other, Limits)
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        inner = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.FIELDS)
        return f"{self.__class__.__qualname__}({inner})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (self.__class__, self._values())

    def _check(self) -> None:
        for name in ("memory_max", "memory_high", "memory_low", "pids_max"):
            value = getattr(self, name)
            floor = 0 if name == "memory_low" else 1  # no protection (0) is a protection level
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < floor):
                raise InvalidValue(name.replace("_", "-"), value, "must be a positive whole number")
        if self.cpu is not None and not (self.cpu > 0):
            raise InvalidValue("cpu", self.cpu, "must be more than 0 cores")
        if self.cpu_weight is not None and not (WEIGHT_MIN <= self.cpu_weight <= WEIGHT_MAX):
            raise InvalidValue("cpu-weight", self.cpu_weight, f"must be {WEIGHT_MIN}..{WEIGHT_MAX}")
        if (
            self.memory_high is not None
            and self.memory_max is not None
            and self.memory_high < MAX_BYTES
            and self.memory_high > self.memory_max
        ):
            raise InvalidValue(
                "memory-high",
                format_size_arg(self.memory_high),
                f"is above the hard limit {format_size_arg(self.memory_max)}; the soft limit must be lower",
            )

    @classmethod
    def parse(
        cls,
        memory: str | int | None = None,
        memory_high: str | int | None = None,
        memory_low: str | int | None = None,
        cpu: str | float | None = None,
        cpu_weight: str | int | None = None,
        pids: str | int | None = None,
        oom_group: bool | None = None,
    ) -> Limits:
        """Build from user text (``512M``, ``20%``, ...); raises :class:`InvalidValue` naming the value."""
        weight = None
        if cpu_weight is not None:
            weight = parse_count(cpu_weight, "cpu-weight")
            if not WEIGHT_MIN <= weight <= WEIGHT_MAX:
                raise InvalidValue("cpu-weight", cpu_weight, f"must be {WEIGHT_MIN}..{WEIGHT_MAX}")
        return cls(
            memory_max=parse_memory_limit(memory, "memory") if memory is not None else None,
            memory_high=parse_memory_limit(memory_high, "memory-high") if memory_high is not None else None,
            memory_low=parse_size(memory_low, "memory-low") if memory_low is not None else None,
            cpu=parse_cpu(cpu) if cpu is not None else None,
            cpu_weight=weight,
            pids_max=parse_count(pids, "pids") if pids is not None else None,
            oom_group=oom_group,
        )

    def merged(self, other: Limits | None) -> Limits:
        """These limits with every field ``other`` sets taken from ``other``."""
        if other is None:
            return self
        mine = self.as_dict()
        mine.update((name, v) for name in self.FIELDS if (v := getattr(other, name)) is not None)
        return Limits(**mine)

    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in self.FIELDS)

    def as_dict(self) -> dict[str, Any]:
        """Every field, in bytes, cores and counts (``None`` where unset), as ``Limits(**d)`` takes it back."""
        return {name: getattr(self, name) for name in self.FIELDS}

    def to_dict(self) -> dict[str, Any]:
        """Only the fields that are set, in user units (``512M``, ``20%``)."""
        out: dict[str, Any] = {}
        for key, value in self.as_dict().items():
            if value is None:
                continue
            if key.startswith("memory_"):
                out[key] = format_size_arg(value)
            elif key == "cpu":
                out[key] = format_cpu(value)
            else:
                out[key] = value
        return out


def parse_memory_limit(text: str | int, what: str) -> int:
    """A memory limit a user gave: a size of at least :data:`MIN_MEMORY_LIMIT` (or ``max``)."""
    value = parse_size(text, what)
    if value < MIN_MEMORY_LIMIT:
        raise InvalidValue(what, text, "must be at least 1M: a command cannot even start in less")
    return value
