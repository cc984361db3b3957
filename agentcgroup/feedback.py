"""The message an LLM reads when the controller acted: what happened, the numbers, what to try instead.

Short, factual, built only from the command and the figures of its outcome.
"""

from __future__ import annotations

import re
import shlex

from .feedback_shared import killed_for_shared_budget, own_limit_hit, shared_step, slowed_for_shared_budget
from .outcome import Outcome
from .units import MAX_BYTES, format_duration, format_size, format_size_arg

_MAX_CMD = 60

# command patterns -> a concrete way to use less memory / fewer processes
_HINTS: list[tuple[re.Pattern[str], str, str]] = [
    (
        re.compile(r"\bpytest\b.*\s-n\s*(\d+|auto)"),
        "fewer pytest workers (`-n 2`)",
        "fewer pytest workers (`-n 2`)",
    ),
    (
        re.compile(r"\bpytest\b"),
        "run fewer tests at once (a single file or `-k` selection)",
        "run fewer tests at once",
    ),
    (re.compile(r"\b(make|ninja)\b"), "fewer parallel jobs (`-j2`)", "fewer parallel jobs (`-j2`)"),
    (
        re.compile(r"\bcargo\s+(build|test|check)\b"),
        "fewer build jobs (`cargo build -j 2`)",
        "fewer build jobs (`-j 2`)",
    ),
    (
        re.compile(r"\b(pip|pip3|uv)\b.*\binstall\b"),
        "install packages one at a time with `--no-cache-dir`",
        "install packages one at a time",
    ),
    (
        re.compile(r"\b(npm|yarn|pnpm)\b"),
        "limit Node's heap (`NODE_OPTIONS=--max-old-space-size=512`)",
        "run fewer scripts at once",
    ),
    (
        re.compile(r"\b(python3?|node)\b"),
        "process the data in smaller chunks or stream it instead of loading it all",
        "use fewer processes or threads",
    ),
]


def short_command(command: str) -> str:
    return command if len(command) <= _MAX_CMD else command[: _MAX_CMD - 3] + "..."


def _hint(command: str, kind: str) -> str:
    for pattern, mem_hint, proc_hint in _HINTS:
        if pattern.search(command):
            return mem_hint if kind == "memory" else proc_hint
    return "use less memory (smaller inputs, fewer workers)" if kind == "memory" else "start fewer processes"


def _more(limit: int) -> str:
    return format_size_arg(max(limit * 2, limit + (256 << 20)))


def build_feedback(o: Outcome) -> str | None:
    """The message for ``o``, or ``None`` when no limit acted and nothing notable happened."""
    cmd = f"`{short_command(o.command)}`"
    took = format_duration(o.duration_s)
    peak = format_size(o.memory_peak) if o.memory_peak is not None else "unknown"
    frozen = f"frozen {o.frozen_s:.1f} s, then " if o.frozen_s >= 0.05 else ""
    parts: list[str] = []

    controller_killed = any(s.action == "kill" for s in o.steps)
    if o.killed_by == "memory" and controller_killed and o.memory_high and o.kill_reason:
        parts.append(f"{frozen}killed: {cmd} {o.kill_reason} (peak {peak}, after {took}).")
        parts.append(f"Try: {_hint(o.command, 'memory')}, or declare memory={_more(o.memory_high)}.")
    elif o.killed_by == "memory" and not own_limit_hit(o):
        parts += killed_for_shared_budget(o, cmd, frozen, peak, took)
    elif o.killed_by == "memory":
        limit = o.memory_limit
        if limit is not None and limit < MAX_BYTES:
            parts.append(
                f"{frozen}killed: out of memory. {cmd} exceeded its {format_size(limit)} memory limit "
                f"(peak {peak}, after {took}); the kernel killed it, it did not crash by itself."
            )
            parts.append(f"Try: {_hint(o.command, 'memory')}, or declare memory={_more(limit)}.")
        else:
            parts.append(f"{frozen}killed: out of memory. {cmd} (peak {peak}, after {took}) was OOM-killed.")
            parts.append(f"Try: {_hint(o.command, 'memory')}.")
    elif o.killed_by == "timeout":
        parts.append(
            f"{frozen}killed: {cmd} ran past its time limit ({o.kill_reason or took}) and was stopped with all its "
            f"child processes (peak memory {peak}, CPU {o.cpu_s or 0:.1f} s)."
        )
        parts.append("Try: a narrower command, a longer timeout, or check that it is not waiting for input or a lock.")
    elif o.killed_by == "policy" and shared_step(o, "kill") is not None:
        parts += killed_for_shared_budget(o, cmd, frozen, peak, took)
    elif o.killed_by == "policy":
        parts.append(f"{frozen}killed: {o.kill_reason or 'by the resource controller'}. {cmd} peak {peak}.")
        if o.memory_peak:
            parts.append(f"Try: {_hint(o.command, 'memory')}, or declare memory={_more(o.memory_peak)}.")
    elif o.killed_by == "signal":
        parts.append(f"{cmd} was ended by {o.signal_name} from outside (peak {peak}, after {took}).")
    elif o.oom_kills and not own_limit_hit(o):
        parts.append(
            f"{o.oom_kills} process(es) of {cmd} were OOM-killed when the shared memory budget ran out (its peak "
            f"{peak} was within its own limits); the command itself exited with {o.returncode}."
        )
        parts.append("Try: retry it when the host has room, or use fewer workers or processes at once.")
    elif o.oom_kills:
        parts.append(
            f"{o.oom_kills} process(es) of {cmd} were OOM-killed at the memory limit "
            f"({format_size(o.memory_limit)}; peak {peak}); the command itself exited with {o.returncode}."
        )
        parts.append(f"Try: {_hint(o.command, 'memory')}.")

    if o.error is not None:
        parts.append(f"the resource controller failed on {cmd}: {o.error}; its figures may be incomplete.")
    if o.escaped:
        parts.append(
            f"{cmd} moved itself out of its cgroup (a command running as root can): its limits, time limit and "
            "figures stopped covering it. Run tools as a non-root user to keep them contained."
        )
    if o.pids_denied:
        limit = o.limits.get("pids_max")
        parts.append(
            f"{o.pids_denied} attempt(s) to start a process were refused: {cmd} may run at most {limit} "
            f"processes at once. Try: {_hint(o.command, 'pids')}."
        )
    if o.memory_high_events and o.killed_by is None and o.memory_high:
        parts.append(
            f"{cmd} went over its {format_size(o.memory_high)} soft memory limit and was slowed down (peak {peak})."
        )
    slowed = slowed_for_shared_budget(o, cmd)
    if slowed is not None:
        parts.append(slowed)
    throttled = o.cpu_throttled_s or 0.0
    if o.killed_by is None and throttled >= max(0.5, 0.25 * o.duration_s) and "cpu" in o.limits:
        parts.append(f"{cmd} was held to {o.limits['cpu']} of a CPU core and spent {throttled:.1f} s waiting for CPU.")
    for step in o.steps:
        if step.action == "release" and "soft" in step.figures and "hard" in step.figures:
            parts.append(
                f"{cmd} reached its soft memory limit {step.figures['soft']} and was held there "
                f"{step.figures.get('held_s', 0):.1f} s, then allowed to grow to its hard limit {step.figures['hard']} "
                f"(peak {peak})."
            )
    if o.leftover_killed and o.killed_by is None:
        parts.append(
            f"{o.leftover_killed} background process(es) it left running were stopped when it ended; "
            "start long-lived services outside tool calls."
        )
    if not parts:
        return None
    return " ".join(parts)


def command_text(argv: list[str]) -> str:
    """How the command reads to a person: ``bash -c '...'`` shows just the script."""
    if len(argv) >= 3 and argv[0].rsplit("/", 1)[-1] in ("sh", "bash", "dash", "zsh") and argv[1] in ("-c", "-lc"):
        return argv[2]
    return shlex.join(argv)
