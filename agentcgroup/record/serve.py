"""A private daemon socket for a recorded agent: its tool calls come to the recording process's controller.

Why: a command the agent starts runs in the session's agent leaf; an embedded controller started there (``agentcg
run`` without a daemon) roots its cgroups beneath its own memory cgroup on v1/hybrid hosts, i.e. inside the agent
leaf, not in the session being recorded. Through this socket the recording process starts the calls itself.
The socket lives in a fresh 0700 directory, removed on exit.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator

from ..controller.core import Controller
from ..daemon.server import Daemon


@contextlib.contextmanager
def private_socket(controller: Controller) -> Iterator[str]:
    """Serve ``controller`` on a new socket for as long as the block runs; yields its path."""
    directory = tempfile.mkdtemp(prefix="agentcg-record-")
    path = os.path.join(directory, "agentcg.sock")
    server = Daemon(path, controller)
    thread = threading.Thread(target=server.serve_forever, name="agentcg-record-socket", daemon=True)
    thread.start()
    try:
        yield path
    finally:
        server.stop()
        thread.join(5)
        server.close()
        shutil.rmtree(directory, ignore_errors=True)
