"""The pre-tool-use hook: Claude Code's JSON in, a rewritten Bash command out."""

from __future__ import annotations

import io
import json
import shlex
import subprocess
import sys

from agentcgroup.integrations import hook
from agentcgroup.integrations.leaf import in_tool_leaf


def test_a_bash_call_is_wrapped(monkeypatch) -> None:
    monkeypatch.delenv("AGENTCG_SESSION", raising=False)
    monkeypatch.setenv("AGENTCG_SHIM_ARGS", "--memory 2G")
    payload = {
        "session_id": "abc-123/..",
        "tool_name": "Bash",
        "tool_input": {"command": "pytest -x 'tests/a b.py'", "description": "run tests"},
    }
    out = hook.decide(payload)["hookSpecificOutput"]
    assert out["hookEventName"] == "PreToolUse" and out["permissionDecision"] == "allow"
    cmd = out["updatedInput"]["command"]
    assert out["updatedInput"]["description"] == "run tests"  # other fields kept
    words = shlex.split(cmd)
    assert words[1:6] == ["-m", "agentcgroup", "run", "--session", "claude-abc-123"]  # unsafe characters dropped
    assert words[6:8] == ["--memory", "2G"]
    assert words[-3:] == ["bash", "-c", "pytest -x 'tests/a b.py'"]  # the original, exactly


def test_ask_mode_and_pass_through(monkeypatch) -> None:
    monkeypatch.setenv("AGENTCG_HOOK_DECISION", "ask")
    monkeypatch.setenv("AGENTCG_SESSION", "s9")
    out = hook.decide({"tool_name": "Bash", "tool_input": {"command": "ls"}})["hookSpecificOutput"]
    assert out["permissionDecision"] == "ask" and "--session s9" in out["updatedInput"]["command"]
    assert hook.decide({"tool_name": "Read", "tool_input": {"file_path": "/x"}}) is None
    assert hook.decide({"tool_name": "Bash", "tool_input": {"command": "  "}}) is None
    wrapped = out["updatedInput"]["command"]
    assert hook.decide({"tool_name": "Bash", "tool_input": {"command": wrapped}}) is None  # not twice


def test_main_reads_stdin_and_never_blocks_on_garbage() -> None:
    out = io.StringIO()
    assert hook.main(io.StringIO(json.dumps({"tool_name": "Bash", "tool_input": {"command": "ls"}})), out) == 0
    assert json.loads(out.getvalue())["hookSpecificOutput"]["updatedInput"]["command"].endswith("bash -c ls")
    out = io.StringIO()
    assert hook.main(io.StringIO("{nope"), out) == 0 and out.getvalue() == ""


def test_the_cli_hook() -> None:
    payload = json.dumps({"tool_name": "Bash", "tool_input": {"command": "echo hi"}})
    r = subprocess.run(
        [sys.executable, "-m", "agentcgroup", "hook", "pre-tool-use"], input=payload, capture_output=True, text=True
    )
    assert r.returncode == 0 and "updatedInput" in json.loads(r.stdout)["hookSpecificOutput"]


def test_leaf_detection() -> None:
    assert in_tool_leaf("0::/agentcg/s1/tools/c1f2\n")
    assert in_tool_leaf("4:memory:/process_api/x/agentcg-test-1-2/s/tools/cab\n0::/\n")
    assert not in_tool_leaf("0::/agentcg/s1/agent\n4:memory:/agentcg/s1\n")
    assert not in_tool_leaf("0::/user.slice/tools/x\n")
