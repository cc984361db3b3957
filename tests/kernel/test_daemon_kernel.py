"""The daemon as its users meet it: a real process serving a Unix socket, real clients, real cgroups."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

from agentcgroup.daemon.client import Client
from agentcgroup.daemon.protocol import TooLarge
from agentcgroup.errors import InvalidValue, NotFound
from tests.conftest import SLOW, kernel_skip_reason, leftovers, wait_for
from tests.kernel.daemon_fixtures import wait_up

pytestmark = [pytest.mark.kernel]

PY = sys.executable
MiB = 1 << 20


@pytest.fixture
def daemon(tmp_path, root_name):
    """A daemon subprocess on its own socket and root; stopped with SIGTERM; nothing may be left behind."""
    if kernel_skip_reason():
        pytest.skip(kernel_skip_reason())
    sockdir = tempfile.mkdtemp(prefix="agentcg-test-sock-")  # pytest's tmp is 0700: other users need a way in
    os.chmod(sockdir, 0o755)
    sock = os.path.join(sockdir, "agentcg.sock")
    cmd = [
        PY,
        "-m",
        "agentcgroup",
        "daemon",
        "--socket",
        sock,
        "--root",
        root_name,
        "--state-dir",
        str(tmp_path / "state"),
        "--stall-grace",
        "500ms",
        "--kill-after",
        "1s",
    ]
    proc = subprocess.Popen(cmd, stderr=open(tmp_path / "daemon.log", "w"))  # noqa: SIM115
    wait_up(proc, sock, lambda: (tmp_path / "daemon.log").read_text())
    yield proc, sock
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert not os.path.exists(sock), "the daemon left its socket behind"
    os.rmdir(sockdir)
    assert leftovers(root_name) == []


def test_run_through_the_client(daemon) -> None:
    _, sock = daemon
    c = Client(sock)
    assert c.hello()["backend"] in ("v2", "hybrid")
    c.open_session("s1", priority="high", limits={"memory": "1G"})
    out = c.run("s1", [PY, "-c", "bytearray(1 << 30)"], limits={"memory": "128M"})
    assert out.killed_by == "memory" and out.returncode == 137 and "128 MiB" in out.feedback
    out = c.run("s1", ["sh", "-c", "echo hi; echo err >&2; exit 3"], capture_output=True)
    assert (out.returncode, out.stdout, out.stderr) == (3, b"hi\n", b"err\n")
    names = [s["name"] for s in c.status()["sessions"]]
    assert names == ["s1"]
    c.close_session("s1")


def test_agentcg_run_through_the_daemon(daemon) -> None:
    _, sock = daemon
    env = {**os.environ, "AGENTCG_SOCKET": sock}
    r = subprocess.run(
        [PY, "-m", "agentcgroup", "run", "--memory", "64M", "--", PY, "-c", "bytearray(1 << 28)"],
        capture_output=True,
        env=env,
    )
    assert r.returncode == 137 and b"out of memory" in r.stderr and b"64 MiB" in r.stderr
    r = subprocess.run(
        [PY, "-m", "agentcgroup", "run", "--", "sh", "-c", "printf 'a\\0b'; exit 5"], capture_output=True, env=env
    )
    assert (r.returncode, r.stdout) == (5, b"a\0b")
    r = subprocess.run([PY, "-m", "agentcgroup", "run", "--json", "--", "printf", "x"], capture_output=True, env=env)
    lines = r.stdout.decode().splitlines()
    assert lines[0] == "x" and json.loads(lines[-1])["exit_code"] == 0
    assert Client(sock).status()["sessions"] == []  # the per-call sessions were closed


def _raw(sock_path: str, payload: bytes) -> list[dict]:
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock_path)
    try:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    finally:
        s.close()
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def test_malformed_requests_get_errors_and_the_daemon_serves_on(daemon) -> None:
    _, sock = daemon
    replies = _raw(
        sock, b'{not json\n{"op": "fly"}\n["a list"]\n{"op": "run", "session": 7}\n{"op": "hello", "id": 9}\n'
    )
    assert [r["ok"] for r in replies] == [False, False, False, False, True]
    assert replies[0]["error"]["type"] == "BadRequest" and "not JSON" in replies[0]["error"]["message"]
    assert "unknown op 'fly'" in replies[1]["error"]["message"]
    assert "'session'" in replies[3]["error"]["message"]
    assert replies[4]["id"] == 9
    with pytest.raises(InvalidValue, match="12XB"):
        Client(sock).open_session("s", limits={"memory": "12XB"})
    with pytest.raises(InvalidValue, match=r"'\.\./x'"):
        Client(sock).open_session("../x")
    assert Client(sock).hello()["version"] == 1


def test_unknown_session(daemon) -> None:
    _, sock = daemon
    with pytest.raises(NotFound, match="nope"):
        Client(sock).run("nope", ["true"])


def test_a_10_mb_request_is_refused_and_the_daemon_serves_on(daemon) -> None:
    proc, sock = daemon
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    big = b'{"op": "hello", "pad": "' + b"x" * (10 << 20) + b'"}\n'
    try:
        s.sendall(big)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the daemon closed the connection once it had seen enough: that is the point
    reply = json.loads(s.recv(65536).splitlines()[0])
    s.close()
    assert reply["error"]["type"] == TooLarge.type
    assert proc.poll() is None and Client(sock).hello()["version"] == 1
    # the daemon did not keep the 10 MB
    with open(f"/proc/{proc.pid}/status") as f:
        rss = next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))
    assert rss < 200 * 1024


NOBODY = """
import json, os, sys  # everything is imported before dropping to nobody (who cannot read root's Python)
import base64, struct  # what the client imports when first needed (the peer check, captured output)
from agentcgroup.daemon.client import Client
from agentcgroup.errors import NotFound
import agentcgroup.controller.persist
os.setgid(65534); os.setuid(65534)
c = Client(sys.argv[1])
try:
    c.run("roots", ["true"])
    print("RAN")
except NotFound as e:  # session names are per uid: root's "roots" is not even visible
    print("UNSEEN", e)
c.open_session("mine")
out = c.run("mine", ["id", "-u"], capture_output=True, cwd="/")
print("ID", out.stdout.decode().strip())
try:
    c.close_session("roots")
except NotFound:
    print("UNSEEN-CLOSE")
print("SEES", [s["name"] for s in c.status()["sessions"]])
c.close_session("mine")
"""


def test_another_users_session_is_off_limits_and_commands_run_as_their_user(daemon) -> None:
    _, sock = daemon
    Client(sock).open_session("roots")
    r = subprocess.run(
        [PY, "-c", NOBODY, sock],
        capture_output=True,
        text=True,
        cwd="/",
        env={**os.environ, "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.dirname(__file__)))},
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "UNSEEN no session 'roots'"
    assert "ID 65534" in lines and "UNSEEN-CLOSE" in lines and "SEES ['mine']" in lines
    assert [s["name"] for s in Client(sock).status()["sessions"]] == ["roots"]  # root sees all


def _started_then_gone(sock: str, on_disconnect: str) -> str:
    """Start a long call, wait for its id, then drop the connection."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(sock)
    req = {
        "op": "run",
        "id": 1,
        "session": "s",
        "argv": ["sleep", "60"],
        "on_disconnect": on_disconnect,
        "stdio": [False, False, False],
    }
    s.sendall(json.dumps(req).encode() + b"\n")
    started = json.loads(s.recv(65536).splitlines()[0])
    s.close()
    return started["call_id"]


def test_a_client_that_disconnects_mid_call(daemon) -> None:
    _, sock = daemon
    c = Client(sock)
    c.open_session("s")
    killed = _started_then_gone(sock, "kill")
    deadline = time.monotonic() + 10 * SLOW
    while (out := c.outcome(killed)) is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert out.killed_by == "policy" and "disconnected" in out.kill_reason
    detached = _started_then_gone(sock, "detach")
    time.sleep(0.5)
    assert c.outcome(detached) is None  # still running
    c.kill("s", detached)
    deadline = time.monotonic() + 10 * SLOW
    while (out := c.outcome(detached)) is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert out.killed_by == "policy"
    assert c.run("s", ["true"]).exit_code == 0  # and it serves on
    c.close_session("s")


def test_kill_9_during_a_call_then_restart_reports_the_outcome(tmp_path, root_name, daemon) -> None:
    proc, sock = daemon
    c = Client(sock)
    c.open_session("s")
    ids: list[str] = []
    import threading

    result: dict = {}
    # the call holds its 30 MiB, says so, and lives until the successor has adopted it (a fixed lifetime raced
    # the restart on a busy host): it ends when the test makes the go file, and runs at least 3 s in all
    ready, go = tmp_path / "ready", tmp_path / "go"
    work = (
        "import os, time; t = time.monotonic(); b = bytearray(30 << 20); b[::4096] = b'x' * len(b[::4096]); "
        f"open({str(ready)!r}, 'w').close()\n"
        f"while not os.path.exists({str(go)!r}) or time.monotonic() - t < 3: time.sleep(0.01)"
    )

    def client_run() -> None:  # the client keeps waiting across the daemon's death and restart
        result["out"] = c.run("s", [PY, "-c", work], on_started=ids.append, reconnect_s=60)

    t = threading.Thread(target=client_run)
    t.start()
    deadline = time.monotonic() + 20 * SLOW
    while not ids or not ready.exists():
        assert time.monotonic() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    os.unlink(sock)
    cmd = [
        PY,
        "-m",
        "agentcgroup",
        "daemon",
        "--socket",
        sock,
        "--root",
        root_name,
        "--state-dir",
        str(tmp_path / "state"),
    ]
    again = subprocess.Popen(cmd, stderr=open(tmp_path / "daemon2.log", "w"))  # noqa: SIM115
    try:
        # the successor is up (its socket), having adopted the call at its start; only then may the call end
        wait_for(lambda: os.path.exists(sock), "the successor's socket", 20)
        assert again.poll() is None, (tmp_path / "daemon2.log").read_text()
        go.touch()
        t.join(60 * SLOW)
        out = result["out"]
        assert out.call_id == ids[0] and out.memory_peak >= 30 * MiB and out.exit_status_known is False
        assert out.duration_s >= 2.5
        Client(sock).close_session("s")
    finally:
        again.send_signal(signal.SIGTERM)
        again.wait(30)
    assert leftovers(root_name) == []


def test_agentcg_run_through_the_daemon_keeps_the_exit_codes_of_a_missing_command(daemon, tmp_path) -> None:
    _, sock = daemon
    env = {**os.environ, "AGENTCG_SOCKET": sock}
    r = subprocess.run([PY, "-m", "agentcgroup", "run", "--", "/nonexistent/cmd"], capture_output=True, env=env)
    assert r.returncode == 127 and r.stderr.decode().count("\n") == 1 and b"/nonexistent/cmd" in r.stderr
    plain = tmp_path / "not-executable"
    plain.write_text("data\n")
    plain.chmod(0o644)
    r = subprocess.run([PY, "-m", "agentcgroup", "run", "--", str(plain)], capture_output=True, env=env)
    assert r.returncode == 126 and r.stderr.decode().count("\n") == 1
    assert Client(sock).status()["sessions"] == []
    c = Client(sock)  # the daemon's own answers come back as the embedded path raises them
    c.open_session("m")
    with pytest.raises(FileNotFoundError, match="nonexistent"):
        c.run("m", ["/nonexistent/cmd"])
    with pytest.raises(PermissionError):
        c.run("m", [str(plain)])
    c.close_session("m")
