"""Units, parsed and printed in one place.

Conventions (written down once):

* Sizes are ``int`` bytes. ``MAX_BYTES`` (2**63-1) means unlimited: it compares above any real size, so
  ``min()`` and ``<`` just work; backends write it as ``max`` (v2) or ``-1`` (v1).
* Size suffixes are binary, like the kernel's ``memparse`` and Docker's ``-m``: ``K``/``KB``/``KiB`` = 1024,
  ``M``/``MB``/``MiB`` = 1024**2, ``G``, ``T`` likewise; no suffix means bytes; ``max`` means unlimited.
* CPU is a float number of cores: ``50%`` (or ``50``) is half a core, ``200%`` two cores, ``max`` unlimited
  (``None``).
* Durations are float seconds: ``30``, ``30s``, ``500ms``, ``2m``, ``1h``; at most ``MAX_DURATION`` (7 days).
* Bounds, so that no value a user can type reaches the kernel or a timer out of range: CPU at most
  ``MAX_CPU_CORES`` (1000 cores, ``100000%``), durations at most ``MAX_DURATION``. NaN and infinities are
  refused. (The controller's loop waits for long timers in steps: what the API hands it directly is not bounded
  by epoll either.)
"""

from __future__ import annotations

import math
import re

from .errors import InvalidValue

MAX_BYTES = 2**63 - 1
#: the longest duration accepted anywhere (a timeout, a grace, an intent's duration): 7 days. Timers beyond
#: ~24.8 days overflow a poll() timeout in milliseconds; nothing an agent runs needs more than a week
MAX_DURATION = 7 * 24 * 3600.0
#: the largest CPU quota accepted: 1000 cores (a quota above the host's CPUs is unlimited in effect)
MAX_CPU_CORES = 1000.0
#: v1 reports "no limit" as LONG_MAX rounded down to a page; anything this large is unlimited.
_UNLIMITED_FLOOR = 2**62

_SIZE_RE = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*([kmgtp]?)(i?b?)\s*$", re.IGNORECASE)
_SHIFT = {"": 0, "k": 10, "m": 20, "g": 30, "t": 40, "p": 50}


def parse_size(text: str | int, what: str = "size") -> int:
    """Parse ``512M``, ``2GiB``, ``1.5g``, ``4096`` or ``max`` into bytes (``MAX_BYTES`` for max).

    Raises :class:`InvalidValue` naming the text for anything else, zero or negative sizes included.
    """
    if isinstance(text, bool):
        raise InvalidValue(what, text, "expected a size such as 512M, 2GiB or max")
    if isinstance(text, int):
        if text <= 0:
            raise InvalidValue(what, text, "must be a positive number of bytes")
        return min(text, MAX_BYTES)
    s = str(text).strip()
    if s.lower() in ("max", "unlimited", "inf"):
        return MAX_BYTES
    if s.startswith("-"):
        raise InvalidValue(what, text, "a size cannot be negative")
    m = _SIZE_RE.match(s)
    if not m:
        raise InvalidValue(what, text, "expected a size such as 512M, 2GiB, 1.5G, 4096 (bytes) or max")
    number, unit = float(m.group(1)), m.group(2).lower()
    if not unit and m.group(3).lower() not in ("", "b"):  # "12B" is bytes; "12iB" is nothing
        raise InvalidValue(what, text, "expected a size such as 512M, 2GiB, 1.5G, 4096 (bytes) or max")
    value = number * (1 << _SHIFT[unit])
    if value < 1:
        raise InvalidValue(what, text, "must be at least 1 byte")
    if value >= MAX_BYTES:
        return MAX_BYTES
    return int(value)


def parse_kernel_size(text: str) -> int:
    """A size as the kernel prints it: ``max`` or a decimal byte count (v1 prints ~LONG_MAX for none)."""
    s = text.strip()
    if s == "max":
        return MAX_BYTES
    value = int(s)
    return MAX_BYTES if value >= _UNLIMITED_FLOOR else value


def format_size(n: int | float | None) -> str:
    """Human form: ``256 MiB``, ``1.5 GiB``, ``max`` for unlimited, ``-`` for unknown."""
    if n is None:
        return "-"
    if n >= MAX_BYTES:
        return "max"
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            if unit == "B":
                return f"{int(n)} B"
            text = f"{n:.1f}".rstrip("0").rstrip(".")
            return f"{text} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def format_size_arg(n: int) -> str:
    """Compact form a user can pass back on a command line: ``512M``, ``3G``, ``max``."""
    if n >= MAX_BYTES:
        return "max"
    for suffix, shift in (("T", 40), ("G", 30), ("M", 20), ("K", 10)):
        if n >= (1 << shift) and n % (1 << shift) == 0:
            return f"{n >> shift}{suffix}"
    for suffix, shift in (("G", 30), ("M", 20)):
        if n >= (1 << shift):
            return f"{math.ceil(n / (1 << shift))}{suffix}"
    return str(n)


def _above_zero(text: str | float, what: str, expected: str, too_small: str) -> float:
    if isinstance(text, bool):
        raise InvalidValue(what, text, expected)
    try:
        value = float(text)
    except (ValueError, TypeError, OverflowError):
        raise InvalidValue(what, text, expected) from None
    if not math.isfinite(value) or value <= 0:
        raise InvalidValue(what, text, too_small)
    return value


#: the range of a scale factor (a replay's time, memory or CPU scale)
FACTOR_MIN, FACTOR_MAX = 1e-6, 1e6


def parse_factor(text: str | float, what: str = "factor") -> float:
    """A scale factor: a finite number above zero (``10``, ``0.5``), from 1e-6 to 1e6."""
    value = _above_zero(text, what, "expected a number above zero, e.g. 10 or 0.5", "must be a number above zero")
    if not FACTOR_MIN <= value <= FACTOR_MAX:
        raise InvalidValue(what, text, f"must be from {FACTOR_MIN:g} to {FACTOR_MAX:g}")
    return value


def parse_cpu(text: str | float, what: str = "cpu") -> float | None:
    """Parse ``20%``, ``20`` (percent of one core), ``250%`` or ``max`` into cores (``None`` = unlimited)."""
    s = str(text).strip().lower()
    if s in ("max", "unlimited"):
        return None
    if s.endswith("%"):
        s = s[:-1].strip()
    pct = _above_zero(s, what, "expected a percentage of one core, e.g. 50% or 200%", "must be more than 0% of a core")
    if pct < 0.1:
        raise InvalidValue(what, text, "must be at least 0.1% of a core (the kernel's 1 ms per second)")
    if pct / 100.0 > MAX_CPU_CORES:
        raise InvalidValue(what, text, f"must be at most {MAX_CPU_CORES * 100:.0f}% ({MAX_CPU_CORES:.0f} cores)")
    return pct / 100.0


def format_cpu(cores: float | None) -> str:
    return "max" if cores is None else f"{cores * 100:g}%"


_DUR_RE = re.compile(r"^\s*(\d+(?:\.\d+)?|\.\d+)\s*(ms|s|m|h)?\s*$", re.IGNORECASE)
_DUR_SCALE = {None: 1.0, "ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str | float, what: str = "duration") -> float:
    """Parse ``30``, ``30s``, ``500ms``, ``2m`` or ``1h`` into seconds (> 0, at most :data:`MAX_DURATION`)."""
    if isinstance(text, bool) or not isinstance(text, (int, float, str)):
        raise InvalidValue(what, text, "expected seconds, e.g. 30, 2.5s, 500ms or 2m")
    if isinstance(text, (int, float)):
        try:
            value = float(text)
        except OverflowError:
            value = math.inf
        if not math.isfinite(value) or value <= 0:
            raise InvalidValue(what, text, "must be a positive, finite number of seconds")
    else:
        m = _DUR_RE.match(text)
        if not m:
            raise InvalidValue(what, text, "expected seconds, e.g. 30, 2.5s, 500ms or 2m")
        value = float(m.group(1)) * _DUR_SCALE[m.group(2).lower() if m.group(2) else None]
        if value <= 0:
            raise InvalidValue(what, text, "must be more than zero")
    if value > MAX_DURATION:
        raise InvalidValue(what, text, f"must be at most {MAX_DURATION / 86400:g} days ({MAX_DURATION:g} s)")
    return value


def parse_count(text: str | int, what: str = "count") -> int:
    """A positive integer (e.g. ``pids``), below 2**31 (what the kernel's counters take)."""
    if isinstance(text, bool) or not isinstance(text, (int, str)):
        raise InvalidValue(what, text, "expected a positive whole number")
    try:
        value = int(str(text).strip())
    except ValueError:
        raise InvalidValue(what, text, "expected a positive whole number") from None
    if value <= 0:
        raise InvalidValue(what, text, "must be a positive whole number")
    if value >= 2**31:
        raise InvalidValue(what, text, "must be below 2147483648")
    return value


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"
