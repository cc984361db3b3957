"""_record: what the value classes on the per-call path keep of dataclasses (they were dataclasses)."""

from __future__ import annotations

import copy
import pickle

import pytest

from agentcgroup.backends.base import Cgroup, Features, Stats
from agentcgroup.controller.callspec import CallSpec
from agentcgroup.controller.config import ControllerConfig
from agentcgroup.controller.intent import Intent
from agentcgroup.detect import Hierarchy, HostLayout
from agentcgroup.errors import InvalidValue
from agentcgroup.limits import Limits
from agentcgroup.parsers import Mount


def test_frozen_is_immutable_hashable_and_compared_by_value() -> None:
    a = Intent(memory=5, priority="low")
    b = Intent(5, None, None, "low")
    assert a == b and hash(a) == hash(b) and a != Intent(memory=6, priority="low")
    assert len({a, b, Intent()}) == 2
    with pytest.raises(AttributeError):
        a.memory = 7  # type: ignore[misc]
    with pytest.raises(AttributeError):
        del a.memory  # type: ignore[misc]
    assert a.memory == 5
    assert repr(a) == "Intent(memory=5, cpu=None, duration=None, priority='low')"


def test_replace_checks_again_and_refuses_unknown_fields() -> None:
    cfg = ControllerConfig()
    assert cfg.with_(warm=0).warm == 0 and cfg.warm == 2
    with pytest.raises(InvalidValue):
        cfg.with_(warm=-1)
    with pytest.raises(TypeError, match="nonsense"):
        cfg.replace(nonsense=1)
    spec = CallSpec(("true",), intent=Intent(duration=2.0))
    assert spec.resolved().timeout == 20.0 and spec.timeout is None


def test_defaults_are_fresh_per_object() -> None:
    a, b = Cgroup(("x",)), Cgroup(("x",))
    a.backend_data["k"] = 1
    assert b.backend_data == {} and a != b
    assert HostLayout("v2").v1 is not HostLayout("v2").v1
    assert CallSpec(("true",)).limits == Limits() and CallSpec(("true",)).intent == Intent()


def test_mutable_records_are_unhashable_and_compare_by_value() -> None:
    s = Stats(memory_peak=3)
    assert s == Stats(memory_peak=3) and s != Stats(memory_peak=4)
    with pytest.raises(TypeError):
        hash(s)
    assert s.to_dict()["memory_peak"] == 3 and set(s.to_dict()) == set(Stats.FIELDS)


def test_copy_and_pickle_keep_values() -> None:
    h = Hierarchy(1, ("memory",), "/sys/fs/cgroup/memory", "/sys/fs/cgroup/memory/x", "/sys/fs/cgroup/memory/x")
    m = Mount(1, 0, "/", "/sys/fs/cgroup/memory", "cgroup", "cgroup", ("rw", "memory"))
    lim = Limits(memory_max=1 << 20)
    for obj in (h, m, lim, HostLayout("hybrid", None, {"memory": h})):
        assert pickle.loads(pickle.dumps(obj)) == obj
        assert copy.deepcopy(obj) == obj and copy.copy(obj) == obj
    f = Features(
        "v2", True, True, True, "memory.high", "cgroup.freeze", "cgroup.kill", "memory.peak", "", "", "", 0, True
    )
    assert f.notes == () and f.to_dict()["backend"] == "v2" and len(f.to_dict()) == 14


def test_repr_of_a_cycle_ends() -> None:
    a = Cgroup(("a",))
    st = Stats()
    st.populated = st  # type: ignore[assignment]  # a record holding itself
    assert repr(st).startswith("Stats(") and "..." in repr(st)
    assert repr(a) == "Cgroup('a')"
