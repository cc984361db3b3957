"""Pure text rules of systemd's cgroup tree: which unit a cgroup path belongs to, how a name becomes a unit name,
where a slice's cgroup is. No I/O: tests feed paths copied from real hosts."""

from __future__ import annotations

import re

#: unit types that own processes (and so may be delegated)
PROCESS_UNITS = (".service", ".scope")
#: the slice every unit of ours goes in (``agentcg-<session>.slice`` lands beneath it by systemd's naming)
SLICE = "agentcg.slice"
#: the leaf of a delegated unit that its own processes move to, so that its root has none (cgroup v2's
#: no-internal-processes rule) and controllers can be enabled for its children; systemd's own word for it
#: (``DelegateSubgroup=supervisor`` in later versions)
SUPERVISOR = "supervisor"

_VALID = re.compile(r"[A-Za-z0-9:_.\\]")
#: an agent or tool-call leaf of an agentcgroup tree, at the end of a path (as in agentcgroup.detect)
_OUR_LEAF = re.compile(r"^(.*)/agentcg[^/]*/[^/]+/(agent|tools/[^/]+)$")


def unit_of(cgroup_path: str) -> tuple[str, str] | None:
    """``(unit name, its cgroup path)`` of the deepest service or scope on ``cgroup_path`` (as in
    /proc/self/cgroup), or None. Below a delegated unit, only its owner names cgroups; ours never end in a unit
    suffix, so the deepest one is the unit the process belongs to."""
    parts = [p for p in cgroup_path.split("/") if p]
    for i in range(len(parts) - 1, -1, -1):
        if parts[i].endswith(PROCESS_UNITS):
            return parts[i], "/" + "/".join(parts[: i + 1])
    return None


def our_tree_base(cgroup_path: str) -> str | None:
    """Where the agentcgroup that made the agent or tool-call leaf ``cgroup_path`` keeps its root, or None when
    ``cgroup_path`` is not such a leaf (an agent's own ``agentcg run --session`` joins that tree)."""
    m = _OUR_LEAF.match(cgroup_path)
    return m.group(1) if m else None


def escape(name: str) -> str:
    """One component of a unit name, escaped as ``systemd-escape`` does (``-`` is the slice separator)."""
    out = []
    for i, ch in enumerate(name):
        if ch == "/":
            out.append("-")
        elif _VALID.fullmatch(ch) and ch != "\\" and not (i == 0 and ch == "."):
            out.append(ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode())
    return "".join(out)


def session_slice(session: str) -> str:
    """The slice of a session: ``agentcg-<session>.slice``, a child of :data:`SLICE`."""
    return f"{SLICE[: -len('.slice')]}-{escape(session)}.slice"


def slice_path(slice_name: str) -> str:
    """The cgroup path of a slice: ``a-b-c.slice`` is ``/a.slice/a-b.slice/a-b-c.slice``."""
    if not slice_name.endswith(".slice"):
        raise ValueError(f"not a slice: {slice_name!r}")
    stem = slice_name[: -len(".slice")]
    if stem == "-":
        return "/"
    parts = stem.split("-")
    return "/" + "/".join("-".join(parts[: i + 1]) + ".slice" for i in range(len(parts)))
