"""The bash shim: put it first on PATH and every ``bash`` an agent starts runs in its own tool-call cgroup.

``agentcg shim install DIR`` writes ``DIR/bash`` (and ``DIR/sh`` with ``--sh``): a few lines of POSIX sh that

* exec the real shell directly when they already run inside a tool call's leaf (a nested ``bash -c`` stays in
  its call's leaf, with its limits: the check reads /proc/self/cgroup, which a command cannot fake to escape);
* otherwise run the real shell through ``agentcg run --session $AGENTCG_SESSION`` (through the daemon when
  ``$AGENTCG_SOCKET`` is set), with ``$AGENTCG_SHIM_ARGS`` (e.g. ``--memory 2G --timeout 10m``) as its limits.
"""

from __future__ import annotations

import os
import shlex
import shutil
import stat
import sys

from .leaf import SHELL_PATTERN

TEMPLATE = """#!/bin/sh
# agentcgroup {name} shim (agentcg shim install): this {name} runs in its own tool-call cgroup.
if grep -qE '{pattern}' /proc/self/cgroup 2>/dev/null; then
    exec {real} "$@"      # already inside a tool call: stay in its leaf
fi
# shellcheck disable=SC2086  # AGENTCG_SHIM_ARGS holds several options
exec {python} -m agentcgroup run --session "${{AGENTCG_SESSION:-shim}}" ${{AGENTCG_SHIM_ARGS:-}} -- {real} "$@"
"""


def real_shell(name: str, shim_dir: str) -> str:
    """The shell the shim stands for: the first ``name`` on PATH that is not in the shim's own directory."""
    shim_dir = os.path.realpath(shim_dir)
    for d in os.environ.get("PATH", os.defpath).split(os.pathsep):
        if d and os.path.realpath(d) != shim_dir:
            found = shutil.which(name, path=d)
            if found:
                return os.path.realpath(found)
    for fallback in (f"/bin/{name}", f"/usr/bin/{name}"):
        if os.access(fallback, os.X_OK):
            return fallback
    raise FileNotFoundError(2, f"no real {name} found on PATH", name)


def render(name: str, real: str, python: str | None = None) -> str:
    return TEMPLATE.format(
        name=name, pattern=SHELL_PATTERN, real=shlex.quote(real), python=shlex.quote(python or sys.executable)
    )


def install(directory: str, names: tuple[str, ...] = ("bash",), python: str | None = None) -> list[str]:
    """Write the shims into ``directory`` (created if missing); return their paths."""
    os.makedirs(directory, exist_ok=True)
    written = []
    for name in names:
        path = os.path.join(directory, name)
        with open(path + ".tmp", "w") as f:
            f.write(render(name, real_shell(name, directory), python))
        os.chmod(path + ".tmp", 0o755 | stat.S_IXUSR)
        os.replace(path + ".tmp", path)
        written.append(path)
    return written
