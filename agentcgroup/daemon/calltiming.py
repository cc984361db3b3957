"""Per-call timing records, for finding where a slow call's time goes (off unless asked for).

With ``AGENTCG_CALL_TIMING=FILE`` in the daemon's environment, every ``run`` answered writes one JSON line to
FILE: the call's id, its uid and ``time.monotonic()`` stamps of each step on the daemon's side (the clock is
the host's, so a client on the same host can line its own stamps up with them):

``accepted`` the connection accepted; ``read`` its request line handled on the loop; ``job`` a worker took
it; ``spawn``/``spawned`` the command about to start / started (``ctl.submit`` returned); ``reaped`` its
exit seen and reaped on the controller's loop; ``then`` the worker's result back on the daemon's loop (the
``started`` event sent); ``done`` its outcome built (absent when the call was over before ``then``); ``finish``
back on the daemon's loop; ``replied`` the outcome written to the socket.

Nothing is stamped or written without the variable (normal operation pays one attribute test per call).
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any

#: where the records go (None: no records)
PATH = os.environ.get("AGENTCG_CALL_TIMING") or None
ON = PATH is not None

_lock = threading.Lock()
_file: Any = None


def now() -> float:
    return time.monotonic()


def write(record: dict[str, Any]) -> None:
    """Append one record (a line of JSON); a failure to write is dropped, never the call's."""
    global _file
    try:
        with _lock:
            if _file is None:
                _file = open(PATH, "a", buffering=1)  # type: ignore[arg-type]  # noqa: SIM115
            _file.write(json.dumps(record) + "\n")
    except OSError:
        pass
