"""One recorded tool call: what the recorder knows of it while it runs, and its ``call_end`` outcome.

The outcome is exact when the call's controller runs in this process (its :class:`~agentcgroup.Outcome`), and
otherwise what the samples saw: duration, peak, CPU, whether the kernel OOM-killed something or it was seen
frozen. The exit code of a command another process started is not ours to know: it is left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..backends.base import Cgroup, Stats
from ..outcome import Outcome

COUNTERS = ("throttle_events", "freeze_events", "kill_events")
#: which outcome steps count as which event
_STEP_COUNTER = {"throttle": "throttle_events", "freeze": "freeze_events", "kill": "kill_events"}


@dataclass
class RecordedCall:
    call_id: str
    start: float  # Unix time
    cg: Cgroup | None = None  # our handle on its leaf (None: tracked through its controller only)
    command: list[str] | str | None = None
    tracked: Any = None  # the controller's CallState, when the call is this process's
    last: Stats | None = None
    peak_seen: int = 0
    frozen: bool = False
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COUNTERS, 0))
    ended: bool = False
    end_wait: int = 0  # scans spent waiting for the controller's outcome

    def observe(self, st: Stats) -> None:
        """Fold one reading of the leaf into the counters (kernel-side, for calls not tracked exactly)."""
        if st.memory_current is not None:
            self.peak_seen = max(self.peak_seen, st.memory_current)
        if self.tracked is not None:
            self.counts = step_counts(self.tracked.call.steps)
        else:
            if st.frozen and not self.frozen:
                self.counts["freeze_events"] += 1
            self.counts["throttle_events"] = max(self.counts["throttle_events"], st.memory_high_events)
            self.counts["kill_events"] = max(self.counts["kill_events"], st.oom_kills)
        self.frozen = bool(st.frozen)
        self.last = st

    def sampled_outcome(self, end: float) -> dict[str, Any]:
        """The outcome as far as the samples tell."""
        out: dict[str, Any] = {"duration_s": round(max(0.0, end - self.start), 6)}
        st = self.last
        peak = st.memory_peak if st is not None and st.memory_peak is not None else None
        peak = max(peak or 0, self.peak_seen) or None
        if peak is not None:
            out["peak_bytes"] = peak
        if st is not None and st.cpu_usec is not None:
            out["cpu_usec"] = st.cpu_usec
        if self.counts["kill_events"]:
            out["killed"] = True
            out["reason"] = "the kernel's OOM killer killed a process of the call"
        if self.counts["freeze_events"]:
            out["frozen"] = True
        out["source"] = "sampled"
        return out


def step_counts(steps: list[Any]) -> dict[str, int]:
    counts = dict.fromkeys(COUNTERS, 0)
    for s in steps:
        key = _STEP_COUNTER.get(s.action)
        if key is not None:
            counts[key] += 1
    return counts


def outcome_record(out: Outcome) -> dict[str, Any]:
    """An :class:`~agentcgroup.Outcome` as a recording's ``call_end`` outcome (docs/recording-format.md)."""
    rec: dict[str, Any] = {
        "exit_code": out.exit_code,
        "duration_s": round(out.duration_s, 6),
        "killed": out.killed_by is not None,
        "frozen": out.frozen_s > 0,
        "reason": out.kill_reason,
    }
    if out.memory_peak is not None:
        rec["peak_bytes"] = out.memory_peak
    if out.cpu_s is not None:
        rec["cpu_usec"] = round(out.cpu_s * 1e6)
    if out.signal is not None:
        rec["signal"] = out.signal
    if out.killed_by is not None:
        rec["killed_by"] = out.killed_by
    if out.refused:
        rec["refused"] = True
    rec["frozen_s"] = round(out.frozen_s, 6)
    rec["memory_high_events"] = out.memory_high_events
    rec["oom_kills"] = out.oom_kills
    rec["returncode"] = out.returncode
    rec["source"] = "controller"
    return rec
