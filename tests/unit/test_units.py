from __future__ import annotations

import pytest

from agentcgroup.errors import InvalidValue
from agentcgroup.units import (
    MAX_BYTES,
    format_cpu,
    format_size,
    format_size_arg,
    parse_count,
    parse_cpu,
    parse_duration,
    parse_kernel_size,
    parse_size,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("512M", 512 << 20),
        ("512m", 512 << 20),
        ("512MB", 512 << 20),
        ("512MiB", 512 << 20),
        ("2GiB", 2 << 30),
        ("1.5G", 3 << 29),
        ("4096", 4096),
        ("12B", 12),
        ("10k", 10240),
        ("1T", 1 << 40),
        ("5Mi", 5 << 20),
        (" 64M ", 64 << 20),
        ("max", MAX_BYTES),
        (1024, 1024),
    ],
)
def test_sizes(text, expected) -> None:
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", ["-5M", "12XB", "0", "0M", "", "abc", "1e9", "12iB", "M", "5 M B", "--1"])
def test_bad_sizes_name_the_value(text) -> None:
    with pytest.raises(InvalidValue) as err:
        parse_size(text, "memory")
    assert repr(text) in str(err.value) and "memory" in str(err.value)


def test_kernel_sizes() -> None:
    assert parse_kernel_size("max") == MAX_BYTES
    assert parse_kernel_size("9223372036854771712\n") == MAX_BYTES  # v1's "no limit"
    assert parse_kernel_size("268435456") == 256 << 20


def test_format_size() -> None:
    assert format_size(256 << 20) == "256 MiB"
    assert format_size(3 << 29) == "1.5 GiB"
    assert format_size(MAX_BYTES) == "max"
    assert format_size(None) == "-"
    assert format_size(100) == "100 B"
    assert format_size_arg(3 << 30) == "3G" and format_size_arg(512 << 20) == "512M"
    assert format_size_arg(int(2.4 * (1 << 30))) == "3G"  # rounds up: a limit suggestion must be enough


def test_cpu() -> None:
    assert parse_cpu("20%") == pytest.approx(0.2)
    assert parse_cpu("250") == pytest.approx(2.5)
    assert parse_cpu("max") is None
    assert format_cpu(0.2) == "20%"
    for bad in ("0", "-10%", "abc", "0.01%", "nan"):
        with pytest.raises(InvalidValue):
            parse_cpu(bad)


def test_durations() -> None:
    assert parse_duration("30") == 30 and parse_duration("500ms") == 0.5
    assert parse_duration("2m") == 120 and parse_duration("1.5s") == 1.5 and parse_duration(2) == 2
    for bad in ("0", "-1", "soon", "1d", float("inf")):
        with pytest.raises(InvalidValue):
            parse_duration(bad)


def test_counts() -> None:
    assert parse_count("64") == 64
    for bad in ("-1", "0", "1.5", "x"):
        with pytest.raises(InvalidValue):
            parse_count(bad, "pids")
