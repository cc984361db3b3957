"""``agentcg predict`` on the AgentCgroup paper's published traces (read by path, never copied): the figures
docs/predict.md quotes, and that the learned rule beats the naive policies where it claims to. Skips, saying
why, when the traces are not on this machine (``AGENTCG_TRACES`` overrides where they are)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from agentcgroup.predict.evaluate import evaluate, split
from agentcgroup.predict.sources import from_traces

CHECKOUT = Path(__file__).resolve().parents[2]


def _traces() -> Path:
    env = os.environ.get("AGENTCG_TRACES")
    candidates = [Path(env)] if env else []
    candidates += [CHECKOUT.parent / "shared" / "traces", Path("/work/shared/traces")]
    for c in candidates:
        for p in (c, c / "agentcgroup"):
            if (p / "haiku").is_dir():
                return p
    pytest.skip(f"the paper's traces are not under {', '.join(map(str, candidates))} (set AGENTCG_TRACES)")


@pytest.fixture(scope="module")
def haiku():
    return from_traces([_traces() / "haiku"])


def memory(ev) -> dict:
    return {p: t.to_dict() for p, t in ev.tallies["memory"].items()}


def test_haiku_split_as_documented(haiku) -> None:
    earlier, later = split(haiku)
    m = memory(evaluate(later, [o for s in earlier for o in s.calls]))
    learned, peak, fixed = m["learned"], m["session-peak"], m["fixed"]
    assert learned["calls"] == 145
    assert learned["predicted_share"] == pytest.approx(0.800, abs=0.002)
    assert learned["under_predicted_share"] == pytest.approx(0.0431, abs=0.002)
    assert learned["reserved_over_actual"] == pytest.approx(1.87, abs=0.01)
    # issue 16's goal, with margins calibrated on the earlier half only
    assert learned["under_predicted_share"] <= 0.05 and learned["reserved_over_actual"] <= 2.0
    # fewer misses than the session's peak so far, and half the reservation of a fixed 256 MiB
    assert learned["under_predicted_share"] < peak["under_predicted_share"] / 2
    assert learned["reserved_over_actual"] < fixed["reserved_over_actual"] / 2


def test_haiku_whole_as_documented(haiku) -> None:
    alone = memory(evaluate(haiku))["learned"]
    assert (alone["calls"], alone["predicted"]) == (273, 117)  # no history: fixed margins, gated
    assert alone["under_predicted_share"] == pytest.approx(0.231, abs=0.002)
    assert alone["reserved_over_actual"] == pytest.approx(1.04, abs=0.01)
    online = memory(evaluate(haiku, online=True))
    # recalibrated every 100 calls that ended
    assert online["learned"]["under_predicted_share"] == pytest.approx(0.0591, abs=0.002)
    assert online["learned"]["reserved_over_actual"] == pytest.approx(1.87, abs=0.01)
    assert online["learned"]["under_predicted_share"] < online["session-peak"]["under_predicted_share"]
