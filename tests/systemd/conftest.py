"""Tests on a host whose cgroup tree systemd owns (``scripts/vm-test --init systemd`` boots one): root inside a
delegated unit, ``agentcg run`` making its own scope, ``agentcg.service``, and an unprivileged user with a
lingering user manager. They skip, saying why, anywhere else (this CI machine has no systemd as PID 1)."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import SLOW

REPO = Path(__file__).resolve().parents[2]
#: test users: the prefix issue 17 gives (removed afterwards)
USER = "ag17u1"


def systemd_skip_reason() -> str | None:
    from agentcgroup.detect import detect
    from agentcgroup.systemd import systemd_owns_tree

    if not systemd_owns_tree():
        return "systemd is not PID 1 here (scripts/vm-test --init systemd boots a guest where it is)"
    if os.geteuid() != 0:
        return "these tests need root (they create a user and install a unit)"
    if detect().mode != "v2":
        return f"systemd owns a {detect().mode} tree here; these tests are about cgroup v2"
    return None


@pytest.fixture(autouse=True)
def _systemd_host() -> None:
    reason = systemd_skip_reason()
    if reason:
        pytest.skip(reason)


def run(argv: list[str], *, timeout: float = 120, check: bool = False, **kw) -> subprocess.CompletedProcess:
    r = subprocess.run(argv, capture_output=True, text=True, timeout=timeout * SLOW, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{argv} exited {r.returncode}: {r.stdout}{r.stderr}")
    return r


def agentcg(*args: str) -> list[str]:
    return [sys.executable, "-m", "agentcgroup", *args]


def wait_for(cond, timeout: float, what: str, step: float = 0.1):
    deadline = time.monotonic() + timeout * SLOW
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout * SLOW:g} s")
        time.sleep(step)


def child_cgroups(path: str) -> list[str]:
    """Every cgroup beneath ``path`` (absolute, under /sys/fs/cgroup)."""
    return [d for d, _, _ in os.walk(path)][1:] if os.path.isdir(path) else []


class GuestUser:
    """An unprivileged user with a lingering manager; runs commands as it, as a login would."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.uid = pwd.getpwnam(name).pw_uid
        self.runtime = f"/run/user/{self.uid}"
        self.home = pwd.getpwnam(name).pw_dir
        self.manager_cgroup = f"/sys/fs/cgroup/user.slice/user-{self.uid}.slice/user@{self.uid}.service"

    def env(self, **extra: str) -> list[str]:
        pairs = {
            "XDG_RUNTIME_DIR": self.runtime,
            "HOME": self.home,
            "PATH": f"{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin",
            "PYTHONPATH": str(REPO),
            "PYTHONDONTWRITEBYTECODE": "1",
            "LANG": "C.UTF-8",
            **extra,
        }
        return ["runuser", "-u", self.name, "--", "env", *(f"{k}={v}" for k, v in pairs.items())]

    def run(self, argv: list[str], *, timeout: float = 120, env: dict[str, str] | None = None, **kw):
        return run([*self.env(**(env or {})), *argv], timeout=timeout, cwd="/", **kw)

    def units(self) -> list[str]:
        r = self.run(["systemctl", "--user", "list-units", "--all", "--plain", "--no-legend", "agentcg-*"])
        return [line.split()[0] for line in r.stdout.splitlines() if line.strip()]

    def our_cgroups(self) -> list[str]:
        return child_cgroups(f"{self.manager_cgroup}/agentcg.slice")


def _reachable_by(u: GuestUser) -> None:
    """The interpreter and checkout must be reachable by the test user. In the guest (its root is in RAM) the
    directories on their paths get o+x, as a pyenv under /root lacks it; elsewhere the test skips instead."""
    paths = {os.path.realpath(sys.executable), sys.prefix, str(REPO)}
    if run([*u.env(), sys.executable, "-c", "import agentcgroup"]).returncode == 0:
        return
    if not os.environ.get("AGENTCG_VM"):
        pytest.skip(f"{u.name} cannot run {sys.executable} with this checkout (a directory on the way is private)")
    for p in paths:
        d = os.path.dirname(p) if os.path.isfile(p) else p
        while d != "/":
            mode = os.stat(d).st_mode
            if not mode & 0o001:
                os.chmod(d, mode | 0o001)
            d = os.path.dirname(d)
    run([*u.env(), sys.executable, "-c", "import agentcgroup"], check=True)


@pytest.fixture(scope="session")
def user() -> Iterator[GuestUser]:
    if systemd_skip_reason():
        pytest.skip(systemd_skip_reason())
    try:
        pwd.getpwnam(USER)
        created = False
    except KeyError:
        run(["useradd", "--create-home", "--shell", "/bin/sh", USER], check=True)
        created = True
    u = GuestUser(USER)
    try:
        _reachable_by(u)
        run(["loginctl", "enable-linger", USER], check=True)
        wait_for(lambda: os.path.exists(f"{u.runtime}/systemd/private"), 60, f"the user manager of {USER}")
        yield u
    finally:
        run(["loginctl", "disable-linger", USER])
        run(["systemctl", "stop", f"user@{u.uid}.service"])
        if created:
            run(["userdel", "--remove", "--force", USER])
