"""Per-interval CPU (cores) from cumulative readings.

Two inputs occur:

* ``podman stats --no-stream`` prints ``cpu_percent`` as the *average since the container started*, not
  the last second's rate. ``percent / 100 * elapsed`` is then cumulative CPU seconds, and differencing it
  gives each interval's rate. The container's start is not in the data, so elapsed time is counted from
  the first sample (the sampler starts with the container; on the published traces no later start fits
  the data better). A start ``x`` seconds earlier would change a rate by ``x * (change of the average) /
  interval``: visible in the first seconds, when the average moves fast, negligible later. The readings
  have two decimals, so the rate's resolution is about ``0.01 % * elapsed / interval``.
* Our recordings carry cgroup ``usage_usec`` (cumulative microseconds), differenced directly.

Both go through a running maximum first, so rounding noise never yields negative CPU.
"""

from __future__ import annotations

from collections.abc import Sequence


def _running_max(values: Sequence[float]) -> list[float]:
    out: list[float] = []
    top = float("-inf")
    for v in values:
        top = max(top, v)
        out.append(top)
    return out


def _rates(t: Sequence[float], cum_s: Sequence[float]) -> list[float | None]:
    """Rate over each interval; index 0 is left to the caller."""
    rates: list[float | None] = [None]
    for i in range(1, len(t)):
        dt = t[i] - t[i - 1]
        rates.append((cum_s[i] - cum_s[i - 1]) / dt if dt > 0 else None)
    return rates


def cores_from_cumulative_percent(
    t: Sequence[float], percent: Sequence[float], offset: float = 0.0
) -> list[float | None]:
    """Cores per interval from "average since start" percentages; the start is ``offset`` seconds
    before the first sample. ``cores[0]`` is the first reading itself (the average since start)."""
    if not t:
        return []
    t0 = t[0] - offset
    cum = _running_max([p / 100.0 * (ti - t0) for ti, p in zip(t, percent, strict=False)])
    cores = _rates(t, cum)
    cores[0] = percent[0] / 100.0
    return cores


def cores_from_usage_usec(t: Sequence[float], usage_usec: Sequence[int | None]) -> list[float | None]:
    """Cores per interval from cumulative cgroup CPU usage in microseconds (``None`` where unknown)."""
    cores: list[float | None] = [None] * len(t)
    prev: tuple[float, float] | None = None
    top = float("-inf")
    for i, (ti, u) in enumerate(zip(t, usage_usec, strict=False)):
        if u is None:
            continue
        top = max(top, u / 1e6)
        if prev is not None and ti > prev[0]:
            cores[i] = (top - prev[1]) / (ti - prev[0])
        prev = (ti, top)
    return cores
