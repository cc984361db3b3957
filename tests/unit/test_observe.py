"""The observing parts without a kernel: the event bus, how a call's end is classed, the metrics address,
event lines, top's view of a recording at a moment, and top's screen."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from rich.console import Console

from agentcgroup.cli.events_cmd import format_record
from agentcgroup.cli.main import cli
from agentcgroup.controller.events import EventBus, outcome_kind
from agentcgroup.errors import InvalidValue
from agentcgroup.observe.recorded import recorded_view
from agentcgroup.observe.screen import render, sort_sessions
from agentcgroup.outcome import Outcome

MiB = 1 << 20


def test_the_bus_hands_each_event_to_every_subscriber_even_after_one_fails() -> None:
    bus = EventBus()
    bus.emit("admit", "s", 0)  # nobody listens: nothing happens
    got: list[str] = []

    def broken(ev):  # type: ignore[no-untyped-def]
        raise RuntimeError("a listener's bug")

    bus.subscribe(broken)
    bus.subscribe(lambda ev: got.append(f"{ev.kind}:{ev.session}:{ev.call}:{ev.fields['reason']}"))
    bus.emit("kill", "s1", 1001, "c1", reason="over")
    assert got == ["kill:s1:c1:over"]
    bus.unsubscribe(broken)
    assert bus.active


@pytest.mark.parametrize(
    ("fields", "kind"),
    [
        ({}, "exit"),
        ({"exit_code": 3}, "exit"),
        ({"signal": 15}, "signal"),
        ({"killed_by": "memory", "signal": 9}, "memory"),
        ({"oom_kills": 1, "signal": 9}, "memory"),
        ({"killed_by": "timeout"}, "timeout"),
        ({"killed_by": "policy"}, "policy"),
        ({"refused": True}, "refused"),
        ({"error": "boom"}, "error"),
    ],
)
def test_outcome_kind(fields, kind) -> None:
    out = Outcome(session="s", call_id="c", command="x", argv=["x"], backend="v2", **fields)
    assert outcome_kind(out) == kind


def test_metrics_address() -> None:
    pytest.importorskip("prometheus_client")
    from agentcgroup.observe.metrics import parse_address

    assert parse_address("9464") == ("127.0.0.1", 9464)
    assert parse_address(":9464") == ("127.0.0.1", 9464)
    assert parse_address("0.0.0.0:80") == ("0.0.0.0", 80)
    assert parse_address("[::1]:9464") == ("::1", 9464)
    for bad in ("host:http", "1.2.3.4:70000", "x"):
        with pytest.raises(InvalidValue, match="--metrics"):
            parse_address(bad)


def test_an_event_line() -> None:
    line = format_record(
        {"t": 0.25, "kind": "kill", "session": "s1", "call": "c7", "by": "memory", "latency_s": 0.0004, "reason": "r"}
    )
    assert "kill" in line and "s1/c7" in line and "by=memory" in line and "latency_s=0.40ms" in line
    assert line.endswith("— r")


def _recording(tmp_path, name="s1", start=1000.0):
    recs = [
        {"type": "header", "format": "agentcg-recording", "version": 1, "session": name, "interval_s": 0.1,
         "started_at": start, "host": {}, "meta": {"priority": "low"}},
        {"type": "sample", "t": start + 1, "mem_bytes": 10 * MiB, "cpu_usec": 100_000},
        {"type": "call_start", "t": start + 2, "call": "c1", "command": "pytest -x"},
        {"type": "sample", "t": start + 3, "call": "c1", "mem_bytes": 300 * MiB, "mem_peak_bytes": 310 * MiB},
        {"type": "sample", "t": start + 3.5, "mem_bytes": 320 * MiB, "freeze_events": 1},
        {"type": "call_end", "t": start + 5, "call": "c1",
         "outcome": {"exit_code": None, "killed": True, "reason": "frozen at its budget, then killed"}},
        {"type": "sample", "t": start + 6, "mem_bytes": 12 * MiB, "cpu_usec": 900_000},
    ]  # fmt: skip
    path = tmp_path / f"{name}.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in recs) + "\n{cut sho")  # a last line cut short
    return str(path)


def test_a_recording_at_a_moment(tmp_path) -> None:
    path = _recording(tmp_path)
    before = recorded_view([path], 1.5)
    (s,) = before["sessions"]
    assert (s["name"], s["priority"], s["memory"], s["calls"], before["actions"]) == ("s1", "low", 10 * MiB, [], [])
    during = recorded_view([path], 4)
    (c,) = during["sessions"][0]["calls"]
    assert c["call_id"] == "c1" and c["memory"] == 300 * MiB and c["age_s"] == 2 and c["phase"] == "frozen"
    after = recorded_view([path], 10)
    assert after["sessions"][0]["calls"] == [] and after["sessions"][0]["memory"] == 12 * MiB
    assert [(a["kind"], a["call"]) for a in after["actions"]] == [("kill", "c1")]
    with pytest.raises(InvalidValue, match="no header"):
        bad = tmp_path / "bad.jsonl"
        bad.write_text('{"type": "sample", "t": 1}\n')
        recorded_view([str(bad)], 0)


def test_top_over_a_recording_from_the_command_line(tmp_path) -> None:
    path = _recording(tmp_path)
    r = CliRunner().invoke(cli, ["top", "--recording", path, "--at", "4", "--once"])
    assert r.exit_code == 0, r.output
    assert "recording +4s" in r.output and "c1" in r.output and "frozen" in r.output and "pytest -x" in r.output
    r = CliRunner().invoke(cli, ["top", "--at", "4", "--once"])
    assert r.exit_code == 2 and "--recording" in r.output
    r = CliRunner().invoke(cli, ["top", "--recording", str(tmp_path / "none.jsonl"), "--once"])
    assert r.exit_code == 2 and "none.jsonl" in r.output


def test_the_screen_shows_states_sorts_and_collapses() -> None:
    view = {
        "t": 0.0,
        "backend": "v2",
        "budget": 4 << 30,
        "memory": 1 << 30,
        "sessions": [
            {"name": "a", "priority": "low", "memory": 5 * MiB, "cpu_s": 9.0, "calls": []},
            {
                "name": "b",
                "priority": "high",
                "memory": 700 * MiB,
                "cpu_s": 1.0,
                "budget": 1 << 30,
                "calls": [{"call_id": "c9", "command": "cargo\nbuild", "age_s": 3.0, "memory": 600 * MiB,
                           "phase": "frozen"}],
            },
        ],
        "actions": [{"t": 0.0, "kind": "freeze", "session": "b", "call": "c9", "policy": "pressure",
                     "reason": "the host budget is short"}],
    }  # fmt: skip
    assert [s["name"] for s in sort_sessions(view["sessions"], "memory")] == ["b", "a"]
    assert [s["name"] for s in sort_sessions(view["sessions"], "cpu")] == ["a", "b"]
    assert [s["name"] for s in sort_sessions(view["sessions"], "priority")] == ["b", "a"]
    console = Console(width=160, record=True)
    console.print(render(view))
    text = console.export_text()
    call_row = next(line for line in text.splitlines() if "c9" in line and "└" in line)
    assert "frozen" in call_row and "600 MiB" in call_row and "cargo build" in call_row
    assert "budget 4 GiB (1 GiB used)" in text and "the host budget is short" in text
    console = Console(width=160, record=True)
    console.print(render(view, expanded=False))
    assert "└" not in console.export_text()


def _families() -> set[str]:
    """The agentcg_* families a Metrics exposes, over a fake controller with one session."""
    pytest.importorskip("prometheus_client")
    from types import SimpleNamespace

    from prometheus_client import generate_latest

    from agentcgroup.backends.base import Stats
    from agentcgroup.observe.metrics import Metrics

    session = SimpleNamespace(name="s1", priority="high", calls={}, cg=object(), budget=1 << 30)
    ctl = SimpleNamespace(
        events=EventBus(),
        root=SimpleNamespace(cg=object()),
        session_states=lambda: [session],
        manager=SimpleNamespace(
            memory_pressure=lambda cg: (1.5, 0.5),
            usage_stats=lambda cg: Stats(memory_current=5, memory_peak=9, cpu_usec=7),
        ),
        config=SimpleNamespace(budget=2 << 30),
        admission=SimpleNamespace(waiting=0),
    )
    m = Metrics(ctl)  # type: ignore[arg-type]
    ctl.events.emit("kill", "s1", 0, "c1", priority="high", latency_s=0.001, reason="r")
    text = generate_latest(m.registry).decode()
    m.close()
    assert 'agentcg_policy_actions_total{action="kill",priority="high"} 1.0' in text
    assert 'agentcg_session_memory_pressure_ratio{kind="some",priority="high",session="s1"} 0.015' in text
    assert "c1" not in text
    assert 'agentcg_session_cpu_seconds_total{priority="high",session="s1"} 7e-06' in text
    assert "agentcg_root_memory_peak_bytes 9.0" in text and "agentcg_root_memory_budget_bytes 2.147483648e+09" in text
    import re

    names = set(re.findall(r"^# TYPE (agentcg_\w+) ", text, re.M))
    return {n for n in names}


def _mentioned(text: str) -> set[str]:
    import re

    found = set(re.findall(r"agentcg_[a-z_]+", text))
    return {re.sub(r"_(bucket|sum|count)$", "", n) for n in found}


def test_every_metric_is_documented_and_the_dashboard_uses_only_real_ones() -> None:
    from pathlib import Path

    fams = _families()
    assert len(fams) >= 18
    docs = Path(__file__).resolve().parents[2] / "docs"
    exposed = fams | {f + "_total" for f in fams}
    documented = _mentioned((docs / "metrics.md").read_text())
    assert not {f for f in fams if f not in documented and f + "_total" not in documented}, documented
    assert documented <= exposed, documented - exposed
    dashboard = json.loads((docs / "grafana-dashboard.json").read_text())
    used = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            used |= _mentioned(target["expr"])
    assert used and used <= exposed, used - exposed
