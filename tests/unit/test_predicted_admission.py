"""The controller's predictor (issue 16): it learns from outcomes, keeps its history in the state dir, reloads
(and calibrates) it; the ``predict`` setting; the admission room's predicted path on fakes (queued while it does
not fit, never refused, bounded; declared peaks still win)."""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import pytest

from agentcgroup.controller.admission import Admission
from agentcgroup.controller.callspec import CallSpec
from agentcgroup.controller.config import ControllerConfig
from agentcgroup.controller.intent import Intent
from agentcgroup.controller.predicted import Predictor, ScopedPredictor
from agentcgroup.errors import InvalidValue
from agentcgroup.outcome import Outcome
from tests.conftest import wait_for

MiB = 1 << 20


def outcome(session: str, argv: list[str], peak: int | None, refused: bool = False, dur: float = 2.0) -> Outcome:
    return Outcome(
        session=session,
        call_id="c1",
        command=" ".join(argv),
        argv=argv,
        backend="v2",
        exit_code=0,
        duration_s=dur,
        memory_peak=peak,
        refused=refused,
    )


def test_learns_from_outcomes_and_predicts_the_next_of_its_kind(tmp_path) -> None:
    p = Predictor(tmp_path)
    spec = CallSpec.of(["pytest", "tests/a"])
    assert p.predict(spec, "s") is None  # no history, no prediction
    p.learn(outcome("s", ["pytest", "tests/a"], 400 * MiB))
    p.learn(outcome("s", ["pytest", "tests/b"], 0, refused=True))  # never ran: nothing learned
    pred = p.predict(spec, "s")
    assert pred is not None and pred.memory == pytest.approx(400 * MiB * 1.25, rel=1e-6)
    assert pred.basis == "session literal"
    p.close()
    again = Predictor(tmp_path)  # a successor reads the store
    assert again.history.count == 1
    assert again.predict(spec, "s").memory == pred.memory
    again.close()


def test_reload_calibrates_on_enough_history(tmp_path) -> None:
    p = Predictor(tmp_path)
    for i in range(30):  # each session's second run is 3x its first
        p.learn(outcome(f"s{i}", ["make"], 100 * MiB))
        p.learn(outcome(f"s{i}", ["make"], 300 * MiB))
    p.close()
    again = Predictor(tmp_path)
    assert again.rule.calibration is not None and "memory" in again.rule.calibration
    again.close()


def test_without_a_state_dir_the_history_is_in_memory() -> None:
    p = Predictor(None)
    p.learn(outcome("s", ["cargo", "build"], 800 * MiB))
    assert p.predict(CallSpec.of(["cargo", "build"]), "s") is not None
    p.close()


@pytest.mark.parametrize(("text", "value"), [("on", True), ("1", True), ("off", False), ("false", False)])
def test_the_predict_setting(text, value) -> None:
    assert ControllerConfig.parse(predict=text).predict is value
    assert ControllerConfig().predict is False  # off unless asked for: it changes when calls start


def test_a_bad_predict_setting_names_it() -> None:
    with pytest.raises(InvalidValue, match="predict"):
        ControllerConfig.parse(predict="maybe")


# --- the admission room's predicted path, on fakes (the kernel test runs it for real) -------------------------


class _Room:
    """A session with a 400 MiB budget (90 %: 360 usable) in which ``usage`` is used and ``running`` run."""

    def __init__(self, wait: float) -> None:
        self.usage = 200 * MiB
        self.session = SimpleNamespace(name="s", budget=400 * MiB, uid=0, rank=1, closing=False)
        self.running: list = [SimpleNamespace(id="c0", session=self.session)]
        self.predictor = ScopedPredictor(None)
        self.predictor.learn(outcome("s", ["make"], 200 * MiB))  # predicted: 250 MiB
        cfg = ControllerConfig(admission_wait=wait, predict=True)
        snap = SimpleNamespace(
            budgets=lambda: [("s", self.usage, 400 * MiB, self.running)],
            stats=lambda cs: SimpleNamespace(memory_current=0),
        )
        self.admission = Admission(cfg, threading.RLock(), lambda: snap, lambda: self.running, "v2", self.predictor)

    def admit(self, argv: list[str], **kw):
        return self.admission.admit(self.session, CallSpec.of(argv, **kw))

    def free_later(self, after: float) -> None:
        """``after`` s once the call is queued (counted from the thread's start, a late admit() was not queued
        at all on a busy host: the memory was free by then)."""

        def free() -> None:
            deadline = time.monotonic() + 30
            while self.admission.waiting == 0 and time.monotonic() < deadline:
                time.sleep(0.001)
            time.sleep(after)
            self.usage, self.running = 0, []
            self.admission.release("c0")

        threading.Thread(target=free, daemon=True).start()


def test_a_predicted_call_that_does_not_fit_waits_until_memory_frees() -> None:
    room = _Room(wait=30)
    room.free_later(0.3)
    queued, token = room.admit(["make"])
    assert 0.25 <= queued < 10
    room.admission.claim(token, "c1")
    note = room.admission.note("c1")
    assert note.startswith("queued") and "predicted peak 250 MiB" in note and "started when it fit" in note


def test_a_predicted_call_is_never_refused_its_wait_is_bounded() -> None:
    room = _Room(wait=0.2)  # the running call never ends
    queued, token = room.admit(["make"])
    assert 0.15 <= queued < 5 and not isinstance(token, Outcome)
    room.admission.claim(token, "c1")
    assert "the wait (0.2 s) ran out" in room.admission.note("c1")


def test_with_nothing_running_to_free_memory_it_starts_at_once() -> None:
    room = _Room(wait=30)
    room.running = []  # 200 MiB used by the agent, say: waiting frees nothing
    queued, token = room.admit(["make"])
    assert queued == 0 and room.admission.note(token) is None


def test_a_call_without_a_prediction_or_with_a_declared_peak_is_admitted_as_before() -> None:
    room = _Room(wait=0.2)
    assert room.admit(["ls"])[0] == 0  # no history of ls: no prediction, no wait
    refused = room.admit(["make"], intent=Intent(memory=500 * MiB))  # a declaration wins: refused, as before
    assert isinstance(refused, Outcome) and refused.refused


def test_the_margins_are_recalibrated_as_calls_are_learned(monkeypatch) -> None:
    from agentcgroup.controller import predicted

    monkeypatch.setattr(predicted, "RECALIBRATE_EVERY", 40)
    p = Predictor(None)
    assert p.rule.calibration is None
    for i in range(20):  # each session's second run (after its first ended) is 3x its first
        p.learn(outcome(f"s{i}", ["make"], 100 * MiB, dur=0.0))
        time.sleep(0.001)
        p.learn(outcome(f"s{i}", ["make"], 300 * MiB, dur=0.0))
    p.wait_calibrated(30)
    assert p.rule.calibration is not None and p.rule.calibration["memory"]["*"] == pytest.approx(3.0)
    p.close()


# --- one history per uid (the daemon's --predict) --------------------------------------------------------------


def test_each_uid_is_predicted_from_its_own_calls_only(tmp_path) -> None:
    p = ScopedPredictor(tmp_path)
    spec = CallSpec.of(["make", "-j8"])
    p.learn(outcome("s", ["make", "-j8"], 900 * MiB), uid=1001)
    assert p.predict(spec, "s", uid=1001) is not None
    assert p.predict(spec, "s", uid=1002) is None  # another tenant: nothing of 1001's commands or sizes
    assert p.predict(spec, "s", uid=0) is None  # nor root's
    p.learn(outcome("r", ["make", "-j8"], 100 * MiB))  # root's: the state dir's own store, as embedded
    p.close()
    assert (tmp_path / "history.sqlite3").exists()
    tenant = tmp_path / "history" / "uid-1001"
    assert (tenant / "history.sqlite3").exists()
    assert (tmp_path / "history").stat().st_mode & 0o777 == 0o700 and tenant.stat().st_mode & 0o777 == 0o700
    again = ScopedPredictor(tmp_path)  # a restarted daemon: each uid's history back, still apart
    assert again.predict(spec, "s", uid=1001).memory > again.predict(spec, "r", uid=0).memory
    assert again.predict(spec, "s", uid=1002) is None
    again.close()


def test_scopes_beyond_the_bound_are_closed_least_recently_used_first(monkeypatch) -> None:
    from agentcgroup.controller import predicted

    monkeypatch.setattr(predicted, "MAX_SCOPES", 3)
    p = ScopedPredictor(None)
    root = p.scope(0)
    for uid in (1, 2, 3, 4):
        p.scope(uid)
    assert p.scope(0) is root  # root's stays open
    assert len(p._scopes) == 3 and 1 not in p._scopes
    p.close()


# --- the queue is in priority order ---------------------------------------------------------------------------


def _two_sessions():
    usage = {"used": 300 * MiB}
    low = SimpleNamespace(name="low", budget=None, uid=0, rank=0, closing=False)
    high = SimpleNamespace(name="high", budget=None, uid=0, rank=2, closing=False)
    running: list = [SimpleNamespace(id="c0", session=low, rank=0)]
    cfg = ControllerConfig(admission_wait=30, budget=400 * MiB)  # 360 MiB usable
    snap = SimpleNamespace(
        budgets=lambda: [("", usage["used"], 400 * MiB, running)],
        stats=lambda cs: SimpleNamespace(memory_current=0),
    )
    adm = Admission(cfg, threading.RLock(), lambda: snap, lambda: running, "v2")
    return adm, low, high, usage


def test_room_that_frees_goes_to_the_higher_priority_waiting_call_first() -> None:
    adm, low, high, usage = _two_sessions()
    got: list[str] = []

    def admit(s, name: str) -> None:
        res = adm.admit(s, CallSpec.of(["make"], intent=Intent(memory=200 * MiB)))
        assert not isinstance(res, Outcome)
        got.append(name)

    t_low = threading.Thread(target=admit, args=(low, "low"))
    t_low.start()
    wait_for(lambda: adm.waiting == 1, "the low call to wait first", 10)
    t_high = threading.Thread(target=admit, args=(high, "high"))
    t_high.start()
    wait_for(lambda: adm.waiting == 2, "the high call to wait too", 10)
    assert got == []
    usage["used"] = 100 * MiB  # room for one of them (360 - 100 = 260 MiB)
    adm.release("c0")
    t_high.join(5)
    time.sleep(0.3)
    assert got == ["high"]  # the high one, though it came second; the low one still waits
    usage["used"] = 0  # the high one's reservation (200 MiB) still counts: 160 MiB free, too little
    adm.release("nothing")
    time.sleep(0.3)
    assert got == ["high"]
    adm._reserved.clear()  # the high call ended
    adm.release("nothing")
    t_low.join(5)
    assert got == ["high", "low"] and adm.waiting == 0


def test_a_waiting_call_that_does_not_fit_does_not_hold_back_a_lower_one_that_does() -> None:
    adm, low, high, usage = _two_sessions()
    got: list[str] = []

    def admit(s, name: str, mem: int) -> None:
        res = adm.admit(s, CallSpec.of(["make"], intent=Intent(memory=mem)))
        assert not isinstance(res, Outcome)
        got.append(name)

    t_high = threading.Thread(target=admit, args=(high, "high", 300 * MiB))
    t_high.start()
    wait_for(lambda: adm.waiting == 1, "the high call to wait first", 10)
    t_low = threading.Thread(target=admit, args=(low, "low", 40 * MiB))
    t_low.start()  # 60 MiB free: the low call fits, the high one does not
    t_low.join(5)
    assert got == ["low"] and adm.waiting == 1
    usage["used"] = 0
    adm._reserved.clear()
    adm.release("c0")
    t_high.join(5)
    assert got == ["low", "high"]


def test_a_lower_priority_predicted_call_leaves_headroom_for_a_higher_priority_session() -> None:
    adm, low, high, usage = _two_sessions()
    adm.predictor = ScopedPredictor(None)
    for other in ("o1", "o2", "o3"):  # both sessions' make: predicted from the host's history
        adm.predictor.learn(outcome(other, ["make"], 50 * MiB))
    want = adm.predictor.predict(CallSpec.of(["make"]), "low").memory
    assert want is not None and 50 * MiB < want < 160 * MiB
    usage["used"] = 360 * MiB - 2 * want + 10 * MiB  # room for one make, not for two
    queued, token = adm.admit(high, CallSpec.of(["make"]))  # the high session's make fits at once
    assert queued == 0
    adm.release(token)  # it ended: its need (one make) is remembered
    adm.config = ControllerConfig(admission_wait=0.3, budget=400 * MiB)
    queued, token = adm.admit(low, CallSpec.of(["make"]))  # it would fit, but only into the high one's headroom
    assert queued >= 0.25
    adm.release(token)
    usage["used"] = 360 * MiB - 2 * want - 10 * MiB  # room for both: the low call goes at once
    queued, token = adm.admit(low, CallSpec.of(["make"]))
    assert queued == 0
    adm.release(token)
    usage["used"] = 360 * MiB - 2 * want + 10 * MiB
    assert adm.admit(high, CallSpec.of(["make"]))[0] == 0  # the highest priority keeps no headroom


def test_a_predicted_call_counts_lower_priority_calls_memory_as_room_under_the_host_budget() -> None:
    """A low call running holds 250 MiB of a 400 MiB budget (360 MiB usable, 300 MiB used): a high session's
    predicted make (~100 MiB) does not fit beside it, but that memory gives way to it (the pressure policy holds
    the low call): it starts at once. The low session's own next make does not count it (its own priority): it
    waits. Without the rule the high call waited too (the learned arm's high session queued 12-17 s a run)."""
    adm, low, high, usage = _two_sessions()
    running = adm._calls()
    running[0].rank = 0
    adm._snapshot = lambda: SimpleNamespace(  # type: ignore[method-assign]
        budgets=lambda: [("", usage["used"], 400 * MiB, running)],
        stats=lambda cs: SimpleNamespace(memory_current=250 * MiB),
    )
    adm.predictor = ScopedPredictor(None)
    for other in ("o1", "o2", "o3"):
        adm.predictor.learn(outcome(other, ["make"], 90 * MiB))
    want = adm.predictor.predict(CallSpec.of(["make"]), "high").memory
    assert want is not None and 60 * MiB < want < 300 * MiB
    queued, token = adm.admit(high, CallSpec.of(["make"]))
    assert queued == 0
    adm.release(token)
    adm.config = ControllerConfig(admission_wait=0.3, budget=400 * MiB)
    queued, token = adm.admit(low, CallSpec.of(["make"]))
    assert queued >= 0.25  # the same memory is not room for a call of the low call's own priority
    adm.release(token)


def test_a_predicted_call_does_not_wait_for_lower_priority_calls_to_end() -> None:
    """Predicted bigger than the budget, with only a low call running: nothing that could free memory *for it*
    runs (the low call's memory already counts as its room), so the high call starts at once instead of waiting
    out ``admission_wait``; a low call in its place waits (the low call's end is room for it)."""
    adm, low, high, _usage = _two_sessions()
    running = adm._calls()
    running[0].rank = 0
    adm.predictor = ScopedPredictor(None)
    for other in ("o1", "o2", "o3"):
        adm.predictor.learn(outcome(other, ["make"], 900 * MiB))  # over the 400 MiB budget
    adm.config = ControllerConfig(admission_wait=0.5, budget=400 * MiB)
    queued, token = adm.admit(high, CallSpec.of(["make"]))
    assert queued == 0
    adm.release(token)
    queued, token = adm.admit(low, CallSpec.of(["make"]))
    assert queued >= 0.4
    adm.release(token)
