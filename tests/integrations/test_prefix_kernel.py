"""``agentcg-prefix`` run the way Claude Code runs a Bash tool call: a login bash evaluating ``PREFIX '<string>'``,
the string sourcing the shell snapshot, evaluating the command, then writing ``pwd -P`` to a file that gives the
next call its directory. The same calls are run without the prefix: what the agent sees must be the same."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time

import pytest

from agentcgroup.integrations import prefix
from agentcgroup.integrations.leaf import in_tool_leaf
from tests.conftest import SLOW, kernel_skip_reason, leftovers, wait_for

SCRIPT = os.path.join(os.path.dirname(sys.executable), "agentcg-prefix")
SNAPSHOT = """\
shopt -s expand_aliases
alias ll='echo ALIAS_OK'
greet() { echo "FUNC_OK $1"; }
export FROM_SNAPSHOT=yes
"""


class FakeClaude:
    """Claude Code's Bash tool as far as the prefix can see it: its shell snapshot, its cwd carried over between
    calls through a ``pwd -P`` file, ``CLAUDE_CODE_SHELL_PREFIX`` put in front of the command string."""

    def __init__(self, tmp_path, env: dict[str, str], use_prefix: bool) -> None:
        self.cwd = str(tmp_path)
        self.env = env
        self.prefix = ([SCRIPT] if os.access(SCRIPT, os.X_OK) else [sys.executable, "-m", prefix.__name__]) * bool(
            use_prefix
        )
        self.snapshot = tmp_path / "snapshot-bash-1234-abcd.sh"
        self.snapshot.write_text(SNAPSHOT)
        self.cwd_file = tmp_path / f"claude-{os.getpid():x}{int(use_prefix)}-cwd"

    def bash(self, command: str, timeout: float = 60) -> subprocess.CompletedProcess:
        string = (
            f"source {shlex.quote(str(self.snapshot))} && eval {shlex.quote(command)} < /dev/null"
            f" && pwd -P >| {shlex.quote(str(self.cwd_file))}"
        )
        if self.prefix:
            string = " ".join(shlex.quote(w) for w in self.prefix) + " " + shlex.quote(string)
        r = subprocess.run(
            ["bash", "-c", "-l", string],
            cwd=self.cwd,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout * SLOW,
        )
        if self.cwd_file.exists():
            self.cwd = self.cwd_file.read_text().strip()
            self.cwd_file.unlink()
        return r


@pytest.fixture(params=["embedded", "daemon"])
def claude_env(request, root_name, tmp_path):
    """Claude Code's environment with the prefix's settings: an embedded controller, or AGENTCG_SOCKET."""
    if kernel_skip_reason():
        pytest.skip(kernel_skip_reason())
    env = {k: v for k, v in os.environ.items() if not k.startswith("AGENTCG_")}
    env |= {"AGENTCG_ROOT": root_name, "AGENTCG_SESSION": "claude-t1", "AGENTCG_SHIM_ARGS": "--memory 64M"}
    daemon = None
    if request.param == "daemon":
        from tests.kernel.daemon_fixtures import start_daemon

        daemon = start_daemon(tmp_path, root_name)
        env["AGENTCG_SOCKET"] = daemon.sock
    yield env
    if daemon is not None:
        from tests.kernel.daemon_fixtures import stop_daemon

        stop_daemon(daemon, root_name)
    assert leftovers(root_name) == []


@pytest.mark.kernel
@pytest.mark.host_only(reason="bash's state (cwd, aliases) is kernel-blind; the guest runs the kill and MCP tests")
def test_a_bash_tool_call_behaves_as_without_the_prefix_inside_a_tool_leaf(tmp_path, claude_env) -> None:
    (tmp_path / "sub").mkdir()
    seen = {}
    for use in (False, True):
        claude = FakeClaude(tmp_path, claude_env, use)
        steps = [
            claude.bash("cd sub && echo moved"),
            claude.bash("pwd"),  # the directory carried over from the call before
            claude.bash("ll; greet there; echo $FROM_SNAPSHOT"),  # the snapshot's alias, function, variable
            claude.bash("echo 'single quotes' \"and double\"; echo err >&2; exit 3"),
            claude.bash("cat /proc/self/cgroup"),
        ]
        seen[use] = steps
    bare, mine = seen[False], seen[True]
    for b, m in zip(bare[:4], mine[:4], strict=True):
        assert (m.returncode, m.stdout, m.stderr) == (b.returncode, b.stdout, b.stderr)
    assert bare[1].stdout == f"{os.path.realpath(tmp_path / 'sub')}\n"
    assert bare[2].stdout == "ALIAS_OK\nFUNC_OK there\nyes\n"
    assert bare[3].returncode == 3
    assert not in_tool_leaf(bare[4].stdout)
    assert in_tool_leaf(mine[4].stdout), mine[4].stdout  # in a tool call's leaf ...
    assert "/claude-t1/tools/" in mine[4].stdout  # ... of the session AGENTCG_SESSION names


@pytest.mark.kernel
def test_a_memory_kill_gives_137_and_the_feedback_on_stderr(tmp_path, claude_env) -> None:
    claude = FakeClaude(tmp_path, claude_env, True)
    r = claude.bash(f"echo before; {shlex.quote(sys.executable)} -c 'bytearray(1 << 30)'")
    assert r.returncode == 137 and r.stdout == "before\n"
    assert "killed: out of memory" in r.stderr and "64 MiB" in r.stderr
    assert claude.bash("echo after").stdout == "after\n"  # the next call runs as usual


MCP_SERVER = """
import os, sys, time
hog = bytearray(128 << 20)  # over a tool call's 64M
for i in range(0, len(hog), 4096):
    hog[i] = 1
open(sys.argv[1], "w").write(open("/proc/self/cgroup").read())
time.sleep(600)
"""


@pytest.mark.kernel
def test_an_mcp_server_is_not_a_tool_call(tmp_path, claude_env) -> None:
    """Started through the prefix as Claude Code starts a stdio MCP server (an argv): outside tool limits, not
    killed by a tool call's memory limit or timeout, in the cgroup Claude Code runs in."""
    env = claude_env | {"AGENTCG_SHIM_ARGS": "--memory 64M --timeout 1"}
    ready = tmp_path / "ready"
    runner = FakeClaude(tmp_path, env, True).prefix
    cmd = [*runner, sys.executable, "-c", MCP_SERVER, str(ready)]
    server = subprocess.Popen(cmd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    try:
        wait_for(ready.exists, "the MCP-like server to start", 30)
        time.sleep(1.5)  # past the tool calls' timeout
        assert server.poll() is None  # still serving
        assert not in_tool_leaf(ready.read_text())
        with open("/proc/self/cgroup") as f:
            assert ready.read_text() == f.read()  # where its parent (Claude Code) runs
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
    # a hook command (one string without Claude's cwd write) runs as it is too
    hook = subprocess.run([*runner, "echo hook; cat /proc/self/cgroup"], env=env, capture_output=True, text=True)
    assert hook.returncode == 0 and hook.stdout.startswith("hook\n") and not in_tool_leaf(hook.stdout)


def test_unquote_undoes_claudes_double_quoting() -> None:
    assert prefix.unquote('"echo \'hi there\' \\"x\\" \\$HOME"') == "echo 'hi there' \"x\" $HOME"
    assert prefix.unquote('"a" "b"') == '"a" "b"'  # two words: left as they are
    assert prefix.unquote("plain") == "plain"
    tool = "source /s/snapshot-bash-1.sh && eval 'ls' < /dev/null && pwd -P >| /tmp/claude-3fa1-cwd"
    assert prefix.is_bash_tool_call([tool])
    assert prefix.is_bash_tool_call(['"' + tool.replace("$", "\\$") + '"'])  # as Claude quotes it
    assert not prefix.is_bash_tool_call(["npx", "-y", "server"])
    assert not prefix.is_bash_tool_call(["agentcg hook pre-tool-use"])
    words = prefix.runner_args(tool, {"AGENTCG_SESSION": "s9", "AGENTCG_SHIM_ARGS": "--memory 2G --timeout 10m"})
    assert words[:7] == ["run", "--session", "s9", "--memory", "2G", "--timeout", "10m"]
    assert words[-2:] == ["-c", tool] and words[7] == "--"
