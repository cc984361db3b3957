"""The persisted history: one small SQLite file under the state directory (``<state_dir>/history.sqlite3``).

SQLite because several writers share it (a daemon and the ``agentcg`` commands of a host, each a process of
its own): it serialises them with its own locks (a writer waits up to :data:`BUSY_S` for another), and a crash
mid-write leaves the last committed state. Bounded: past :data:`MAX_ROWS` observations the oldest go. Each row
is one :class:`~.history.Observation` as JSON (``to_dict``), so the format can grow without a migration.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import InvalidValue
from .history import History, Observation

FILE = "history.sqlite3"
MAX_ROWS = 50_000
BUSY_S = 10.0
#: prune once this many rows past the bound (not at every insert)
_SLACK = 1_000

_SCHEMA = """
CREATE TABLE IF NOT EXISTS observations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    session TEXT NOT NULL,
    start REAL NOT NULL,
    doc TEXT NOT NULL
)
"""


class HistoryStore:
    """``add`` observations, ``load`` them back (oldest first), ``history()`` as an in-memory :class:`History`.

    ``path`` is the file, or a state directory (then ``<dir>/history.sqlite3``). Created mode 0600."""

    def __init__(self, path: str | os.PathLike[str], max_rows: int = MAX_ROWS) -> None:
        p = Path(path)
        if p.is_dir():
            p = p / FILE
        if max_rows < 1:
            raise InvalidValue("history size", max_rows, "must be at least 1")
        self.path = p
        self.max_rows = max_rows
        if not p.exists():
            fd = os.open(p, os.O_CREAT | os.O_WRONLY, 0o600)
            os.close(fd)
        self._db = sqlite3.connect(str(p), timeout=BUSY_S, isolation_level=None, check_same_thread=False)
        try:
            self._db.execute("PRAGMA journal_mode=WAL")  # readers never wait for a writer
        except sqlite3.DatabaseError:
            pass  # a file system without shared memory: the default journal still serialises writers
        self._db.execute(_SCHEMA)

    def add(self, observations: Observation | Iterable[Observation]) -> int:
        """Append observations in one transaction; returns how many. Prunes the oldest past the bound."""
        batch = [observations] if isinstance(observations, Observation) else list(observations)
        if not batch:
            return 0
        rows = [(o.session, o.start, json.dumps(o.to_dict(), separators=(",", ":"))) for o in batch]
        with self._transaction():
            cur = self._db.executemany("INSERT INTO observations (session, start, doc) VALUES (?, ?, ?)", rows)
            last = self._db.execute("SELECT max(id) FROM observations").fetchone()[0] or 0
            first = self._db.execute("SELECT min(id) FROM observations").fetchone()[0] or 0
            if last - first + 1 > self.max_rows + _SLACK or len(rows) > _SLACK:
                self._db.execute("DELETE FROM observations WHERE id <= ?", (last - self.max_rows,))
        return cur.rowcount if cur.rowcount >= 0 else len(rows)

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._db.execute("BEGIN IMMEDIATE")  # take the write lock now: no upgrade deadlock with another writer
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def load(self) -> list[Observation]:
        """Every stored observation, oldest first (a row that does not parse is skipped)."""
        out = []
        for (doc,) in self._db.execute("SELECT doc FROM observations ORDER BY id"):
            try:
                out.append(Observation.from_dict(json.loads(doc)))
            except (ValueError, KeyError, TypeError):
                continue
        return out

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM observations").fetchone()[0])

    def history(self) -> History:
        return History(self.load())

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def is_store(path: str | os.PathLike[str]) -> bool:
    """A history store file, or a directory holding one."""
    p = Path(path)
    if p.is_dir():
        p = p / FILE
    try:
        with open(p, "rb") as f:
            return f.read(16) == b"SQLite format 3\x00"
    except OSError:
        return False
