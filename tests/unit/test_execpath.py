"""execpath finds a command on PATH exactly as shutil.which does (it does not import shutil)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from agentcgroup.execpath import _which, resolve


def test_which_agrees_with_shutil(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, c = (tmp_path / n for n in "abc")
    for d in (a, b, c):
        d.mkdir()
    (a / "tool").write_text("not executable")
    (b / "tool").mkdir()  # a directory of that name
    (c / "tool").write_text("#!/bin/sh\n")
    (c / "tool").chmod(0o755)
    (a / "other").write_text("#!/bin/sh\n")
    (a / "other").chmod(0o755)
    (tmp_path / "local").write_text("#!/bin/sh\n")
    (tmp_path / "local").chmod(0o755)
    monkeypatch.chdir(tmp_path)
    for search in (
        os.pathsep.join(map(str, (a, b, c))),
        os.pathsep.join(map(str, (c, a, c))),
        os.pathsep.join(["", str(a), str(b)]),
        os.pathsep.join(["c", str(b)]),  # relative entries, as shutil takes them
        str(b),
        "",
    ):
        for name in ("tool", "other", "missing", "local"):
            assert _which(name, search) == shutil.which(name, path=search), (name, search)


def test_resolve_says_what_is_missing() -> None:
    with pytest.raises(FileNotFoundError, match="command not found: no-such-cmd-i14"):
        resolve(["no-such-cmd-i14"], env={"PATH": "/bin:/usr/bin"})
    assert resolve(["sh"], env={"PATH": "/nonexistent:/bin"}) == "/bin/sh"
