"""``agentcg-prefix``: Claude Code's ``CLAUDE_CODE_SHELL_PREFIX``. Every Bash tool call runs as a tool call of
an agentcgroup session; everything else Claude Code starts through the prefix runs untouched.

Claude Code runs each Bash tool call as one command string, ``PREFIX '<string>'``, where the string sources its
shell snapshot (aliases, functions, options), evaluates the model's command, then writes ``pwd -P`` to a file
of its own (``>| /tmp/claude-<id>-cwd``) to carry the directory over to the next call. Permission rules are
matched on the model's command, before the prefix is added, so the prefix changes nothing they see.

* **A Bash tool call** (one argument ending in the ``pwd -P >| ...claude-...-cwd`` write): the whole string runs
  in bash (zsh for a zsh snapshot) as ``agentcg run --session $AGENTCG_SESSION $AGENTCG_SHIM_ARGS -- bash -c
  STRING``: through the daemon when ``$AGENTCG_SOCKET`` is set, else an embedded controller; the same
  variables as the bash shim. The snapshot, the command and the cwd write all run inside the call's leaf, so
  ``cd``, aliases and functions carry over between calls exactly as without the prefix. The exit code is the
  command's (137 after a memory kill); the controller's feedback goes to stderr, where Claude Code shows it.
* **Anything else** (a stdio MCP server's start, a hook command): exec'd as it is, where Claude Code itself
  runs (the agent's cgroup), outside any tool call's limits: a long-running server is never a tool call's
  victim and never holds a call open.
* Already inside a tool call's leaf (a nested prefix): exec'd as it is, staying in that leaf.

Claude Code quotes a command string that contains single quotes in double quotes, which reach the prefix as
literal ``"..."``; the prefix undoes that quoting before it runs the string.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import sys

from .leaf import in_tool_leaf

#: the tail of the command string Claude Code builds for a Bash tool call: the cwd written for the next call
_CWD_WRITE = re.compile(r"pwd -P >\| ?\S*claude-[0-9A-Za-z]+-cwd\s*$")
_DQ_ESCAPES = '$`"\\\n'


def unquote(text: str) -> str:
    """A string wrapped in literal double quotes (how Claude Code quotes one with single quotes in it), read as
    bash reads a double-quoted word without expansions; any other string as it is."""
    if len(text) < 2 or text[0] != '"' or text[-1] != '"':
        return text
    out, i, inner = [], 0, text[1:-1]
    while i < len(inner):
        c = inner[i]
        if c == "\\" and i + 1 < len(inner) and inner[i + 1] in _DQ_ESCAPES:
            out.append(inner[i + 1])
            i += 2
            continue
        if c == '"':  # an unescaped quote inside: not one double-quoted word
            return text
        out.append(c)
        i += 1
    return "".join(out)


def is_bash_tool_call(args: list[str]) -> bool:
    """Whether the prefix was given a Claude Code Bash tool call (rather than an MCP server or a hook)."""
    return len(args) == 1 and bool(_CWD_WRITE.search(unquote(args[0]).rstrip()))


def _shell_for(command: str) -> str:
    name = "zsh" if "snapshot-zsh" in command else "bash"
    return shutil.which(name) or f"/bin/{name}"


def _in_tool_leaf() -> bool:
    try:
        with open("/proc/self/cgroup") as f:
            return in_tool_leaf(f.read())
    except OSError:
        return False


def runner_args(command: str, env: dict[str, str] | None = None) -> list[str]:
    """``agentcg run`` arguments for one Bash tool call."""
    env = dict(os.environ) if env is None else env
    session = env.get("AGENTCG_SESSION") or "claude"
    extra = shlex.split(env.get("AGENTCG_SHIM_ARGS", ""))
    return ["run", "--session", session, *extra, "--", _shell_for(command), "-c", command]


def _exec_as_is(args: list[str]) -> None:
    if len(args) == 1:  # one command string: run by a shell, as Claude Code's own shell would
        sh = _shell_for(args[0])
        os.execv(sh, [sh, "-c", unquote(args[0])])
    os.execvp(args[0], args)


def main(argv: list[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        sys.stderr.write(
            "agentcg-prefix: usage: agentcg-prefix COMMAND-STRING | agentcg-prefix PROGRAM [ARG...]\n"
            "  (set CLAUDE_CODE_SHELL_PREFIX=agentcg-prefix for Claude Code)\n"
        )
        return 2
    try:
        if not is_bash_tool_call(args) or _in_tool_leaf():
            _exec_as_is(args)
    except OSError as exc:
        sys.stderr.write(f"agentcg-prefix: cannot run {args[0]!r}: {exc.strerror or exc}\n")
        return 127 if isinstance(exc, FileNotFoundError) else 126
    from ..cli.main import cli

    cli(runner_args(unquote(args[0])), prog_name="agentcg")  # exits with the command's code
    return 0  # pragma: no cover - cli.main always exits


if __name__ == "__main__":
    sys.exit(main())
