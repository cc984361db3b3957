"""``agentcg predict`` on the project's synthetic sessions (tests/data/predict: exact peaks, so every figure can
be worked out by hand; see make_sessions.py), and on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from agentcgroup.cli.main import cli
from agentcgroup.predict.history import Observation
from agentcgroup.predict.store import HistoryStore
from tests.conftest import DATA

SESSIONS = DATA / "predict"
#: the sessions' sizes (make_sessions.py)
SCALES = (1.0, 1.5, 0.8, 1.2)


def run(*args: str) -> dict:
    r = CliRunner().invoke(cli, ["predict", *args, "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_each_session_alone_figures_by_hand() -> None:
    """Per session (sizes in MiB x its scale), the rule's memory figure exists for the 4th to the 8th call, but
    the 4th, 5th and 7th rest only on the session's typical call (what pip used says nothing of pytest, git or
    cargo) and are gated: no prediction. The 6th is the p95 of the earlier pytest runs (2, 200) x 1.25 = 237.6
    for 220; the 8th the 7th's 600 x 1.25 = 750 for 640: neither under."""
    doc = run(str(SESSIONS))
    assert (doc["mode"], doc["sessions"], doc["history_calls"]) == ("session", 4, 0)
    assert doc["calibration"] == {}  # no history to calibrate on: the fixed margins
    mem = doc["figures"]["memory"]
    assert mem["learned"]["calls"] == 32 and mem["learned"]["predicted"] == 8
    assert mem["learned"]["under_predicted_share"] == 0
    reserved = (2 + 0.95 * (200 - 2)) * 1.25 + 750  # the same in every session, x its scale
    actual = 220 + 640
    assert mem["learned"]["reserved_over_actual"] == pytest.approx(reserved / actual, abs=1e-3)
    # the session's peak so far: every call but git status bigger than all before it
    assert mem["session-peak"]["predicted"] == 28
    assert mem["session-peak"]["under_predicted_share"] == pytest.approx(24 / 28, abs=1e-4)  # rounded to 4 places
    # 256 MiB for every call: the two builds everywhere, the test runs of the larger sessions
    under = sum(sum(m * s > 256 for m in (1, 2, 150, 200, 3, 220, 600, 640)) for s in SCALES)
    assert mem["fixed"]["under_predicted_share"] == pytest.approx(under / 32, abs=1e-4)
    assert set(doc["figures"]) == {"memory", "cpu", "duration"}
    assert doc["bases"] == {"session signature": 8}


def test_split_online_and_history(tmp_path) -> None:
    doc = run(str(SESSIONS), "--split")
    assert (doc["mode"], doc["sessions"], doc["history_sessions"], doc["history_calls"]) == ("split", 2, 2, 16)
    online = run(str(SESSIONS), "--online")
    assert online["mode"] == "online"
    assert any(b.startswith("host") for b in online["bases"])  # s4 sees three sessions before it
    with HistoryStore(tmp_path / "h.sqlite3") as st:  # three other sessions built their code before
        st.add(
            Observation(f"o{i}", "cargo build --release", 1e9 + i, 1e9 + i + 30, memory=700 << 20, cpu_s=30.0)
            for i in range(3)
        )
    hist = run(str(SESSIONS), "--history", str(tmp_path / "h.sqlite3"), "--calls")
    assert hist["mode"] == "history" and hist["history_sessions"] == 3
    first_builds = [c for c in hist["calls"] if c["command"].startswith("bash -c 'cargo")]
    assert len(first_builds) == 4
    for c in first_builds:  # the host's builds size the session's first one: 700 x 2
        assert c["predicted"]["basis"] == "host signature"
        assert c["predicted"]["memory"] == 1400 << 20
    assert hist["figures"]["memory"]["learned"]["under_predicted_share"] == 0


def test_text_output() -> None:
    r = CliRunner().invoke(cli, ["predict", str(SESSIONS)])
    assert r.exit_code == 0, r.output
    assert "learned" in r.output and "session-peak" in r.output and "fixed 256 MiB" in r.output
    assert "calls=32 predicted_share=0.25 under_predicted_share=0.0 " in r.output


@pytest.mark.parametrize(
    ("args", "word"),
    [
        (["/no/such/dir"], "/no/such/dir"),
        ([str(SESSIONS), "--fixed", "0"], "fixed"),
        ([str(SESSIONS), "--fixed", "12XB"], "12XB"),
        ([str(SESSIONS), "--calls"], "--calls needs --json"),
        ([str(SESSIONS), "--history", "/no/history"], "/no/history"),
        ([os.devnull], os.devnull),
        ([str(SESSIONS / "session-s1.jsonl"), "--split"], "at least 2 sessions"),
    ],
)
def test_bad_input_is_one_line_exit_2(args, word) -> None:
    r = subprocess.run([sys.executable, "-m", "agentcgroup", "predict", *args], capture_output=True, text=True)
    assert r.returncode == 2, r.stderr
    assert word in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
