"""As root on a systemd host: the tree goes inside a delegated unit (the job's own, ``agentcg.service``, or a
transient scope ``agentcg run`` makes for itself), never beside systemd's units, and nothing stays behind."""

from __future__ import annotations

import json
import os
import re
import sys
import tempfile

import pytest

from agentcgroup.systemd.naming import unit_of

from .conftest import REPO, agentcg, child_cgroups, run, wait_for

pytestmark = [pytest.mark.kernel, pytest.mark.systemd]

HOG = "bytearray(256 << 20)"


def test_root_goes_inside_the_delegated_unit_this_process_runs_in(manager, capsys):
    base = manager.root_path("unified").rsplit("/", 1)[0]
    unit = unit_of(base.removeprefix("/sys/fs/cgroup"))
    assert unit is not None and base == "/sys/fs/cgroup" + unit[1], base
    assert os.getxattr(base, "trusted.delegate") == b"1", f"{base} is not delegated by systemd"
    assert not os.path.exists(f"/sys/fs/cgroup/{manager.root_name}"), "a tree beside systemd's units"

    from agentcgroup import Session

    with Session("s1", manager=manager, warm=0) as s:
        out = s.run([sys.executable, "-c", HOG], memory="64M", capture_output=True)
        assert out.killed_by == "memory", out
        call = s.start(["sleep", "60"])
        cgls = run(["systemd-cgls", "--no-pager", "--full", base.removeprefix("/sys/fs/cgroup")], check=True).stdout
        call.kill()
        call.wait()
    with capsys.disabled():
        print(f"\nsystemd-cgls of the job's unit while a call runs:\n{cgls}")
    assert unit[0] in cgls and manager.root_name in cgls and "tools" in cgls and "sleep 60" in cgls, cgls


def _scopes() -> list[str]:
    r = run(["systemctl", "list-units", "--all", "--plain", "--no-legend", "agentcg-*.scope"], check=True)
    return [line.split()[0] for line in r.stdout.splitlines() if line.strip()]


def test_agentcg_run_outside_any_delegated_unit_makes_its_own_scope_and_leaves_nothing(capsys):
    # a transient service without delegation, as a cron job or a plain service would run it
    probe = "print(open('/proc/self/cgroup').read().strip(), flush=True); " + HOG
    r = run(
        [
            "systemd-run", "--wait", "--pipe", "--quiet", "--collect",
            f"--setenv=PYTHONPATH={REPO}", "--setenv=PYTHONDONTWRITEBYTECODE=1",
            *agentcg("run", "--json", "--memory", "64M", "--", sys.executable, "-c", probe),
        ],
        stdin=open(os.devnull),  # noqa: SIM115
    )  # fmt: skip
    lines = r.stdout.splitlines()
    assert r.returncode == 137, r.stdout + r.stderr
    assert re.fullmatch(r"0::/agentcg\.slice/agentcg-\d+-[0-9a-f]{4}\.scope/agentcg/[^/]+/tools/[^/]+", lines[0]), lines
    outcome = json.loads(lines[-1])
    assert outcome["killed_by"] == "memory" and "out of memory" in outcome["feedback"], outcome
    with capsys.disabled():
        print(f"\nagentcg run from a service without delegation: the call ran in {lines[0][3:]}")
    wait_for(lambda: not _scopes(), 30, "the run's scope to be gone")
    wait_for(lambda: not child_cgroups("/sys/fs/cgroup/agentcg.slice"), 30, "agentcg.slice to be empty")


def test_the_daemon_as_agentcg_service(capsys):
    if os.path.exists("/etc/systemd/system/agentcg.service") or os.path.exists("/run/systemd/system/agentcg.service"):
        pytest.skip("agentcg.service is installed on this host already; not touching it")
    work = tempfile.mkdtemp(prefix="agentcg-unit-")
    sock = f"{work}/agentcg.sock"
    r = run(agentcg("unit", "install", "--socket", sock, "--unit-dir", "/run/systemd/system", "--now"))
    try:
        assert r.returncode == 0, r.stderr
        wait_for(lambda: os.path.exists(sock), 60, "the daemon's socket")
        unit_cg = "/sys/fs/cgroup" + run(["systemctl", "show", "-P", "ControlGroup", "agentcg.service"]).stdout.strip()
        assert unit_cg.endswith("/system.slice/agentcg.service"), unit_cg
        main_pid = run(["systemctl", "show", "-P", "MainPID", "agentcg.service"]).stdout.strip()
        with open(f"{unit_cg}/supervisor/cgroup.procs") as f:
            assert main_pid in f.read().split(), "the daemon did not move into its unit's supervisor leaf"

        r = run(agentcg("run", "--socket", sock, "--memory", "64M", "--", sys.executable, "-c", HOG))
        assert r.returncode == 137 and "out of memory" in r.stderr, r.stderr
        r = run(agentcg("run", "--socket", sock, "--", "cat", "/proc/self/cgroup"), check=True)
        assert re.fullmatch(r"0::/system\.slice/agentcg\.service/agentcg-daemon/[^/]+/tools/[^/]+", r.stdout.strip())
        cgls = run(["systemd-cgls", "--no-pager", "--full", "-u", "agentcg.service"]).stdout
        with capsys.disabled():
            print(f"\nagentcg.service: a call through the daemon ran in {r.stdout.strip()[3:]}\n{cgls}")
    finally:
        run(["systemctl", "disable", "--now", "agentcg.service"])
        if os.path.exists("/run/systemd/system/agentcg.service"):
            os.unlink("/run/systemd/system/agentcg.service")
        run(["systemctl", "daemon-reload"])
    assert not os.path.exists(unit_cg), child_cgroups(unit_cg)
