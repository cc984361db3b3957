"""The in-memory model every trace loader produces: a :class:`Task` with its samples and tool calls.

Times are float seconds since the Unix epoch (UTC), memory is int bytes, CPU is float cores (1.0 = one
core busy for the whole interval). ``None`` means "not known" everywhere, never zero.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: ``Task.fmt`` of a task loaded from the AgentCgroup paper's published files.
PAPER_FORMAT = "agentcgroup-paper"
#: ``Task.fmt`` of a task loaded from our own JSON Lines recording.
RECORDING_FORMAT = "agentcg-recording"


@dataclass(frozen=True)
class Samples:
    """Resource samples of one session, ascending in time.

    ``cpu_cores[i]`` is the CPU rate over the interval ending at ``t[i]`` (for ``i == 0``: since the
    session started, when known). ``mem_peak_bytes`` is the kernel's high-water mark when recorded.
    """

    t: tuple[float, ...] = ()
    mem_bytes: tuple[int, ...] = ()
    cpu_cores: tuple[float | None, ...] = ()
    mem_peak_bytes: tuple[int | None, ...] | None = None

    def __post_init__(self) -> None:
        n = len(self.t)
        if len(self.mem_bytes) != n or len(self.cpu_cores) != n:
            raise ValueError(
                f"samples: {n} times, {len(self.mem_bytes)} memory values, {len(self.cpu_cores)} CPU values"
            )
        if self.mem_peak_bytes is not None and len(self.mem_peak_bytes) != n:
            raise ValueError(f"samples: {n} times but {len(self.mem_peak_bytes)} peak values")
        if any(b < a for a, b in zip(self.t, self.t[1:], strict=False)):
            raise ValueError("samples: times must be ascending")

    def __len__(self) -> int:
        return len(self.t)

    @property
    def span_s(self) -> float:
        """Seconds from the first to the last sample (0 with fewer than two samples)."""
        return self.t[-1] - self.t[0] if len(self.t) >= 2 else 0.0


@dataclass
class ToolCall:
    """One tool call of an agent. ``end`` is ``None`` when the trace did not record it."""

    call_id: str
    tool: str
    start: float
    end: float | None = None
    command: str | None = None
    #: True for shell commands (the paper's ``Bash`` tool; every call of our recordings).
    shell: bool = False
    #: What kind of command (:mod:`.categories`); None when not a shell call or the command is unknown.
    category: str | None = None
    #: True/False when the outcome (or, for the paper's data, the result text) says; None when unknown.
    failed: bool | None = None
    outcome: dict[str, Any] | None = None
    #: The call's own samples (its cgroup leaf), when the recording has them.
    samples: Samples | None = None

    @property
    def duration_s(self) -> float | None:
        if self.end is None or self.end < self.start:
            return None
        return self.end - self.start


@dataclass
class Task:
    """One agent session (a task attempt), whatever format it came from."""

    name: str
    source: str
    fmt: str
    samples: Samples = field(default_factory=Samples)
    calls: list[ToolCall] = field(default_factory=list)
    #: False when the trace has no tool-call record at all (not the same as an empty list).
    calls_known: bool = True
    #: Agent wall time in seconds (the paper's ``claude_time``: container start-up included).
    agent_wall_s: float | None = None
    #: Seconds from the start of the agent's wall time to the first sample, when known or estimated.
    startup_s: float | None = None
    attempt: int | None = None
    interval_s: float | None = None
    error: str | None = None
    quirks: list[str] = field(default_factory=list)
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        """The name, with the attempt number when it is not the first."""
        if self.attempt is None or self.attempt == 1:
            return self.name
        return f"{self.name}#{self.attempt}"

    @property
    def sampled_s(self) -> float:
        return self.samples.span_s

    @property
    def timed_calls(self) -> list[ToolCall]:
        """The calls whose duration is known."""
        return [c for c in self.calls if c.duration_s is not None]

    def note(self, quirk: str) -> None:
        """Record a quirk of the input noticed while loading (shown in reports)."""
        if quirk not in self.quirks:
            self.quirks.append(quirk)
