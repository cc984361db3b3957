"""The operator's policy, per-uid names and environment, the rate buckets, and the issue's named bad inputs."""

from __future__ import annotations

import json
import os
import pwd

import pytest
from click.testing import CliRunner

from agentcgroup.cli.main import cli
from agentcgroup.daemon import tenants
from agentcgroup.daemon.policy import TENANT_DEFAULTS, UNLIMITED, NotAllowed, Policy, check_cap, parse_caps
from agentcgroup.daemon.protocol import ProtocolError, parse_request, run_from
from agentcgroup.daemon.ratelimit import Buckets, LogBudget
from agentcgroup.errors import InvalidValue


def test_defaults_root_unlimited_tenants_safe() -> None:
    p = Policy()
    assert p.caps(0, 0) == UNLIMITED
    caps = p.caps(65534, 65534)
    assert caps == TENANT_DEFAULTS
    assert caps.max_priority == "normal" and caps.max_cpu_weight == 100 and caps.max_memory_protection == 64 << 20
    assert caps.max_sessions and caps.max_calls and caps.max_connections and caps.max_requests_per_s


def test_the_file_layers_tenants_groups_and_users(tmp_path) -> None:
    me = pwd.getpwuid(os.getuid())
    group = __import__("grp").getgrgid(me.pw_gid).gr_name
    f = tmp_path / "p.toml"
    f.write_text(
        "[tenants]\nmax_sessions = 5\n[group.nosuchgroup]\nmax_calls = 1\n"
        f'[group.{group}]\nmax_calls = 7\nmax_priority = "high"\n'
        '[user.65534]\nmax_calls = 9\nmax_session_memory = "2G"\n[root]\nmax_sessions = 1000\n'
    )
    p = Policy.load(str(f), tenant_flags={"max_connections": 3})
    assert p.caps(0, 0).max_sessions == 1000 and p.caps(0, 0).max_calls is None
    nobody = p.caps(65534, 65534)
    assert (nobody.max_sessions, nobody.max_calls, nobody.max_connections) == (5, 9, 3)
    assert nobody.max_session_memory == 2 << 30


@pytest.mark.parametrize(
    "text, needle",
    [
        ("[tenants]\nmax_sessions = -1\n", "tenants.max_sessions"),
        ("[tenants]\nmax_sesions = 1\n", "unknown setting"),
        ('[tenants]\nmax_priority = "urgent"\n', "urgent"),
        ("[tenants]\nmax_cpu_weight = 20000\n", "1..10000"),
        ('[tenants]\nmax_memory_protection = "lots"\n', "lots"),
        ("[bogus]\n", "known tables"),
        ("[tenants\n", "not TOML"),
        ("tenants = 3\n", "expected a table"),
    ],
)
def test_a_bad_policy_file_is_an_error_naming_what(tmp_path, text, needle) -> None:
    f = tmp_path / "p.toml"
    f.write_text(text)
    with pytest.raises(InvalidValue, match=needle):
        Policy.load(str(f))


def test_a_bad_policy_file_stops_the_daemon_with_one_line(tmp_path) -> None:
    f = tmp_path / "p.toml"
    f.write_text("[tenants]\nmax_calls = 'x'\n")
    r = CliRunner().invoke(cli, ["daemon", "--policy", str(f), "--socket", str(tmp_path / "s")])
    assert r.exit_code == 2 and r.stderr.count("\n") == 1 and "tenants.max_calls" in r.stderr
    r = CliRunner().invoke(cli, ["daemon", "--tenant-max-priority", "urgent", "--socket", str(tmp_path / "s")])
    assert r.exit_code == 2 and "--tenant-max-priority" in r.stderr


def test_caps_name_the_value_and_the_cap() -> None:
    with pytest.raises(NotAllowed, match=r"invalid memory '16G': above what the operator allows uid 7 \(at most 64M\)"):
        check_cap(16 << 30, 64 << 20, "memory", 7)
    check_cap(None, 1, "x", 7)
    check_cap(5, None, "x", 7)
    assert parse_caps({"max_calls": "max"}, "t") == {"max_calls": None}


def test_session_names_are_per_uid() -> None:
    assert tenants.internal_name(0, "build") == "build"
    assert tenants.internal_name(1001, "build") == "u1001:build"
    assert tenants.external_name(1001, "u1001:build") == "build"
    assert tenants.external_name(0, "u1001:build") == "u1001:build"
    assert tenants.owner_named("u1001:build") == 1001 and tenants.owner_named("build") is None
    assert tenants.hide_prefix(1001, "no session 'u1001:x'") == "no session 'x'"
    for bad in ("../x", "", ".h", "a/b", "x" * 130):
        with pytest.raises(InvalidValue):
            tenants.internal_name(1001, bad)
    with pytest.raises(InvalidValue, match="at most 122"):
        tenants.internal_name(1001, "x" * 125)


def test_a_calls_environment_is_the_clients_plus_its_users_defaults(monkeypatch) -> None:
    monkeypatch.setenv("DAEMON_SECRET", "x")
    env = tenants.call_env(0, {"FOO": "1", "PATH": "/mine"})
    assert env["FOO"] == "1" and env["PATH"] == "/mine" and env["USER"] == "root" and "DAEMON_SECRET" not in env
    env = tenants.call_env(4_000_000, None)  # no passwd entry
    assert env == {"HOME": "/", "SHELL": "/bin/sh", "PATH": tenants.DEFAULT_PATH}


def test_the_loop_delivers_what_other_threads_finished_before_this_turns_new_input() -> None:
    import os
    import select
    import threading

    from agentcgroup.controller.loop import Loop

    loop = Loop()
    r, w = os.pipe()
    order: list[str] = []
    try:
        loop.add(r, select.EPOLLIN, lambda fd, ev: order.append("input") or os.read(fd, 1))
        os.write(w, b"x")
        t = threading.Thread(target=loop.call_soon_threadsafe, args=(lambda: order.append("completion"),))
        t.start()
        t.join()
        loop.run_once(1.0)
        assert order == ["completion", "input"]
    finally:
        loop.remove(r)
        loop.close()
        os.close(r)
        os.close(w)


def test_buckets_and_log_budget() -> None:
    now = [0.0]
    b = Buckets(clock=lambda: now[0])
    assert all(b.take(1, 10) for _ in range(10)) and not b.take(1, 10)
    assert b.take(2, 10) and b.take(1, None)  # another uid; no limit
    assert 0 < b.wait(1, 10) <= 0.1
    now[0] += 0.1
    assert b.take(1, 10) and not b.take(1, 10)
    # a violation costs its uid 50 tokens at once, down to minus one burst: refused until they came back
    b.charge(3, 100, 50)
    assert [b.take(3, 100) for _ in range(51)] == [True] * 50 + [False]
    for _ in range(10):
        b.charge(3, 100, 50)
    now[0] += 0.99  # from -100 (the floor, not -500): 99 tokens back after 0.99 s, still short of one
    assert not b.take(3, 100)
    now[0] += 0.02
    assert b.take(3, 100) and not b.take(3, 100)
    b.charge(4, None, 50)
    assert b.take(4, None)  # no limit, no charge
    lb = LogBudget(per_window=2, window_s=1, clock=lambda: now[0])
    assert [lb.allow(5) for _ in range(4)] == [True, True, False, False] and lb.allow(0)
    now[0] += 1
    assert lb.allow(5)


@pytest.mark.parametrize(
    "body, needle",
    [
        ({"timeout": 2200000}, "2200000"),
        ({"timeout": -5}, "-5"),
        ({"timeout": "720h"}, "720h"),
        ({"timeout": 10**400}, "must be a positive, finite"),
        ({"intent": {"duration": 1e9}}, "1000000000.0"),
        ({"intent": {"memory": "4K"}}, "4K"),
        ({"limits": {"cpu": "1e300%"}}, "1e300%"),
        ({"limits": {"memory": "4K"}}, "4K"),
        ({"limits": {"pids": 2**40}}, "2147483648"),
        ({"cwd": "relative"}, "absolute"),
        ({"env": {"A=B": "x"}}, "without '='"),
        ({"argv": ["a\0b"]}, "NUL"),
    ],
)
def test_the_protocol_refuses_out_of_range_values_naming_them(body, needle) -> None:
    with pytest.raises((InvalidValue, ProtocolError), match=needle):
        run_from({"session": "s", "argv": ["true"], **body})


def test_the_protocol_refuses_nan_deep_nesting_and_odd_ids() -> None:
    for line in (b'{"op": "hello", "x": NaN}', b"[" * 100_000, b'{"op": "hello", "id": [1]}', b'{"op": ["hello"]}'):
        with pytest.raises(ProtocolError):
            parse_request(line)


@pytest.mark.parametrize(
    "args, needle",
    [
        (["run", "--memory", "4K", "--", "true"], "4K"),
        (["run", "--cpu", "1e300%", "--", "true"], "1e300%"),
        (["run", "--timeout", "720h", "--", "true"], "720h"),
        (["run", "--cpu-weight", "3", "true"], "--cpu-weight"),
        (["replay", "--time-scale", "nan", "TRACE"], "nan"),
        (["report", "--burst-mb", "nan", "TRACE"], "nan"),
        (["report", "--host-gb", "inf", "TRACE"], "inf"),
        (["bench", "--duration", "inf", "TRACE"], "inf"),
        (["bench", "--out", "FILE", "TRACE"], "not a directory"),
    ],
)
def test_the_issues_bad_inputs_exit_2_with_one_line(tmp_path, args, needle) -> None:
    trace = os.path.join(os.path.dirname(os.path.dirname(__file__)), "data", "traces", "recording")
    trace = os.path.join(trace, "demo-session.jsonl")
    afile = tmp_path / "f"
    afile.write_text("x")
    args = [{"TRACE": trace, "FILE": str(afile)}.get(a, a) for a in args]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 2, (r.exit_code, r.stderr, r.exception)
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("agentcg: error: ") and needle in r.stderr
    json.dumps(args)  # (the arguments themselves are plain strings)
