"""Pure parsers of trace values: memory sizes as podman prints them, CPU differencing, command kinds."""

from __future__ import annotations

import pytest

from agentcgroup.traces._sizes import parse_percent, parse_trace_size, parse_usage
from agentcgroup.traces.categories import classify
from agentcgroup.traces.cumulative_cpu import cores_from_cumulative_percent, cores_from_usage_usec


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("185.9MB", 185_900_000),
        ("1.073GB", 1_073_000_000),
        ("8.307MB", 8_307_000),
        ("190000kB", 190_000_000),
        ("512KB", 512_000),
        ("256MiB", 268_435_456),
        ("1GiB", 1_073_741_824),
        ("4KiB", 4096),
        ("0B", 0),
        ("12", 12),
        (" 2.5 GB ", 2_500_000_000),
    ],
)
def test_trace_sizes_are_decimal_unless_binary(text: str, expected: int) -> None:
    assert parse_trace_size(text)[0] == expected


def test_size_reports_its_unit_and_usage_ignores_the_limit() -> None:
    assert parse_trace_size("1.2GB") == (1_200_000_000, "GB")
    assert parse_trace_size("7") == (7, "B")
    assert parse_usage("185.9MB / 134.5GB") == (185_900_000, "MB")
    assert parse_usage("0B / 0B") == (0, "B")


@pytest.mark.parametrize("bad", ["", "MB", "-5MB", "12XB", "1.2.3MB", "abc"])
def test_bad_sizes_name_the_text(bad: str) -> None:
    with pytest.raises(ValueError, match="memory"):
        parse_trace_size(bad)


def test_percentages() -> None:
    assert parse_percent("61.89%") == pytest.approx(61.89)
    assert parse_percent(" 5 % ") == 5.0
    assert parse_percent(12) == 12.0
    with pytest.raises(ValueError, match="percentage"):
        parse_percent("n/a")
    with pytest.raises(ValueError):
        parse_percent(True)


def _since_start_percent(rates: list[float], dt: float) -> list[float]:
    """What podman prints: the average since the first sample, in percent, with two decimals."""
    out, cum = [rates[0] * 100], 0.0
    for i, r in enumerate(rates[1:], 1):
        cum += r * dt
        out.append(round(100 * cum / (i * dt), 2))
    return out


def test_cumulative_percent_is_differenced_back_into_cores() -> None:
    rates = [0.5, 0.1, 0.1, 2.0, 1.0, 0.1, 0.1, 0.1, 0.1, 0.1]
    t = [1000.0 + 1.0 * i for i in range(len(rates))]
    cores = cores_from_cumulative_percent(t, _since_start_percent(rates, 1.0))
    assert cores[0] == pytest.approx(0.5)
    assert cores[1:] == pytest.approx(rates[1:], abs=0.01)


def test_a_known_start_offset_is_used() -> None:
    # the container started 2 s before the first sample: 1 core for 3 s, then idle
    t = [0.0, 1.0, 2.0, 3.0]
    cum = [2.0, 3.0, 3.0, 3.0]  # cpu-seconds since the start
    percent = [100 * c / (ti + 2.0) for c, ti in zip(cum, t, strict=True)]
    assert cores_from_cumulative_percent(t, percent, offset=2.0)[1:] == pytest.approx([1.0, 0.0, 0.0])
    # counting from the first sample instead errs by offset x (change of the average) / interval:
    # percent is 100, 100, 75, 60, so the idle intervals read 2 x 0.25 and 2 x 0.15 cores
    assert cores_from_cumulative_percent(t, percent)[1:] == pytest.approx([1.0, 0.5, 0.3])


def test_rounding_noise_never_gives_negative_cpu() -> None:
    t = [0.0, 1.0, 2.0, 3.0, 4.0]
    percent = [10.0, 10.0, 4.99, 3.33, 2.5]  # 4.99 % x 2 s < 10 % x 1 s: rounding, not real
    cores = cores_from_cumulative_percent(t, percent)
    assert cores[1] == pytest.approx(0.1)
    assert cores[2:] == pytest.approx([0.0, 0.0, 0.0])


def test_usage_usec_differencing_skips_unknown_readings() -> None:
    t = [0.0, 0.1, 0.2, 0.3, 0.4]
    cores = cores_from_usage_usec(t, [0, 100_000, None, 120_000, 110_000])
    assert cores[0] is None and cores[2] is None
    assert cores[1] == pytest.approx(1.0)
    assert cores[3] == pytest.approx(0.1)
    assert cores[4] == pytest.approx(0.0)  # a counter going backwards is held, not negative


@pytest.mark.parametrize(
    ("command", "kind"),
    [
        ("cd /testbed && python -m pytest tests/ -x", "test"),
        ("pip install -e . && pytest", "test"),
        ("tox -e py311", "test"),
        ("cargo test --all", "test"),
        ("pip install -e .", "install"),
        ("uv pip install numpy", "install"),
        ("apt-get install -y gcc", "install"),
        ("cargo build --release", "build"),
        ("make -j8", "build"),
        ("g++ -O2 a.cpp", "build"),
        ("git diff HEAD", "git"),
        ("python -c 'import sys; print(sys.path)'", "python-snippet"),
        ("python3 - <<'EOF'\nprint(1)\nEOF", "python-snippet"),
        ("python3 /testbed/reproduce.py", "python-run"),
        ("find /testbed -name '*.py' | head", "file-exploration"),
        ("ls -la", "file-exploration"),
        ("grep -rn foo src/", "text-processing"),
        ("cat setup.cfg", "text-processing"),
        ("echo hello", "other"),
        ("", "other"),
        (None, "other"),
    ],
)
def test_command_kinds(command: str | None, kind: str) -> None:
    assert classify(command) == kind
