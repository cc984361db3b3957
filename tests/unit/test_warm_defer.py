"""A finished call's leaf goes to the warm pool's thread while that thread makes a spare (warm.defer_reap):
the rmdir would wait for the kernel's cgroup lock, which a stub's move into its leaf holds through an RCU grace
period after a quiet spell. Bounded per pool; never to a closed pool; not at all while no spare is being made."""

from __future__ import annotations

import collections
import threading

import pytest

from agentcgroup import warm


def _pool() -> warm.WarmPool:
    """A pool without the refiller thread (nothing is made): only its queue of leaves to remove."""
    p = warm.WarmPool.__new__(warm.WarmPool)
    p._ready, p._reap, p._cv, p._closed = collections.deque(), collections.deque(), threading.Condition(), False
    return p


@pytest.fixture
def making(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(warm._REFILLER, "making", True)
    monkeypatch.setattr(warm._REFILLER, "wake", lambda: None)


def test_no_spare_being_made_the_caller_removes_the_leaf(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(warm._REFILLER, "making", False)
    p = _pool()
    assert p.defer_reap("leaf") is False  # type: ignore[arg-type]
    assert not p._reap


def test_while_a_spare_is_made_the_leaf_goes_to_the_refiller(making: None) -> None:
    p = _pool()
    assert p.defer_reap("leaf") is True  # type: ignore[arg-type]
    assert list(p._reap) == ["leaf"]


def test_at_most_max_deferred_leaves_wait(making: None) -> None:
    p = _pool()
    taken = [p.defer_reap(f"leaf{i}") for i in range(warm.MAX_DEFERRED + 3)]  # type: ignore[arg-type]
    assert taken == [True] * warm.MAX_DEFERRED + [False] * 3
    assert len(p._reap) == warm.MAX_DEFERRED


def test_a_closed_pool_takes_none(making: None) -> None:
    p = _pool()
    p._closed = True
    assert p.defer_reap("leaf") is False  # type: ignore[arg-type]
    assert not p._reap


def test_warm_quiet_outside_0_to_60_seconds_is_refused_by_name() -> None:
    from agentcgroup.controller.config import ControllerConfig
    from agentcgroup.errors import InvalidValue

    for bad in (-0.1, 61):
        with pytest.raises(InvalidValue, match="warm_quiet"):
            ControllerConfig(warm_quiet=bad)
    assert ControllerConfig().warm_quiet == warm.QUIET_S  # the config's default is the pool's
