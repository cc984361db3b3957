"""``agentcg.service``: the daemon as a systemd unit with delegation.

``Delegate=yes`` gives the daemon a subtree of its own: it moves itself into the unit's ``supervisor`` leaf and
builds ``agentcg-daemon/<session>/...`` beside it. ``KillMode=mixed`` lets it end its calls and write their
outcomes on stop before systemd kills what is left; ``OOMPolicy=continue`` keeps a tool call's OOM kill (ours to
report) from stopping the whole service.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from collections.abc import Sequence

from ..daemon.client import DEFAULT_SOCKET

UNIT_NAME = "agentcg.service"
UNIT_DIR = "/etc/systemd/system"

TEMPLATE = """\
[Unit]
Description=agentcgroup daemon: a cgroup for every tool call of AI agents
After=local-fs.target

[Service]
Type=simple
ExecStart={exec_start}
Delegate=yes
KillMode=mixed
OOMPolicy=continue
Restart=on-failure
RuntimeDirectory=agentcg
RuntimeDirectoryPreserve=restart

[Install]
WantedBy=multi-user.target
"""


def render(socket_path: str | None = None, args: Sequence[str] = (), python: str | None = None) -> str:
    """The unit's text; the daemon runs with this interpreter (the one agentcgroup is installed in)."""
    argv = [python or sys.executable, "-m", "agentcgroup", "daemon", "--socket", socket_path or DEFAULT_SOCKET]
    argv += ["--state-dir", "/run/agentcg", *args]
    return TEMPLATE.format(exec_start=" ".join(shlex.quote(a) for a in argv))


def install(text: str, unit_dir: str = UNIT_DIR, *, start: bool = False) -> str:
    """Write the unit, reload systemd, enable it (and start it with ``start``); returns the unit's path."""
    os.makedirs(unit_dir, exist_ok=True)
    path = os.path.join(unit_dir, UNIT_NAME)
    with open(path + ".tmp", "w") as f:
        f.write(text)
    os.replace(path + ".tmp", path)
    subprocess.run(["systemctl", "daemon-reload"], check=True, capture_output=True, text=True)
    enable = ["systemctl", "enable", *(["--now"] if start else []), UNIT_NAME]
    subprocess.run(enable, check=True, capture_output=True, text=True)
    return path
