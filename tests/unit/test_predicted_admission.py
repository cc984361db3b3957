"""The controller's predictor (issue 16): it learns from outcomes, keeps its history in the state dir, reloads
(and calibrates) it; the ``predict`` setting."""

from __future__ import annotations

import pytest

from agentcgroup.controller.callspec import CallSpec
from agentcgroup.controller.config import ControllerConfig
from agentcgroup.controller.predicted import Predictor
from agentcgroup.errors import InvalidValue
from agentcgroup.outcome import Outcome

MiB = 1 << 20


def outcome(session: str, argv: list[str], peak: int | None, refused: bool = False) -> Outcome:
    return Outcome(
        session=session,
        call_id="c1",
        command=" ".join(argv),
        argv=argv,
        backend="v2",
        exit_code=0,
        duration_s=2.0,
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
