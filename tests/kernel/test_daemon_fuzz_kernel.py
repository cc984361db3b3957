"""Property-based fuzzing of the daemon's wire protocol, against a real daemon (issue 10).

Every op, every field, values of the wrong type, huge and deeply nested values, raw bytes that are not JSON,
fds attached or not: whatever one request holds, the daemon answers it (or closes that connection) and then
answers ``hello`` on a new one. Commands are drawn from a harmless few (a fuzzer must not run ``rm``).
"""

from __future__ import annotations

import array
import json
import os
import socket

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentcgroup.daemon.client import Client
from agentcgroup.daemon.protocol import INTENT_KEYS, LIMIT_KEYS, OPS
from tests.kernel.daemon_fixtures import start_daemon, stop_daemon

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.host_only(reason="the wire protocol is the same on every kernel; minutes of hypothesis under TCG"),
]

STREAM_EVENTS = ("started", "log", "following")
FUZZ = settings(
    max_examples=int(os.environ.get("AGENTCG_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=bool(os.environ.get("CI")),
)

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "x", "512M", "max", "50%", "30s", "high", "../x", "a/b", ".h", "-1", "1e999", "nan"]),
    st.text(max_size=40),
)
anything = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=10), inner, max_size=5)),
    max_leaves=20,
)
names = st.one_of(st.sampled_from(["f1", "f2", "fuzz-s", "../x", "", ".h", "a" * 200]), anything)
argv0 = st.sampled_from(["true", "false", "/nonexistent/x", "", "echo", "sleep", "\x00"])
FIELDS = {
    "name": names,
    "session": names,
    "call_id": names,
    "priority": st.one_of(st.sampled_from(["high", "normal", "low", "x"]), anything),
    "limits": st.one_of(st.dictionaries(st.sampled_from([*LIMIT_KEYS, "bogus"]), anything, max_size=4), anything),
    "intent": st.one_of(st.dictionaries(st.sampled_from([*INTENT_KEYS, "bogus"]), anything, max_size=4), anything),
    "agent_memory": anything,
    "argv": st.one_of(
        st.lists(st.text(max_size=20), max_size=4).flatmap(lambda a: argv0.map(lambda x: [x, *a])), anything
    ),
    "timeout": anything,
    "env": st.one_of(st.dictionaries(st.text(max_size=10), st.text(max_size=10), max_size=4), anything),
    "cwd": st.one_of(st.sampled_from(["/", "/nonexistent", "rel", "/root"]), anything),
    "capture_output": anything,
    "keep_background": anything,
    "on_disconnect": st.one_of(st.sampled_from(["kill", "detach"]), anything),
    "stdio": st.one_of(st.lists(st.booleans(), min_size=3, max_size=3), anything),
    "own_session": anything,
    "merge_stderr": anything,
    "follow": st.one_of(st.booleans(), anything),
    "last": st.one_of(st.integers(-5, 10**12), anything),
    "reason": anything,
    "id": anything,
}
requests = st.builds(
    lambda op, fields: {"op": op, **fields},
    st.one_of(st.sampled_from(OPS), anything),
    st.dictionaries(st.sampled_from(sorted(FIELDS)), st.just(None), max_size=8).flatmap(
        lambda keys: st.fixed_dictionaries({k: FIELDS[k] for k in keys})
    ),
)
raw_lines = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(
        [
            b"[" * 100_000 + b"]" * 100_000,
            b'{"op": "hello", "id": ' + b"[" * 50_000 + b"]" * 50_000 + b"}",
            b'{"op": "run", "timeout": NaN}',
            b'{"op": "hello", "id": 1' + b"9" * 5000 + b"}",
            b"\xff\xfe\x00",
            b'{"op": "hello"}' * 1000,
        ]
    ),
)


@pytest.fixture(scope="module")
def fuzz_daemon(tmp_path_factory):
    from tests.conftest import leftovers, remove_leftovers, test_root_name

    root = test_root_name()
    d = start_daemon(tmp_path_factory.mktemp("fuzz"), root, "--warm", "0")
    yield d
    c = Client(d.sock)
    for s in c.status()["sessions"]:
        c.close_session(s["name"])
    try:
        stop_daemon(d, root)
    finally:
        remove_leftovers(leftovers(root))


def _exchange(path: str, data: bytes, nfds: int) -> list[bytes]:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(20)
    s.connect(path)
    nul = os.open(os.devnull, os.O_RDWR)
    try:
        if nfds:
            s.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [nul] * nfds))])
        else:
            s.sendall(data)
        s.shutdown(socket.SHUT_WR)  # half-closed: a run is killed at once (its client is gone), others answered
        out = b""
        while chunk := s.recv(65536):
            out += chunk
        return out.splitlines()
    except (BrokenPipeError, ConnectionResetError):
        return []
    finally:
        os.close(nul)
        s.close()


def _check_alive(d) -> None:  # type: ignore[no-untyped-def]
    assert d.proc.poll() is None, d.log()[-3000:]
    assert d.hello()["ok"] is True


@FUZZ
@given(req=requests, nfds=st.sampled_from([0, 0, 1, 3, 4]))
def test_any_request_gets_an_answer_and_the_daemon_serves_on(fuzz_daemon, req, nfds) -> None:
    try:
        data = json.dumps(req).encode() + b"\n"
    except (ValueError, RecursionError):
        return
    for line in _exchange(fuzz_daemon.sock, data, nfds):
        reply = json.loads(line)
        # an answer, or a documented stream line (docs/daemon-api.md): a run's start, the events op's records
        assert isinstance(reply, dict) and ("ok" in reply or reply.get("event") in STREAM_EVENTS), reply
        if reply.get("ok") is False:
            assert reply["error"]["type"] and "\n" not in reply["error"]["message"]
            assert "internal error" not in reply["error"]["message"], (req, reply)
    _check_alive(fuzz_daemon)


@FUZZ
@given(data=raw_lines, nfds=st.sampled_from([0, 2, 3]))
def test_any_bytes_get_an_answer_and_the_daemon_serves_on(fuzz_daemon, data, nfds) -> None:
    for line in _exchange(fuzz_daemon.sock, data + b"\n", nfds):
        assert isinstance(json.loads(line), dict)
    _check_alive(fuzz_daemon)


def test_after_the_fuzzing_no_descriptor_or_thread_piled_up(fuzz_daemon) -> None:
    for i in range(50):
        _exchange(fuzz_daemon.sock, b'{"op": "bogus", "id": %d}\n' % i, 3)
    fds = fuzz_daemon.fd_count()
    for i in range(300):
        _exchange(fuzz_daemon.sock, b'{"op": "run", "session": "nope", "argv": ["true"], "id": %d}\n' % i, 3)
    assert fuzz_daemon.fd_count() <= fds + 4
    assert fuzz_daemon.threads() <= 24  # main loop, controller loop, at most 16 workers, helpers
    _check_alive(fuzz_daemon)
