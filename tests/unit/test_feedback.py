from __future__ import annotations

import pytest

from agentcgroup.feedback import build_feedback, command_text
from agentcgroup.outcome import Outcome, Step


def outcome(**kw) -> Outcome:
    base = dict(session="s", call_id="c1", command="pytest -n 8", argv=["pytest", "-n", "8"], backend="v2")
    base.update(kw)
    return Outcome(**base)


def test_memory_kill_names_limit_peak_and_a_fix() -> None:
    o = outcome(
        signal=9,
        killed_by="memory",
        memory_limit=2 << 30,
        memory_peak=2 << 30,
        duration_s=3.2,
        limits={"memory_max": "2G"},
    )
    text = build_feedback(o)
    assert "out of memory" in text and "2 GiB" in text and "`pytest -n 8`" in text
    assert "-n 2" in text and "memory=4G" in text
    assert o.returncode == 137


def test_frozen_then_killed_is_said_first() -> None:
    o = outcome(signal=9, killed_by="memory", memory_limit=1 << 30, memory_peak=1 << 30, frozen_s=3.1)
    assert build_feedback(o).startswith("frozen 3.1 s, then killed")


def test_timeout() -> None:
    o = outcome(
        command="sleep 100",
        argv=["sleep", "100"],
        signal=9,
        killed_by="timeout",
        kill_reason="10 s",
        duration_s=10.0,
        cpu_s=0.0,
        memory_peak=1 << 20,
    )
    text = build_feedback(o)
    assert "time limit (10 s)" in text and "child processes" in text


def test_nothing_to_say_when_nothing_acted() -> None:
    assert build_feedback(outcome(exit_code=1, duration_s=1.0, memory_peak=10 << 20)) is None


def test_pids_refused() -> None:
    o = outcome(command="make -j64", argv=["make", "-j64"], exit_code=2, pids_denied=12, limits={"pids_max": 32})
    text = build_feedback(o)
    assert "12 attempt(s)" in text and "32" in text and "-j2" in text


def test_release_step_is_explained() -> None:
    o = outcome(
        exit_code=0,
        steps=[
            Step(0.2, "throttle", "x"),
            Step(1.2, "release", "stalled 1 s at the soft limit", {"soft": "200 MiB", "hard": "1 GiB", "held_s": 1.0}),
        ],
    )
    assert "200 MiB" in build_feedback(o) and "held there 1.0 s" in build_feedback(o) and "1 GiB" in build_feedback(o)


def test_long_commands_are_shortened_and_shells_unwrapped() -> None:
    assert command_text(["bash", "-c", "cd x && pytest"]) == "cd x && pytest"
    assert command_text(["python3", "-c", "print(1)"]) == "python3 -c 'print(1)'"
    o = outcome(command="x" * 200, argv=["x"], signal=9, killed_by="timeout", duration_s=1.0)
    assert "..." in build_feedback(o)


def test_outcome_json_round_trip() -> None:
    import json

    o = outcome(exit_code=0, stdout=b"hi")
    d = json.loads(o.to_json())
    assert d["returncode"] == 0 and "stdout" not in d and d["call_id"] == "c1"
    assert json.loads(o.to_json(include_output=True))["stdout"] == "hi"


def test_kernel_oom_kill_under_a_shared_budget_does_not_blame_the_command() -> None:
    # no limit of its own: the host budget ran out with other work in it
    o = outcome(
        command="python3 load.py", argv=["python3", "load.py"], signal=9, killed_by="memory", oom_kills=1,
        memory_peak=400 << 20, duration_s=1.5,
    )  # fmt: skip
    text = build_feedback(o)
    assert "smaller chunks" not in text and "not at fault" in text and "shared with other sessions" in text
    assert "retry it when the host has room" in text and "memory=400M" in text and "fewer workers" in text
    # a limit of its own far above its peak: the same
    o.memory_limit = 2 << 30
    assert "not at fault" in build_feedback(o) and "under its own 2 GiB limit" in build_feedback(o)
    # its own limit reached: its own doing, the usual advice
    o.memory_limit, o.memory_peak = 400 << 20, 400 << 20
    text = build_feedback(o)
    assert "exceeded its 400 MiB memory limit" in text and "smaller chunks" in text and "not at fault" not in text


def test_pressure_kill_says_the_shared_budget_and_never_names_other_commands() -> None:
    kill = Step(2.0, "kill", "the host budget 1 GiB at 98%: no memory for it", {"usage": 300 << 20, "scope": "host"})
    o = outcome(
        command="python3 -c 'x'", argv=["python3", "-c", "x"], signal=9, killed_by="policy", memory_peak=300 << 20,
        kill_reason=kill.reason, steps=[Step(0.5, "throttle", "t", {"scope": "host"}), kill], frozen_s=1.0,
    )  # fmt: skip
    text = build_feedback(o)
    assert text.startswith("frozen 1.0 s, then killed to free memory for higher-priority work")
    assert "host's memory budget" in text and "not at fault" in text and "smaller chunks" not in text
    assert "pytest" not in text and "retry it when the host has room" in text
    # a session's own budget: the session's other calls took it
    kill.figures["scope"] = "s"
    text = build_feedback(o)
    assert "session s" in text and "once your session's other calls are done" in text


def test_a_call_slowed_for_the_shared_budget_is_told_so() -> None:
    o = outcome(exit_code=0, steps=[Step(0.5, "throttle", "the host budget at 93%", {"scope": "host"})], frozen_s=0.4)
    text = build_feedback(o)
    assert "slowed down and frozen 0.4 s" in text and "not at fault" in text
    assert build_feedback(outcome(exit_code=0, steps=[Step(0.5, "throttle", "own soft limit")])) is None


def test_oom_score_adj_ranks_priorities() -> None:
    from agentcgroup.controller.config import ControllerConfig

    cfg = ControllerConfig()
    adj = {p: cfg.tool_adj(p) for p in ("low", "normal", "high")}
    assert adj["low"] > adj["normal"] > adj["high"] > 0  # agents keep 0: last
    assert adj == {"low": 1000, "normal": 666, "high": 333}
    assert {ControllerConfig(tool_oom_score_adj=0).tool_adj(p) for p in adj} == {0}
    # agents 1000 below the high calls: a call's size plus the budget outscores any agent the budget holds
    assert cfg.agent_adj() == -667 and ControllerConfig(tool_oom_score_adj=300).agent_adj() == -900
    assert ControllerConfig(tool_oom_score_adj=0).agent_adj() is None  # the bench's baselines: left as is
    # agents that cannot be lowered (no CAP_SYS_RESOURCE) stay at 0: the calls keep their order in the top fifth
    assert {p: cfg.tool_adj(p, agents_lowered=False) for p in adj} == {"low": 1000, "normal": 900, "high": 800}


def test_outcome_to_dict_is_every_field_but_the_output_copied() -> None:
    from agentcgroup.outcome import Outcome, Step

    out = Outcome("s", "c1", "make", ["make", "-j"], "hybrid", exit_code=2, limits={"memory_max": 1 << 20})
    out.intent = {"memory": 5, "nested": {"a": [1, 2]}}
    out.steps = [Step(0.5, "kill", "memory", {"peak": 7, "list": [1]})]
    out.stdout, out.stderr = b"x" * 10, b"err"
    want = {name: getattr(out, name) for name in Outcome.FIELDS if name not in ("stdout", "stderr")}
    want["steps"] = [{"at": 0.5, "action": "kill", "reason": "memory", "figures": {"peak": 7, "list": [1]}}]
    assert want["exit_code"] == 2 and want["limits"] == {"memory_max": 1 << 20} and want["killed_by"] is None
    want["returncode"], want["signal_name"] = 2, None
    got = out.to_dict()
    assert got == want
    got["steps"][0]["figures"]["peak"] = 0
    got["intent"]["nested"]["a"].append(3)
    got["argv"].append("x")
    assert out.steps[0].figures["peak"] == 7 and out.intent["nested"]["a"] == [1, 2] and out.argv == ["make", "-j"]
    assert out.to_dict(include_output=True)["stdout"] == "x" * 10


def test_outcome_and_step_behave_as_records() -> None:
    """Plain classes (not dataclasses, for the import time of a process per call): fields by position or name,
    fresh containers per object, equality by value, unhashable, a repr naming the fields."""
    from agentcgroup.outcome import Outcome, Step

    a = Outcome("s", "c1", "true", ["true"], "hybrid", 0)
    b = Outcome(session="s", call_id="c1", command="true", argv=["true"], backend="hybrid", exit_code=0)
    assert a == b and a.exit_code == 0 and a.signal is None and a.enforced and not a.refused
    a.limits["x"] = 1
    a.steps.append(Step(0.1, "note", "r"))
    assert b.limits == {} and b.steps == [] and a != b
    assert Step(1.0, "kill", "memory") == Step(1.0, "kill", "memory", {}) != Step(1.0, "kill", "timeout")
    assert Step(1.0, "kill", "memory").figures is not Step(1.0, "kill", "memory").figures
    with pytest.raises(TypeError):
        hash(a)
    assert repr(b).startswith("Outcome(session='s', call_id='c1', command='true'")
    assert set(Outcome.FIELDS) >= {"stdout", "stderr", "exit_code", "steps"} and len(Outcome.FIELDS) == 33
    with pytest.raises(TypeError):
        Outcome("s", "c1", "true", ["true"], "hybrid", nonsense=1)  # type: ignore[call-arg]
