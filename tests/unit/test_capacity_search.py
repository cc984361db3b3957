"""``agentcg capacity``'s search and judgement without a kernel (probes faked), and its bad input."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agentcgroup.bench.capacity import (
    Probe,
    allowed_kills,
    first_failure,
    judge,
    max_sessions_for,
    search,
    static_by_peak,
    summary,
)
from tests.conftest import DATA, leftovers, test_root_name


def fake(threshold: int, calls: list[int]):
    def probe(n: int) -> Probe:
        calls.append(n)
        held = n <= threshold
        return Probe("agentcgroup", n, held, "" if held else "2 agent runtimes lost", "" if held else "memory",
                     0 if held else 2, 0, 10 * n, 0.01, 10.0, 10.1, 0.5, 1 << 30)  # fmt: skip

    return probe


@pytest.mark.parametrize("threshold", [0, 1, 2, 3, 5, 7, 8, 12, 16])
def test_search_finds_the_largest_holding_n(threshold: int) -> None:
    calls: list[int] = []
    cap, probes = search(fake(threshold, calls), max_n=16)
    assert cap == threshold
    assert len(calls) == len(set(calls)) <= 9  # each n probed once, about 2 log2(16)
    assert [p.n for p in probes] == sorted(calls)
    if threshold < 16:
        fail = first_failure(probes, cap)
        assert fail is not None and fail.n == cap + 1 and fail.ran_out == "memory"
    else:
        assert first_failure(probes, cap) is None


def test_search_caps_at_max_n() -> None:
    calls: list[int] = []
    cap, _ = search(fake(100, calls), max_n=6)
    assert cap == 6 and max(calls) == 6


def test_judge() -> None:
    assert judge(4, 0, 0, 0.04, 0.5) == (True, "", "")
    assert judge(4, 1, 0, 0.0, 0.5)[2] == "memory"
    assert judge(9, 0, 1, 0.0, 0.5, kills=["memory"])[2] == "memory"  # 9 sessions: no kill allowed
    assert judge(9, 0, 1, 0.0, 0.5, kills=["policy"])[2] == "memory"
    held, reason, what = judge(9, 0, 2, 0.0, 0.97, kills=["timeout", "timeout"])
    assert (held, what) == (False, "cpu") and "timeout" in reason and "97%" in reason
    assert judge(9, 0, 1, 0.0, 0.5, kills=["timeout"])[2] == "time"
    assert judge(10, 0, 1, 0.0, 0.5)[0]  # 10 sessions: one allowed
    assert judge(4, 0, 0, None, 0.5)[0] is False
    held, reason, what = judge(4, 0, 0, 0.06, 0.95)
    assert not held and what == "cpu" and "+6.0%" in reason and "95%" in reason
    assert judge(4, 0, 0, 0.06, 0.5)[2] == "slowdown"
    assert judge(4, 0, 0, 0.06, 0.5, max_slowdown=0.1)[0]
    assert [allowed_kills(n) for n in (1, 9, 10, 19, 20)] == [0, 0, 1, 1, 2]


def test_static_by_peak_and_summary() -> None:
    assert static_by_peak([100, 200], 1000) == 6  # 110 + 220 + 110 + 220 + 110 + 220 = 990; +110 > 1000
    assert static_by_peak([2000], 1000) == 0
    probes = [fake(2, [])(n) for n in (1, 2, 3)]
    doc = summary({"static": (1, probes[:2]), "agentcgroup": (2, probes)}, 1000, [100])
    assert doc["capacity_static"] == 1 and doc["capacity_agentcgroup"] == 2 and doc["ratio_agentcgroup"] == 2.0
    assert doc["arms"]["agentcgroup"]["ran_out"] == "memory" and doc["static_by_peak"] == 9
    assert doc["arms"]["static"]["ran_out"] is None  # 1 held, and 9 would fit by peak: not what stopped it


def test_static_is_tried_only_as_far_as_its_peaks_fit_the_budget() -> None:
    assert max_sessions_for("static", 16, [100, 200], 1000) == 6
    assert max_sessions_for("static", 4, [100, 200], 1000) == 4
    assert max_sessions_for("static", 16, [2000], 1000) == 1  # one tried, to show that none holds
    assert max_sessions_for("learned", 16, [100, 200], 1000) == 16
    assert max_sessions_for("agentcgroup", 16, [2000], 1000) == 16
    probes = [fake(10, [])(n) for n in (1, 2, 4, 6)]  # all held: static stopped at its peaks' sum
    doc = summary({"static": (6, probes)}, 1000, [100, 200])
    assert doc["capacity_static"] == 6
    assert doc["arms"]["static"]["ran_out"] == "memory" and "sized by peak" in doc["arms"]["static"]["reason"]


TRACE = DATA / "replay" / "synthetic-agent.jsonl"


@pytest.mark.parametrize(
    ("args", "word"),
    [
        (["--budget", "12XB"], "12XB"),
        (["--budget", "0"], "budget"),
        (["--budget", "1G", "--arms", "static,fifo"], "'fifo'"),
        (["--budget", "1G", "--arms", "learned", "--history", "/no/history"], "/no/history"),
        (["--budget", "1G", "--duration", "0"], "duration 0"),
        (["--budget", "1G", "--max-sessions", "0"], "max-sessions 0"),
        (["--budget", "1G", "--runs", "0"], "runs 0"),
        (["--budget", "1G", "--start", "0"], "start 0"),
        (["--budget", "1G", "--start", "9", "--max-sessions", "8"], "start 9"),
        (["--budget", "1G", "--root", "../x"], "../x"),
        (["--budget", "1G", "--max-slowdown", "fast"], "'fast'"),
        (["--budget", "1G", "--max-slowdown", "-5%"], "'-5%'"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_creates_nothing(args, word) -> None:
    root = test_root_name()
    cmd = [sys.executable, "-m", "agentcgroup", "capacity", str(TRACE), *args]
    if "--root" not in args:
        cmd += ["--root", root]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert word in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert leftovers(root) == []


def test_budget_is_required_and_traces_must_exist() -> None:
    r = subprocess.run([sys.executable, "-m", "agentcgroup", "capacity", str(TRACE)], capture_output=True, text=True)
    assert r.returncode == 2 and "--budget" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "agentcgroup", "capacity", "/no/trace", "--budget", "1G"], capture_output=True, text=True
    )
    assert r.returncode == 2 and "/no/trace" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_a_killed_call_is_one_line_with_its_prediction() -> None:
    from agentcgroup.cli.capacity_cmd import _kill_line
    from agentcgroup.units import format_size

    k = {"command": "pytest -x", "priority": "low", "killed_by": "policy", "memory_peak": 300 << 20,
         "predicted": 200 << 20, "queued_s": 2.0}  # fmt: skip
    assert _kill_line(k, format_size) == "`pytest -x` (low) by policy: peak 300 MiB, predicted 200 MiB, queued 2.0 s"
    k["predicted_basis"] = "host signature pytest <some> (26)"  # what the prediction rested on, when known
    assert _kill_line(k, format_size) == (
        "`pytest -x` (low) by policy: peak 300 MiB, predicted 200 MiB (host signature pytest <some> (26)), queued 2.0 s"
    )
    k.update(memory_peak=None, predicted=None, queued_s=0.0)
    assert _kill_line(k, format_size) == "`pytest -x` (low) by policy: peak ?"
