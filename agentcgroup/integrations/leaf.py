"""Is this process already inside a tool call's leaf? (Then a nested ``bash -c`` must stay where it is.)"""

from __future__ import annotations

import re

#: ``<root>/<session>/tools/<id>`` at the end of a /proc/<pid>/cgroup line, for any agentcgroup root
_TOOL_LEAF = re.compile(r"/agentcg[^/]*/[^/]+/tools/[^/]+$")
#: the same test for the shell shim (grep -E), kept in step with the regex above
SHELL_PATTERN = "/agentcg[^/]*/[^/]+/tools/[^/]+$"


def in_tool_leaf(proc_cgroup_text: str) -> bool:
    return any(_TOOL_LEAF.search(line) for line in proc_cgroup_text.splitlines())
