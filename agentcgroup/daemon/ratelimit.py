"""Per-uid budgets over time: how many requests a uid may have handled, how many log lines it may cause.

A token bucket per uid: ``rate`` tokens a second, at most ``burst`` saved up; a request line or a new
connection takes one. A uid out of tokens is not answered faster: its connections are not read until the
bucket refills (a flood waits on itself; its well-formed requests are served a little later) and a new
connection of it is closed unread. A protocol violation (more fds than a request may carry, a line over the
limit) costs :data:`VIOLATION_COST` tokens: a uid that keeps sending them spends most of its time refused at
once, unread, which is the daemon's cheapest answer. Log lines caused by a uid (refused requests,
closed connections) have a budget too; what is over it is counted and summed up in one line.
"""

from __future__ import annotations

import logging
import time

log = logging.getLogger("agentcgroup")

#: tokens a protocol violation costs its uid (a well-formed request costs one)
VIOLATION_COST = 50


class Buckets:
    def __init__(self, clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self._clock = clock
        self._level: dict[int, tuple[float, float]] = {}  # uid -> (tokens, at)

    def take(self, uid: int, rate: float | None, burst: float | None = None) -> bool:
        """Spend one token of ``uid``'s; False when it has none (``rate`` None: no limit)."""
        if rate is None:
            return True
        burst = burst if burst is not None else rate
        now = self._clock()
        tokens, at = self._level.get(uid, (burst, now))
        tokens = min(burst, tokens + (now - at) * rate)
        if tokens < 1:
            self._level[uid] = (tokens, now)
            return False
        self._level[uid] = (tokens - 1, now)
        if len(self._level) > 65536:  # uids come and go: forget the full buckets
            self._level = {u: v for u, v in self._level.items() if v[0] < burst}
        return True

    def charge(self, uid: int, rate: float | None, n: float, burst: float | None = None) -> None:
        """Spend ``n`` tokens of ``uid``'s at once (a protocol violation costs more than a request): the bucket
        may go down to ``-burst``, so that a uid that keeps misbehaving is refused for up to two bursts' time,
        at once and unread, at the cost of an accept."""
        if rate is None:
            return
        burst = burst if burst is not None else rate
        now = self._clock()
        tokens, at = self._level.get(uid, (burst, now))
        tokens = min(burst, tokens + (now - at) * rate)
        self._level[uid] = (max(-burst, tokens - n), now)

    def wait(self, uid: int, rate: float) -> float:
        """Seconds until ``uid`` has a token again."""
        tokens, _ = self._level.get(uid, (1.0, 0.0))
        return max(0.001, (1 - tokens) / rate)


class LogBudget:
    """At most ``per_window`` lines per uid (root: no limit) and window; the rest become one summary line."""

    def __init__(self, per_window: int = 100, window_s: float = 10.0, clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self.per_window, self.window_s, self._clock = per_window, window_s, clock
        self._seen: dict[int, list[float | int]] = {}  # uid -> [window start, lines, suppressed]

    def allow(self, uid: int) -> bool:
        if uid == 0:  # root's own lines are never suppressed
            return True
        now = self._clock()
        w = self._seen.get(uid)
        if w is None or now - w[0] >= self.window_s:
            if w is not None and w[2]:
                log.warning("event=log-suppressed uid=%d lines=%d window_s=%g", uid, w[2], self.window_s)
            w = self._seen[uid] = [now, 0, 0]
            if len(self._seen) > 4096:
                self._seen = {uid: w}
        if w[1] < self.per_window:
            w[1] += 1
            return True
        w[2] += 1
        return False
