"""The pre-tool-use hook: it never rewrites a command, never blocks, and decides a permission only when asked."""

from __future__ import annotations

import io
import json
import subprocess
import sys

from agentcgroup.integrations import hook
from agentcgroup.integrations.leaf import in_tool_leaf

BASH = {"session_id": "abc-123/..", "tool_name": "Bash", "tool_input": {"command": "rm -rf build", "description": "x"}}


def test_no_rewrite_and_no_decision_by_default(monkeypatch) -> None:
    monkeypatch.delenv("AGENTCG_HOOK_DECISION", raising=False)
    assert hook.decide(BASH) is None  # Claude Code's own permission rules and prompt decide, on the original
    assert hook.decide({"tool_name": "Read", "tool_input": {"file_path": "/x"}}) is None


def test_an_opted_in_decision_never_carries_a_rewritten_input(monkeypatch) -> None:
    for decision in ("ask", "allow"):
        monkeypatch.setenv("AGENTCG_HOOK_DECISION", decision)
        out = hook.decide(BASH)["hookSpecificOutput"]
        assert out["permissionDecision"] == decision and "updatedInput" not in out
    monkeypatch.setenv("AGENTCG_HOOK_DECISION", "deny")  # not one it offers: no decision
    assert hook.decide(BASH) is None
    assert hook.decide({"tool_name": "Bash", "tool_input": {"command": "  "}}) is None


def test_main_never_blocks(monkeypatch, capsys) -> None:
    monkeypatch.delenv("AGENTCG_HOOK_DECISION", raising=False)
    monkeypatch.delenv("CLAUDE_CODE_SHELL_PREFIX", raising=False)
    out = io.StringIO()
    assert hook.main(io.StringIO(json.dumps(BASH)), out) == 0 and out.getvalue() == ""
    assert "without agentcgroup's limits" in capsys.readouterr().err  # the prefix is not set: said so
    monkeypatch.setenv("CLAUDE_CODE_SHELL_PREFIX", "/usr/local/bin/agentcg-prefix")
    assert hook.main(io.StringIO(json.dumps(BASH)), out) == 0 and capsys.readouterr().err == ""
    for garbage in ("{nope", "[1, 2]", ""):
        assert hook.main(io.StringIO(garbage), out) == 0 and out.getvalue() == ""
        assert "goes on untouched" in capsys.readouterr().err
    assert hook.main(io.StringIO(json.dumps(BASH)), out, event="PostToolUse") == 0
    assert "unknown event" in capsys.readouterr().err


def test_the_cli_hook_exits_0_whatever_it_is_given() -> None:
    payload = json.dumps(BASH)
    for args in (["pre-tool-use"], ["PreToolUse"], ["post-tool-use"], []):
        r = subprocess.run(
            [sys.executable, "-m", "agentcgroup", "hook", *args], input=payload, capture_output=True, text=True
        )
        assert r.returncode == 0 and r.stdout == "", (args, r.stderr)
    r = subprocess.run([sys.executable, "-m", "agentcgroup", "hook"], input="garbage", capture_output=True, text=True)
    assert r.returncode == 0 and "goes on untouched" in r.stderr


def test_leaf_detection() -> None:
    assert in_tool_leaf("0::/agentcg/s1/tools/c1f2\n")
    assert in_tool_leaf("4:memory:/process_api/x/agentcg-test-1-2/s/tools/cab\n0::/\n")
    assert not in_tool_leaf("0::/agentcg/s1/agent\n4:memory:/agentcg/s1\n")
    assert not in_tool_leaf("0::/user.slice/tools/x\n")
