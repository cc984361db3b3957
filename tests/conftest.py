"""Shared fixtures. Kernel tests use a root cgroup of their own (``agentcg-test-<pid>-<n>``) and check, after
every test, that nothing of it is left in any hierarchy."""

from __future__ import annotations

import itertools
import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
CHECKOUT = Path(__file__).resolve().parents[1]
#: how much slower processes start and run here: inside the scripts/vm-test guest (software emulation)
#: Python is 15-20x slower, so timing-dependent tests scale their deadlines by this
SLOW = 10.0 if os.environ.get("AGENTCG_VM") else 1.0
_seq = itertools.count()


#: a tag of this run in every root it makes (``.ci/run`` sets it, then looks for leftovers of its own only:
#: other suites may run on the same machine at the same time)
RUN_TAG = os.environ.get("AGENTCG_TEST_RUN", "")


def test_root_name() -> str:
    tag = f"{RUN_TAG}-" if RUN_TAG else ""
    return f"agentcg-test-{tag}{os.getpid()}-{next(_seq)}-{uuid.uuid4().hex[:4]}"


test_root_name.__test__ = False  # type: ignore[attr-defined]  # pytest reads this mark on a function


def shared_traces() -> Path | None:
    """The shared traces (``../shared/traces`` beside the checkout; for a git worktree kept in a ``wt/`` folder,
    beside the folder holding it too), or ``$AGENTCG_TRACES``; None when absent."""
    given = os.environ.get("AGENTCG_TRACES")
    if given:
        return Path(given)
    candidates = [CHECKOUT.parent / "shared" / "traces"]
    if CHECKOUT.parent.name == "wt":
        candidates.append(CHECKOUT.parent.parent / "shared" / "traces")
    return next((c for c in candidates if c.is_dir()), None)


def haiku_traces() -> Path | None:
    """The paper's Haiku set: ``<traces>/agentcgroup/haiku`` (or ``$AGENTCG_TRACES`` being it, or holding it)."""
    root = shared_traces()
    if root is None:
        return None
    for cand in (root / "agentcgroup" / "haiku", root / "haiku", root):
        if cand.is_dir() and cand.name == "haiku":
            return cand
    return None


def wait_for(cond: Callable[[], object], what: str = "a condition", limit: float = 30.0) -> None:
    """Wait until ``cond()`` is true (a condition, never a fixed sleep): ``limit`` s, scaled in the guest."""
    deadline = time.monotonic() + limit * SLOW
    while not cond():
        assert time.monotonic() < deadline, f"timed out after {limit * SLOW:g} s waiting for {what}"
        time.sleep(0.01)


def leftovers(root_name: str) -> list[str]:
    """Every directory named ``root_name`` under any cgroup mount (should be none after a test)."""
    from agentcgroup.detect import detect

    layout = detect()
    bases = set()
    if layout.unified is not None:
        bases.add(layout.unified.base)
    bases.update(h.base for h in layout.v1.values())
    bases.update(systemd_bases(layout))
    return [f"{b}/{root_name}" for b in sorted(bases) if os.path.exists(f"{b}/{root_name}")]


def systemd_bases(layout) -> list[str]:
    """Where systemd hosts put our roots: the delegated unit this process is in (agentcgroup.systemd)."""
    from agentcgroup.systemd import delegated_base

    try:
        placement = delegated_base(layout, create=False)
    except Exception:
        return []
    return [placement.base] if placement else []


def remove_leftovers(paths: list[str]) -> None:
    """After a test that left cgroups (it fails for it): kill what is in them (the test's own processes) and
    remove them bottom-up, so that one failing test does not leave the machine dirty."""
    import signal
    import time

    for top in paths:
        for _ in range(50):
            dirs = [d for d, _, _ in os.walk(top, topdown=False)]
            for d in dirs:
                try:
                    with open(f"{d}/cgroup.procs") as f:
                        for pid in f.read().split():
                            try:
                                os.kill(int(pid), signal.SIGKILL)
                            except ProcessLookupError:
                                pass
                except OSError:
                    pass
                try:
                    os.rmdir(d)
                except OSError:
                    pass
            if not os.path.exists(top):
                break
            time.sleep(0.05)


def kernel_skip_reason() -> str | None:
    """Why real-kernel tests cannot run here, or None."""
    from agentcgroup.detect import detect

    if os.geteuid() != 0 and not os.environ.get("AGENTCG_TEST_UNPRIVILEGED"):
        return "real-kernel tests need root (or a delegated cgroup: set AGENTCG_TEST_UNPRIVILEGED=1)"
    layout = detect()
    if layout.mode == "none":
        return f"no usable cgroups on this host: {layout.reason}"
    return None


@pytest.fixture
def root_name() -> Iterator[str]:
    name = test_root_name()
    yield name
    remove_leftovers(leftovers(name))  # the test (or the manager fixture) failed for them already


@pytest.fixture
def manager(root_name: str) -> Iterator:
    """A real Manager for this host, under a fresh root; asserts the tree is gone afterwards."""
    reason = kernel_skip_reason()
    if reason:
        pytest.skip(reason)
    from agentcgroup import get_manager

    m = get_manager(root_name, backend=os.environ.get("AGENTCG_TEST_BACKEND"))
    if m.kind == "none":
        m.close()
        pytest.skip(f"cgroups are not writable here: {m.layout.reason}")
    try:
        yield m
    finally:
        m.close()
        left = leftovers(root_name)
        assert not left, f"cgroups left behind: {left}"


@pytest.fixture
def session(manager) -> Iterator:
    from agentcgroup import Session

    s = Session("t", manager=manager)
    with s:
        yield s
