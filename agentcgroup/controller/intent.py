"""What a tool call declares it needs, and how its leaf is sized from that."""

from __future__ import annotations

from typing import Any

from .._record import Frozen
from ..limits import Limits, parse_memory_limit
from ..units import MAX_BYTES, MAX_DURATION, parse_cpu, parse_duration
from .config import check_priority

#: a declared peak is an estimate: the soft limit leaves this much room above it
SOFT_SLACK = 1.25


class Intent(Frozen):
    """Optional declaration of a tool call. Every field may be left out.

    memory    expected peak memory (bytes): admission reserves it; the leaf's soft limit is 1.25x it
    cpu       expected CPU in cores (a weight, not a quota)
    duration  expected wall time (s): a timeout of 10x it applies when none is given
    priority  "high" / "normal" / "low": overrides the session's for this call
    """

    FIELDS = ("memory", "cpu", "duration", "priority")
    memory: int | None
    cpu: float | None
    duration: float | None
    priority: str | None

    def __init__(
        self,
        memory: int | None = None,
        cpu: float | None = None,
        duration: float | None = None,
        priority: str | None = None,
    ) -> None:
        self._set("memory", memory)
        self._set("cpu", cpu)
        self._set("duration", duration)
        self._set("priority", priority)

    @classmethod
    def parse(
        cls,
        memory: str | int | None = None,
        cpu: str | float | None = None,
        duration: str | float | None = None,
        priority: str | None = None,
    ) -> Intent:
        return cls(
            memory=parse_memory_limit(memory, "intent memory") if memory is not None else None,
            cpu=parse_cpu(cpu, "intent cpu") if cpu is not None else None,
            duration=parse_duration(duration, "intent duration") if duration is not None else None,
            priority=check_priority(priority) if priority is not None else None,
        )

    def is_empty(self) -> bool:
        return all(v is None for v in self.as_dict().values())

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.as_dict().items() if v is not None}


def size_limits(intent: Intent, limits: Limits) -> Limits:
    """The call's limits: what was given explicitly, completed from the intent."""
    out = limits
    if intent.memory is not None and limits.memory_high is None:
        soft = int(intent.memory * SOFT_SLACK)
        if limits.memory_max is None or soft < limits.memory_max:
            out = out.merged(Limits(memory_high=soft))
    if intent.cpu is not None and limits.cpu_weight is None:
        out = out.merged(Limits(cpu_weight=max(1, min(10_000, round(intent.cpu * 100)))))
    return out


def default_timeout(intent: Intent, timeout: float | None) -> float | None:
    """The timeout given, else 10x the declared duration, at most :data:`~agentcgroup.units.MAX_DURATION`."""
    if timeout is not None:
        return timeout
    return None if intent.duration is None else min(intent.duration * 10, MAX_DURATION)


def declared_memory(intent: Intent, limits: Limits) -> int | None:
    """What admission reserves for the call: its declared peak, else its hard limit, else nothing."""
    if intent.memory is not None:
        return intent.memory
    if limits.memory_max is not None and limits.memory_max < MAX_BYTES:
        return limits.memory_max
    return None
