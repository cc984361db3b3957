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
from agentcgroup.controller.predicted import Predictor
from agentcgroup.errors import InvalidValue
from agentcgroup.outcome import Outcome

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
        self.session = SimpleNamespace(name="s", budget=400 * MiB)
        self.running: list = [SimpleNamespace(id="c0", session=self.session)]
        self.predictor = Predictor(None)
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
        def free() -> None:
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
