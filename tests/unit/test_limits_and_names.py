from __future__ import annotations

import errno

import pytest

from agentcgroup.cgroupfs import check_name
from agentcgroup.errors import (
    Busy,
    InvalidName,
    InvalidValue,
    LimitRejected,
    NotFound,
    PermissionDenied,
    from_oserror,
)
from agentcgroup.limits import Limits


@pytest.mark.parametrize("bad", ["..", ".", "a/b", "../x", ".hidden", "", "x\0y", "-rf", "a b", "é", "x" * 129])
def test_bad_names(bad) -> None:
    with pytest.raises(InvalidName) as err:
        check_name(bad, "session")
    assert "session" in str(err.value)


@pytest.mark.parametrize("good", ["s1", "run-42", "toolu_01AbC", "a.b", "c:1", "user@host", "x" * 128])
def test_good_names(good) -> None:
    assert check_name(good) == good


def test_limits_parse_and_render() -> None:
    lim = Limits.parse(memory="1G", memory_high="768M", cpu="50%", pids=64)
    assert lim.memory_max == 1 << 30 and lim.memory_high == 768 << 20 and lim.cpu == 0.5
    assert lim.to_dict() == {"memory_max": "1G", "memory_high": "768M", "cpu": "50%", "pids_max": 64}
    assert Limits().is_empty() and not lim.is_empty()


def test_soft_above_hard_is_refused() -> None:
    with pytest.raises(InvalidValue, match="memory-high"):
        Limits.parse(memory="256M", memory_high="1G")


def test_merged_takes_what_the_other_sets() -> None:
    base = Limits.parse(memory="1G", pids=10)
    assert base.merged(Limits.parse(memory="2G")) == Limits.parse(memory="2G", pids=10)
    assert base.merged(None) is base


def test_direct_construction_is_validated() -> None:
    for kwargs in (
        {"memory_max": -1},
        {"pids_max": 0},
        {"cpu": 0.0},
        {"cpu_weight": 0},
        {"memory_max": True},
    ):
        with pytest.raises(InvalidValue):
            Limits(**kwargs)


def test_oserror_translation_names_path_and_value() -> None:
    e = from_oserror(OSError(errno.EINVAL, "Invalid argument"), "/sys/fs/cgroup/x/memory.max", "write", "12")
    assert isinstance(e, LimitRejected) and "/sys/fs/cgroup/x/memory.max" in str(e) and "'12'" in str(e)
    assert isinstance(from_oserror(OSError(errno.ENOENT, "x"), "/p", "read"), NotFound)
    assert isinstance(from_oserror(OSError(errno.EACCES, "x"), "/p", "mkdir"), PermissionDenied)
    assert isinstance(from_oserror(OSError(errno.EBUSY, "x"), "/p", "rmdir"), Busy)
