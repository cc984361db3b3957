"""The resource samples of the paper's format (``resources.json``) turned into :class:`Samples`.

Quirks handled (each noted on the task): ``epoch`` is the clock, ``timestamp`` is local time without a
zone (used only when ``epoch`` is missing, shifted by the offset learnt from samples that have both);
memory units vary and are decimal; ``cpu_percent`` is an average since the container started
(differenced, see :mod:`.cumulative_cpu`); trailing ``0B / 0B`` samples taken after the container exited
are dropped (the paper's own ``summary.memory_mb`` leaves them out too).
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any

from ._sizes import parse_percent, parse_usage
from .cumulative_cpu import cores_from_cumulative_percent
from .model import Samples, Task


def _naive_seconds(text: str) -> float | None:
    """Seconds of a zone-less ISO time read as if it were UTC (an offset is applied by the caller)."""
    try:
        dt = datetime.fromisoformat(text)
    except (TypeError, ValueError, OverflowError):
        return None
    return (dt.replace(tzinfo=None) - datetime(1970, 1, 1)).total_seconds()


def _zone_offset(raw: list[dict[str, Any]]) -> float | None:
    """Local-minus-UTC seconds, learnt from a sample that carries both ``epoch`` and ``timestamp``."""
    for s in raw:
        epoch, naive = _epoch(s), _naive_seconds(s.get("timestamp", ""))
        if epoch is not None and naive is not None:
            return round((naive - epoch) / 900) * 900.0  # zones are whole quarter hours
    return None


def _epoch(s: dict[str, Any]) -> float | None:
    """A sample's ``epoch``: a finite time after 1970 (NaN, infinities and the like are no time)."""
    epoch = s.get("epoch") if isinstance(s, dict) else None
    if isinstance(epoch, bool) or not isinstance(epoch, (int, float)):
        return None
    try:
        value = float(epoch)
    except OverflowError:
        return None
    return value if math.isfinite(value) and 0 < value < 1e11 else None


def _sample_time(s: dict[str, Any], offset: float | None) -> tuple[float | None, bool]:
    """Return (epoch seconds, taken from the local timestamp?)."""
    epoch = _epoch(s)
    if epoch is not None:
        return epoch, False
    naive = _naive_seconds(s.get("timestamp", ""))
    if naive is None:
        return None, False
    return naive - (offset or 0.0), True


def parse_samples(raw: list[dict[str, Any]], task: Task) -> Samples:
    """Parse the ``samples`` list; quirks go to ``task.note``."""
    offset = _zone_offset(raw)
    rows: list[tuple[float, int, float]] = []
    units: set[str] = set()
    unreadable = exited = from_local = 0
    for s in raw:
        t, local = _sample_time(s, offset)
        try:
            mem, unit = parse_usage(str(s["mem_usage"]))
            pct = parse_percent(s["cpu_percent"])
        except (KeyError, ValueError):
            unreadable += 1
            continue
        if t is None:
            unreadable += 1
            continue
        if mem == 0 and str(s["mem_usage"]).replace(" ", "").startswith("0B/0B"):
            exited += 1
            continue
        from_local += local
        units.add(unit)
        rows.append((t, mem, pct))
    rows.sort(key=lambda r: r[0])
    if unreadable:
        task.note(f"{unreadable} resource samples unreadable (skipped)")
    if exited:
        task.note(f"{exited} samples after the container exited ('0B / 0B') dropped")
    if from_local:
        how = "with the zone learnt from other samples" if offset is not None else "taken as UTC (zone unknown)"
        task.note(f"{from_local} samples without epoch: local timestamp used, {how}")
    if len(units) > 1:
        task.note(f"mixed memory units {', '.join(sorted(units))} (read as decimal)")
    times = [r[0] for r in rows]
    cores = cores_from_cumulative_percent(times, [r[2] for r in rows])
    if rows:
        task.note("cpu_percent is an average since container start: differenced into per-interval cores")
    if 0 < len(rows) < 10:
        task.note(f"only {len(rows)} resource samples")
    return Samples(t=tuple(times), mem_bytes=tuple(r[1] for r in rows), cpu_cores=tuple(cores))
