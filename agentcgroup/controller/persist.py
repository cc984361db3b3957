"""What the daemon writes down so that a successor can adopt its sessions and calls after a crash.

``<state_dir>/sessions/<name>.json``  one per open session (owner, priority, limits, agent protection)
``<state_dir>/calls/<id>.json``       one per running call (session, argv, pid, start time, timeout, ...)
``<state_dir>/outcomes/<id>.json``    the last outcomes, for clients that reconnect
``<state_dir>/alive``                 touched every second while the controller runs (its mtime): a call a
                                      successor finds ended, ended after then (nothing else tells when)

A session file is written whole (temp file + rename), so a crash leaves the old version or the new one. A call
record and an outcome are files of their own that no earlier version exists of: they are written straight into
place, and a crash mid-write leaves a torn file, which every reader skips (as it would find no file). A write
that fails (a full or read-only state dir) leaves nothing behind and raises :class:`StateWriteError`: the
controller then refuses the work it could not write down (a successor could not adopt it).

Per call, no file is created or removed once the outcomes kept are at their count: a finished call's record
is renamed to its outcome file and written over, and the oldest outcome past the count is renamed to the next
call's record and written over. Creating and unlinking two files per call cost the daemon ~20 % of its CPU on
ext4 (inode allocation searching past the recently deleted ones: docs/performance.md). A reader that meets a
file between its rename and its new text (an outcome's text under ``calls/``, a call's under ``outcomes/``)
finds no field it needs there and skips it: an adopting controller treats such a call as unrecorded.
A file is written over without ``O_TRUNC`` and then cut to its new length: on ext4, truncating a file to
nothing makes its close start writeback (``auto_da_alloc``), which cost ~0.1 ms of CPU a write, two a call.
"""

from __future__ import annotations

import collections
import os
import threading
from pathlib import Path
from typing import Any

from ..cgroupfs import check_name
from ..errors import AgentCgroupError
from ..outcome import Outcome, outcome_from_dict

KEEP_OUTCOME_FILES = 1000
#: outcome files written past KEEP_OUTCOME_FILES (none are while calls start: each takes the oldest for its
#: record) before the oldest go, in one pass
PRUNE_BATCH = 100


class StateWriteError(AgentCgroupError):
    """The state dir could not be written (full, read-only): the work it was for is refused."""


class StateDir:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        #: the outcome files, oldest first (listed once, then kept)
        self._outcome_order: collections.OrderedDict[str, None] | None = None
        for sub in ("sessions", "calls", "outcomes"):
            (self.path / sub).mkdir(parents=True, exist_ok=True, mode=0o700)

    def _write(self, kind: str, name: str, data: dict[str, Any]) -> None:
        check_name(name)
        final = self.path / kind / f"{name}.json"
        tmp = final.with_suffix(".tmp")
        import json  # here, not at the top: an embedded agentcg run imports this module but has no state dir

        try:
            text = json.dumps(data, separators=(",", ":"))  # one shot: json.dump would encode in pure Python
            with open(tmp, "w") as f:
                f.write(text)
            os.replace(tmp, final)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StateWriteError(f"cannot write {final}: {exc.strerror or exc} (is the state dir full?)") from None

    def _put(self, kind: str, name: str, data: dict[str, Any], reuse: Path | None) -> None:
        """Write ``data`` as ``<kind>/<name>.json`` in place; ``reuse``, a file nobody needs any more, is renamed to
        it first (no inode allocated, none freed), else the file is created."""
        check_name(name)
        final = self.path / kind / f"{name}.json"
        import json

        text = json.dumps(data, separators=(",", ":")).encode()
        try:
            if reuse is not None:
                try:
                    os.rename(reuse, final)
                except FileNotFoundError:
                    pass
            # no O_TRUNC: ext4 flushes a file truncated to nothing when it is closed (auto_da_alloc), ~0.1 ms of
            # CPU a write; written over, then cut to its length (a crash between leaves a torn file: skipped)
            fd = os.open(final, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o666)
            try:
                view = memoryview(text)
                while view:
                    view = view[os.write(fd, view) :]
                os.ftruncate(fd, len(text))
            finally:
                os.close(fd)
        except OSError as exc:
            final.unlink(missing_ok=True)
            raise StateWriteError(f"cannot write {final}: {exc.strerror or exc} (is the state dir full?)") from None

    def _order(self) -> collections.OrderedDict[str, None]:
        """The outcome files, oldest first (under ``_lock``)."""
        if self._outcome_order is None:
            files = sorted((self.path / "outcomes").glob("*.json"), key=_mtime)
            self._outcome_order = collections.OrderedDict((p.stem, None) for p in files)
        return self._outcome_order

    def _spare(self) -> Path | None:
        """The oldest outcome file past the KEEP_OUTCOME_FILES kept, taken out of them to be written over."""
        with self._lock:
            order = self._order()
            if len(order) <= KEEP_OUTCOME_FILES:
                return None
            name, _ = order.popitem(last=False)
        return self.path / "outcomes" / f"{name}.json"

    def _remove(self, kind: str, name: str) -> None:
        try:
            (self.path / kind / f"{name}.json").unlink()
        except FileNotFoundError:
            pass

    def _load(self, kind: str) -> dict[str, dict[str, Any]]:
        import json

        out = {}
        for p in sorted((self.path / kind).glob("*.json")):
            try:
                out[p.stem] = json.loads(p.read_text())
            except (OSError, ValueError):
                continue  # a torn or foreign file: ignore it
        return out

    # the controller's heartbeat
    def touch_alive(self) -> None:
        """Stamp ``alive`` with the time now (a utime: works in a full state dir)."""
        path = self.path / "alive"
        try:
            os.utime(path)
        except FileNotFoundError:
            try:
                path.touch()
            except OSError:
                pass
        except OSError:
            pass

    def alive_at(self) -> float | None:
        """When the last controller of this state dir was last known to run (wall clock), if ever."""
        try:
            return (self.path / "alive").stat().st_mtime
        except OSError:
            return None

    # sessions
    def save_session(self, name: str, data: dict[str, Any]) -> None:
        self._write("sessions", name, data)

    def drop_session(self, name: str) -> None:
        self._remove("sessions", name)

    def sessions(self) -> dict[str, dict[str, Any]]:
        return self._load("sessions")

    # calls
    def save_call(self, call_id: str, data: dict[str, Any]) -> None:
        self._put("calls", call_id, data, self._spare())

    def drop_call(self, call_id: str) -> None:
        self._remove("calls", call_id)

    def calls(self) -> dict[str, dict[str, Any]]:
        return self._load("calls")

    # outcomes
    def save_outcome(self, owner: int, out: Outcome) -> None:
        """Write ``out`` down, over its call's record if there is one (the record goes: the call ended)."""
        name = out.call_id
        check_name(name)
        record = self.path / "calls" / f"{name}.json"
        try:
            os.rename(record, self.path / "outcomes" / f"{name}.json")
            reuse = None
        except FileNotFoundError:  # not recorded (refused, or written down elsewhere): a spare, or a new file
            reuse = self._spare()
        except OSError:
            record.unlink(missing_ok=True)
            reuse = None
        with self._lock:
            self._order().pop(name, None)  # it is (or will be) the newest
        self._put("outcomes", name, {"owner": owner, "outcome": out.to_dict()}, reuse)
        with self._lock:
            order = self._order()
            order[name] = None
            if len(order) <= KEEP_OUTCOME_FILES + PRUNE_BATCH:
                return
            old = [order.popitem(last=False)[0] for _ in range(len(order) - KEEP_OUTCOME_FILES)]
        for stem in old:
            (self.path / "outcomes" / f"{stem}.json").unlink(missing_ok=True)

    def outcomes(self) -> list[tuple[int, Outcome]]:
        import json

        found = []
        for p in sorted((self.path / "outcomes").glob("*.json"), key=lambda p: p.stat().st_mtime):
            try:
                data = json.loads(p.read_text())
                found.append((int(data["owner"]), outcome_from_dict(data["outcome"])))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return found


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except FileNotFoundError:  # removed meanwhile (another pass): first in line to go anyway
        return 0.0
