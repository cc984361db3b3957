"""``agentcg top`` in a real terminal (tmux: send-keys, capture-pane) over a real daemon: the sessions and a
frozen call with their state, sorting and collapsing, ``q`` quits, and a tenant sees only its own sessions."""

from __future__ import annotations

import contextlib
import os
import shlex
import shutil
import subprocess
import threading
import time

import pytest

from agentcgroup.daemon.client import Client
from tests.conftest import SLOW
from tests.kernel.daemon_fixtures import PY, REPO, make_tenants, remove_tenants, start_daemon, stop_daemon, wait_for

pytestmark = [pytest.mark.kernel]

HOG = "import time\nb = []\nfor i in range(300): b.append(bytearray(1 << 20))\ntime.sleep(60)"


class Tmux:
    """A tmux server of this test's own (``-L``), one detached session running one command."""

    def __init__(self, name: str) -> None:
        if shutil.which("tmux") is None:
            pytest.skip("tmux is not installed (apt-get install tmux)")
        self.sock = f"agentcg-test-{os.getpid()}-{name}"
        self.name = name

    def tmux(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(["tmux", "-L", self.sock, *args], capture_output=True, text=True, check=check)

    def start(self, command: str) -> None:
        self.tmux("-f", "/dev/null", "new-session", "-d", "-s", self.name, "-x", "170", "-y", "40", command)

    def pane(self) -> str:
        r = self.tmux("capture-pane", "-p", "-t", self.name, check=False)
        return r.stdout

    def keys(self, *keys: str) -> None:
        self.tmux("send-keys", "-t", self.name, *keys)

    def alive(self) -> bool:
        return self.tmux("has-session", "-t", self.name, check=False).returncode == 0

    def close(self) -> None:
        self.tmux("kill-server", check=False)
        # tmux leaves its socket file behind when its server ends: not in /tmp/tmux-<uid> after us
        path = os.path.join(os.environ.get("TMUX_TMPDIR", "/tmp"), f"tmux-{os.getuid()}", self.sock)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        with contextlib.suppress(OSError):  # its directory too, when nothing else of tmux's is in it
            os.rmdir(os.path.dirname(path))


def top_command(sock: str, *prefix: str) -> str:
    env = f"env -u COLUMNS -u LINES AGENTCG_SOCKET={shlex.quote(sock)} PYTHONPATH={shlex.quote(REPO)}"
    env += " TERM=xterm-256color"  # (no COLUMNS inherited from the test's environment: the pane's own width)
    return " ".join([env, *prefix, shlex.quote(PY), "-m", "agentcgroup", "top", "--interval", "0.3"])


def row(pane: str, word: str) -> str:
    return next((line for line in pane.splitlines() if word in line), "")


@pytest.fixture
def scene(tmp_path, root_name):
    """A daemon with two sessions: ``builder`` (high) running ``sleep``, ``tester`` (low) with a call frozen at
    its soft limit (it stays frozen: kill-after is long)."""
    d = start_daemon(tmp_path, root_name, "--budget", "2G", "--stall-grace", "200ms", "--kill-after", "120s")
    c = Client(d.sock)
    c.open_session("builder", priority="high", limits={"memory": "1G"})
    c.open_session("tester", priority="low", limits={"memory": "512M"})
    threads = [
        threading.Thread(target=lambda: c.run("builder", ["sleep", "120"]), daemon=True),
        threading.Thread(
            target=lambda: c.run("tester", [PY, "-c", HOG], limits={"memory_high": "64M"}, timeout=120), daemon=True
        ),
    ]
    for t in threads:
        t.start()

    def frozen() -> bool:
        calls = [x for s in c.status()["sessions"] for x in s["calls"]]
        return len(calls) == 2 and any(x["phase"] == "frozen" for x in calls)

    wait_for(frozen, "a frozen call and a running one", timeout=30)
    yield d, c
    for s in ("builder", "tester"):
        c.close_session(s)
    for t in threads:
        t.join(30 * SLOW)
    stop_daemon(d, root_name)


def test_top_in_a_terminal_shows_sessions_and_a_frozen_call_sorts_collapses_and_quits_on_q(scene) -> None:
    d, c = scene
    frozen_id = next(x["call_id"] for s in c.status()["sessions"] for x in s["calls"] if x["phase"] == "frozen")
    t = Tmux("top")
    try:
        t.start(top_command(d.sock))
        wait_for(lambda: frozen_id in t.pane() and "last actions" in t.pane(), "top's first screen", timeout=20)
        pane = t.pane()
        assert "2 session(s), 2 call(s)" in pane and "sort: memory" in pane, pane
        assert "high" in row(pane, "builder") and "1 GiB" in row(pane, "builder"), pane
        assert "low" in row(pane, "tester") and "512 MiB" in row(pane, "tester"), pane
        assert "frozen" in row(pane, frozen_id) and "MiB" in row(pane, frozen_id), pane
        assert "running" in row(pane, "sleep 120"), pane
        # sorted by memory: the frozen call's session (64 MiB) above the sleeping one's
        assert pane.index("tester") < pane.index("builder"), pane
        # the last actions, with their reasons
        assert "soft memory limit 64 MiB" in row(pane, "freeze"), pane
        t.keys("s")
        wait_for(lambda: "sort: cpu" in t.pane(), "the sort to change")
        t.keys("s")
        wait_for(lambda: "sort: name" in t.pane(), "the sort by name")
        pane = t.pane()
        assert pane.index("builder") < pane.index("tester"), pane
        t.keys("e")
        wait_for(lambda: "└" not in t.pane(), "the calls collapsed")  # (the id stays in the last actions)
        t.keys("e")
        wait_for(lambda: "frozen" in row(t.pane(), "└ " + frozen_id), "the calls shown again")
        t.keys("q")
        wait_for(lambda: not t.alive(), "top to quit on q", timeout=10)
    finally:
        t.close()


def test_a_tenant_sees_only_its_own_sessions(scene) -> None:
    d, c = scene
    tenants = make_tenants(1)
    (ten,) = tenants
    t = Tmux("tenant")
    try:
        code = (
            "import sys, threading; from agentcgroup.daemon.client import Client; c = Client(sys.argv[1]);"
            "c.open_session('mine'); print('open', flush=True); c.run('mine', ['sleep', '120'])"
        )
        runner = ten.popen(code, d.sock)
        assert runner.stdout is not None and runner.stdout.readline().strip() == "open"
        wait_for(lambda: any(s["calls"] for s in c.status()["sessions"] if s["name"].endswith(":mine")), "its call")
        setpriv = ["setpriv", f"--reuid={ten.uid}", f"--regid={ten.gid}", "--clear-groups"]
        t.start(top_command(d.sock, *setpriv))
        wait_for(lambda: "sleep 120" in t.pane(), "the tenant's top", timeout=20)
        pane = t.pane()
        assert "1 session(s), 1 call(s)" in pane, pane
        assert "mine" in pane and f"u{ten.uid}:" not in pane, pane
        assert "builder" not in pane and "tester" not in pane and "budget" not in pane, pane
        assert "no actions yet" in pane, pane  # the freeze was root's session's, not the tenant's
        t.keys("q")
        wait_for(lambda: not t.alive(), "the tenant's top to quit on q", timeout=10)
        # --once, as the tenant: the same
        once = ten.run(
            "import sys; from agentcgroup.cli.main import cli; cli(sys.argv[1:], prog_name='agentcg')",
            "top",
            "--once",
            "--socket",
            d.sock,
        )
        assert once.returncode == 0, once.stderr
        assert "mine" in once.stdout and "builder" not in once.stdout and "tester" not in once.stdout, once.stdout
        c.close_session(f"u{ten.uid}:mine")
        runner.wait(30 * SLOW)
    finally:
        t.close()
        remove_tenants(tenants)


def test_top_once_as_root_prints_one_snapshot(scene) -> None:
    d, _c = scene
    t0 = time.monotonic()
    r = subprocess.run(
        [PY, "-m", "agentcgroup", "top", "--once", "--sort", "priority", "--socket", d.sock],
        capture_output=True,
        text=True,
        timeout=30 * SLOW,
    )
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 < 20 * SLOW
    out = r.stdout
    assert "budget 2 GiB" in out and out.index("builder") < out.index("tester"), out
    assert "frozen" in row(out, "python") or "frozen" in out, out
