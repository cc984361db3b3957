"""benchmarks/daemon_load.py's light client (one event loop for every client) against a scripted stand-in for the
daemon: it sends what :class:`Client.run` sends, and counts every failed call and every wrong outcome as the
thread-per-client driver does."""

from __future__ import annotations

import importlib.util
import json
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from agentcgroup.daemon.client import Client

CHECKOUT = Path(__file__).resolve().parents[2]


def _load_bench() -> Any:
    spec = importlib.util.spec_from_file_location("daemon_load", CHECKOUT / "benchmarks" / "daemon_load.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


bench = _load_bench()

BASE = {"session": "load0", "call_id": "c1", "command": "/bin/true", "argv": ["/bin/true"], "backend": "test"}
OK = {**BASE, "exit_code": 0}


class FakeDaemon:
    """Answers each connection's one request with the next of ``replies`` (a list of JSON lines to send, or None:
    close without an answer), and keeps the requests."""

    def __init__(self, path: str, replies: list[list[dict[str, Any]] | None]) -> None:
        self.replies = list(replies)
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(path)
        self.sock.listen(64)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                buf = b""
                while b"\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    buf += chunk
                with self.lock:
                    self.requests.append(json.loads(buf.split(b"\n", 1)[0]))
                    lines = self.replies.pop(0) if self.replies else [{"ok": True, "outcome": OK}]
                if lines is not None:
                    conn.sendall(b"".join(json.dumps(x).encode() + b"\n" for x in lines))

    def close(self) -> None:
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self.thread.join(5)


@pytest.fixture
def sock_path(tmp_path: Path) -> Iterator[str]:
    yield str(tmp_path / "d.sock")


def started(outcome: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"ok": True, "event": "started", "call_id": "c1"}, {"ok": True, "outcome": outcome}]


def test_the_light_client_sends_what_client_run_sends(sock_path: str) -> None:
    fake = FakeDaemon(sock_path, [started(OK), started(OK)])
    try:
        out = Client(sock_path).run("load0", ["/bin/true"])
        assert out.exit_code == 0
        tally = bench.drive_async(sock_path, ["load0"], 1, 0, (0.0, 0.0), lambda: None)
    finally:
        fake.close()
    assert tally.errors == 0 and len(tally.lat) == 1
    by_client, light = fake.requests
    by_client.pop("id"), light.pop("id")
    assert light == by_client
    assert light["op"] == "run" and light["argv"] == ["/bin/true"] and light["env"] == dict(os.environ)


WRONG: list[list[dict[str, Any]] | None] = [
    started(OK),
    started({**BASE, "exit_code": 1}),  # a wrong outcome
    started({**BASE, "exit_code": None, "killed_by": "timeout"}),  # killed: wrong too
    [{"ok": False, "error": {"type": "NotFound", "message": "no session 'load0'"}}],  # an error reply
    None,  # the connection closed with no answer
    started(OK),
]


@pytest.mark.parametrize("driver", ["drive_async", "drive_threads"])
def test_every_failed_call_and_wrong_outcome_is_counted(
    sock_path: str, driver: str, capsys: pytest.CaptureFixture[str]
) -> None:
    fake = FakeDaemon(sock_path, WRONG)
    measured = []
    try:
        tally = getattr(bench, driver)(sock_path, ["load0"], len(WRONG), 0, (0.0, 0.0), lambda: measured.append(1))
    finally:
        fake.close()
    assert measured == [1]
    assert tally.errors == 4
    assert len(tally.lat) == len(WRONG)  # the failed calls are timed too
    err = capsys.readouterr().err
    assert "NotFound" in err or "Unreachable" in err  # the first few shown


def test_a_call_started_and_never_answered_is_an_error(sock_path: str) -> None:
    """(Client.run would ask a restarted daemon for its outcome; in a benchmark the daemon does not restart.)"""
    fake = FakeDaemon(sock_path, [[{"ok": True, "event": "started", "call_id": "c1"}], started(OK)])
    try:
        tally = bench.drive_async(sock_path, ["load0"], 2, 0, (0.0, 0.0), lambda: None)
    finally:
        fake.close()
    assert tally.errors == 1 and len(tally.lat) == 2


def test_warmup_calls_are_checked_but_not_timed(sock_path: str) -> None:
    fake = FakeDaemon(sock_path, [started({**BASE, "exit_code": 2}), started(OK), started(OK), started(OK)])
    try:
        tally = bench.drive_async(sock_path, ["a", "b"], 1, 1, (0.0, 0.0), lambda: None)
    finally:
        fake.close()
    assert tally.errors == 1 and len(tally.lat) == 2 and [len(x) for x in tally.per_client] == [1, 1]
    assert {r["session"] for r in fake.requests} == {"a", "b"}


def test_histogram_counts_each_latency_once() -> None:
    text = bench.histogram([0.001, 0.004, 0.030, 0.099, 0.100, 0.101, 2.0])
    assert text == "<=5:2 <=50:1 <=100:2 <=150:1 >500:1"
