"""What the daemon writes down so that a successor can adopt its sessions and calls after a crash.

``<state_dir>/sessions/<name>.json``  one per open session (owner, priority, limits, agent protection)
``<state_dir>/calls/<id>.json``       one per running call (session, argv, pid, start time, timeout, ...)
``<state_dir>/outcomes/<id>.json``    the last outcomes, for clients that reconnect
``<state_dir>/alive``                 touched every second while the controller runs (its mtime): a call a
                                      successor finds ended, ended after then (nothing else tells when)

Each file is written whole (temp file + rename), so a crash leaves the old version or the new one. A write
that fails (a full or read-only state dir) leaves no temporary file and raises :class:`StateWriteError`: the
controller then refuses the work it could not write down (a successor could not adopt it).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..cgroupfs import check_name
from ..errors import AgentCgroupError
from ..outcome import Outcome, outcome_from_dict

KEEP_OUTCOME_FILES = 1000
#: outcome files written past KEEP_OUTCOME_FILES before the oldest go, in one pass (listing and sorting a
#: thousand files on every call was a third of the daemon's CPU per call)
PRUNE_BATCH = 100


class StateWriteError(AgentCgroupError):
    """The state dir could not be written (full, read-only): the work it was for is refused."""


class StateDir:
    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._outcome_files: int | None = None  # how many there are, counted once, then kept
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
        self._write("calls", call_id, data)

    def drop_call(self, call_id: str) -> None:
        self._remove("calls", call_id)

    def calls(self) -> dict[str, dict[str, Any]]:
        return self._load("calls")

    # outcomes
    def save_outcome(self, owner: int, out: Outcome) -> None:
        self._write("outcomes", out.call_id, {"owner": owner, "outcome": out.to_dict()})
        n = self._outcome_files
        n = len(os.listdir(self.path / "outcomes")) if n is None else n + 1
        if n > KEEP_OUTCOME_FILES + PRUNE_BATCH:
            files = sorted((self.path / "outcomes").glob("*.json"), key=_mtime)
            for old in files[:-KEEP_OUTCOME_FILES]:
                old.unlink(missing_ok=True)
            n = min(len(files), KEEP_OUTCOME_FILES)
        self._outcome_files = n

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
