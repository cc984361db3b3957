"""The daemon's request validation, pure: each bad request names what is wrong."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agentcgroup.daemon.protocol import (
    MAX_LINE,
    ProtocolError,
    TooLarge,
    encode,
    error_reply,
    parse_request,
    run_from,
    session_from,
)
from agentcgroup.errors import InvalidValue


def req(**body: Any) -> bytes:
    return json.dumps(body).encode()


def test_a_good_run_request() -> None:
    r = parse_request(
        req(
            op="run",
            id=3,
            session="s1",
            argv=["pytest", "-x"],
            limits={"memory": "1G", "cpu": "50%"},
            intent={"memory": "512M", "duration": "30s"},
            timeout="10m",
            stdio=[False, True, True],
        )
    )
    assert (r.op, r.id) == ("run", 3)
    a = run_from(r.body)
    assert a["limits"].memory_max == 1 << 30 and a["limits"].cpu == 0.5
    assert a["intent"].memory == 512 << 20 and a["intent"].duration == 30
    assert a["timeout"] == 600 and a["stdio"] == [False, True, True] and a["on_disconnect"] == "kill"


@pytest.mark.parametrize(
    ("line", "says"),
    [
        (b"{nope", "not JSON"),
        (b"[1, 2]", "a JSON object"),
        (b"[" * 100_000, "a JSON object, got a line starting '\\[\\[\\["),
        (b"  nope", "a JSON object, got a line starting 'nope'"),
        (req(op="explode"), "unknown op 'explode'"),
        (req(), "unknown op None"),
    ],
)
def test_unparseable(line: bytes, says: str) -> None:
    with pytest.raises(ProtocolError, match=says):
        parse_request(line)


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ({"argv": ["true"]}, "'session' is required"),
        ({"session": "s", "argv": []}, "non-empty list of strings"),
        ({"session": "s", "argv": "true"}, "expected a list"),
        ({"session": "s", "argv": ["a", 1]}, "non-empty list of strings"),
        ({"session": "s", "argv": ["true"], "limits": {"memroy": "1G"}}, "unknown limit"),
        ({"session": "s", "argv": ["true"], "on_disconnect": "explode"}, "'kill' or 'detach'"),
        ({"session": "s", "argv": ["true"], "stdio": [True]}, "three true/false"),
        ({"session": "s", "argv": ["true"], "env": {"A": 1}}, "object of strings"),
        ({"session": "s", "argv": ["true"], "capture_output": "yes"}, "true/false"),
    ],
)
def test_bad_run_requests(body: dict[str, Any], says: str) -> None:
    with pytest.raises(ProtocolError, match=says):
        run_from(body)


@pytest.mark.parametrize(
    ("body", "value"),
    [
        ({"session": "s", "argv": ["t"], "limits": {"memory": "-5M"}}, "-5M"),
        ({"session": "s", "argv": ["t"], "limits": {"cpu": "0"}}, "'0'"),
        ({"session": "s", "argv": ["t"], "timeout": "soon"}, "soon"),
        ({"session": "s", "argv": ["t"], "intent": {"priority": "urgent"}}, "urgent"),
    ],
)
def test_bad_values_are_named(body: dict[str, Any], value: object) -> None:
    with pytest.raises(InvalidValue) as err:
        run_from(body)
    assert value in str(err.value)


def test_sessions() -> None:
    s = session_from({"name": "a1", "priority": "high", "limits": {"memory": "2G"}, "agent_memory": "256M"})
    assert s["priority"] == "high" and s["limits"].memory_max == 2 << 30 and s["agent_memory"] == 256 << 20
    with pytest.raises(InvalidValue, match="'urgent'"):
        session_from({"name": "a1", "priority": "urgent"})


def test_too_large_and_replies() -> None:
    with pytest.raises(TooLarge):
        parse_request(b" " * (MAX_LINE + 1))
    assert encode({"a": 1}) == b'{"a":1}\n'
    assert error_reply(4, TooLarge("big")) == {"id": 4, "ok": False, "error": {"type": "TooLarge", "message": "big"}}
    assert error_reply(5, InvalidValue("memory", "x", "bad"))["error"]["type"] == "InvalidValue"


def test_the_clients_encoding_is_what_the_daemon_parses() -> None:
    import math

    from agentcgroup.daemon.protocol import encode
    from agentcgroup.daemon.wire import encode_request

    req = {"op": "run", "id": 7, "session": "s1", "argv": ["python3", "-c", "print('é')"], "timeout": 2.5}
    line = encode_request(req)
    assert line == encode(req) and line.endswith(b"\n") and line.count(b"\n") == 1
    assert parse_request(line).op == "run"
    with pytest.raises(InvalidValue, match="run"):
        encode_request({"op": "run", "timeout": math.nan})


def test_one_connection_gets_at_most_a_few_request_lines_a_turn_of_the_loop() -> None:
    """A burst of one client's lines is served a few per turn (the rest on the next turns, after every other
    client's events), not all at once while everyone else waits."""
    import select
    import socket
    from types import SimpleNamespace

    from agentcgroup.controller.loop import Loop
    from agentcgroup.daemon.connection import LINES_PER_TURN, Connection
    from agentcgroup.daemon.policy import Policy
    from agentcgroup.daemon.ratelimit import Buckets, LogBudget

    loop = Loop()
    manager = SimpleNamespace(kind="none", features=SimpleNamespace(to_dict=dict))
    daemon = SimpleNamespace(
        loop=loop,
        owner=0,
        buckets=Buckets(),
        logs=LogBudget(),
        controller=SimpleNamespace(manager=manager),
        followers=SimpleNamespace(conns={}, drop=lambda c: None),
        forget=lambda c: loop.remove(c.fd),
    )
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    theirs.settimeout(5)
    c = Connection(daemon, ours, 1, 0, 0, Policy().caps(0, 0))  # type: ignore[arg-type]
    try:
        n = 3 * LINES_PER_TURN + 1
        theirs.sendall(b"".join(b'{"op": "hello", "id": %d}\n' % i for i in range(n)))

        def answered() -> int:
            theirs.setblocking(False)
            got = b""
            try:
                while True:
                    got += theirs.recv(1 << 20)
            except BlockingIOError:
                pass
            theirs.setblocking(True)
            return got.count(b"\n")

        c.on_event(c.fd, select.EPOLLIN)
        assert answered() == LINES_PER_TURN
        loop.run_once(0)
        assert answered() == LINES_PER_TURN
        loop.run_once(0)
        assert answered() == LINES_PER_TURN
        loop.run_once(0)
        assert answered() == 1  # the last one
        loop.run_once(0)
        assert answered() == 0
    finally:
        c.close()
        theirs.close()
        loop.close()
