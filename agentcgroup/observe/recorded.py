"""``agentcg top --recording FILE --at SECONDS``: the view as it was ``SECONDS`` after a recording started
(docs/recording-format.md), as ``below`` replays its own recordings. Several files (one per session) make one
view; the time is counted from the earliest start.

What a recording knows: each session's and call's last sample at or before that moment (memory, peak, CPU,
PSI), which calls had started and not ended, and the calls that had been killed (the last actions). A call's
phase is ``running`` unless its session's freeze count rose while it ran and had not been followed by its end
(a recording has no per-call phase)."""

from __future__ import annotations

import json
from typing import Any

from ..errors import InvalidValue


def _read(path: str) -> list[dict[str, Any]]:
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as exc:
        raise InvalidValue("--recording", path, exc.strerror or str(exc)) from None
    records = []
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError:
            if i == len(lines) - 1:  # a write cut short
                break
            raise InvalidValue("--recording", path, f"line {i + 1} is not JSON") from None
        if isinstance(rec, dict):
            records.append(rec)
    if not records or records[0].get("type") != "header" or records[0].get("format") != "agentcg-recording":
        raise InvalidValue("--recording", path, "not an agentcg recording (its first line is no header)")
    return records


def recorded_view(paths: list[str], at: float) -> dict[str, Any]:
    files = [_read(p) for p in paths]
    start = min(float(f[0]["started_at"]) for f in files)
    when = start + at
    sessions, actions = [], []
    for recs in files:
        header = recs[0]
        name = str(header.get("session", "?"))
        last: dict[str | None, dict[str, Any]] = {}
        calls: dict[str, dict[str, Any]] = {}
        freezes_at_start: dict[str, int] = {}
        freezes = 0
        for r in sorted(recs[1:], key=lambda r: float(r.get("t", 0.0))):
            t = float(r.get("t", 0.0))
            if t > when:
                break
            kind, call = r.get("type"), r.get("call")
            if kind == "sample":
                last[call] = r
                if call is None:
                    freezes = int(r.get("freeze_events") or 0)
            elif kind == "call_start" and call is not None:
                calls[call] = {"t": t, "command": str(r.get("command", ""))}
                freezes_at_start[call] = freezes
            elif kind == "call_end" and call is not None:
                calls.pop(call, None)
                out = r.get("outcome") or {}
                if out.get("killed"):
                    actions.append({"t": t, "kind": "kill", "session": name, "call": call, "reason": out.get("reason")})
        rows = []
        for cid, c in calls.items():
            smp = last.get(cid, {})
            rows.append(
                {
                    "call_id": cid,
                    "command": c["command"],
                    "age_s": round(when - c["t"], 3),
                    "memory": smp.get("mem_bytes"),
                    "peak": smp.get("mem_peak_bytes"),
                    "cpu_s": None if smp.get("cpu_usec") is None else smp["cpu_usec"] / 1e6,
                    "phase": "frozen" if freezes > freezes_at_start[cid] else "running",
                }
            )
        smp = last.get(None, {})
        sessions.append(
            {
                "name": name,
                "priority": str((header.get("meta") or {}).get("priority", "-")),
                "budget": None,
                "memory": smp.get("mem_bytes"),
                "peak": smp.get("mem_peak_bytes"),
                "cpu_s": None if smp.get("cpu_usec") is None else smp["cpu_usec"] / 1e6,
                "psi_some": smp.get("psi_some_avg10"),
                "psi_full": smp.get("psi_full_avg10"),
                "calls": rows,
            }
        )
    actions.sort(key=lambda a: a["t"])
    return {"t": when, "backend": "recording", "sessions": sessions, "actions": actions[-12:]}
