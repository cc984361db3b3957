import math

from agentcgroup.bench.stats import estimate, median, p95, quantile


def test_quantile_matches_linear_interpolation() -> None:
    assert quantile([1, 2, 3, 4], 0.5) == 2.5
    assert quantile([10], 0.95) == 10
    assert math.isclose(p95(list(range(101))), 95.0)
    assert math.isnan(quantile([], 0.5))


def test_estimate_interval_contains_the_mean_and_is_repeatable() -> None:
    xs = [0.9, 1.1, 1.0, 1.3, 0.7, 1.05, 0.95, 1.2, 0.8, 1.0]
    e = estimate(xs)
    assert e.lo < e.value < e.hi and e.n == 10
    assert estimate(xs) == e  # seeded
    assert estimate([2.0]).text() == "2.00"
    assert estimate([]).text() == "-"
    m = estimate(xs, median)
    assert m.value == 1.0 and m.lo <= 1.0 <= m.hi


def test_a_constant_has_a_zero_width_interval() -> None:
    e = estimate([0, 0, 0, 0])
    assert (e.value, e.lo, e.hi) == (0, 0, 0)
    assert e.text("{:.0f}") == "0"
