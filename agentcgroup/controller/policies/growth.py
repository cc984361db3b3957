"""Short usage series and what they predict: how fast a budget or a call grows, and when a budget is full.

A :class:`Series` keeps the last ``window`` seconds of (time, bytes) samples per key (a budget's scope, a call's
id), fed from the figures a policy already reads at each event and tick. The rate is the slope of a least-squares
line through them (noise of a few pages does not make a call look like it grows); under two samples or too
short a span it is 0 (unknown: no prediction).
"""

from __future__ import annotations

import collections
import math

#: the least span of samples a rate is read from (s)
MIN_SPAN = 0.02


class Series:
    def __init__(self, window: float) -> None:
        self.window = window
        self._samples: dict[str, collections.deque[tuple[float, int]]] = {}

    def add(self, key: str, now: float, value: int) -> None:
        s = self._samples.setdefault(key, collections.deque())
        if s and s[-1][0] >= now:
            s[-1] = (s[-1][0], value)  # the same moment read twice: the last reading
        else:
            s.append((now, value))
        while s and now - s[0][0] > self.window:
            s.popleft()

    def forget(self, key: str) -> None:
        self._samples.pop(key, None)

    def keys(self) -> list[str]:
        return list(self._samples)

    def rate(self, key: str) -> float:
        """Bytes per second over the window (least squares); 0 when it cannot tell."""
        s = self._samples.get(key)
        if not s or len(s) < 2 or s[-1][0] - s[0][0] < MIN_SPAN:
            return 0.0
        n = len(s)
        mt = sum(t for t, _ in s) / n
        mv = sum(v for _, v in s) / n
        var = sum((t - mt) ** 2 for t, _ in s)
        if var <= 0:
            return 0.0
        return sum((t - mt) * (v - mv) for t, v in s) / var


def time_to_limit(usage: int, limit: int, growth: float) -> float:
    """Seconds until ``usage`` growing at ``growth`` B/s reaches ``limit`` (0 if there, inf if not growing)."""
    if usage >= limit:
        return 0.0
    if growth <= 0:
        return math.inf
    return (limit - usage) / growth
