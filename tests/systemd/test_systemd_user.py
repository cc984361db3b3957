"""An unprivileged user on a systemd host, with nothing set up but a lingering user manager: ``agentcg run``,
the bash shim and the daemon enforce memory, CPU and pids in a scope the user's own manager delegates, and
leave no unit, cgroup or process behind."""

from __future__ import annotations

import json
import os
import re
import signal
import sys
import time

import psutil
import pytest

from .conftest import agentcg, wait_for

pytestmark = [pytest.mark.kernel, pytest.mark.systemd]

HOG = "bytearray(256 << 20)"


@pytest.fixture
def u(user):
    yield user
    wait_for(lambda: not user.units(), 30, f"{user.name}'s agentcg scopes to be gone")
    wait_for(lambda: not user.our_cgroups(), 30, f"cgroups under {user.name}'s agentcg.slice to be gone")


def test_doctor_says_which_path_and_why(u):
    r = u.run(agentcg("doctor", "--json"))
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert info["backend"] == "v2" and info["enforce_memory"], info
    sd = info["systemd"]
    assert sd["owner"] == "systemd" and sd["path"].startswith("user unit agentcg-"), sd
    assert f"uid {u.uid}" in sd["why"] and "memory" in sd["why"] and "pids" in sd["why"], sd


def test_memory_kill_in_the_users_own_scope(u, capsys):
    probe = "print(open('/proc/self/cgroup').read().strip(), flush=True); " + HOG
    r = u.run(agentcg("run", "--memory", "64M", "--", sys.executable, "-c", probe))
    assert r.returncode == 137, r.stdout + r.stderr
    assert "out of memory" in r.stderr and "64 MiB" in r.stderr, r.stderr
    where = r.stdout.strip()
    pat = rf"0::/user\.slice/user-{u.uid}\.slice/user@{u.uid}\.service/agentcg\.slice/agentcg-\d+-[0-9a-f]{{4}}\.scope/agentcg/[^/]+/tools/[^/]+"  # noqa: E501
    assert re.fullmatch(pat, where), where
    with capsys.disabled():
        print(f"\nuser {u.name}: memory-killed call ran in {where[3:]}\n  agentcg: {r.stderr.strip()}")


def test_timeout_kills_the_whole_tree(u):
    tree = "sleep 300 & setsid sleep 301 & (sleep 302 &) ; sleep 303"
    t0 = time.monotonic()
    r = u.run(agentcg("run", "--timeout", "3s", "--", "sh", "-c", tree))
    assert r.returncode == 137, r.stdout + r.stderr
    assert "timed out" in r.stderr or "timeout" in r.stderr, r.stderr
    assert time.monotonic() - t0 < 120
    left = [p.info for p in psutil.process_iter(["pid", "cmdline", "uids"]) if p.info["uids"].real == u.uid]
    assert not [p for p in left if p["cmdline"][:1] == ["sleep"]], left


def test_cpu_quota_is_enforced(u, capsys):
    spin = "import time\nt = time.monotonic()\nwhile time.monotonic() - t < 4: pass"
    r = u.run(agentcg("run", "--json", "--cpu", "25%", "--", sys.executable, "-c", spin))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.splitlines()[-1])
    ratio = out["cpu_s"] / out["duration_s"]
    with capsys.disabled():
        print(
            f"\nuser {u.name}: --cpu 25% busy loop: cpu.stat usage {out['cpu_s']:.2f} s over "
            f"{out['duration_s']:.2f} s wall = {ratio:.2f} of a core (throttled {out['cpu_throttled_s']} s)"
        )
    assert 0.1 < ratio < 0.35, out


def test_pids_limit(u):
    forks = (
        "import os, time\nrefused = 0\nfor _ in range(32):\n    try:\n        if os.fork() == 0:\n"
        "            time.sleep(5)\n            os._exit(0)\n    except OSError:\n        refused += 1\nprint(refused)"
    )
    r = u.run(agentcg("run", "--json", "--pids", "8", "--", sys.executable, "-c", forks))
    lines = r.stdout.splitlines()
    out = json.loads(lines[-1])
    assert int(lines[0]) >= 32 - 8 and out["pids_denied"] >= 32 - 8, (lines, out)


def test_the_bash_shim(u):
    shims = f"{u.home}/shims"
    u.run(agentcg("shim", "install", shims)).check_returncode()
    r = u.run(
        ["bash", "-c", f"{sys.executable} -c '{HOG}'"],
        env={"PATH": f"{shims}:{os.path.dirname(sys.executable)}:/usr/bin:/bin", "AGENTCG_SHIM_ARGS": "--memory 64M"},
    )
    assert r.returncode == 137 and "out of memory" in r.stderr, r.stderr


def test_the_mini_swe_agent_environment(u):
    pytest.importorskip("minisweagent")
    code = (
        "import json\nfrom agentcgroup.integrations.mini import AgentcgroupEnvironment\n"
        "env = AgentcgroupEnvironment(memory='64M')\n"
        f"r = env.execute({{'command': 'cat /proc/self/cgroup; {sys.executable} -c \"{HOG}\"'}})\n"
        "env.close()\nprint(json.dumps({'rc': r['returncode'], 'out': r['output']}))"
    )
    r = u.run([sys.executable, "-c", code])
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout.splitlines()[-1])
    assert out["rc"] == 137 and "out of memory" in out["out"], out
    assert f"user@{u.uid}.service/agentcg.slice/agentcg-" in out["out"] and "/tools/" in out["out"], out


def test_the_daemon_as_the_user(u, tmp_path):
    work = f"{u.home}/daemon"
    u.run(["mkdir", "-p", work]).check_returncode()
    sock = f"{work}/s.sock"
    import subprocess

    proc = subprocess.Popen(
        [*u.env(), *agentcg("daemon", "--socket", sock, "--state-dir", f"{work}/state")],
        stdout=subprocess.DEVNULL, stderr=open(tmp_path / "daemon.log", "w"), cwd="/",  # noqa: SIM115
    )  # fmt: skip
    try:
        wait_for(lambda: os.path.exists(sock), 60, "the user's daemon socket")
        r = u.run(agentcg("run", "--socket", sock, "--memory", "64M", "--", sys.executable, "-c", HOG))
        assert r.returncode == 137 and "out of memory" in r.stderr, r.stderr
        r = u.run(agentcg("run", "--socket", sock, "--", "cat", "/proc/self/cgroup"))
        assert f"user@{u.uid}.service/agentcg.slice/agentcg-" in r.stdout and "/agentcg-daemon/" in r.stdout, r.stdout
    finally:
        daemons = [p for p in psutil.Process(proc.pid).children(recursive=True) if p.uids().real == u.uid]
        for p in daemons:
            p.send_signal(signal.SIGTERM)
        proc.wait(60)
    assert proc.returncode == 0, (tmp_path / "daemon.log").read_text()
