"""A real daemon process and real other users, for the tests that attack it as a tenant would.

Tenants are users this module creates with ``useradd`` (names ``ag10u<pid><letter>``) and removes afterwards;
their code runs in a subprocess under ``setpriv --reuid --regid --clear-groups``, connecting to the socket as
that uid. The daemon runs as root on a temp socket and state dir, under a test root cgroup.
"""

from __future__ import annotations

import fcntl
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import termios
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from tests.conftest import SLOW, kernel_skip_reason, leftovers

PY = sys.executable
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class Tenant:
    name: str
    uid: int
    gid: int

    def run(self, code: str, *args: str, timeout: float = 60, env: dict | None = None) -> subprocess.CompletedProcess:
        """``python -c code args...`` as this user (no supplementary groups), from ``/``."""
        cmd = ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", PY, "-c", code, *args]
        base = {"PATH": "/usr/bin:/bin", "PYTHONPATH": REPO, "HOME": "/"}
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout * SLOW, cwd="/", env={**base, **(env or {})}
        )

    def popen(self, code: str, *args: str) -> subprocess.Popen:
        cmd = ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", "--clear-groups", PY, "-c", code, *args]
        return subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/", env={"PYTHONPATH": REPO}
        )


def make_tenants(n: int) -> list[Tenant]:
    """``n`` fresh users (skips with the reason where users cannot be made or cannot run this Python)."""
    if os.geteuid() != 0 or shutil.which("useradd") is None or shutil.which("setpriv") is None:
        pytest.skip("tenant tests need root, useradd and setpriv to create and become other users")
    _remove_stale_tenants()
    made: list[Tenant] = []
    for i in range(n):
        name = f"ag10u{os.getpid()}{chr(ord('a') + i)}"
        r = subprocess.run(["useradd", "-M", "-s", "/bin/sh", name], capture_output=True, text=True)
        if r.returncode != 0:
            remove_tenants(made)
            pytest.skip(f"cannot create a test user: {r.stderr.strip()}")
        pw = pwd.getpwnam(name)
        made.append(Tenant(name, pw.pw_uid, pw.pw_gid))
    probe = made[0].run("import agentcgroup.daemon.client")
    if probe.returncode != 0:
        remove_tenants(made)
        pytest.skip(f"a test user cannot run this Python and checkout: {probe.stderr.strip()[-200:]}")
    return made


def _remove_stale_tenants() -> None:
    """Users of an earlier test run that was killed before its cleanup (``ag10u<pid><letter>``, that pid gone):
    removed, so that a killed run's users do not pile up on the machine."""
    stale = []
    for pw in pwd.getpwall():
        m = re.fullmatch(r"ag10u(\d+)[a-z]", pw.pw_name)
        if m is None or int(m.group(1)) == os.getpid():
            continue
        try:
            os.kill(int(m.group(1)), 0)
        except ProcessLookupError:
            stale.append(Tenant(pw.pw_name, pw.pw_uid, pw.pw_gid))
        except PermissionError:
            pass  # that pid lives (another user's process): not ours to judge
    remove_tenants(stale)


def remove_tenants(tenants: list[Tenant]) -> None:
    for t in tenants:
        subprocess.run(["pkill", "-KILL", "-u", str(t.uid)], capture_output=True)  # only that test user's
        subprocess.run(["userdel", t.name], capture_output=True)


@dataclass
class DaemonProc:
    proc: subprocess.Popen
    sock: str
    state: str
    log_path: str
    args: list[str]
    pty_master: int | None = None
    pty_out: bytearray = field(default_factory=bytearray)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        if self.pty_master is not None:
            return self.pty_out.decode(errors="replace")
        with open(self.log_path) as f:
            return f.read()

    def fd_count(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/fd"))

    def rss_kib(self) -> int:
        with open(f"/proc/{self.pid}/status") as f:
            return next(int(line.split()[1]) for line in f if line.startswith("VmRSS"))

    def threads(self) -> int:
        return len(os.listdir(f"/proc/{self.pid}/task"))

    def hello(self) -> dict:
        return request(self.sock, {"op": "hello", "id": "h"})[0]


def start_daemon(
    tmp_path, root_name: str, *extra: str, tty: bool = False, env: dict | None = None, state: str | None = None
) -> DaemonProc:
    reason = kernel_skip_reason()
    if reason:
        pytest.skip(reason)
    sockdir = tempfile.mkdtemp(prefix="agentcg-test-sock-")
    os.chmod(sockdir, 0o755)  # pytest's tmp is 0700: tenants need a way in
    sock = os.path.join(sockdir, "agentcg.sock")
    state = state or str(tmp_path / "state")
    args = [PY, "-m", "agentcgroup", "daemon", "--socket", sock, "--root", root_name, "--state-dir", state, *extra]
    log_path = str(tmp_path / f"daemon-{time.monotonic_ns()}.log")
    master = None
    if tty:  # started from a terminal, as from an operator's shell: the terminal is its controlling tty
        master, slave = os.openpty()

        def ctty() -> None:
            os.setsid()
            fcntl.ioctl(0, termios.TIOCSCTTY, 0)

        proc = subprocess.Popen(
            args, stdin=slave, stdout=slave, stderr=slave, preexec_fn=ctty, env={**os.environ, **(env or {})}
        )
        os.close(slave)
    else:
        with open(log_path, "w") as log:
            proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stderr=log, env={**os.environ, **(env or {})})
    d = DaemonProc(proc, sock, state, log_path, args, master)
    if master is not None:
        threading.Thread(target=_drain, args=(master, d.pty_out), daemon=True).start()
    wait_up(proc, sock, d.log)
    return d


def wait_up(proc: subprocess.Popen, sock: str, log: Callable[[], str]) -> None:
    """Wait for a started daemon's socket. A daemon that did not come up in time, or came up late, leaves
    neither a process (serving a root the test's teardown removes) nor its socket's directory."""
    deadline = time.monotonic() + 20 * SLOW
    try:
        while not os.path.exists(sock):
            assert proc.poll() is None, log()
            assert time.monotonic() < deadline, "the daemon did not come up"
            time.sleep(0.05)
    except BaseException:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        shutil.rmtree(os.path.dirname(sock), ignore_errors=True)
        raise


def _drain(fd: int, into: bytearray) -> None:
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            return
        if not chunk:
            return
        into += chunk


def stop_daemon(d: DaemonProc, root_name: str) -> None:
    """SIGTERM; it must exit 0 without a traceback (a double close of a received fd once surfaced only here, as
    EBADF on a descriptor of the controller's), leave no socket and no cgroup."""
    if d.proc.poll() is None:
        d.proc.send_signal(signal.SIGTERM)
        assert d.proc.wait(30 * SLOW) == 0, d.log()[-3000:]
    assert "Traceback" not in d.log(), d.log()[-3000:]
    if d.pty_master is not None:
        os.close(d.pty_master)
    assert not os.path.exists(d.sock), "the daemon left its socket behind"
    os.rmdir(os.path.dirname(d.sock))
    assert leftovers(root_name) == []


def request(path: str, *reqs: dict, fds: list[int] | None = None, timeout: float = 30) -> list[dict]:
    """Send requests on one connection (fds with the first), half-close, read every reply line."""
    import array

    s = socket.socket(socket.AF_UNIX)
    s.settimeout(timeout * SLOW)
    s.connect(path)
    try:
        data = b"".join(json.dumps(r).encode() + b"\n" for r in reqs)
        if fds:
            s.sendmsg([data], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, array.array("i", fds))])
        else:
            s.sendall(data)
        out, replies = b"", []
        while sum(1 for r in replies if "event" not in r) < len(reqs):
            chunk = s.recv(65536)
            if not chunk:
                break
            out += chunk
            *lines, out = out.split(b"\n")
            replies += [json.loads(line) for line in lines if line.strip()]
    finally:
        s.close()
    return replies


def wait_for(cond, what: str, timeout: float = 10) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout * SLOW
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)
