"""Memory sizes as podman/docker ``stats`` print them: ``185.9MB``, ``1.073GB``, ``8.3kB``, ``0B``.

Trace semantics, not user input (for that see :mod:`agentcgroup.units`): ``kB``/``MB``/``GB`` are decimal
(powers of 1000, as docker's ``units.HumanSize`` prints them), ``KiB``/``MiB``/``GiB`` binary. The
paper's own summaries (``summary.memory_mb``) agree with the decimal reading.
"""

from __future__ import annotations

import math
import re

_SIZE = re.compile(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*$")
_FACTOR = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_trace_size(text: str) -> tuple[int, str]:
    """Return ``(bytes, unit)`` for a size such as ``185.9MB``; raise ``ValueError`` naming the text."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"not a memory size: {text!r}")
    unit = m.group(2)
    factor = _FACTOR.get(unit.lower())
    if factor is None:
        raise ValueError(f"unknown memory unit {unit!r} in {text!r}")
    value = float(m.group(1)) * factor
    if not value < 2**63:
        raise ValueError(f"not a memory size: {text!r}")
    return round(value), unit or "B"


def parse_usage(text: str) -> tuple[int, str]:
    """Parse the used part of ``"185.9MB / 134.5GB"`` (the limit after the slash is ignored)."""
    return parse_trace_size(text.split("/", 1)[0])


def parse_percent(text: str | float | int) -> float:
    """``"61.89%"`` -> 61.89; numbers pass through. Raises ``ValueError`` naming the text."""
    if isinstance(text, bool):
        raise ValueError(f"not a percentage: {text!r}")
    if isinstance(text, (int, float)):
        value = float(text)
    else:
        s = str(text).strip().rstrip("%").strip()
        try:
            value = float(s)
        except ValueError:
            raise ValueError(f"not a percentage: {text!r}") from None
    if not math.isfinite(value) or abs(value) > 1e9:
        raise ValueError(f"not a percentage: {text!r}")
    return value
