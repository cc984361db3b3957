"""How ``agentcg top`` draws a view (:mod:`.view`) with rich: a header, one row per session (expandable to its
calls), the last actions with their reasons. Pure: a view in, a renderable out."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from ..units import format_size

#: sort orders, cycled by ``s``
SORTS = ("memory", "cpu", "name", "priority")
_PRIO = {"high": 0, "normal": 1, "low": 2}
_PHASE_STYLE = {"running": "green", "throttled": "yellow", "frozen": "bold cyan"}


def _size(n: Any) -> str:
    return "-" if n is None else format_size(int(n))


def _secs(s: Any) -> str:
    if s is None:
        return "-"
    s = float(s)
    return f"{s:.1f}s" if s < 600 else f"{s / 60:.0f}m"


def _psi(some: Any, full: Any) -> str:
    if some is None and full is None:
        return "-"
    return f"{some or 0:.1f}/{full or 0:.1f}"


def sort_sessions(sessions: list[dict[str, Any]], order: str) -> list[dict[str, Any]]:
    if order == "cpu":
        return sorted(sessions, key=lambda s: -(s.get("cpu_s") or 0.0))
    if order == "name":
        return sorted(sessions, key=lambda s: s["name"])
    if order == "priority":
        return sorted(sessions, key=lambda s: (_PRIO.get(s["priority"], 9), s["name"]))
    return sorted(sessions, key=lambda s: -(s.get("memory") or 0))


def render(view: dict[str, Any], order: str = "memory", expanded: bool = True, source: str = "") -> RenderableType:
    sessions = view.get("sessions", [])
    ncalls = sum(len(s.get("calls", [])) for s in sessions)
    head = Text()
    head.append("agentcg top", style="bold")
    stamp = time.strftime("%H:%M:%S", time.localtime(view.get("t", time.time())))
    head.append(f"  {stamp}  {source or view.get('backend', '')}")
    if view.get("budget") is not None:
        head.append(f"  budget {_size(view['budget'])} ({_size(view.get('memory'))} used)")
    head.append(f"  {len(sessions)} session(s), {ncalls} call(s)  sort: {order}")
    keys = Text("q quit  s sort  e expand/collapse calls", style="dim")

    table = Table(box=None, pad_edge=False, expand=False, header_style="bold reverse")
    for col, justify, width in (  # every figure keeps its width; the command takes what is left
        ("SESSION / CALL", "left", 16),
        ("PRIO", "left", 6),
        ("STATE", "left", 9),
        ("BUDGET", "right", 9),
        ("MEM", "right", 10),
        ("PEAK", "right", 10),
        ("CPU", "right", 7),
        ("PSI s/f", "right", 9),
        ("AGE/CALLS", "right", 9),
    ):
        table.add_column(col, justify=justify, no_wrap=True, min_width=width)  # type: ignore[arg-type]
    table.add_column("COMMAND", no_wrap=True, overflow="ellipsis", max_width=60)
    for s in sort_sessions(sessions, order):
        calls = s.get("calls", [])
        phases = sorted({c["phase"] for c in calls})
        table.add_row(
            Text(s["name"], style="bold"),
            s["priority"],
            ",".join(phases) or "idle",
            _size(s.get("budget")),
            _size(s.get("memory")),
            _size(s.get("peak")),
            _secs(s.get("cpu_s")),
            _psi(s.get("psi_some"), s.get("psi_full")),
            str(len(calls)),
            "",
        )
        if not expanded:
            continue
        for c in sorted(calls, key=lambda c: -(c.get("memory") or 0)):
            table.add_row(
                f"  └ {c['call_id']}",
                "",
                Text(c["phase"], style=_PHASE_STYLE.get(c["phase"], "")),
                "",
                _size(c.get("memory")),
                _size(c.get("peak")),
                _secs(c.get("cpu_s")),
                "",
                _secs(c.get("age_s")),
                " ".join(str(c.get("command", "")).split())[:60],  # one line, whatever the command
            )
    actions = Table(box=None, pad_edge=False, show_header=True, header_style="bold", title_justify="left")
    for col in ("TIME", "ACTION", "SESSION/CALL", "BY", "REASON"):
        actions.add_column(col, no_wrap=col != "REASON")
    for a in reversed(view.get("actions", [])):
        t = a.get("t") or 0.0
        actions.add_row(
            time.strftime("%H:%M:%S", time.localtime(t)),
            Text(a["kind"], style="bold red" if a["kind"] in ("kill", "refuse") else "yellow"),
            a["session"] + (f"/{a['call']}" if a.get("call") else ""),
            a.get("policy") or "",
            a.get("reason") or "",
        )
    parts: list[RenderableType] = [head, keys, Text(""), table, Text("")]
    parts.append(Text("last actions", style="bold") if view.get("actions") else Text("no actions yet", style="dim"))
    if view.get("actions"):
        parts.append(actions)
    return Group(*parts)
