"""The tool calls of the paper's format (``tool_calls.json``) turned into :class:`ToolCall` objects.

Times are ISO UTC with ``Z``; ``end_timestamp`` may be missing (then the duration is unknown); calls of
sub-agents overlap their parent ``Task`` call. Whether a call failed is not recorded: for shell calls it is
guessed from the start of the result text (a Python traceback, ``error:``, ``N failed``...).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

from .categories import classify
from .model import Task, ToolCall

_FAILURE = re.compile(
    r"Traceback \(most recent call last\)|\w*Error\b|\berror:|\bERROR\b|\bFAILED\b|\b\d+ failed\b"
    r"|Command timed out|command not found|No such file or directory|[Ee]xit code [1-9]|exit status [1-9]"
)
_SHELL_TOOLS = {"Bash", "bash", "shell", "Shell", "command"}


def parse_utc(text: Any) -> tuple[float | None, bool]:
    """Return (epoch seconds, had no zone) for an ISO time; ``Z`` means UTC, no zone is taken as UTC."""
    if not isinstance(text, str) or not text:
        return None, False
    s = text.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1] + "+00:00"
    try:
        dt = datetime.fromisoformat(s)
    except ValueError:
        return None, False
    naive = dt.tzinfo is None
    if naive:
        dt = dt.replace(tzinfo=timezone.utc)
    return dt.timestamp(), naive


def looks_failed(result_text: str | None) -> bool | None:
    """Guess from a shell call's result text whether it failed (None when there is no text)."""
    if result_text is None:
        return None
    return bool(_FAILURE.search(result_text))


def _overlapping(calls: list[ToolCall]) -> int:
    count, reach = 0, float("-inf")
    for c in calls:
        if c.start < reach:
            count += 1
        if c.end is not None:
            reach = max(reach, c.end)
    return count


def parse_calls(raw: list[Any], task: Task) -> list[ToolCall]:
    """Parse the tool-call list; quirks go to ``task.note``."""
    calls: list[ToolCall] = []
    unreadable = no_end = backwards = naive = 0
    for i, entry in enumerate(raw):
        if not isinstance(entry, dict):
            unreadable += 1
            continue
        start, naive_start = parse_utc(entry.get("timestamp"))
        if start is None:
            unreadable += 1
            continue
        end, naive_end = parse_utc(entry.get("end_timestamp"))
        naive += naive_start or naive_end
        if end is None:
            no_end += 1
        elif end < start:
            backwards += 1
        tool = str(entry.get("tool") or "Unknown")
        raw_input = entry.get("input")
        inp: dict[str, Any] = raw_input if isinstance(raw_input, dict) else {}
        command = inp.get("command") if isinstance(inp.get("command"), str) else None
        shell = tool in _SHELL_TOOLS or command is not None
        preview = entry.get("result_preview")
        calls.append(
            ToolCall(
                call_id=str(entry.get("id") or entry.get("tool_use_id") or f"call-{i}"),
                tool=tool,
                start=start,
                end=end,
                command=command,
                shell=shell,
                category=classify(command) if command is not None else None,
                failed=looks_failed(preview if isinstance(preview, str) else None) if shell else None,
            )
        )
    calls.sort(key=lambda c: c.start)
    if unreadable:
        task.note(f"{unreadable} tool calls unreadable (skipped)")
    if no_end:
        task.note(f"{no_end} of {len(calls)} tool calls have no end time (durations unknown)")
    if backwards:
        task.note(f"{backwards} tool calls end before they start (durations unknown)")
    if naive:
        task.note(f"{naive} tool-call times without a zone (taken as UTC)")
    overlaps = _overlapping(calls)
    if overlaps:
        task.note(f"{overlaps} tool calls overlap an earlier call (sub-agents or parallel calls)")
    return calls
