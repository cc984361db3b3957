"""The event log: every step the controller takes (:mod:`agentcgroup.controller.events`), kept and written down.

The last :data:`KEEP` events stay in memory (``agentcg events`` and ``agentcg top`` read them); with a file
they are also written as JSON lines, one per event, flushed at once, the file rotated by size
(``FILE.1`` ... ``FILE.<backups>``, as logrotate would name them). Followers (``agentcg events --follow``) are
handed each event as it is recorded, on the thread that emits it.
"""

from __future__ import annotations

import collections
import json
import logging
import logging.handlers
import os
import threading
from collections.abc import Callable

from ..controller.events import Event, EventBus

#: events kept in memory
KEEP = 2000
#: a file rotates past this size, by default
MAX_BYTES = 64 << 20
BACKUPS = 3


class EventLog:
    def __init__(
        self, bus: EventBus, path: str | None = None, *, max_bytes: int = MAX_BYTES, backups: int = BACKUPS
    ) -> None:
        self.bus = bus
        self.path = path
        self.recent: collections.deque[Event] = collections.deque(maxlen=KEEP)
        self._lock = threading.Lock()
        self._followers: tuple[Callable[[Event], None], ...] = ()
        self._handler: logging.handlers.RotatingFileHandler | None = None
        if path is not None:
            directory = os.path.dirname(os.path.abspath(path))
            os.makedirs(directory, exist_ok=True)
            self._handler = _PrivateRotatingFile(path, maxBytes=max_bytes, backupCount=backups, encoding="utf-8")
            self._handler.setFormatter(logging.Formatter("%(message)s"))
        bus.subscribe(self.record)

    def record(self, ev: Event) -> None:
        with self._lock:
            self.recent.append(ev)
            if self._handler is not None:
                line = json.dumps(ev.to_dict(), default=str)
                self._handler.emit(logging.makeLogRecord({"msg": line, "args": None}))
        for fn in self._followers:
            fn(ev)

    def snapshot(self) -> list[Event]:
        with self._lock:
            return list(self.recent)

    def follow(self, fn: Callable[[Event], None]) -> None:
        with self._lock:
            self._followers = (*self._followers, fn)

    def unfollow(self, fn: Callable[[Event], None]) -> None:
        with self._lock:
            self._followers = tuple(f for f in self._followers if f is not fn)

    def close(self) -> None:
        self.bus.unsubscribe(self.record)
        with self._lock:
            if self._handler is not None:
                self._handler.close()
                self._handler = None


class _PrivateRotatingFile(logging.handlers.RotatingFileHandler):
    """Every tenant's steps are in the file: it is root's (0600) to read, each one rotation makes too; a
    tenant asks the daemon for its own (``agentcg events``)."""

    def _open(self):  # type: ignore[no-untyped-def]
        fd = os.open(self.baseFilename, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        os.fchmod(fd, 0o600)
        return open(fd, self.mode, encoding=self.encoding, errors=self.errors)
