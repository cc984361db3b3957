"""``agentcg capacity`` on the real kernel, small and short: the project's synthetic session replayed in 3 s.

With a budget below one session's own peak, no policy can hold even one session: the probe must really run it
and the kernel really act (an agent lost under static limits, whose agents the OOM killer may take; calls
killed under agentcgroup, which protects its agents), so both capacities are 0 and what ran out is memory.
The figures come out as JSON and nothing is left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import DATA, SLOW, kernel_skip_reason, leftovers

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.host_only(reason="replays, as agentcg bench: minutes under TCG; the guest runs replay and controller"),
]

TRACE = DATA / "replay" / "synthetic-agent.jsonl"


def test_capacity_too_small_a_budget_holds_no_session(root_name) -> None:
    if kernel_skip_reason():
        pytest.skip(kernel_skip_reason())
    cmd = [
        sys.executable, "-m", "agentcgroup", "capacity", str(TRACE), "--budget", "96M", "--peak", "200M",
        "--duration", "3", "--max-sessions", "2", "--call-procs", "1", "--root", root_name, "--json",
    ]  # fmt: skip
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300 * SLOW, env=dict(os.environ))
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(r.stdout.strip().splitlines()[-1])
    assert doc["budget"] == 96 << 20 and doc["static_by_peak"] == 0
    assert (doc["capacity_static"], doc["capacity_agentcgroup"]) == (0, 0)
    for arm in ("static", "agentcgroup"):
        a = doc["arms"][arm]
        assert a["ran_out"] == "memory", a
        [probe] = a["probes"]  # one session failed: nothing more to try
        assert probe["n"] == 1 and not probe["held"]
        assert probe["agents_lost"] + probe["calls_killed"] >= 1, probe
        assert probe["mem_peak_bytes"] <= (96 << 20) + (8 << 20), probe  # the budget held the root
        assert probe["alone_s"] > 0
    # agentcgroup keeps its agent and kills calls instead
    ours = doc["arms"]["agentcgroup"]["probes"][0]
    assert ours["agents_lost"] == 0 and ours["calls_killed"] >= 1, ours
    assert leftovers(root_name) == []
