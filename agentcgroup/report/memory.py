"""Memory (and CPU) profile of tasks: peak-to-average, bursts inside tool calls, rise and fall rates,
how many sessions fit on a host by peak vs by average.

Peaks between samples are missed, so every peak and rate here is a lower bound.
"""

from __future__ import annotations

from typing import Any

from ..traces.model import Task
from .distribution import describe, mean
from .windows import in_call_mask

#: Samples above this are "high memory" (the paper's burst threshold, 300 MB).
BURST_BYTES = 300 * 10**6
#: A spike lasts while memory stays at or above this fraction of the task's peak.
SPIKE_FRACTION = 0.8
#: Host size for the concurrency estimate (the paper's machine: 128 GB).
HOST_BYTES = 128 * 10**9


def task_memory(task: Task) -> dict[str, Any]:
    """Average, peak, early baseline, peak-to-average and the longest near-peak spike of one task."""
    mem, t = task.samples.mem_bytes, task.samples.t
    avg, peak = sum(mem) / len(mem), max(mem)
    early = mem[: max(1, len(mem) // 10)]
    run = best = 0
    for m in mem:
        run = run + 1 if m >= SPIKE_FRACTION * peak else 0
        best = max(best, run)
    cores = [c for c in task.samples.cpu_cores[1:] if c is not None]
    return {
        "avg_bytes": avg,
        "peak_bytes": peak,
        "peak_to_avg": peak / avg if avg else None,
        "baseline_bytes": sum(early) / len(early),
        "peak_at": (t[mem.index(peak)] - t[0]) / task.sampled_s if task.sampled_s else None,
        "spike_s": best * (task.interval_s or 1.0),
        "cpu_avg_cores": mean(cores),
        "cpu_peak_cores": max(cores) if cores else None,
    }


def _rates(task: Task) -> tuple[float | None, float | None, list[float]]:
    """(largest rise, largest fall, all |rates|) in bytes/s over consecutive samples close in time."""
    s, limit = task.samples, 2.0 * (task.interval_s or 1.0)
    rates = [
        (s.mem_bytes[i] - s.mem_bytes[i - 1]) / (s.t[i] - s.t[i - 1])
        for i in range(1, len(s))
        if 0 < s.t[i] - s.t[i - 1] <= limit
    ]
    if not rates:
        return None, None, []
    return max(0.0, max(rates)), max(0.0, -min(rates)), [abs(r) for r in rates]


def bursts(tasks: list[Task], threshold: int = BURST_BYTES) -> dict[str, Any]:
    """Share of high-memory samples inside tool calls, over tasks whose calls have end times."""
    total = in_tool = high = high_in_tool = used = 0
    for t in tasks:
        if not t.calls or any(c.end is None for c in t.calls):
            continue
        used += 1
        for m, inside in zip(t.samples.mem_bytes, in_call_mask(t), strict=False):
            total += 1
            in_tool += inside
            if m > threshold:
                high += 1
                high_in_tool += inside
    return {
        "threshold_bytes": threshold,
        "tasks": used,
        "samples": total,
        "high_samples": high,
        "high_samples_in_tool": high_in_tool,
        "in_tool_share": high_in_tool / high if high else None,
        "tool_sample_share": in_tool / total if total else None,
    }


def memory_profile(tasks: list[Task], host_bytes: int = HOST_BYTES) -> dict[str, Any]:
    """Per-task memory figures, their summaries, the top bursts and rates, and the concurrency estimate."""
    per_task = {t.label: task_memory(t) for t in tasks}
    rises: dict[str, float] = {}
    falls: dict[str, float] = {}
    all_rates: list[float] = []
    for t in tasks:
        rise, fall, rates = _rates(t)
        if rise is not None and fall is not None:
            rises[t.label], falls[t.label] = rise, fall
            per_task[t.label].update(rise_bytes_per_s=rise, fall_bytes_per_s=fall)
        all_rates.extend(rates)
    ratios = {k: v["peak_to_avg"] for k, v in per_task.items() if v["peak_to_avg"] is not None}
    top = sorted(per_task, key=lambda k: -(per_task[k]["peak_to_avg"] or 0))[:5]
    peaks = [v["peak_bytes"] for v in per_task.values()]
    avgs = [v["avg_bytes"] for v in per_task.values()]
    return {
        "per_task": per_task,
        "peak_to_avg": describe(ratios.values()),
        "peak_to_avg_max_task": max(ratios, key=lambda k: ratios[k]) if ratios else None,
        "top_bursts": [
            {"task": k, **{f: per_task[k][f] for f in ("peak_bytes", "avg_bytes", "peak_to_avg", "spike_s")}}
            for k in top
        ],
        "peak_bytes": describe(peaks),
        "avg_bytes": describe(avgs),
        "peak_spread": max(peaks) / min(peaks) if peaks and min(peaks) else None,
        "rise_max_bytes_per_s": max(rises.values()) if rises else None,
        "rise_max_task": max(rises, key=lambda k: rises[k]) if rises else None,
        "fall_max_bytes_per_s": max(falls.values()) if falls else None,
        "fall_max_task": max(falls, key=lambda k: falls[k]) if falls else None,
        "rate_p95_bytes_per_s": describe(all_rates)["p95"],
        "cpu_avg_cores": describe(v["cpu_avg_cores"] for v in per_task.values()),
        "cpu_peak_cores_max": max(
            (v["cpu_peak_cores"] for v in per_task.values() if v["cpu_peak_cores"] is not None), default=None
        ),
        "concurrency": concurrency(peaks, avgs, host_bytes),
    }


def concurrency(peaks: list[int], avgs: list[float], host_bytes: int = HOST_BYTES) -> dict[str, Any]:
    """Sessions that fit in ``host_bytes`` if each is given the worst peak, the mean peak, or the mean
    average (what an ideal elastic controller could pack)."""
    if not peaks:
        return {"host_bytes": host_bytes}
    worst, mean_peak, mean_avg = max(peaks), sum(peaks) / len(peaks), sum(avgs) / len(avgs)
    return {
        "host_bytes": host_bytes,
        "by_peak": int(host_bytes // worst),
        "by_mean_peak": int(host_bytes // mean_peak),
        "by_avg": int(host_bytes // mean_avg),
        "avg_over_peak": worst / mean_avg,
    }
