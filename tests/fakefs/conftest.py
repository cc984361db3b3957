from __future__ import annotations

from collections.abc import Iterator

import pytest

from agentcgroup import cgroupfs

from .fakecgroup import FakeCgroupFS


def _fake(tmp_path, monkeypatch, mode: str) -> FakeCgroupFS:
    fs = FakeCgroupFS(tmp_path, mode)
    monkeypatch.setattr(cgroupfs, "MKDIR_HOOK", fs.populate)
    monkeypatch.setattr(cgroupfs, "RMDIR_HOOK", fs.unpopulate)
    return fs


@pytest.fixture
def fake_v2(tmp_path, monkeypatch) -> Iterator[FakeCgroupFS]:
    yield _fake(tmp_path, monkeypatch, "v2")


@pytest.fixture
def fake_hybrid(tmp_path, monkeypatch) -> Iterator[FakeCgroupFS]:
    yield _fake(tmp_path, monkeypatch, "hybrid")
