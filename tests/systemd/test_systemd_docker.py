"""Docker with the systemd cgroup driver on a systemd + cgroup v2 host: a session is a slice under agentcg.slice,
the container's scope (runc's, with Delegate=yes) holds each ``docker exec`` in its own leaf, and the outcomes,
feedback and clean-up are those of the cgroupfs driver's test (tests/integrations/test_docker_e2e.py).

A dockerd of the test's own (own data root on a tmpfs, own socket, no network set-up), the image from the cache
the host's Docker test builds (debootstrap is far too slow under emulation); skipped, saying why, without them."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from agentcgroup.limits import Limits
from tests.conftest import SLOW, leftovers

from .conftest import child_cgroups, run, wait_for

pytestmark = [pytest.mark.kernel, pytest.mark.systemd]

IMAGE = "agentcg-test/py:1"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "agentcgroup" / "bookworm-minbase-py.tar"


@pytest.fixture(scope="module")
def docker_host():
    for tool in ("dockerd", "containerd", "runc"):
        if shutil.which(tool) is None:
            pytest.skip(f"Docker cannot run here: no {tool} (apt-get install docker.io)")
    if not (CACHE.exists() and CACHE.stat().st_size > 10 << 20):
        pytest.skip(f"no image tarball at {CACHE} (the host suite's Docker test builds it with debootstrap)")
    client = shutil.which("docker", path="/usr/bin") or shutil.which("docker")
    work = Path(tempfile.mkdtemp(prefix="agentcg-docker-"))
    data = work / "data"
    data.mkdir()
    # overlay2 needs a file system it can stack on: the guest's root is itself an overlay
    subprocess.run(["mount", "-t", "tmpfs", "-o", "mode=711", "tmpfs", str(data)], check=True)
    sock = work / "docker.sock"
    host = f"unix://{sock}"
    log = open(work / "dockerd.log", "w")  # noqa: SIM115
    dockerd = subprocess.Popen(
        [
            "dockerd", "--data-root", str(data), "--exec-root", str(work / "exec"),
            "--pidfile", str(work / "dockerd.pid"), "-H", host, "--bridge=none", "--iptables=false",
            "--ip6tables=false", "--exec-opt", "native.cgroupdriver=systemd",
        ],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    env = {**os.environ, "DOCKER_HOST": host}
    try:
        deadline = time.monotonic() + 60 * SLOW
        while subprocess.run([client, "info"], capture_output=True, env=env).returncode != 0:
            if dockerd.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"the Docker engine did not start: {(work / 'dockerd.log').read_text()[-600:]}")
            time.sleep(0.5)
        driver = subprocess.run([client, "info", "-f", "{{.CgroupDriver}}"], capture_output=True, text=True, env=env)
        assert driver.stdout.strip() == "systemd", driver
        with open(CACHE, "rb") as f:
            subprocess.run([client, "import", "-", IMAGE], stdin=f, env=env, check=True, capture_output=True)
        yield client, host
    finally:
        ids = subprocess.run([client, "ps", "-aq"], capture_output=True, text=True, env=env).stdout.split()
        if ids:
            subprocess.run([client, "rm", "-f", *ids], capture_output=True, env=env)
        dockerd.send_signal(signal.SIGTERM)
        try:
            dockerd.wait(60 * SLOW)
        except subprocess.TimeoutExpired:
            dockerd.kill()
            dockerd.wait()
        log.close()
        subprocess.run(["umount", "-R", str(data)], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)


def test_two_containers_as_two_slices_an_oom_kills_the_call_only(docker_host, root_name, capsys) -> None:
    from agentcgroup.integrations.docker import DockerSession

    client, host = docker_host
    a = DockerSession(IMAGE, "box-a", docker=client, host=host, root=root_name, limits=Limits.parse(memory="1G"))
    b = DockerSession(IMAGE, "box-b", docker=client, host=host, root=root_name, priority="high")
    with a, b:
        scope_a = f"/agentcg.slice/agentcg-box\\x2da.slice/docker-{a.container_id}.scope"
        delegate = os.getxattr(f"/sys/fs/cgroup{scope_a}", "trusted.delegate")
        assert delegate == b"1", "runc made the container's scope without Delegate=yes"
        limit = run(["systemctl", "show", "-P", "MemoryMax", "agentcg-box\\x2da.slice"]).stdout.strip()
        assert limit == str(1 << 30), limit
        weight = run(["systemctl", "show", "-P", "CPUWeight", "agentcg-box\\x2db.slice"]).stdout.strip()
        assert weight == "400", weight

        where = a.run(["cat", "/proc/self/cgroup"])
        assert where.exit_code == 0
        # the container sees its scope as / (its own cgroup namespace); the call is in its own leaf beneath it
        assert where.stdout.decode().strip() == f"0::/{root_name}/box-a/tools/{where.call_id}", where.stdout
        with open(f"/proc/{a.init_pid}/cgroup") as f:
            assert f.read().strip() == f"0::{scope_a}/container"

        sleeper = threading.Thread(target=lambda: a.run(["sleep", "30"], timeout=8 * SLOW))
        sleeper.start()

        def cgls_with_the_call() -> str | None:
            out = run(["systemd-cgls", "--no-pager", "--full", "/agentcg.slice"]).stdout
            return out if re.search(r"─\d+ sleep 30$", out, re.MULTILINE) else None  # past its gate: exec'd

        cgls = wait_for(cgls_with_the_call, 30, "the call to show in systemd-cgls")
        sleeper.join()
        with capsys.disabled():
            print(f"\nDocker, systemd driver: systemd-cgls /agentcg.slice while a call runs:\n{cgls}")
        assert f"docker-{a.container_id}.scope" in cgls and "tools" in cgls and "sleep 30" in cgls, cgls

        oom = a.run(["python3", "-c", "b = bytearray(1 << 28)"], memory="64M", timeout=60 * SLOW)
        assert oom.killed_by == "memory", oom.to_dict()
        assert "out of memory" in oom.feedback and "64 MiB" in oom.feedback
        assert os.path.exists(f"/proc/{a.init_pid}")
        env = {**os.environ, "DOCKER_HOST": host}
        state = subprocess.run(
            [client, "inspect", "-f", "{{.State.Running}} {{.State.OOMKilled}}", a.container_id],
            capture_output=True, text=True, env=env,
        )  # fmt: skip
        assert state.stdout.split() == ["true", "false"]
        after = a.run(["python3", "-c", "print(sum(range(10)))"])
        assert after.exit_code == 0 and after.stdout.strip() == b"45"
        other = b.run(["sh", "-c", "echo from-b; exit 3"])
        assert other.exit_code == 3 and other.stdout.strip() == b"from-b" and other.killed_by is None

        slow = a.run(["sh", "-c", "sleep 30 & sleep 30"], timeout=2 * SLOW)
        assert slow.killed_by == "timeout"
        assert os.path.exists(f"/proc/{a.init_pid}")
    assert not child_cgroups("/sys/fs/cgroup/agentcg.slice"), child_cgroups("/sys/fs/cgroup/agentcg.slice")
    units = run(["systemctl", "list-units", "--all", "--plain", "--no-legend", "agentcg-box*"]).stdout
    assert not units.strip(), units
    assert leftovers(root_name) == []
