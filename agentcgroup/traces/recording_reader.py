"""Reader of ``agentcg-recording`` files -> :class:`Task` (the format is in docs/recording-format.md).

Tolerant in the ways an append-only file needs: a truncated last line (the writer was killed), no
``end`` record, calls that never ended, unknown record types and keys (newer minor versions) are quirks,
not errors. A file that is not a recording, or of a newer major version, raises :class:`RecordingError`.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from .categories import classify
from .cumulative_cpu import cores_from_usage_usec
from .model import RECORDING_FORMAT, Samples, Task, ToolCall
from .recording import FORMAT, VERSION

_KNOWN = {"header", "sample", "call_start", "call_end", "end"}


class RecordingError(ValueError):
    """The file is not an agentcg recording this version can read; names the file."""


def is_recording(path: str | Path) -> bool:
    """True when the file's first line is an ``agentcg-recording`` header."""
    try:
        with Path(path).open(encoding="utf-8") as f:
            head = json.loads(f.readline())
    except (OSError, ValueError, UnicodeDecodeError, RecursionError):
        return False
    return isinstance(head, dict) and head.get("type") == "header" and head.get("format") == FORMAT


def _records(path: Path, task: Task) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        lines = [ln for ln in f.read().split("\n") if ln.strip()]
    out: list[dict[str, Any]] = []
    bad = 0
    for i, line in enumerate(lines):
        try:
            rec = json.loads(line)
        except (ValueError, RecursionError):
            if i == len(lines) - 1 and i > 0:
                task.note("last line truncated (the writer did not finish it)")
            else:
                bad += 1
            continue
        if isinstance(rec, dict):
            out.append(rec)
        else:
            bad += 1
    if bad:
        task.note(f"{bad} unreadable lines skipped")
    return out


def _check_header(path: Path, rec: dict[str, Any] | None) -> dict[str, Any]:
    if not rec or rec.get("type") != "header" or rec.get("format") != FORMAT:
        raise RecordingError(f"{path}: not an {FORMAT} file (no header on the first line)")
    version = rec.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version > VERSION or version < 1:
        raise RecordingError(f"{path}: {FORMAT} version {version!r} is not supported (this reader: {VERSION})")
    return rec


def _samples(rows: list[dict[str, Any]]) -> Samples:
    rows = sorted(
        (r for r in rows if _num(r.get("t")) is not None and _num(r.get("mem_bytes")) is not None),
        key=lambda r: r["t"],
    )
    t = tuple(float(r["t"]) for r in rows)
    peaks = tuple(r.get("mem_peak_bytes") for r in rows)
    return Samples(
        t=t,
        mem_bytes=tuple(int(r["mem_bytes"]) for r in rows),
        cpu_cores=tuple(cores_from_usage_usec(t, [r.get("cpu_usec") for r in rows])),
        mem_peak_bytes=peaks if any(p is not None for p in peaks) else None,
    )


def _num(value: Any) -> float | None:
    """A finite number of a plausible size (NaN, infinities and values past 2**63 are no figure), else None."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        f = float(value)
    except OverflowError:
        return None
    return f if math.isfinite(f) and abs(f) < 2**63 else None


def _failed(outcome: dict[str, Any]) -> bool | None:
    if outcome.get("killed"):
        return True
    code = outcome.get("exit_code")
    return None if _num(code) is None else code != 0


def read_recording(path: str | Path) -> Task:
    """Read one recording file."""
    p = Path(path)
    task = Task(name=p.stem, source=str(p), fmt=RECORDING_FORMAT)
    records = _records(p, task)
    header = _check_header(p, records[0] if records else None)
    task.name = str(header.get("session") or p.stem)
    task.interval_s = _num(header.get("interval_s"))
    task.startup_s = _num(header.get("startup_s"))
    task.meta.update(host=header.get("host", {}), **({"meta": header["meta"]} if "meta" in header else {}))

    session_rows: list[dict[str, Any]] = []
    call_rows: dict[str, list[dict[str, Any]]] = defaultdict(list)
    calls: dict[str, ToolCall] = {}
    end: dict[str, Any] | None = None
    unknown = 0
    for rec in records[1:]:
        kind, t = rec.get("type"), _num(rec.get("t"))
        if kind == "sample":
            (call_rows[rec["call"]] if isinstance(rec.get("call"), str) else session_rows).append(rec)
        elif kind == "call_start" and t is not None and isinstance(rec.get("call"), str):
            command = rec.get("command") if isinstance(rec.get("command"), str) else None
            calls[rec["call"]] = ToolCall(
                call_id=rec["call"],
                tool=str(rec.get("tool") or "command"),
                start=t,
                command=command,
                shell=True,
                category=classify(command) if command else None,
            )
        elif kind == "call_end" and t is not None and rec.get("call") in calls:
            call = calls[rec["call"]]
            call.end = t
            outcome = rec.get("outcome")
            call.outcome = outcome if isinstance(outcome, dict) else {}
            call.failed = _failed(call.outcome)
        elif kind == "end":
            end = rec
        elif kind not in _KNOWN:
            unknown += 1
    if unknown:
        task.note(f"{unknown} records of unknown type ignored")

    task.samples = _samples(session_rows)
    for call_id, rows in call_rows.items():
        if call_id in calls:
            calls[call_id].samples = _samples(rows)
    task.calls = sorted(calls.values(), key=lambda c: c.start)
    unfinished = sum(1 for c in task.calls if c.end is None)
    if unfinished:
        task.note(f"{unfinished} tool calls never ended")
    task.meta["events"] = _events(session_rows)
    _wall_time(task, header, end)
    return task


def _events(rows: list[dict[str, Any]]) -> dict[str, Any]:
    events: dict[str, Any] = {}
    for key in ("throttle_events", "freeze_events", "kill_events", "psi_some_avg10", "psi_full_avg10"):
        values = [r[key] for r in rows if _num(r.get(key)) is not None]
        if values:
            events[key] = max(values)
    return events


def _wall_time(task: Task, header: dict[str, Any], end: dict[str, Any] | None) -> None:
    if end is None:
        task.note("no end record (the recording was not closed)")
        return
    wall = _num(end.get("agent_wall_s"))
    started, ended = _num(header.get("started_at")), _num(end.get("t"))
    if wall is None and started is not None and ended is not None:
        wall = ended - started
    task.agent_wall_s = wall
