"""``agentcg run`` without click, for the command lines an agent's wrapper writes.

An agent may start ``agentcg run`` once per tool call (the shim, the Claude Code prefix, a script), and importing
click costs about as much as the rest of the call here. This parser takes only the plain forms of ``run``'s
options (``--opt VALUE``, ``--opt=VALUE``, the two flags) up to the command; anything else (help, an unknown or
repeated option, a missing value, a value that looks like an option, a backend click would refuse) returns
None, and click parses the line as before, with its usual errors. The values themselves are checked in
run_call, on either path, by the same functions.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (a process per call pays for it)
if TYPE_CHECKING:
    from typing import Any


# option -> run_call's parameter; these take a value
_VALUED = {
    "--session": "session_name",
    "--memory": "memory",
    "--memory-high": "memory_high",
    "--cpu": "cpu",
    "--pids": "pids",
    "--timeout": "timeout",
    "--root": "root",
    "--backend": "backend",
    "--socket": "socket_path",
}
_FLAGS = {"--json": "as_json", "--keep-background": "keep_background"}
_BACKENDS = ("auto", "v2", "hybrid", "none")


def parse(args: list[str]) -> dict[str, Any] | None:
    """run_call's keyword arguments from the words after ``run``, or None to leave the line to click."""
    kw: dict[str, Any] = dict.fromkeys(_VALUED.values())
    kw.update(dict.fromkeys(_FLAGS.values(), False))
    seen: set[str] = set()
    i = 0
    while i < len(args):
        word = args[i]
        if word == "--":
            break
        if not word.startswith("-") or word == "-":
            break  # the command (click: no interspersed options)
        name, eq, value = word.partition("=")
        if name in seen:
            return None
        seen.add(name)
        if name in _FLAGS and not eq:
            kw[_FLAGS[name]] = True
            i += 1
            continue
        if name not in _VALUED:
            return None
        if not eq:
            if i + 1 >= len(args) or args[i + 1].startswith("-"):
                return None
            value = args[i + 1]
            i += 1
        if name == "--backend" and value not in _BACKENDS:
            return None
        kw[_VALUED[name]] = value
        i += 1
    kw["command"] = args[i + 1 :] if args[i : i + 1] == ["--"] else args[i:]  # click drops the first "--"
    if not kw["command"]:
        return None  # click says the command is missing
    return kw
