"""Docker end to end: a dockerd of the test's own (own data root and socket, no network set-up), an image built
locally (debootstrap + docker import, no registry), two containers as two sessions. A tool call's OOM inside one
container kills that call only: the container's main process lives on, and so does the other container.

Skipped, with the reason, where Docker cannot run (not root, no dockerd or debootstrap, the engine does not
start). The root file system is cached in ~/.cache/agentcgroup between runs; without the cache it is built."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
import pytest

from agentcgroup.limits import Limits
from tests.conftest import SLOW, kernel_skip_reason, leftovers

pytestmark = [
    pytest.mark.kernel,
    pytest.mark.host_only(reason="needs a Docker engine and an image built from the network: the guest has neither"),
]

IMAGE = "agentcg-test/py:1"
CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "agentcgroup" / "bookworm-minbase-py.tar"


def _rootfs_tar(work: Path) -> Path:
    """A tarball of a minimal Debian with python3 (cached; built with debootstrap when missing)."""
    if CACHE.exists() and CACHE.stat().st_size > 10 << 20:
        return CACHE
    rootfs = work / "rootfs"
    r = subprocess.run(
        ["debootstrap", "--variant=minbase", "--include=python3", "bookworm", str(rootfs)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    if r.returncode != 0:
        pytest.skip(f"debootstrap failed (no Debian mirror reachable?): {r.stderr.strip()[-300:]}")
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    tmp = CACHE.with_suffix(".tmp")
    subprocess.run(["tar", "-C", str(rootfs), "-cf", str(tmp), "."], check=True)
    os.replace(tmp, CACHE)
    shutil.rmtree(rootfs, ignore_errors=True)
    return CACHE


@pytest.fixture(scope="module")
def docker_host():
    """(docker client path, DOCKER_HOST) of a dockerd started here, with the test image imported."""
    if kernel_skip_reason():
        pytest.skip(kernel_skip_reason())
    for tool in ("dockerd", "debootstrap", "docker"):
        if shutil.which(tool) is None:
            pytest.skip(f"Docker cannot run here: no {tool} (apt-get install docker.io debootstrap)")
    client = shutil.which("docker", path="/usr/bin") or shutil.which("docker")
    work = Path(tempfile.mkdtemp(prefix="agentcg-docker-"))
    sock = work / "docker.sock"
    host = f"unix://{sock}"
    log = open(work / "dockerd.log", "w")  # noqa: SIM115
    dockerd = subprocess.Popen(
        [
            "dockerd",
            "--data-root", str(work / "data"),
            "--exec-root", str(work / "exec"),
            "--pidfile", str(work / "dockerd.pid"),
            "-H", host,
            "--bridge=none",
            "--iptables=false",
            "--exec-opt", "native.cgroupdriver=cgroupfs",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    env = {**os.environ, "DOCKER_HOST": host}
    try:
        deadline = time.monotonic() + 60 * SLOW
        while subprocess.run([client, "info"], capture_output=True, env=env).returncode != 0:
            if dockerd.poll() is not None or time.monotonic() > deadline:
                pytest.skip(f"the Docker engine did not start: {(work / 'dockerd.log').read_text()[-400:]}")
            time.sleep(0.2)
        tar = _rootfs_tar(work)
        with open(tar, "rb") as f:
            subprocess.run([client, "import", "-", IMAGE], stdin=f, env=env, check=True, capture_output=True)
        yield client, host
    finally:
        subprocess.run([client, "rm", "-f", *_containers(client, env)], capture_output=True, env=env)
        helpers = _children_pids(dockerd.pid)
        dockerd.send_signal(signal.SIGTERM)
        try:
            dockerd.wait(60)
        except subprocess.TimeoutExpired:
            dockerd.kill()
            dockerd.wait()
        log.close()
        subprocess.run(["umount", "-R", str(work / "data")], capture_output=True)
        shutil.rmtree(work, ignore_errors=True)
        # a containerd that is slow to stop (a loaded machine) dumps its stacks into /tmp: not ours to leave
        for pid in helpers:
            Path(tempfile.gettempdir(), f"containerd.{pid}.stacks.log").unlink(missing_ok=True)


def _children_pids(pid: int) -> list[int]:
    try:
        return [c.pid for c in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def _containers(client: str, env: dict) -> list[str]:
    r = subprocess.run([client, "ps", "-aq"], capture_output=True, text=True, env=env)
    return r.stdout.split()


def _everywhere(root_name: str) -> list[str]:
    """Our root in any hierarchy, the ones Docker creates containers in but agentcgroup does not use included."""
    found = []
    for base in Path("/sys/fs/cgroup").iterdir():
        for p in [base / root_name, *base.glob(f"*/*/{root_name}")]:
            if p.is_dir():
                found.append(str(p))
    return found


def test_two_containers_an_oom_inside_one_kills_the_call_not_the_container(docker_host, root_name) -> None:
    from agentcgroup.integrations.docker import DockerSession

    client, host = docker_host
    a = DockerSession(IMAGE, "box-a", docker=client, host=host, root=root_name, limits=Limits.parse(memory="1G"))
    b = DockerSession(IMAGE, "box-b", docker=client, host=host, root=root_name, priority="high")
    with a, b:
        # each exec runs in its own leaf beneath its container's cgroup, beneath its session
        where = a.run(["cat", "/proc/self/cgroup"])
        assert where.exit_code == 0
        lines = where.stdout.decode().splitlines()
        mem = next(line for line in lines if ":memory:" in line)
        assert f"/{root_name}/box-a/{a.container_id}/{where.call_id}" in mem, mem

        oom = a.run(["python3", "-c", "b = bytearray(1 << 28)"], memory="64M", timeout=60)
        assert oom.killed_by == "memory", oom.to_dict()
        assert "out of memory" in oom.feedback and "64 MiB" in oom.feedback
        assert oom.memory_peak >= 60 << 20

        # the container's main process survived its call's OOM; the next call runs; the other box is untouched
        assert a.init_pid is not None and os.path.exists(f"/proc/{a.init_pid}")
        state = subprocess.run(
            [client, "inspect", "-f", "{{.State.Running}} {{.State.OOMKilled}}", a.container_id],
            capture_output=True,
            text=True,
            env={**os.environ, "DOCKER_HOST": host},
        )
        assert state.stdout.split() == ["true", "false"]
        after = a.run(["python3", "-c", "print(sum(range(10)))"])
        assert after.exit_code == 0 and after.stdout.strip() == b"45"
        other = b.run(["sh", "-c", "echo from-b; exit 3"])
        assert other.exit_code == 3 and other.stdout.strip() == b"from-b" and other.killed_by is None

        # a timeout takes the exec'd command's whole tree, and only it
        slow = a.run(["sh", "-c", "sleep 30 & sleep 30"], timeout=1)
        assert slow.killed_by == "timeout"
        assert os.path.exists(f"/proc/{a.init_pid}")
    assert _everywhere(root_name) == []
    assert leftovers(root_name) == []


def test_bad_image_name_creates_nothing(root_name) -> None:
    from agentcgroup.errors import InvalidValue
    from agentcgroup.integrations.docker import DockerSession

    with pytest.raises(InvalidValue, match="--rm"):
        DockerSession("--rm", root=root_name)
    assert leftovers(root_name) == []
