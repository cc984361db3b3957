"""The prediction rule on synthetic histories: back-off order, pooling past uninformative runs, host priors from
other sessions only, the session-wide fallback, margins, the floor, confidence; and the history's bounds."""

from __future__ import annotations

import pytest

from agentcgroup.predict import history as H
from agentcgroup.predict.history import History, Observation
from agentcgroup.predict.rule import FLOORS, MARGIN, PRIOR_MARGIN, Rule, predicted_intent, quantile

UNGATED = Rule(gate=False)

MIB = 1 << 20
T = 1_770_000_000.0


def obs(session: str, command: str, mib: float, t: float, dur: float = 2.0, cpu_s: float | None = 1.0) -> Observation:
    return Observation(session, command, T + t, T + t + dur, memory=int(mib * MIB), cpu_s=cpu_s)


def mib(pred) -> float:
    return pred.memory / MIB


def test_no_history_no_prediction() -> None:
    assert predicted_intent(["pytest"], None, "s1", History()) is None
    h = History([obs("other", "ls", 1, 0)])
    assert predicted_intent("pytest", None, "s1", h) is None  # another session's ls says nothing about pytest


def test_same_command_in_the_session_is_the_first_word() -> None:
    h = History([obs("s1", "pytest tests/a", 200, 0), obs("s1", "pytest tests/b", 900, 10)])
    p = predicted_intent("pytest tests/a", None, "s1", h)
    assert p.basis == "session literal" and p.n == 1
    assert mib(p) == pytest.approx(200 * MARGIN)
    p = predicted_intent("pytest -x tests/c", None, "s1", h)  # same signature, other command: both pooled
    assert p.basis == "session signature" and p.n == 2
    assert mib(p) == pytest.approx(quantile([200, 900], 0.95) * MARGIN, rel=1e-6)


def test_back_off_to_program_and_subcommand() -> None:
    h = History([obs("s1", "pytest -n 4 tests/a", 400, 0)])
    p = predicted_intent("python -m pytest", None, "s1", h)  # whole suite, no xdist: only "pytest" in common
    assert p.basis == "session command" and mib(p) == pytest.approx(400 * MARGIN)


def test_a_run_that_did_nothing_does_not_anchor_the_next() -> None:
    """A test run that failed at once (2 MiB) is no measure of the real run: the prior decides."""
    h = History([obs("s1", "pip install -e .", 150, 0), obs("s1", "pytest tests/a", 2, 10)])
    p = predicted_intent("pytest tests/a", None, "s1", h, UNGATED)
    assert p.basis == "session typical"  # no other session: this session's typical real call
    assert mib(p) == pytest.approx(150 * PRIOR_MARGIN)
    gated = predicted_intent("pytest tests/a", None, "s1", h)  # the default rule: pip's use says nothing of pytest
    assert gated.memory is None and gated.duration is not None  # its duration rests on its own (informative) run


def test_host_prior_needs_three_other_sessions_and_skips_the_own() -> None:
    h = History([obs("a", "make -j8", 100, 0), obs("b", "make -j8", 300, 0), obs("s1", "make -j8", 1, 0)])
    p = predicted_intent("make -j8", None, "s1", h)
    assert p.basis == "session literal"  # only 2 other sessions: no host prior; the own tiny run is all there is
    assert p.memory == int(FLOORS["memory"])
    h.add(obs("c", "make -j8", 500, 0))
    p = predicted_intent("make -j8", None, "s1", h)
    assert p.basis == "host signature" and p.n == 3
    assert mib(p) == pytest.approx(quantile([100, 300, 500], 0.75) * PRIOR_MARGIN)
    p = predicted_intent("make -j8", None, "new", h)  # a new session: the host's word alone
    assert p.basis == "host signature" and p.n == 4


def test_host_prior_counts_each_session_once_by_its_largest() -> None:
    h = History()
    for i in range(20):  # one session runs it twenty times, small
        h.add(obs("busy", "cargo build", 10, i))
    for s, m in (("x", 800), ("y", 900)):
        h.add(obs(s, "cargo build", m, 0))
    p = predicted_intent("cargo build", None, "new", h)
    assert p.basis == "host signature" and p.n == 3
    assert mib(p) == pytest.approx(quantile([10, 800, 900], 0.75) * PRIOR_MARGIN)


def test_host_prior_same_directory_first() -> None:
    """Other sessions' runs in the same directory (the same repository) speak before the host's at large."""
    h = History([obs(s, "pytest", 50, 0) for s in "abc"])
    for s in "xyz":
        h.add(Observation(s, "pytest", T, T + 5, memory=900 * MIB, cwd="/big"))
    p = predicted_intent("pytest", "/big", "new", h)
    assert p.basis == "host signature@cwd" and mib(p) == pytest.approx(900 * PRIOR_MARGIN)
    p = predicted_intent("pytest", "/small", "new", h)  # elsewhere: all six sessions
    assert p.basis == "host signature" and p.n == 6


def test_host_prior_backs_off_to_command_then_program() -> None:
    h = History([obs(s, f"git log -{i}", 5, 0) for i, s in enumerate("abc")])
    assert predicted_intent("git log --oneline", None, "s", h).basis == "host signature"
    h2 = History([obs(s, "git diff", 5, 0) for s in "abc"])
    assert predicted_intent("git show HEAD", None, "s", h2, UNGATED).basis == "host program"
    assert predicted_intent("git show HEAD", None, "s", h2) is None  # gated: git's anything is no measure


def test_session_wide_fallback_needs_three_calls() -> None:
    def tiny(command: str, t: float) -> Observation:  # below every floor: no "typical call" to borrow
        return obs("s1", command, 1, t, dur=0.05, cpu_s=None)

    h = History([tiny("ls", 0), tiny("cat x", 5)])
    assert predicted_intent("./build.sh", None, "s1", h, UNGATED) is None
    h.add(tiny("echo hi", 9))
    p = predicted_intent("./build.sh", None, "s1", h, UNGATED)
    assert p.basis == "session all" and p.n == 3 and p.memory == int(FLOORS["memory"])
    assert predicted_intent("./build.sh", None, "s1", h) is None  # gated by default


def test_duration_and_cpu_follow_the_same_rule() -> None:
    h = History([obs("s1", "pytest", 100, 0, dur=10.0, cpu_s=15.0)])
    p = predicted_intent("pytest", None, "s1", h)
    assert p.duration == pytest.approx(10.0 * MARGIN)
    assert p.cpu == pytest.approx(1.5 * MARGIN)


def test_memory_unknown_duration_known() -> None:
    h = History([Observation("s1", "pytest", T, T + 4)])  # a paper call whose peak no sample saw
    p = predicted_intent("pytest", None, "s1", h)
    assert p.memory is None and p.duration == pytest.approx(4 * MARGIN)


def test_confidence_grows_with_specificity_and_evidence() -> None:
    one = History([obs("s1", "pytest", 100, 0)])
    many = History([obs("s1", "pytest", 100, i * 10) for i in range(8)])
    host = History([obs(s, "pytest", 100, 0) for s in "abcd"])
    c_one = predicted_intent("pytest", None, "s1", one).confidence
    c_many = predicted_intent("pytest", None, "s1", many).confidence
    c_host = predicted_intent("pytest", None, "s1", host).confidence
    assert 0 < c_host < c_one < c_many < 1


def test_rule_constants_are_parameters() -> None:
    h = History([obs("s1", "pytest", 100, 0)])
    assert mib(Rule(margin=2.0).predict(History.signature_of(h.session_calls("s1")[0]), "s1", h)) == 200


def test_history_is_bounded(monkeypatch) -> None:
    monkeypatch.setattr(H, "MAX_SESSIONS", 3)
    monkeypatch.setattr(H, "KEEP_HOST_SESSIONS", 2)
    h = History(keep=4)
    for i in range(10):
        h.add(obs("s1", "pytest", i, i))
    assert len(h.lookup("literal", h.signature_of(obs("s1", "pytest", 0, 0)).history_keys()[0][1], "s1")) == 4
    for s in "abcde":
        h.add(obs(s, "pytest", 1, 100))
    assert h.sessions() == ["c", "d", "e"]
    assert list(h.host("command", "pytest")) == ["d", "e"]


def test_observation_round_trip() -> None:
    o = Observation("s", ("bash", "-c", "pytest"), T, T + 1, memory=5, cpu_s=0.5, cwd="/r", failed=True, source="x")
    assert Observation.from_dict(o.to_dict()) == o
    with pytest.raises((KeyError, TypeError, ValueError)):
        Observation.from_dict({"session": "s", "command": 5, "start": 0, "end": 1})


def test_conformal_multiplier_needs_nineteen_ratios() -> None:
    from agentcgroup.predict.calibrate import conformal

    assert conformal([1.0] * 18) is None
    rs = [float(i) for i in range(1, 20)]  # 19 ratios: the ceil(20 x 0.95) = 19th smallest, the largest
    assert conformal(rs) == 19.0
    rs = [float(i) for i in range(1, 41)]  # 40: the ceil(41 x 0.95) = 39th smallest
    assert conformal(rs) == 39.0


def test_calibration_measures_the_margin_a_kind_needs() -> None:
    """Thirty sessions each run pytest twice, the second run 3x the first: the session's own estimate (the first
    run) must be stretched 3x, not the fixed 1.25, to cover the next; a session never seen gets that margin."""
    hist = [o for i in range(30) for o in (obs(f"s{i}", "pytest", 100, 0), obs(f"s{i}", "pytest", 300, 10))]
    rule = Rule().calibrated(hist)
    assert rule.calibration is not None
    assert rule.calibration["memory"] == {"*": pytest.approx(3.0)}  # one margin for every basis
    h = History([obs("new", "pytest", 100, 0)])
    assert mib(predicted_intent("pytest", None, "new", h, rule)) == pytest.approx(300)
    assert mib(predicted_intent("pytest", None, "new", h)) == pytest.approx(125)  # uncalibrated: x 1.25
    # CPU and duration keep the fixed margins
    assert predicted_intent("pytest", None, "new", h, rule).duration == pytest.approx(2.0 * MARGIN)


def test_calibration_leaves_each_session_out_of_its_own_priors() -> None:
    """Twenty sessions run `make` once at 100 MiB: a session's first make is estimated from the *other*
    sessions (p75 of 100 = 100) and the multiplier is 1, not a leak of its own run."""
    rule = Rule().calibrated([obs(f"s{i}", "make", 100, 0) for i in range(20)])
    assert rule.calibration["memory"]["*"] == pytest.approx(1.0)


def test_too_little_history_calibrates_nothing() -> None:
    assert Rule().calibrated([obs("s", "pytest", 100, i * 10) for i in range(5)]).calibration is None


def test_per_basis_multipliers_on_request() -> None:
    from agentcgroup.predict.calibrate import multipliers

    per = {"memory": {"session literal": [1.0] * 19 + [50.0], "host signature": [2.0] * 20, "session all": [9.0] * 20}}
    m = multipliers(per, gated={"session all"}, per_basis_too=True)["memory"]
    assert m["session literal"] == 50.0 and m["host signature"] == 2.0 and m["session all"] == 9.0
    # pooled over the ungated bases only: 40 ratios, the ceil(41 x 0.95) = 39th smallest
    assert m["*"] == 2.0
    assert multipliers(per, gated={"session all"}) == {"memory": {"*": 2.0}}
