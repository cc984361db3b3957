"""Fidelity figures: Pearson's r, resampling the trace onto measured times, the peak ratio."""

from __future__ import annotations

import pytest

from agentcgroup.replay import Point, fidelity, pearson, resample


def test_pearson() -> None:
    assert pearson([1, 2, 3, 4], [2, 4, 6, 8]) == pytest.approx(1.0)
    assert pearson([1, 2, 3, 4], [8, 6, 4, 2]) == pytest.approx(-1.0)
    assert pearson([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)
    assert pearson([1, 2], [1, 2]) is None  # too few
    assert pearson([1, 1, 1], [1, 2, 3]) is None  # constant
    with pytest.raises(ValueError, match="2 y values"):
        pearson([1, 2, 3], [1, 2])


def test_resample_is_linear_and_flat_outside() -> None:
    pts = [Point(0.0, 100, 0.0), Point(1.0, 300, 0.0)]
    assert resample(pts, [-1.0, 0.0, 0.25, 1.0, 2.0]) == [100, 100, 150, 300, 300]


def test_fidelity_compares_inside_the_window_only() -> None:
    trace = [Point(0.0, 100, 0), Point(1.0, 300, 0), Point(2.0, 100, 0)]
    times = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    measured = [100, 210, 310, 190, 100, 5]  # the last one is after the end: not compared
    f = fidelity(trace, times, measured)
    assert f.samples == 5
    assert f.correlation == pytest.approx(0.998, abs=0.002)
    assert f.measured_peak == 310 and f.trace_peak == 300
    assert f.peak_ratio == pytest.approx(310 / 300)
    assert f.to_dict()["samples"] == 5


def test_fidelity_of_nothing() -> None:
    f = fidelity([Point(0.0, 0, 0)], [], [])
    assert (f.correlation, f.peak_ratio, f.samples) == (None, None, 0)
