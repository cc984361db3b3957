"""``agentcg hook pre-tool-use``: a Claude Code (or Codex) PreToolUse hook that stays out of the agent's way.

The Claude Code integration is ``agentcg-prefix`` as ``CLAUDE_CODE_SHELL_PREFIX`` (see
:mod:`agentcgroup.integrations.prefix`): it puts every Bash tool call into a tool-call cgroup while permission
rules are still matched on the model's own command. This hook never rewrites a command (a rewritten command is
what Claude Code's deny and ask rules would be matched against, and it breaks how the Bash tool carries its
state between calls), never decides a permission unless the user opts in (``AGENTCG_HOOK_DECISION=ask`` or
``allow``), and never blocks: whatever goes wrong, it exits 0 and says why on stderr.

What it does: for a Bash call while ``CLAUDE_CODE_SHELL_PREFIX`` is not ``agentcg-prefix``, a warning on stderr
that the call runs without agentcgroup's limits, and how to set the prefix.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

DECISIONS = ("allow", "ask")
EVENTS = ("pre-tool-use", "PreToolUse")


def prefix_in_use(env: dict[str, str] | None = None) -> bool:
    value = (os.environ if env is None else env).get("CLAUDE_CODE_SHELL_PREFIX", "")
    return os.path.basename(value.split()[0]) == "agentcg-prefix" if value.strip() else False


def decide(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The hook's answer to one PreToolUse payload: a permission decision only when the user opted in to one
    (``AGENTCG_HOOK_DECISION``), never a rewritten input; None: no answer (Claude Code decides as usual)."""
    if payload.get("tool_name") != "Bash":
        return None
    command = (payload.get("tool_input") or {}).get("command")
    if not isinstance(command, str) or not command.strip():
        return None
    decision = os.environ.get("AGENTCG_HOOK_DECISION", "")
    if decision not in DECISIONS:
        return None
    return {
        "hookSpecificOutput": {
            "hookEventName": "PreToolUse",
            "permissionDecision": decision,
            "permissionDecisionReason": f"agentcgroup (AGENTCG_HOOK_DECISION={decision})",
        }
    }


def warn(message: str) -> None:
    sys.stderr.write(f"agentcg hook: {message}\n")


def main(stdin: Any = None, stdout: Any = None, event: str = "pre-tool-use") -> int:
    """Always 0: exit 2 would tell Claude Code to block the tool call."""
    try:
        if event not in EVENTS:
            warn(f"unknown event {event!r} (expected pre-tool-use); the tool call goes on untouched")
            return 0
        stdin, stdout = stdin or sys.stdin, stdout or sys.stdout
        try:
            payload = json.load(stdin)
        except ValueError as exc:
            warn(f"not a hook payload ({exc}); the tool call goes on untouched")
            return 0
        if not isinstance(payload, dict):
            warn("not a hook payload (not a JSON object); the tool call goes on untouched")
            return 0
        if payload.get("tool_name") == "Bash" and not prefix_in_use():
            warn(
                "this Bash call runs without agentcgroup's limits: set CLAUDE_CODE_SHELL_PREFIX=agentcg-prefix "
                "(in settings.json's env) to run each one in its own tool-call cgroup"
            )
        answer = decide(payload)
        if answer is not None:
            stdout.write(json.dumps(answer) + "\n")
    except Exception as exc:  # never block the agent for a fault of ours
        warn(f"failed ({type(exc).__name__}: {exc}); the tool call goes on untouched")
    return 0
