"""The daemon against hostile tenants (issue 10): real other users, attacking through the socket as that uid.

Each test: the exploit as the attacker would try it, the assertion that it fails, and the daemon still
answering ``hello``. Tenants are users made for the module (``ag10u...``) and removed afterwards.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from agentcgroup.daemon.client import Client, Untrusted
from tests.conftest import SLOW
from tests.kernel.daemon_fixtures import (
    PY,
    make_tenants,
    remove_tenants,
    request,
    start_daemon,
    stop_daemon,
    wait_for,
)

pytestmark = [pytest.mark.kernel]

#: the tenant tests of uid, terminal, descriptor and wire handling: the same code whatever the cgroup version, so
#: the v2 guest (scripts/vm-test) runs only those that touch cgroups (sessions, detached calls, restarts, caps)
SAME_ON_EVERY_KERNEL = pytest.mark.host_only(reason="uid, terminal and fd handling: the same on every cgroup version")

#: an interpreter a tenant's call can run (the test's own may live where only root can reach)
SYS_PY = shutil.which("python3", path="/usr/bin:/bin") or "/usr/bin/python3"

#: what every attacker script starts with: raw socket access to the daemon, stdlib only
PRELUDE = r"""
import array, json, os, socket, sys, time
SOCK = sys.argv[1]
def conn():
    s = socket.socket(socket.AF_UNIX); s.settimeout(60); s.connect(SOCK); return s
def replies(s):
    buf = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            return
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            yield json.loads(line)
def ask(obj=None, fds=None, raw=None):
    s = conn()
    data = raw if raw is not None else json.dumps(obj).encode() + b"\n"
    if fds:
        s.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
    else:
        s.sendall(data)
    out = []
    for r in replies(s):
        out.append(r)
        if "event" not in r:
            break
    s.close()
    return out
def hello():
    return ask({"op": "hello", "id": "h"})[0]["ok"]
"""


@pytest.fixture(scope="module")
def tenants():
    made = make_tenants(2)
    yield made
    remove_tenants(made)


@pytest.fixture
def daemon(tmp_path, root_name):
    d = start_daemon(tmp_path, root_name)
    yield d
    stop_daemon(d, root_name)


def attack(tenant, d, body: str, *args: str, timeout: float = 60) -> list[str]:
    """Run ``body`` (after PRELUDE) as ``tenant`` against daemon ``d``; its stdout lines. The daemon must
    still answer hello afterwards, to that tenant and to root."""
    r = tenant.run(PRELUDE + body, d.sock, *args, timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    assert d.proc.poll() is None, d.log()[-3000:]
    assert d.hello()["ok"]
    assert tenant.run(PRELUDE + "print(hello())", d.sock).stdout.strip() == "True"
    return r.stdout.splitlines()


# --- 1. terminal, stdio, environment -----------------------------------------------------------------------
PROBE = r"""
import fcntl, json, os, sys, termios
res = {}
try:
    os.open("/dev/tty", os.O_RDWR)
    res["tty"] = "opened"
except OSError as e:
    res["tty"] = e.errno
res["own_session"] = os.getsid(0) == os.getpid()
res["stdin"] = os.readlink("/proc/self/fd/0")
sti = []
for fd in (0, 1, 2):
    try:
        for ch in "echo PW" + "NED\n":
            fcntl.ioctl(fd, termios.TIOCSTI, ch.encode())
        sti.append("pushed")
    except OSError as e:
        sti.append(e.errno)
res["sti"] = sti
res["env"] = dict(os.environ)
daemon = sys.argv[1]
for what, mode in (("environ", os.O_RDONLY), ("fd/2", os.O_WRONLY), ("fd/0", os.O_RDONLY)):
    try:
        os.close(os.open(f"/proc/{daemon}/{what}", mode))
        res[what] = "opened"
    except OSError as e:
        res[what] = e.errno
print(json.dumps(res))
"""

FORGE = "import os; [os.write(fd, b'FOR' + b'GED-LOG-LINE\\n') for fd in (1, 2)]; print(open('/proc/self/fd/1').name)"


@SAME_ON_EVERY_KERNEL
def test_a_tenant_call_cannot_reach_the_daemons_terminal_stdio_or_environment(tmp_path, root_name, tenants) -> None:
    d = start_daemon(tmp_path, root_name, tty=True, env={"AGENTCG_TEST_SECRET": "s3cr3t-i10"})
    try:
        body = f"""
ask({{"op": "open_session", "id": 1, "name": "t"}})
r = ask({{"op": "run", "id": 2, "session": "t", "argv": ["{SYS_PY}", "-c", {PROBE!r}, "{d.pid}"],
         "capture_output": True}})
print(r[-1]["outcome"]["stdout_b64"])
r = ask({{"op": "run", "id": 3, "session": "t", "argv": ["{SYS_PY}", "-c", {FORGE!r}]}})
print(r[-1]["outcome"]["exit_code"])
"""
        out = attack(tenants[0], d, body)
        import base64

        res = json.loads(base64.b64decode(out[0]))
        assert res["tty"] == errno.ENXIO  # no controlling terminal: /dev/tty cannot be opened
        assert res["own_session"] is True  # setsid(): a session of its own
        assert res["stdin"] == "/dev/null"  # not the daemon's stdin (the terminal)
        assert all(isinstance(e, int) for e in res["sti"]), res["sti"]  # TIOCSTI failed on every fd
        assert "AGENTCG_TEST_SECRET" not in res["env"]  # nothing of the daemon's environment
        assert res["env"]["USER"] == tenants[0].name and res["env"]["HOME"] and res["env"]["PATH"]
        assert set(res["env"]) <= {"HOME", "USER", "LOGNAME", "SHELL", "PATH", "PWD", "LC_CTYPE", "_"}
        assert res["environ"] == errno.EACCES and res["fd/2"] == errno.EACCES and res["fd/0"] == errno.EACCES
        assert out[1] == "0"  # the forging call ran, and wrote into /dev/null
        time.sleep(0.3)
        assert "PWNED" not in d.log() and "FORGED" not in d.log()
    finally:
        stop_daemon(d, root_name)


@SAME_ON_EVERY_KERNEL
def test_a_tenant_call_runs_with_every_id_of_its_client_and_no_groups(tmp_path, root_name, tenants) -> None:
    """Real, effective and saved uid and gid all the client's, no supplementary group: set in the vfork child by
    raw system calls (glibc's setuid() would walk the daemon's threads, which the child shares), 50 calls in a
    row while the daemon's other threads run."""
    d = start_daemon(tmp_path, root_name)
    try:
        probe = (
            "print(' '.join(l.split(':')[1].strip() for l in open('/proc/self/status')"
            " if l[:4] in ('Uid:', 'Gid:', 'Grou')))"
        )
        body = f"""
ask({{"op": "open_session", "id": 1, "name": "t"}})
import base64
for i in range(50):
    r = ask({{"op": "run", "id": 2, "session": "t", "argv": ["{SYS_PY}", "-c", {probe!r}], "capture_output": True}})
    print(base64.b64decode(r[-1]["outcome"]["stdout_b64"]).decode().strip())
"""
        out = attack(tenants[0], d, body, timeout=120)
        u, g = tenants[0].uid, tenants[0].gid
        want = " ".join([f"{u}\t{u}\t{u}\t{u}", f"{g}\t{g}\t{g}\t{g}", ""]).strip()
        assert len(out) == 50 and set(out) == {want}, out[:3]
    finally:
        stop_daemon(d, root_name)


# --- 2. durations ------------------------------------------------------------------------------------------
@SAME_ON_EVERY_KERNEL
def test_durations_out_of_range_are_refused_naming_the_value(daemon, tenants) -> None:
    body = r"""
ask({"op": "open_session", "id": 1, "name": "t"})
base = '{"op": "run", "id": 7, "session": "t", "argv": ["true"], '
for tail in ('"timeout": 2200000}', '"intent": {"duration": 1e9}}', '"timeout": NaN}', '"timeout": 1e999}',
             '"timeout": -5}', '"timeout": "720h"}', '"intent": {"duration": Infinity}}', '"timeout": 1e400}'):
    r = ask(raw=(base + tail + "\n").encode())
    print(json.dumps(r[-1]))
print(ask({"op": "run", "id": 8, "session": "t", "argv": ["true"], "timeout": "604800"})[-1]["outcome"]["exit_code"])
"""
    out = [json.loads(line) if line.startswith("{") else line for line in attack(tenants[0], daemon, body)]
    values = ["2200000", "1000000000.0", "NaN", "inf", "-5", "720h", "Infinity", "inf"]
    for r, value in zip(out[:8], values, strict=True):
        assert r["ok"] is False and r["id"] in (7, None), r
        assert value in r["error"]["message"], (value, r)
    assert out[8] == "0"  # the longest timeout there is (7 days) is fine


# --- 3. file descriptors -----------------------------------------------------------------------------------
@SAME_ON_EVERY_KERNEL
def test_fd_floods_and_failed_runs_leak_no_descriptor(daemon, tenants) -> None:
    warm = r"""
ask({"op": "open_session", "id": 1, "name": "t"})
nul = os.open("/dev/null", os.O_RDWR)
for _ in range(3):
    ask({"op": "run", "session": "t", "argv": ["true"], "stdio": [True, True, True]}, fds=[nul, nul, nul])
"""
    body = r"""
nul = os.open("/dev/null", os.O_RDWR)
# the request line that never ends, 3 fds a message: the connection is closed at the fourth fd
closed = 0
for _ in range(100):
    s = conn()
    try:
        for _ in range(300):
            s.sendmsg([b"x"], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [nul] * 3))])
    except (BrokenPipeError, ConnectionResetError):
        closed += 1
    s.close()
print("CLOSED", closed)
time.sleep(1.5)  # each violation cost its uid 50 tokens: refused at once, unread, for up to a second
# ten fds on one message
s = conn()
s.sendmsg([b'{"op": "hello"}\n'], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", [nul] * 10))])
print("TEN", json.dumps(next(replies(s))))
s.close()
# fds with a request that takes none, with a run that wants fewer, with runs that fail
print("HELLO-FDS", ask({"op": "hello", "id": 2}, fds=[nul])[-1]["error"]["type"])
run = {"op": "run", "id": 3, "session": "t", "argv": ["true"], "stdio": [True, False, False]}
print("FEWER", ask(run, fds=[nul, nul])[-1]["error"]["type"])
errors = set()
for i in range(60):
    argv = ["/nonexistent/cmd"] if i % 3 == 0 else ["true"]
    session = "nope" if i % 3 == 1 else "t"
    cwd = "/nonexistent-dir" if i % 3 == 2 else "/"
    r = ask({"op": "run", "id": i, "session": session, "argv": argv, "cwd": cwd, "stdio": [True, True, True]},
            fds=[nul, nul, nul])
    errors.add(r[-1]["ok"] is False and r[-1]["error"]["type"])
print("ERRORS", sorted(errors))
"""
    attack(tenants[0], daemon, warm)  # the session and its spare leaves are made: what they hold is not a leak
    before = daemon.fd_count()
    out = attack(tenants[0], daemon, body, timeout=120)
    assert out[0].startswith("CLOSED ") and int(out[0].split()[1]) >= 90  # closed on them, not buffered
    ten = json.loads(out[1].split(" ", 1)[1])
    assert ten["ok"] is False and "more than 3 fds" in ten["error"]["message"]
    assert out[2] == "HELLO-FDS BadRequest" and out[3] == "FEWER BadRequest"
    assert out[4] == "ERRORS ['FileNotFoundError', 'NotFound', 'SpawnError']", out[4]
    wait_for(lambda: daemon.fd_count() <= before + 4, f"the daemon's fds back near {before}: {daemon.fd_count()}")


@SAME_ON_EVERY_KERNEL
def test_caps_on_connections_sessions_and_calls(tmp_path, root_name, tenants) -> None:
    d = start_daemon(
        tmp_path, root_name, "--tenant-max-connections", "8", "--tenant-max-sessions", "3", "--tenant-max-calls", "2"
    )
    try:
        body = r"""
held = [conn() for _ in range(8)]
extra = conn()
print("NINTH", json.dumps(next(replies(extra))))
for s in held:
    s.close()
# the daemon counts a connection until its loop has seen it close: ask again until it has (a fixed pause was
# too short for a busy loop), for up to 30 s
deadline = time.monotonic() + 30
while True:
    try:
        ok = hello()
    except (IndexError, OSError):  # refused unread: closed without a reply
        ok = False
    if ok or time.monotonic() > deadline:
        break
    time.sleep(0.05)
print("AFTER", ok)
for i in range(4):
    r = ask({"op": "open_session", "id": i, "name": f"s{i}"})[-1]
    print("OPEN", i, r["ok"], r.get("error", {}).get("type"))
running = []
for i in range(3):
    s = conn()
    s.sendall(json.dumps({"op": "run", "id": i, "session": "s0", "argv": ["sleep", "30"]}).encode() + b"\n")
    r = next(replies(s))
    print("CALL", i, "event" in r, r.get("error", {}).get("type"))
    running.append(s)
for s in running:
    s.close()
"""
        out = attack(tenants[0], d, body)
        ninth = json.loads(out[0].split(" ", 1)[1])
        assert ninth["error"]["type"] == "TooMany" and "8" in ninth["error"]["message"]
        assert out[1] == "AFTER True"
        assert out[2:6] == ["OPEN 0 True None", "OPEN 1 True None", "OPEN 2 True None", "OPEN 3 False TooMany"]
        assert out[6:9] == ["CALL 0 True None", "CALL 1 True None", "CALL 2 False TooMany"]
        # the other tenant is not counted against the first, and root has no cap
        assert tenants[1].run(PRELUDE + "print(ask({'op': 'open_session', 'name': 's0'})[-1]['ok'])", d.sock).stdout
        for i in range(3):
            Client(d.sock).open_session(f"r{i}")
        wait_for(lambda: not any(s["calls"] for s in Client(d.sock).status()["sessions"]), "the calls killed")
    finally:
        stop_daemon(d, root_name)


@SAME_ON_EVERY_KERNEL
def test_out_of_descriptors_the_daemon_pauses_accepting_and_serves_on(daemon) -> None:
    request(daemon.sock, {"op": "hello"})
    spare = 12
    limit = daemon.fd_count() + spare
    subprocess.run(["prlimit", f"--pid={daemon.pid}", f"--nofile={limit}:{limit}"], check=True)
    socks = []
    for _ in range(3 * spare):  # root has no connection cap: the fd table fills
        s = socket.socket(socket.AF_UNIX)
        s.connect(daemon.sock)
        socks.append(s)
    wait_for(lambda: "accept-paused" in daemon.log(), "the daemon to notice EMFILE")
    assert daemon.proc.poll() is None
    for s in socks:
        s.close()
    assert daemon.hello()["ok"]  # it serves on once descriptors are free again
    assert Client(daemon.sock).status()["sessions"] == []


# --- 4. memory ---------------------------------------------------------------------------------------------
@SAME_ON_EVERY_KERNEL
def test_input_while_a_call_runs_is_bounded(daemon, tenants) -> None:
    body = r"""
ask({"op": "open_session", "id": 1, "name": "t"})
s = conn()
s.sendall(json.dumps({"op": "run", "id": 2, "session": "t", "argv": ["sleep", "30"]}).encode() + b"\n")
it = replies(s)
call = next(it)["call_id"]
sent = 0
try:
    for _ in range(1024):
        s.sendall(b"y" * 65536)
        sent += 65536
except (BrokenPipeError, ConnectionResetError):
    pass
print("SENT_MIB", sent >> 20)
s.close()
deadline = time.time() + 20
while True:
    r = ask({"op": "outcome", "id": 3, "call_id": call})[-1]
    if r.get("outcome") or time.time() > deadline:
        break
    time.sleep(0.05)
print("KILLED", r["outcome"]["killed_by"], r["outcome"]["kill_reason"])
"""
    request(daemon.sock, {"op": "hello"})
    before = daemon.rss_kib()
    out = attack(tenants[0], daemon, body)
    assert int(out[0].split()[1]) < 64  # the daemon closed the connection long before 64 MiB
    assert out[1] == "KILLED policy the client disconnected"
    assert daemon.rss_kib() - before < 32 * 1024


@SAME_ON_EVERY_KERNEL
def test_captured_output_is_bounded(daemon, tenants) -> None:
    body = r"""
ask({"op": "open_session", "id": 1, "name": "t"})
r = ask({"op": "run", "id": 2, "session": "t", "argv": ["sh", "-c", "head -c 50000000 /dev/zero; echo err >&2"],
         "capture_output": True})[-1]["outcome"]
import base64
print(len(base64.b64decode(r["stdout_b64"])), base64.b64decode(r["stderr_b64"]), r["exit_code"])
print([s["reason"] for s in r["steps"] if s["action"] == "note"])
"""
    request(daemon.sock, {"op": "hello"})
    before = daemon.rss_kib()
    out = attack(tenants[0], daemon, body)
    assert out[0] == f"{1 << 20} b'err\\n' 0"  # 1 MiB kept of 50 MB; the command was not stopped for it
    assert "dropped" in out[1]
    assert daemon.rss_kib() - before < 32 * 1024


# --- 5. detached calls ---------------------------------------------------------------------------------------
def test_detached_calls_stop_with_their_session_and_never_write_to_another_client(daemon, tenants) -> None:
    a, b = tenants
    chatter = b.popen(
        PRELUDE
        + r"""
s = conn()
it = replies(s)
bad = 0
for i in range(400):
    s.sendall(json.dumps({"op": "hello", "id": i}).encode() + b"\n")
    r = next(it)
    bad += r.get("id") != i or r.get("ok") is not True
    time.sleep(0.005)
print("BAD", bad)
""",
        daemon.sock,
    )
    body = r"""
ask({"op": "open_session", "id": 1, "name": "d"})
ids = []
for i in range(4):
    s = conn()
    argv = ["sh", "-c", "sleep 0.$((RANDOM % 9)); sleep 60"]
    s.sendall(json.dumps({"op": "run", "id": i, "session": "d", "argv": argv,
                          "on_disconnect": "detach"}).encode() + b"\n")
    ids.append(next(replies(s))["call_id"])
    s.close()
time.sleep(0.5)
print("RUNNING", sum(ask({"op": "outcome", "id": 2, "call_id": c})[-1]["running"] for c in ids))
print("CLOSE", ask({"op": "close_session", "id": 3, "name": "d"})[-1]["ok"])
print("KILLED", [ask({"op": "outcome", "id": 4, "call_id": c})[-1]["outcome"]["killed_by"] for c in ids])
print("LEFT", ask({"op": "status", "id": 5})[-1]["status"]["sessions"])
"""
    out = attack(a, daemon, body)
    assert out == ["RUNNING 4", "CLOSE True", "KILLED ['policy', 'policy', 'policy', 'policy']", "LEFT []"]
    so, se = chatter.communicate(timeout=60 * SLOW)
    assert so.strip() == "BAD 0", se


def test_sigterm_stops_detached_calls(tmp_path, root_name, tenants) -> None:
    d = start_daemon(tmp_path, root_name)
    box = tempfile.mkdtemp(prefix="ag10-box-")
    os.chmod(box, 0o777)
    try:
        body = f"""
ask({{"op": "open_session", "id": 1, "name": "e"}})
s = conn()
s.sendall(json.dumps({{"op": "run", "id": 2, "session": "e", "argv": ["sh", "-c", "echo $$ > {box}/pid; exec sleep 60"],
                      "on_disconnect": "detach"}}).encode() + b"\\n")
print(next(replies(s))["call_id"])
s.close()
"""
        attack(tenants[0], d, body)
        pidfile = Path(box) / "pid"
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), "the call's pid")
        pid = int(pidfile.read_text())
        assert os.path.exists(f"/proc/{pid}")
    finally:
        stop_daemon(d, root_name)  # SIGTERM; and no cgroup may be left
        import shutil

        shutil.rmtree(box)
    assert not os.path.exists(f"/proc/{pid}")


# --- 6. session names per uid, across a SIGKILL and a restart ----------------------------------------------
def test_session_names_are_per_uid_and_survive_a_restart_with_their_owner(tmp_path, root_name, tenants) -> None:
    a, b = tenants
    d = start_daemon(tmp_path, root_name)
    try:
        out = attack(
            a,
            d,
            r"""
ask({"op": "open_session", "id": 1, "name": "shared"})
s = conn()
s.sendall(json.dumps({"op": "run", "id": 2, "session": "shared", "argv": ["sleep", "60"],
                      "on_disconnect": "detach"}).encode() + b"\n")
print(next(replies(s))["call_id"])
s.close()
""",
        )
        call = out[0]
        squat = r"""
print("SEES", [x["name"] for x in ask({"op": "status"})[-1]["status"]["sessions"]])
r = ask({"op": "open_session", "name": "shared", "priority": "low"})[-1]
print("OPEN", r["ok"], r["session"]["name"], r["session"]["uid"])
print("KILL", ask({"op": "kill", "session": "shared", "call_id": sys.argv[2]})[-1]["error"]["type"])
print("OUTCOME", ask({"op": "outcome", "call_id": sys.argv[2]})[-1]["error"]["type"])
print("SEES", [(x["name"], x["calls"]) for x in ask({"op": "status"})[-1]["status"]["sessions"]])
"""
        before = attack(b, d, squat, call)
        assert before == [
            "SEES []",
            f"OPEN True shared {b.uid}",
            "KILL NotFound",
            "OUTCOME AccessDenied",
            "SEES [('shared', [])]",
        ]
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(30)
        os.unlink(d.sock)
        d2 = start_daemon(tmp_path, root_name, state=d.state)
        os.rmdir(os.path.dirname(d.sock))
        d = d2
        after = attack(b, d, squat, call)
        assert after[0] == "SEES ['shared']" and after[1:] == before[1:]  # its own, adopted; still not A's
        mine = attack(
            a,
            d,
            'print([(x["name"], x["uid"], [c["call_id"] for c in x["calls"]]) for x in ask({"op": "status"})'
            '[-1]["status"]["sessions"]])',
        )
        assert mine == [repr([("shared", a.uid, [call])])]
        names = sorted((s["name"], s["uid"]) for s in Client(d.sock).status()["sessions"])
        assert names == sorted([(f"u{a.uid}:shared", a.uid), (f"u{b.uid}:shared", b.uid)])
        Client(d.sock).close_session(f"u{a.uid}:shared")  # root administers every session by its full name
        assert Client(d.sock).outcome(call).killed_by == "policy"
    finally:
        stop_daemon(d, root_name)


# --- 9. the socket path ------------------------------------------------------------------------------------
@SAME_ON_EVERY_KERNEL
def test_the_socket_path_replaces_only_a_stale_socket(tmp_path, root_name) -> None:
    from tests.conftest import kernel_skip_reason

    if kernel_skip_reason():
        pytest.skip(kernel_skip_reason())
    base = [PY, "-m", "agentcgroup", "daemon", "--root", root_name, "--state-dir", str(tmp_path / "st"), "--socket"]
    victim = tmp_path / "important.txt"
    victim.write_text("keep me")
    link = tmp_path / "link.sock"
    link.symlink_to(victim)
    for path in (victim, link, tmp_path):
        r = subprocess.run([*base, str(path)], capture_output=True, text=True, timeout=60)
        assert r.returncode == 125 and r.stderr.count("\n") == 1 and "refusing to replace" in r.stderr, r.stderr
        assert "Traceback" not in r.stderr
    assert victim.read_text() == "keep me" and link.is_symlink()
    stale = tmp_path / "stale.sock"
    s = socket.socket(socket.AF_UNIX)
    s.bind(str(stale))
    s.close()  # a socket nobody serves: replaced
    d = start_daemon(tmp_path, root_name)
    try:
        r = subprocess.run([*base, d.sock], capture_output=True, text=True, timeout=60)
        assert r.returncode == 125 and "another daemon is serving" in r.stderr
        assert stat.S_ISSOCK(os.lstat(d.sock).st_mode) and d.hello()["ok"]
    finally:
        stop_daemon(d, root_name)
    p = subprocess.Popen([*base, str(stale)], stderr=subprocess.PIPE)
    wait_for(lambda: Client(str(stale)).hello() if _answers(str(stale)) else False, "a daemon on the stale path")
    p.send_signal(signal.SIGTERM)
    assert p.wait(30) == 0


def _answers(path: str) -> bool:
    try:
        Client(path).hello()
        return True
    except Exception:
        return False


# --- 10. operator policy; the client's check of who listens ------------------------------------------------
def test_tenants_get_safe_caps_unless_the_operator_grants_more(tmp_path, root_name, tenants) -> None:
    a, b = tenants
    policy = tmp_path / "policy.toml"
    policy.write_text(f'[tenants]\nmax_sessions = 5\n\n[user.{a.name}]\nmax_priority = "high"\nmax_cpu_weight = 400\n')
    d = start_daemon(tmp_path, root_name, "--policy", str(policy))
    try:
        body = r"""
for req in ({"op": "open_session", "name": "h", "priority": "high"},
            {"op": "open_session", "name": "w", "limits": {"cpu_weight": 10000}},
            {"op": "open_session", "name": "p", "agent_memory": "16G"},
            {"op": "open_session", "name": "l", "limits": {"memory_low": "1G"}}):
    r = ask(req)[-1]
    print(r["ok"], r.get("error", {}).get("type"), r.get("error", {}).get("message", ""))
ask({"op": "open_session", "name": "n"})
r = ask({"op": "run", "session": "n", "argv": ["true"], "intent": {"priority": "high"}})[-1]
print(r["ok"], r.get("error", {}).get("type"))
r = ask({"op": "run", "session": "n", "argv": ["true"], "limits": {"pids": 100000}})[-1]
print("PIDS", r["ok"], r.get("error", {}).get("type"))
r = ask({"op": "run", "session": "n", "argv": ["true"]})[-1]
print("DEFAULT-PIDS", r["outcome"]["limits"].get("pids_max"))
print(json.dumps(ask({"op": "hello"})[-1]["policy"]))
"""
        out_b = attack(b, d, body)
        assert out_b[0].startswith("False NotAllowed invalid priority 'high'") and "at most normal" in out_b[0]
        assert out_b[1].startswith("False NotAllowed invalid cpu-weight 10000")
        assert out_b[2].startswith("False NotAllowed invalid agent_memory") and "16G" in out_b[2]
        assert out_b[3].startswith("False NotAllowed invalid memory-low")
        assert out_b[4] == "False NotAllowed"
        assert out_b[5] == "PIDS False NotAllowed" and out_b[6] == "DEFAULT-PIDS 4096"  # no fork bomb
        caps = json.loads(out_b[7])
        assert caps["max_priority"] == "normal" and caps["max_sessions"] == 5 and caps["max_cpu_weight"] == 100
        out_a = attack(a, d, body)
        assert out_a[0].startswith("True") and out_a[4] == "True None"  # the operator granted high priority
        assert json.loads(out_a[7])["max_priority"] == "high"
        st = {s["name"]: s for s in Client(d.sock).status()["sessions"]}
        assert st[f"u{a.uid}:h"]["priority"] == "high" and st[f"u{b.uid}:n"]["limits"]["cpu_weight"] == 100
    finally:
        stop_daemon(d, root_name)


@SAME_ON_EVERY_KERNEL
def test_the_client_sends_nothing_to_a_socket_another_user_serves(tenants, tmp_path) -> None:
    a = tenants[0]
    box = tempfile.mkdtemp(prefix="ag10-box-")
    os.chmod(box, 0o777)
    path = os.path.join(box, "fake.sock")
    fake = a.popen(
        r"""
import socket, sys, os
s = socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); os.chmod(sys.argv[1], 0o777); s.listen(5)
print("READY", flush=True)
c, _ = s.accept(); c.settimeout(3)
got = b""
try:
    while chunk := c.recv(65536):
        got += chunk
except OSError:
    pass
print("GOT", len(got), flush=True)
""",
        path,
    )
    try:
        assert fake.stdout.readline().strip() == "READY"
        with pytest.raises(Untrusted, match=f"uid {a.uid}"):
            Client(path).run("s", ["true"], env={"SECRET": "x"}, stdin=0)
        assert fake.stdout.readline().strip() == "GOT 0"
    finally:
        fake.kill()
        fake.wait()
        import shutil

        shutil.rmtree(box)


# --- 11. argv[0] and cwd resolved as the tenant --------------------------------------------------------------
@SAME_ON_EVERY_KERNEL
def test_a_tenant_cannot_probe_root_only_paths_through_its_calls(daemon, tenants) -> None:
    secret = tempfile.mkdtemp(prefix="ag10-secret-")  # 0700 root
    exe = os.path.join(secret, "tool")
    with open(exe, "w") as f:
        f.write("#!/bin/sh\nexit 0\n")
    os.chmod(exe, 0o755)
    try:
        body = f"""
ask({{"op": "open_session", "name": "t"}})
for argv, env, cwd in ((["{exe}"], {{}}, "/"), (["{secret}/none"], {{}}, "/"),
                       (["tool"], {{"PATH": "{secret}"}}, "/"), (["none"], {{"PATH": "{secret}"}}, "/"),
                       (["true"], {{}}, "{secret}"), (["true"], {{}}, "{secret}/none")):
    r = ask({{"op": "run", "session": "t", "argv": argv, "env": env, "cwd": cwd}})[-1]
    e = r.get("error", {{}})
    print(e.get("type"), e.get("message", "").replace("{exe}", "P").replace("{secret}/none", "P")
          .replace("tool", "N").replace("none", "N").replace("{secret}", "P"))
"""
        out = attack(tenants[0], daemon, body)
        assert out[0] == out[1] and out[2] == out[3] and out[4] == out[5], out  # existing or not: the same answer
        assert all(line.split()[0] in ("PermissionError", "SpawnError") for line in out), out
    finally:
        os.unlink(exe)
        os.rmdir(secret)


# --- 13. a SIGKILLed `agentcg run --socket` leaves no session ----------------------------------------------
def test_a_killed_run_client_leaves_no_session(daemon) -> None:
    p = subprocess.Popen(
        [PY, "-m", "agentcgroup", "run", "--socket", daemon.sock, "--", "sleep", "60"], stdin=subprocess.DEVNULL
    )
    c = Client(daemon.sock)
    wait_for(lambda: any(s["calls"] for s in c.status()["sessions"]), "the call running")
    assert [s["name"] for s in c.status()["sessions"]] == [f"run-{p.pid}"]
    p.send_signal(signal.SIGKILL)
    p.wait()
    wait_for(lambda: c.status()["sessions"] == [], "the daemon closing the run's session")


def test_a_users_own_private_daemon_treats_that_user_as_its_owner(tenants) -> None:
    """``agentcg record`` serves its controller on a private socket as whoever runs it: to that daemon its own
    uid is no tenant (full names, no caps), while any other uid still is one."""
    a, b = tenants
    box = tempfile.mkdtemp(prefix="ag10-box-")
    os.chmod(box, 0o777)
    sock = os.path.join(box, "s")
    daemon = a.popen(
        "import sys; from agentcgroup.cli.main import main; sys.argv = ['agentcg'] + sys.argv[1:]; main()",
        "daemon",
        "--backend",
        "none",
        "--socket",
        sock,
        "--state-dir",
        os.path.join(box, "st"),
    )
    try:
        wait_for(lambda: os.path.exists(sock), "the private daemon")
        os.chmod(box, 0o755)
        body = r"""
r = ask({"op": "open_session", "name": "x", "priority": "high"})[-1]
print(r["ok"], r.get("session", {}).get("name"), r.get("error", {}).get("type"))
"""
        mine = a.run(PRELUDE + body, sock)
        assert mine.stdout.split() == ["True", "x", "None"], mine.stderr
        other = b.run(PRELUDE + body, sock)
        assert other.stdout.split() == ["False", "None", "NotAllowed"], other.stderr
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
        shutil.rmtree(box)
