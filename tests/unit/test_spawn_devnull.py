"""DEVNULL for a child's stdio: one ``/dev/null`` fd kept by the spawner, not one opened and closed per stream
per call; the child sees ``/dev/null`` on each, and the spawner's fd count does not grow with calls."""

from __future__ import annotations

import os
import sys

from agentcgroup import spawn as spawn_mod
from agentcgroup.spawn import DEVNULL, PIPE, spawn

PY = sys.executable
SHOW = "import os; print(*(os.readlink(f'/proc/self/fd/{n}') for n in (0, 1, 2)))"


def fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_every_stream_of_every_child_is_dev_null_and_no_fd_is_left_per_call(monkeypatch) -> None:
    opened: list[str] = []
    real_open = os.open
    monkeypatch.setattr(spawn_mod.os, "open", lambda path, *a, **k: (opened.append(path), real_open(path, *a, **k))[1])
    p = spawn([PY, "-c", "import sys; sys.exit(0)"], stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL)
    assert p.wait(30) == 0
    p.close()
    before = fd_count()
    for _ in range(20):
        p = spawn(["/bin/true"], stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL)
        assert p.wait(30) == 0
        p.close()
    assert fd_count() == before
    assert opened.count(os.devnull) <= 1  # at most once, for the first child of this process: never per call
    shared = spawn_mod._devnull()
    assert shared >= 3 and os.readlink(f"/proc/self/fd/{shared}") == "/dev/null"
    p = spawn([PY, "-c", SHOW], stdin=DEVNULL, stdout=PIPE, stderr=DEVNULL)
    assert p.stdout is not None
    out = p.stdout.read()
    assert p.wait(30) == 0
    p.close()
    fds = out.split()
    assert fds[0] == fds[2] == b"/dev/null" and fds[1].startswith(b"pipe:")


def test_the_shared_fd_is_never_one_of_0_1_2(monkeypatch) -> None:
    """A process started with stdin closed gets fd 0 from open(): the kept /dev/null is moved above 2, or a
    child's dup2 of its stdio in order would clobber it for a later stream."""
    monkeypatch.setattr(spawn_mod, "_DEVNULL_FD", -1)
    saved = os.dup(0)
    try:
        os.close(0)
        fd = spawn_mod._devnull()
    finally:
        os.dup2(saved, 0)
        os.close(saved)
    try:
        assert fd >= 3
        assert os.readlink(f"/proc/self/fd/{fd}") == "/dev/null"
        p = spawn([PY, "-c", SHOW], stdin=PIPE, stdout=PIPE, stderr=DEVNULL)
        assert p.stdin is not None and p.stdout is not None
        p.stdin.close()
        fds = p.stdout.read().split()
        assert p.wait(30) == 0
        p.close()
        assert fds[0].startswith(b"pipe:") and fds[1].startswith(b"pipe:") and fds[2] == b"/dev/null"
    finally:
        os.close(fd)


def test_a_forked_child_that_closed_its_fds_opens_its_own() -> None:
    """The supervisor forks and closes every inherited fd: were it ever to spawn, its DEVNULL must not be the
    parent's number (closed there, or by then another file)."""
    parent_fd = spawn_mod._devnull()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        code = 1
        try:
            os.close(r)
            os.close(parent_fd)
            p = spawn(["/bin/true"], stdin=DEVNULL, stdout=DEVNULL, stderr=DEVNULL)
            code = 0 if p.wait(30) == 0 else 2
            if os.readlink(f"/proc/self/fd/{spawn_mod._DEVNULL_FD}") != "/dev/null":
                code = 3
        finally:
            os.write(w, bytes([code]))
            os._exit(0)
    os.close(w)
    try:
        got = os.read(r, 1)
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    assert got == b"\x00"
    assert spawn_mod._devnull() == parent_fd  # the parent's is untouched
