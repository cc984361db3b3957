"""Last of the systemd tests (files run in name order): after everything above, systemd's journal has no
warning about cgroups of ours, and its tree holds nothing of ours."""

from __future__ import annotations

import json
import os
import re

import pytest

from .conftest import run

pytestmark = [pytest.mark.kernel, pytest.mark.systemd]

#: what systemd says when someone else's processes or cgroups are where it did not delegate
SUSPECT = re.compile(r"cgroup|agentcg|delegat|foreign|supervisor", re.IGNORECASE)


def test_no_systemd_warning_about_our_cgroups(capsys):
    r = run(["journalctl", "-b", "-p", "warning", "-o", "json", "--no-pager"], check=True)
    entries = [json.loads(line) for line in r.stdout.splitlines() if line.strip()]
    from_systemd = [e for e in entries if e.get("SYSLOG_IDENTIFIER") in ("systemd", "systemd-logind")]
    text = "\n".join(f"{e.get('SYSLOG_IDENTIFIER')}[{e.get('_PID')}]: {e.get('MESSAGE')}" for e in from_systemd)
    with capsys.disabled():
        print(f"\njournalctl -b -p warning, systemd's own lines ({len(from_systemd)}):\n{text or '(none)'}")
    suspect = [line for line in text.splitlines() if SUSPECT.search(line)]
    assert not suspect, suspect


def test_nothing_of_ours_is_left_in_systemds_tree(capsys):
    cgls = run(["systemd-cgls", "--no-pager", "--full"], check=True).stdout
    with capsys.disabled():
        print(f"\nsystemd-cgls at the end:\n{cgls}")
    # agentcg.slice itself stays loaded, empty (as user.slice does); nothing else of ours may be left anywhere
    ours = [
        d
        for d, _, _ in os.walk("/sys/fs/cgroup")
        if re.search(r"/agentcg[^/]*$", d) and "agentcg-vm-job" not in d and not d.endswith("/agentcg.slice")
    ]
    assert not ours, ours
    for d, _, _ in os.walk("/sys/fs/cgroup"):
        if d.endswith("/agentcg.slice"):
            assert not [c for c, _, _ in os.walk(d)][1:], f"{d} is not empty"
