"""What the daemon writes down so that a successor can adopt its sessions and calls after a crash.

``<state_dir>/sessions/<name>.json``  one per open session (owner, priority, limits, agent protection)
``<state_dir>/calls/<id>.json``       one per running call (session, argv, pid, start time, timeout, ...)
``<state_dir>/outcomes/log.jsonl``    the last outcomes, for clients that reconnect: one JSON line each
                                      (``outcomes/log.1.jsonl``: the lines before, once the log filled up)
``<state_dir>/alive``                 touched every second while the controller runs (its mtime): a call a
                                      successor finds ended, ended after then (nothing else tells when)

A session file is written whole (temp file + rename), so a crash leaves the old version or the new one. A call
record is a file of its own that no earlier version exists of: it is written straight into place, and a crash
mid-write leaves a torn file, which every reader skips (as it would find no file). An outcome is one line
appended to the log with one ``write``; a crash mid-line leaves a torn line, skipped (the next writer starts
on a new line). A write that fails (a full or read-only state dir) leaves nothing behind and raises
:class:`StateWriteError`: the controller then refuses the work it could not write down (a successor could not
adopt it).

Per call, no file is created or removed once a call has ended: its record is renamed to a spare
(``calls/<x>.spare``, which no reader takes for a record) and the next call's record is that file written over
(a closed session's file, too, becomes a spare, and the next session file is a spare written over);
the outcome is a line of the log, which is renamed to ``log.1.jsonl`` once it holds
:data:`KEEP_OUTCOME_FILES` lines (the outcomes kept on disk: between that many and twice as many). Creating
a file a call (a record, then an outcome file each) cost the daemon ~0.4 ms of CPU a call on ext4, where
allocating an inode searches past every inode freed in the last minutes (docs/performance.md).
A file is written over without ``O_TRUNC`` and then cut to its new length: on ext4, truncating a file to
nothing makes its close start writeback (``auto_da_alloc``), which cost ~0.1 ms of CPU a write.
Outcome files of earlier versions (``outcomes/<id>.json``) are still read.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from ..cgroupfs import check_name
from ..errors import AgentCgroupError
from ..outcome import Outcome, outcome_from_dict

#: outcomes a log holds before it becomes ``log.1.jsonl`` (the one before it goes)
KEEP_OUTCOME_FILES = 1000
LOG, OLD_LOG = "log.jsonl", "log.1.jsonl"
#: finished records kept as spares for the next calls' records (past them, a record is removed)
MAX_SPARES = 64


class StateWriteError(AgentCgroupError):
    """The state dir could not be written (full, read-only): the work it was for is refused."""


def _hold(path: Path) -> int:
    """An fd on the state dir (made if missing) holding an exclusive ``flock`` on it; an error naming it when
    another process holds it."""
    import fcntl

    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise AgentCgroupError(f"cannot use the state dir {path}: {exc.strerror or exc}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise AgentCgroupError(
            f"another agentcg daemon uses the state dir {path}: stop it, or give this one a state dir of its own "
            "(--state-dir DIR)"
        ) from None
    return fd


class StateDir:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        # one controller a state dir, before anything in it is read or written: a second daemon given a live
        # one's state dir (on another root) took its sessions and calls for ended and wiped their records, so a
        # crash of the first one would have left its calls to nobody
        self._held = _hold(self.path)
        self._lines: int | None = None  # lines in the outcome log (counted once, then kept)
        for sub in ("sessions", "calls", "outcomes"):
            (self.path / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        #: ended calls' record files, to be written over by the next calls' records
        self._free = list((self.path / "calls").glob("*.spare"))
        while len(self._free) > MAX_SPARES:
            self._free.pop().unlink(missing_ok=True)

    def close(self) -> None:
        """Let another controller use this state dir (a successor; the kernel does it if this process dies)."""
        if self._held >= 0:
            os.close(self._held)
            self._held = -1

    def _write(self, kind: str, name: str, data: dict[str, Any]) -> None:
        """Write ``data`` whole: a temp file (a spare written over, if there is one), then renamed into place."""
        check_name(name)
        final = self.path / kind / f"{name}.json"
        tmp = final.with_suffix(".tmp")
        import json  # here, not at the top: an embedded agentcg run imports this module but has no state dir

        text = json.dumps(data, separators=(",", ":")).encode()  # one shot: json.dump encodes in pure Python
        self._write_at(tmp, text, self._spare(), final)
        try:
            os.replace(tmp, final)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StateWriteError(f"cannot write {final}: {exc.strerror or exc} (is the state dir full?)") from None

    @staticmethod
    def _write_over(path: Path, text: bytes) -> None:
        # no O_TRUNC: ext4 flushes a file truncated to nothing when it is closed (auto_da_alloc), ~0.1 ms of
        # CPU a write; written over, then cut to its length (a crash between leaves a torn file: skipped)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o666)
        try:
            view = memoryview(text)
            while view:
                view = view[os.write(fd, view) :]
            os.ftruncate(fd, len(text))
        finally:
            os.close(fd)

    def _put(self, kind: str, name: str, data: dict[str, Any], reuse: Path | None) -> None:
        """Write ``data`` as ``<kind>/<name>.json`` in place; ``reuse``, a file nobody needs any more, is renamed to
        it first (no inode allocated, none freed), else the file is created."""
        check_name(name)
        final = self.path / kind / f"{name}.json"
        import json

        self._write_at(final, json.dumps(data, separators=(",", ":")).encode(), reuse, final)

    def _write_at(self, path: Path, text: bytes, reuse: Path | None, final: Path) -> None:
        """``text`` as ``path``'s whole content, ``reuse`` (a file nobody needs) renamed to it first if given;
        on failure ``path`` is removed and the error names ``final``, the file being written."""
        try:
            if reuse is not None:
                try:
                    os.rename(reuse, path)
                except FileNotFoundError:
                    pass
            self._write_over(path, text)
        except OSError as exc:
            path.unlink(missing_ok=True)
            raise StateWriteError(f"cannot write {final}: {exc.strerror or exc} (is the state dir full?)") from None

    def _spare(self) -> Path | None:
        """An ended call's record file, to be written over (None: there is none)."""
        with self._lock:
            return self._free.pop() if self._free else None

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
        """The session's file goes (kept as a spare for the next file written: a session opened for one call,
        as ``agentcg run`` through the daemon does, creates and frees no inode)."""
        self._retire(self.path / "sessions" / f"{name}.json")

    def _retire(self, path: Path) -> None:
        """Rename ``path`` (a file nobody reads any more) to a spare; past MAX_SPARES, remove it."""
        spare = self.path / "calls" / f"{os.urandom(6).hex()}.spare"
        with self._lock:
            keep = len(self._free) < MAX_SPARES
            try:
                if keep:
                    os.rename(path, spare)
                    self._free.append(spare)
                else:
                    path.unlink()
            except FileNotFoundError:
                pass

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
        """Write ``out`` down (a line of the log); its call's record, if there is one, goes (kept as a spare)."""
        name = out.call_id
        check_name(name)
        record = self.path / "calls" / f"{name}.json"
        import json

        line = json.dumps({"owner": owner, "ended": time.time(), "outcome": out.to_dict()}, separators=(",", ":"))
        with self._lock:
            spare = self.path / "calls" / f"{os.urandom(6).hex()}.spare"
            try:
                os.rename(record, spare)
                if len(self._free) < MAX_SPARES:
                    self._free.append(spare)
                else:
                    spare.unlink()
            except FileNotFoundError:  # not recorded (refused, or written down elsewhere)
                pass
            except OSError:
                record.unlink(missing_ok=True)
            self._append((line + "\n").encode())

    def _append(self, data: bytes) -> None:
        """One line at the end of the log, in one write (under ``_lock``); the log becomes the old one when full."""
        log = self.path / "outcomes" / LOG
        try:
            if self._lines is None:
                self._lines = _count_lines(log)
            elif self._lines >= KEEP_OUTCOME_FILES:
                os.replace(log, self.path / "outcomes" / OLD_LOG)
                self._lines = 0
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW, 0o666)
            try:
                if self._lines < 0:  # a torn last line (a crash mid-write): this one starts afresh
                    data = b"\n" + data
                    self._lines = -self._lines
                n = os.write(fd, data)
                if n < len(data):  # a short write of a regular file: the disk is full
                    os.ftruncate(fd, os.fstat(fd).st_size - n)
                    raise OSError(28, "No space left on device")
            finally:
                os.close(fd)
            self._lines += 1
        except OSError as exc:
            raise StateWriteError(f"cannot write {log}: {exc.strerror or exc} (is the state dir full?)") from None

    def outcomes(self) -> list[tuple[int, Outcome]]:
        """The outcomes written down, oldest first (the last of each call's)."""
        found: dict[str, tuple[int, Outcome]] = {}
        for rec, _ended in outcome_records(self.path):
            try:
                out = outcome_from_dict(rec["outcome"])
                found.pop(out.call_id, None)
                found[out.call_id] = (int(rec["owner"]), out)
            except (ValueError, KeyError, TypeError):
                continue
        return list(found.values())


def _count_lines(log: Path) -> int:
    """Lines in ``log`` (0 if there is none); negative: the last one is torn (no newline)."""
    try:
        data = log.read_bytes()
    except FileNotFoundError:
        return 0
    n = data.count(b"\n")
    return -(n + 1) if data and not data.endswith(b"\n") else n


def outcome_records(state_dir: str | os.PathLike[str]) -> list[tuple[dict[str, Any], float]]:
    """The outcome records of a state dir, oldest first, with when each was written down (wall clock): files of
    earlier versions (their mtime), then the old log, then the log. Torn lines and files are skipped."""
    import json

    base = Path(state_dir, "outcomes")
    found: list[tuple[dict[str, Any], float]] = []
    for p in sorted(base.glob("*.json"), key=_mtime):
        try:
            rec = json.loads(p.read_text())
            if isinstance(rec, dict):
                found.append((rec, p.stat().st_mtime))
        except (OSError, ValueError):
            continue
    for name in (OLD_LOG, LOG):
        try:
            with open(base / name, "rb") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        for raw in lines:
            try:
                rec = json.loads(raw)
            except ValueError:
                continue
            if isinstance(rec, dict) and isinstance(rec.get("ended"), (int, float)):
                found.append((rec, float(rec["ended"])))
    return found


def _mtime(p: Path) -> float:
    try:
        return p.stat().st_mtime
    except FileNotFoundError:  # removed meanwhile (another pass): first in line to go anyway
        return 0.0
