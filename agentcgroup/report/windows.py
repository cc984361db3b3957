"""Which samples fall inside a tool call, and the memory a call added (bisect over sample times)."""

from __future__ import annotations

from bisect import bisect_left, bisect_right

from ..traces.model import Samples, Task, ToolCall

#: Calls shorter than this are too short to attribute a sample to (the paper's rule).
MIN_CALL_S = 0.1


def inside(samples: Samples, start: float, end: float) -> range:
    """Indices of the samples with ``start <= t <= end`` (both ends inclusive, as the paper)."""
    return range(bisect_left(samples.t, start), bisect_right(samples.t, end))


def in_call_mask(task: Task) -> list[bool]:
    """For every sample: does it fall inside at least one timed tool call?"""
    mask = [False] * len(task.samples)
    for c in task.calls:
        if c.end is not None and c.end >= c.start:
            for i in inside(task.samples, c.start, c.end):
                mask[i] = True
    return mask


def memory_delta(samples: Samples, call: ToolCall) -> int | None:
    """Peak memory during the call minus the last sample before it (None when no sample is inside).

    With no sample before the call, its first inside sample is the baseline. Peaks between samples are
    missed, so this is a lower bound.
    """
    if call.end is None or call.end - call.start < MIN_CALL_S:
        return None
    idx = inside(samples, call.start, call.end)
    if not idx:
        return None
    peak = max(samples.mem_bytes[i] for i in idx)
    before = idx.start - 1
    baseline = samples.mem_bytes[before] if before >= 0 else samples.mem_bytes[idx.start]
    return peak - baseline
