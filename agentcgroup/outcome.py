"""What a tool call returns: the figures, the steps the controller took, and feedback for the agent."""

from __future__ import annotations

import json
import signal as _signal
from dataclasses import dataclass, field, fields
from typing import Any


@dataclass
class Step:
    """One action taken on a call: ``at`` is seconds since it started."""

    at: float
    action: str  # "throttle", "release", "freeze", "thaw", "kill", "note"
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    session: str
    call_id: str
    command: str
    argv: list[str]
    backend: str
    exit_code: int | None = None  # set when the command exited by itself
    signal: int | None = None  # set when a signal ended it
    duration_s: float = 0.0
    cpu_s: float | None = None
    memory_peak: int | None = None
    memory_limit: int | None = None
    memory_high: int | None = None
    oom_kills: int = 0
    killed_by: str | None = None  # why it ended early: memory, timeout, policy, signal, error; None: by itself
    kill_reason: str | None = None
    memory_high_events: int = 0
    cpu_throttled_s: float | None = None
    frozen_s: float = 0.0
    pids_denied: int = 0
    leftover_killed: int = 0  # background processes still running when the command ended, then killed
    background_kept: int = 0  # ... kept running instead (keep_background), in its cgroup, until the session closes
    limits: dict[str, Any] = field(default_factory=dict)
    steps: list[Step] = field(default_factory=list)
    feedback: str | None = None
    enforced: bool = True  # False on the no-cgroup backend: limits were not enforced as a group
    refused: bool = False  # not admitted: it never ran (feedback says why)
    queued_s: float = 0.0  # time spent waiting for admission
    intent: dict[str, Any] = field(default_factory=dict)
    exit_status_known: bool = True  # False when the controller restarted while it ran (adopted)
    escaped: bool = False  # its command moved itself out of its cgroup (a root tool can): figures are partial
    error: str | None = None  # the controller failed on this call (its figures may be partial)
    stdout: bytes | None = None
    stderr: bytes | None = None

    @property
    def returncode(self) -> int:
        """Shell convention: the exit code, or 128 + the signal number."""
        if self.refused:
            return 125
        if self.signal is not None:
            return 128 + self.signal
        if self.exit_code is None and self.error is not None:
            return 125  # the runner's own failure, as env and docker run say it
        if self.exit_code is None:  # adopted after a restart: the status was not ours to read
            return 137 if self.killed_by else 255
        return self.exit_code

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and self.killed_by is None

    @property
    def signal_name(self) -> str | None:
        if self.signal is None:
            return None
        try:
            return _signal.Signals(self.signal).name
        except ValueError:
            return f"signal {self.signal}"

    def to_dict(self, include_output: bool = False) -> dict[str, Any]:
        # as dataclasses.asdict gives it, without its deep copy (of the output too, before dropping it): the
        # daemon writes every outcome down and sends it back, so this is on every call's path
        d = {name: getattr(self, name) for name in _FIELDS}
        d["argv"] = list(self.argv)
        d["limits"], d["intent"] = _copy(self.limits), _copy(self.intent)
        d["steps"] = [
            {"at": s.at, "action": s.action, "reason": s.reason, "figures": _copy(s.figures)} for s in self.steps
        ]
        if include_output:
            for name in ("stdout", "stderr"):
                data = getattr(self, name)
                d[name] = None if data is None else data.decode(errors="replace")
        d["returncode"] = self.returncode
        d["signal_name"] = self.signal_name
        return d

    def to_json(self, include_output: bool = False) -> str:
        return json.dumps(self.to_dict(include_output), separators=(",", ":"))


_FIELDS = tuple(f.name for f in fields(Outcome) if f.name not in ("stdout", "stderr"))


def _copy(value: Any) -> Any:
    """A copy of JSON-like data (dicts, lists, scalars), as asdict copies what a dataclass holds."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_copy(v) for v in value)
    return value
