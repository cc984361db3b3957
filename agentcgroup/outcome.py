"""What a tool call returns: the figures, the steps the controller took, and feedback for the agent."""

from __future__ import annotations

import signal as _signal

from ._record import Record

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (a process per call pays for it)
if TYPE_CHECKING:
    from typing import Any

# Records, not dataclasses (_record.py): ``agentcg run`` builds an Outcome in a process per tool call.


class Step(Record):
    """One action taken on a call: ``at`` is seconds since it started."""

    FIELDS = ("at", "action", "reason", "figures")

    def __init__(self, at: float, action: str, reason: str, figures: dict[str, Any] | None = None) -> None:
        self.at = at
        self.action = action  # "throttle", "release", "freeze", "thaw", "kill", "note"
        self.reason = reason
        self.figures: dict[str, Any] = {} if figures is None else figures


class Outcome(Record):
    FIELDS = (
        "session",
        "call_id",
        "command",
        "argv",
        "backend",
        "exit_code",
        "signal",
        "duration_s",
        "cpu_s",
        "memory_peak",
        "memory_limit",
        "memory_high",
        "oom_kills",
        "killed_by",
        "kill_reason",
        "memory_high_events",
        "cpu_throttled_s",
        "frozen_s",
        "pids_denied",
        "leftover_killed",
        "background_kept",
        "limits",
        "steps",
        "feedback",
        "enforced",
        "refused",
        "queued_s",
        "intent",
        "exit_status_known",
        "escaped",
        "error",
        "stdout",
        "stderr",
    )

    def __init__(
        self,
        session: str,
        call_id: str,
        command: str,
        argv: list[str],
        backend: str,
        exit_code: int | None = None,
        signal: int | None = None,
        duration_s: float = 0.0,
        cpu_s: float | None = None,
        memory_peak: int | None = None,
        memory_limit: int | None = None,
        memory_high: int | None = None,
        oom_kills: int = 0,
        killed_by: str | None = None,
        kill_reason: str | None = None,
        memory_high_events: int = 0,
        cpu_throttled_s: float | None = None,
        frozen_s: float = 0.0,
        pids_denied: int = 0,
        leftover_killed: int = 0,
        background_kept: int = 0,
        limits: dict[str, Any] | None = None,
        steps: list[Step] | None = None,
        feedback: str | None = None,
        enforced: bool = True,
        refused: bool = False,
        queued_s: float = 0.0,
        intent: dict[str, Any] | None = None,
        exit_status_known: bool = True,
        escaped: bool = False,
        error: str | None = None,
        stdout: bytes | None = None,
        stderr: bytes | None = None,
    ) -> None:
        self.session = session
        self.call_id = call_id
        self.command = command
        self.argv = argv
        self.backend = backend
        self.exit_code = exit_code  # set when the command exited by itself
        self.signal = signal  # set when a signal ended it
        self.duration_s = duration_s
        self.cpu_s = cpu_s
        self.memory_peak = memory_peak
        self.memory_limit = memory_limit
        self.memory_high = memory_high
        self.oom_kills = oom_kills
        self.killed_by = killed_by  # why it ended early: memory, timeout, policy, signal, error; None: by itself
        self.kill_reason = kill_reason
        self.memory_high_events = memory_high_events
        self.cpu_throttled_s = cpu_throttled_s
        self.frozen_s = frozen_s
        self.pids_denied = pids_denied
        self.leftover_killed = leftover_killed  # background processes still running when the command ended, killed
        self.background_kept = background_kept  # ... kept running instead (keep_background), until the session closes
        self.limits: dict[str, Any] = {} if limits is None else limits
        self.steps: list[Step] = [] if steps is None else steps
        self.feedback = feedback
        self.enforced = enforced  # False on the no-cgroup backend: limits were not enforced as a group
        self.refused = refused  # not admitted: it never ran (feedback says why)
        self.queued_s = queued_s  # time spent waiting for admission
        self.intent: dict[str, Any] = {} if intent is None else intent
        self.exit_status_known = exit_status_known  # False when the controller restarted while it ran (adopted)
        self.escaped = escaped  # its command moved itself out of its cgroup (a root tool can): figures are partial
        self.error = error  # the controller failed on this call (its figures may be partial)
        self.stdout = stdout
        self.stderr = stderr

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
        # every field, containers copied (as dataclasses.asdict gave it when this was a dataclass), the output
        # only if asked: the daemon writes every outcome down and sends it back, so this is on every call's path
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
        import json  # not at the top: an embedded agentcg run without --json never needs it

        return json.dumps(self.to_dict(include_output), separators=(",", ":"))


def outcome_from_dict(d: dict[str, Any]) -> Outcome:
    """Rebuild an :class:`Outcome` from :meth:`Outcome.to_dict` (unknown keys ignored)."""
    kw = {k: v for k, v in d.items() if k in _KNOWN and k not in ("steps", "stdout", "stderr")}
    out = Outcome(**kw)
    out.steps = [Step(s["at"], s["action"], s["reason"], s.get("figures", {})) for s in d.get("steps", [])]
    return out


_KNOWN = frozenset(Outcome.FIELDS)
_FIELDS = tuple(name for name in Outcome.FIELDS if name not in ("stdout", "stderr"))


def _copy(value: Any) -> Any:
    """A copy of JSON-like data (dicts, lists, scalars)."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_copy(v) for v in value)
    return value
