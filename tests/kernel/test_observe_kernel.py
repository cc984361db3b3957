"""What the controller shows of itself (issue 15): /metrics parsed with prometheus-client's own parser after a
scripted scenario, and the event log (a file, and ``agentcg events`` following it) as root and as a tenant."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from agentcgroup.daemon.client import Client
from tests.conftest import SLOW
from tests.kernel.daemon_fixtures import PY, make_tenants, remove_tenants, start_daemon, stop_daemon, wait_for

pytestmark = [pytest.mark.kernel]

prom_parser = pytest.importorskip("prometheus_client.parser", reason="prometheus-client is not installed ([test])")

MiB = 1 << 20
#: allocates 300 MiB in 1 MiB steps, then holds it: over a 64 MiB soft limit it is throttled, frozen, killed
HOG = "import time\nb = []\nfor i in range(300): b.append(bytearray(1 << 20))\ntime.sleep(60)"
FAMILIES = (
    "agentcg_sessions",
    "agentcg_calls_running",
    "agentcg_calls_finished",
    "agentcg_session_memory_bytes",
    "agentcg_session_memory_peak_bytes",
    "agentcg_session_memory_budget_bytes",
    "agentcg_root_memory_bytes",
    "agentcg_root_memory_peak_bytes",
    "agentcg_root_memory_budget_bytes",
    "agentcg_session_cpu_seconds",
    "agentcg_session_memory_pressure_ratio",
    "agentcg_policy_actions",
    "agentcg_kernel_oom_kills",
    "agentcg_admission_queue_length",
    "agentcg_admission_decisions",
    "agentcg_admission_wait_seconds",
    "agentcg_reaction_seconds",
    "agentcg_loop_lag_seconds",
)


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(n: int) -> list[int]:
    """``n`` distinct free ports (held open together while chosen: two picks one after the other can be one)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def scrape(port: int) -> dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """family -> {(sample name, sorted labels): value}, parsed by prometheus-client's parser."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10 * SLOW).read().decode()
    out: dict[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]] = {}
    for fam in prom_parser.text_string_to_metric_families(text):
        out[fam.name] = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in fam.samples}
    return out


def value(fams, family: str, sample: str | None = None, **labels: str) -> float:
    want = tuple(sorted(labels.items()))
    got = fams[family]
    return got[(sample or family, want)]


@pytest.fixture
def observed(tmp_path, root_name):
    port = free_port()
    events = tmp_path / "events" / "events.jsonl"
    d = start_daemon(
        tmp_path,
        root_name,
        "--metrics",
        f"127.0.0.1:{port}",
        "--events",
        str(events),
        "--events-max-size",
        "64K",
        "--budget",
        "2G",
        "--stall-grace",
        "300ms",
        "--kill-after",
        "1500ms",
    )
    yield d, port, events
    stop_daemon(d, root_name)


def test_metrics_after_a_scripted_scenario_have_every_family(observed) -> None:
    d, port, events = observed
    c = Client(d.sock)
    c.open_session("s1", priority="high", limits={"memory": "1G"})
    # a call the kernel kills at its hard limit
    out = c.run("s1", [PY, "-c", "bytearray(1 << 30)"], limits={"memory": "128M"})
    assert out.killed_by == "memory" and out.oom_kills >= 1
    # a call over its soft limit: throttled, then frozen (seen frozen in the metrics), then killed
    seen_frozen = threading.Event()
    result = {}
    t = threading.Thread(
        target=lambda: result.update(out=c.run("s1", [PY, "-c", HOG], limits={"memory_high": "64M"})), daemon=True
    )
    t.start()

    def frozen() -> bool:
        fams = scrape(port)
        frozen = (("session", "s1"), ("priority", "high"), ("phase", "frozen"))
        if fams["agentcg_calls_running"].get(("agentcg_calls_running", tuple(sorted(frozen)))) == 1:
            seen_frozen.set()
        return seen_frozen.is_set()

    wait_for(frozen, "the throttled call frozen in agentcg_calls_running", timeout=20)
    t.join(30 * SLOW)
    assert [s.action for s in result["out"].steps] == ["throttle", "freeze", "kill"]
    # a call refused at admission: it declares more than the session's budget
    refused = c.run("s1", ["true"], intent={"memory": "2G"})
    assert refused.refused
    ok = c.run("s1", ["true"])
    assert ok.returncode == 0

    fams = scrape(port)
    missing = [f for f in FAMILIES if f not in fams]
    assert not missing, f"families missing from /metrics: {missing}"
    for name in fams:
        assert name.startswith("agentcg_") or not name.startswith("agentcg"), name
    assert value(fams, "agentcg_sessions", priority="high") == 1
    assert value(fams, "agentcg_sessions", priority="low") == 0
    # nothing runs now: running 0; throttled and frozen are there only while a call is
    assert value(fams, "agentcg_calls_running", session="s1", priority="high", phase="running") == 0
    assert {dict(labels)["phase"] for _, labels in fams["agentcg_calls_running"]} == {"running"}
    fin = "agentcg_calls_finished_total"
    assert value(fams, "agentcg_calls_finished", fin, priority="high", outcome="memory") == 2
    assert value(fams, "agentcg_calls_finished", fin, priority="high", outcome="refused") == 1
    assert value(fams, "agentcg_calls_finished", fin, priority="high", outcome="exit") == 1
    act = "agentcg_policy_actions_total"
    for action in ("throttle", "freeze", "kill"):
        assert value(fams, "agentcg_policy_actions", act, action=action, priority="high") >= 1, action
    assert value(fams, "agentcg_policy_actions", act, action="kill", priority="high") <= 2  # + the OOM group's
    assert value(fams, "agentcg_kernel_oom_kills", "agentcg_kernel_oom_kills_total", priority="high") >= 1
    key = {"session": "s1", "priority": "high"}
    assert value(fams, "agentcg_session_memory_budget_bytes", **key) == 1 << 30
    assert value(fams, "agentcg_session_memory_peak_bytes", **key) >= 100 * MiB  # the killed call's 128 MiB
    assert 0 <= value(fams, "agentcg_session_memory_bytes", **key) < 64 * MiB  # nothing runs now
    assert value(fams, "agentcg_session_cpu_seconds", "agentcg_session_cpu_seconds_total", **key) > 0.05
    psi = fams["agentcg_session_memory_pressure_ratio"]
    assert all(0 <= v <= 1 for v in psi.values())
    if Client(d.sock).hello()["features"].get("psi") == "per-cgroup":
        assert ("agentcg_session_memory_pressure_ratio", (*sorted({**key, "kind": "some"}.items()),)) in psi, psi
    assert value(fams, "agentcg_root_memory_budget_bytes") == 2 << 30
    assert value(fams, "agentcg_root_memory_peak_bytes") >= 100 * MiB
    assert value(fams, "agentcg_root_memory_bytes") >= 0
    assert value(fams, "agentcg_admission_queue_length") == 0
    dec = "agentcg_admission_decisions_total"
    assert value(fams, "agentcg_admission_decisions", dec, decision="admitted") == 3
    assert value(fams, "agentcg_admission_decisions", dec, decision="refused") == 1
    assert value(fams, "agentcg_admission_wait_seconds", "agentcg_admission_wait_seconds_count") == 0
    n = value(fams, "agentcg_reaction_seconds", "agentcg_reaction_seconds_count")
    assert n >= 1  # the throttle reacted to a kernel event
    assert 0 < value(fams, "agentcg_reaction_seconds", "agentcg_reaction_seconds_sum") / n < 0.5
    assert value(fams, "agentcg_loop_lag_seconds", "agentcg_loop_lag_seconds_count") >= 2
    # no call ids or commands in any label
    for fam in fams.values():
        for _sample, labels in fam:
            for k, v in labels:
                assert k in ("session", "priority", "phase", "outcome", "action", "decision", "kind", "le"), k
                assert "python" not in v and v != out.call_id

    # the event log file: JSON lines, the same steps, private to root
    assert os.stat(events).st_mode & 0o777 == 0o600
    recs = [json.loads(line) for line in events.read_text().splitlines()]
    kinds = [r["kind"] for r in recs]
    for kind in ("session-open", "admit", "refuse", "call-start", "call-end", "throttle", "freeze", "kill"):
        assert kind in kinds, kind
    kill = next(r for r in recs if r["kind"] == "kill" and r["call"] == result["out"].call_id)
    assert kill["session"] == "s1" and kill["by"] == "memory" and "soft memory limit" in kill["reason"]
    assert kill["policy"] == "soft-limit" and kill["phase"] == "frozen"


def test_events_follow_shows_a_kill_within_100ms(observed) -> None:
    d, _port, _events = observed
    c = Client(d.sock)
    c.open_session("w", limits={"memory": "1G"})
    env = {**os.environ, "AGENTCG_SOCKET": d.sock}
    follower = subprocess.Popen(
        [PY, "-m", "agentcgroup", "events", "--follow", "--json", "--last", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
    )
    lines: list[tuple[float, dict]] = []

    def read() -> None:
        assert follower.stdout is not None
        for raw in follower.stdout:
            lines.append((time.monotonic(), json.loads(raw)))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        # the past comes in the same step of the daemon's loop as the follow starts: once the session's open
        # (the last event so far) is shown, the follower is following
        wait_for(lambda: [r.get("kind") for _, r in lines] == ["session-open"], "the follower to start")
        started: dict = {}
        t = threading.Thread(
            target=lambda: started.update(
                out=c.run("w", ["sleep", "60"], on_started=lambda cid: started.update(id=cid))
            ),
            daemon=True,
        )
        t.start()
        wait_for(
            lambda: any(r.get("kind") == "call-start" and r.get("call") == started.get("id") for _, r in lines),
            "the follower to show the call's start",
        )
        t0 = time.monotonic()
        c.kill("w", started["id"], reason="enough")
        wait_for(lambda: any(r.get("kind") == "kill" for _, r in lines), "the kill in the follower", timeout=5)
        seen = next(ts for ts, r in lines if r.get("kind") == "kill")
        took = seen - t0
        assert took < 0.1 * SLOW, f"the kill showed {took * 1000:.1f} ms after it was asked for"
        kill = next(r for _, r in lines if r.get("kind") == "kill")
        assert kill["call"] == started["id"] and kill["reason"] == "enough" and kill["uid"] == 0
        t.join(10 * SLOW)
        wait_for(lambda: any(r.get("kind") == "call-end" for _, r in lines), "the call's end")
        end = next(r for _, r in lines if r.get("kind") == "call-end")
        assert end["outcome"] == "policy" and end["returncode"] == 137
    finally:
        follower.terminate()
        follower.wait(10)


def test_a_tenant_sees_only_its_own_events(tmp_path, root_name) -> None:
    tenants = make_tenants(2)
    d = start_daemon(tmp_path, root_name)
    try:
        a, b = tenants
        for t in tenants:
            code = (
                "import sys; from agentcgroup.daemon.client import Client; c = Client(sys.argv[1]);"
                "c.open_session('mine'); print(c.run('mine', ['true']).returncode)"
            )
            r = t.run(code, d.sock)
            assert r.returncode == 0 and r.stdout.strip() == "0", r.stderr
        show = ["events", "--json", "--socket", d.sock]
        cli = "import sys; from agentcgroup.cli.main import cli; cli(sys.argv[1:], prog_name='agentcg')"
        r = a.run(cli, *show)
        assert r.returncode == 0, r.stderr
        recs = [json.loads(line) for line in r.stdout.splitlines()]
        assert recs and {x["session"] for x in recs} == {"mine"}, recs  # its own name, not u<uid>:mine
        assert all("uid" not in x for x in recs)
        assert {"session-open", "admit", "call-start", "call-end"} <= {x["kind"] for x in recs}
        # another tenant's session, asked for by name, is this tenant's own (empty) namespace
        r = a.run(cli, *show, "--session", "other")
        assert r.returncode == 0 and r.stdout == "", r.stdout
        # root sees both, by their full names
        out = subprocess.run(
            [PY, "-m", "agentcgroup", *show], capture_output=True, text=True, check=True, timeout=30 * SLOW
        ).stdout
        names = {json.loads(line)["session"] for line in out.splitlines()}
        assert names == {f"u{a.uid}:mine", f"u{b.uid}:mine"}, names
    finally:
        stop_daemon(d, root_name)
        remove_tenants(tenants)


def test_the_event_log_rotates_by_size(tmp_path, root_name) -> None:
    events = tmp_path / "ev.jsonl"
    d = start_daemon(tmp_path, root_name, "--events", str(events), "--events-max-size", "8K")
    try:
        c = Client(d.sock)
        c.open_session("r")
        for _ in range(30):
            assert c.run("r", ["true"]).returncode == 0
        rotated = tmp_path / "ev.jsonl.1"
        assert rotated.exists() and events.exists()
        assert os.path.getsize(events) <= 8192 and os.path.getsize(rotated) <= 8192 + 2048
        assert os.stat(rotated).st_mode & 0o777 == 0o600 and os.stat(events).st_mode & 0o777 == 0o600
        for path in (events, rotated):
            for line in path.read_text().splitlines():
                assert json.loads(line)["kind"]
    finally:
        stop_daemon(d, root_name)


def test_bad_observe_flags_are_refused_naming_the_value(tmp_path) -> None:
    for flags, named in (
        (["--metrics", "localhost:http"], "localhost:http"),
        (["--metrics", "127.0.0.1:70000"], "70000"),
        (["--events-max-size", "12"], "12"),
    ):
        r = subprocess.run(
            [PY, "-m", "agentcgroup", "daemon", "--socket", str(tmp_path / "s"), *flags],
            capture_output=True,
            text=True,
            timeout=30 * SLOW,
        )
        assert r.returncode == 2 and named in r.stderr, (flags, r.stderr)
        assert not (tmp_path / "s").exists()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
