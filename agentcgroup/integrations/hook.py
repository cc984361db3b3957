"""A pre-tool-use hook in the style of Claude Code's (and Codex's): each Bash command an agent is about to run is
rewritten to run through ``agentcg run``, in a tool-call cgroup of the agent's session.

Claude Code gives the hook, on stdin, ``{"session_id": ..., "tool_name": "Bash", "tool_input": {"command": ...}}``;
the hook answers on stdout with ``hookSpecificOutput.updatedInput`` (the rewritten command) and a permission
decision: ``allow`` by default (Claude Code's own deny and ask rules still apply), ``ask`` with
``AGENTCG_HOOK_DECISION=ask``. Anything that is not a Bash command is let through untouched (no output).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from typing import Any

DECISIONS = ("allow", "ask")
_UNSAFE = re.compile(r"[^A-Za-z0-9_:@+-]")


def session_name(payload: dict[str, Any]) -> str:
    """``$AGENTCG_SESSION``, else one per agent session: ``claude-<its id>``."""
    explicit = os.environ.get("AGENTCG_SESSION")
    if explicit:
        return explicit
    sid = _UNSAFE.sub("", str(payload.get("session_id") or ""))[:32]
    return f"claude-{sid}" if sid else "claude"


def wrap(command: str, session: str, extra: str = "", python: str | None = None) -> str:
    """``command`` run by bash inside a tool-call cgroup of ``session``."""
    runner = f"{shlex.quote(python or sys.executable)} -m agentcgroup run --session {shlex.quote(session)}"
    if extra:
        runner += f" {extra}"
    return f"{runner} -- bash -c {shlex.quote(command)}"


def decide(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The hook's answer to one PreToolUse payload (None: let it through untouched)."""
    if payload.get("tool_name") != "Bash":
        return None
    tool_input = payload.get("tool_input") or {}
    command = tool_input.get("command")
    if not isinstance(command, str) or not command.strip():
        return None
    if "-m agentcgroup run" in command:  # already wrapped (a retried call): leave it
        return None
    decision = os.environ.get("AGENTCG_HOOK_DECISION", "allow")
    if decision not in DECISIONS:
        decision = "allow"
    updated = dict(tool_input, command=wrap(command, session_name(payload), os.environ.get("AGENTCG_SHIM_ARGS", "")))
    return {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": decision,
            "permissionDecisionReason": "agentcgroup: run in its own tool-call cgroup",
            "updatedInput": updated,
        }
    }


def main(stdin: Any = None, stdout: Any = None) -> int:
    stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
    try:
        payload = json.load(stdin)
    except ValueError as exc:
        sys.stderr.write(f"agentcg hook: not a hook payload ({exc}); letting the tool call through\n")
        return 0  # never wedge the agent: a broken payload is let through (exit 2 would block the call)
    answer = decide(payload) if isinstance(payload, dict) else None
    if answer is not None:
        stdout.write(json.dumps(answer) + "\n")
    return 0
