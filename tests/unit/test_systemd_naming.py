"""Pure rules of systemd's tree, on paths copied from real hosts (Debian 12's systemd 252 in the guest)."""

from __future__ import annotations

import pytest

from agentcgroup.systemd.naming import escape, our_tree_base, session_slice, slice_path, unit_of


@pytest.mark.parametrize(
    ("path", "want"),
    [
        ("/system.slice/agentcg-vm-job.service", ("agentcg-vm-job.service", "/system.slice/agentcg-vm-job.service")),
        (
            "/system.slice/agentcg-vm-job.service/job",
            ("agentcg-vm-job.service", "/system.slice/agentcg-vm-job.service"),
        ),
        (
            "/user.slice/user-1001.slice/user@1001.service/app.slice/run-r4bdc9b1ec06647949f7ae2ad3b0442f3.scope",
            (
                "run-r4bdc9b1ec06647949f7ae2ad3b0442f3.scope",
                "/user.slice/user-1001.slice/user@1001.service/app.slice/run-r4bdc9b1ec06647949f7ae2ad3b0442f3.scope",
            ),
        ),
        (
            "/user.slice/user-1001.slice/session-3.scope",
            ("session-3.scope", "/user.slice/user-1001.slice/session-3.scope"),
        ),
        (
            "/agentcg.slice/agentcg-77-ab12.scope/supervisor",
            ("agentcg-77-ab12.scope", "/agentcg.slice/agentcg-77-ab12.scope"),
        ),
        ("/", None),
        ("/user.slice", None),
    ],
)
def test_unit_of(path, want):
    assert unit_of(path) == want


def test_our_tree_base():
    assert our_tree_base("/system.slice/agentcg.service/agentcg/s1/agent") == "/system.slice/agentcg.service"
    assert our_tree_base("/agentcg.slice/agentcg-9-aa.scope/agentcg/s1/tools/c7") == "/agentcg.slice/agentcg-9-aa.scope"
    assert our_tree_base("/system.slice/agentcg.service/supervisor") is None
    assert our_tree_base("/system.slice/agentcg.service") is None


def test_escape_as_systemd_escape():
    # `systemd-escape` output for the same strings
    assert escape("s1") == "s1"
    assert escape("my-session") == r"my\x2dsession"
    assert escape("a_b.c:d") == "a_b.c:d"
    assert escape(".x") == r"\x2ex"
    assert escape("a b") == r"a\x20b"


def test_session_slice_lands_beneath_agentcg_slice():
    assert session_slice("s1") == "agentcg-s1.slice"
    assert slice_path(session_slice("s1")) == "/agentcg.slice/agentcg-s1.slice"
    # a dash in the session name must not make a deeper slice
    assert slice_path(session_slice("my-s")) == r"/agentcg.slice/agentcg-my\x2ds.slice"
    assert slice_path("-.slice") == "/"
    with pytest.raises(ValueError, match="not a slice"):
        slice_path("x.scope")
