"""Writer of our own recording format, ``agentcg-recording`` (JSON Lines; see docs/recording-format.md).

:class:`RecordingWriter` is pure: it validates and appends records, one JSON object per line, flushed
as written so a crash leaves a readable prefix. Taking the samples (every ``interval_s``, 100 ms by
default) is the sampler's job; this class only writes what it is given. It is safe to call from a
sampler thread and the thread running tool calls at the same time.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import shlex
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import IO, Any

from ..errors import InvalidValue

FORMAT = "agentcg-recording"
VERSION = 1
DEFAULT_INTERVAL_S = 0.1
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,127}$")
_COUNTERS = ("throttle_events", "freeze_events", "kill_events")


def host_info() -> dict[str, Any]:
    """What the header says about the host: name, kernel, CPUs, memory (when readable)."""
    info: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "system": platform.system(),
        "kernel": platform.release(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["mem_total_bytes"] = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError, IndexError):
        pass
    return info


def _check_name(what: str, value: object) -> str:
    if not isinstance(value, str) or not _NAME.match(value) or ".." in value:
        raise InvalidValue(what, value, "expected [A-Za-z0-9_][A-Za-z0-9_.:-]{0,127} without '..'")
    return value


def _check_int(what: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidValue(what, value, "expected a non-negative integer")
    return value


def _check_float(what: str, value: object, *, positive: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidValue(what, value, "expected a finite number")
    if value < 0 or (positive and value == 0):
        raise InvalidValue(what, value, "must be positive" if positive else "must not be negative")
    return float(value)


class RecordingWriter:
    """Append an ``agentcg-recording`` to a path (created or truncated) or to an open text file."""

    def __init__(
        self,
        target: str | os.PathLike[str] | IO[str],
        session: str,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        host: dict[str, Any] | None = None,
        meta: dict[str, Any] | None = None,
        started_at: float | None = None,
        startup_s: float | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        _check_name("session name", session)
        header: dict[str, Any] = {
            "type": "header",
            "format": FORMAT,
            "version": VERSION,
            "session": session,
            "interval_s": _check_float("sampling interval", interval_s, positive=True),
            "started_at": _check_float("start time", clock() if started_at is None else started_at),
            "host": host_info() if host is None else dict(host),
        }
        if startup_s is not None:
            header["startup_s"] = _check_float("start-up time", startup_s)
        if meta:
            header["meta"] = dict(meta)
        self._clock = clock
        self._lock = threading.Lock()
        self._open_calls: set[str] = set()
        self._owned = isinstance(target, (str, os.PathLike))
        # the writer outlives this call: closed in close()
        if isinstance(target, (str, os.PathLike)):
            self._file: IO[str] | None = open(target, "w", encoding="utf-8")  # noqa: SIM115
        else:
            self._file = target
        self._write(header)

    # -- records -------------------------------------------------------------------------------------
    def sample(
        self,
        *,
        mem_bytes: int,
        t: float | None = None,
        call: str | None = None,
        mem_peak_bytes: int | None = None,
        cpu_usec: int | None = None,
        psi_some_avg10: float | None = None,
        psi_full_avg10: float | None = None,
        throttle_events: int | None = None,
        freeze_events: int | None = None,
        kill_events: int | None = None,
    ) -> None:
        """One sample of the session (``call=None``) or of one tool call's cgroup."""
        rec: dict[str, Any] = {"type": "sample", "t": self._time(t)}
        if call is not None:
            rec["call"] = _check_name("call id", call)
        rec["mem_bytes"] = _check_int("memory current", mem_bytes)
        optional: dict[str, Any] = {"mem_peak_bytes": mem_peak_bytes, "cpu_usec": cpu_usec}
        optional.update(zip(_COUNTERS, (throttle_events, freeze_events, kill_events), strict=False))
        for key, value in optional.items():
            if value is not None:
                rec[key] = _check_int(key.replace("_", " "), value)
        for key, value in (("psi_some_avg10", psi_some_avg10), ("psi_full_avg10", psi_full_avg10)):
            if value is not None:
                rec[key] = _check_float(key.replace("_", " "), value)
        self._write(rec)

    def call_start(
        self,
        call_id: str,
        command: str | Sequence[str] | None = None,
        *,
        tool: str | None = None,
        intent: dict[str, Any] | None = None,
        t: float | None = None,
    ) -> None:
        """A tool call began. ``command`` may be a shell string or an argv list."""
        _check_name("call id", call_id)
        rec: dict[str, Any] = {"type": "call_start", "t": self._time(t), "call": call_id}
        if isinstance(command, str):
            rec["command"] = command
        elif command is not None:
            argv = [str(a) for a in command]
            rec["command"], rec["argv"] = shlex.join(argv), argv
        if tool is not None:
            rec["tool"] = str(tool)
        if intent:
            rec["intent"] = dict(intent)
        with self._lock:
            if call_id in self._open_calls:
                raise InvalidValue("call id", call_id, "this call has already started and not ended")
            self._open_calls.add(call_id)
        self._write(rec)

    def call_end(self, call_id: str, outcome: dict[str, Any] | None = None, *, t: float | None = None) -> None:
        """A tool call ended; ``outcome`` holds exit code, peak memory, whether it was killed, ..."""
        with self._lock:
            if call_id not in self._open_calls:
                raise InvalidValue("call id", call_id, "no such call has started (or it already ended)")
            self._open_calls.discard(call_id)
        self._write({"type": "call_end", "t": self._time(t), "call": call_id, "outcome": dict(outcome or {})})

    def close(self, *, agent_wall_s: float | None = None, t: float | None = None) -> None:
        """Write the ``end`` record and close the file if this writer opened it. Idempotent."""
        if self._file is None:
            return
        rec: dict[str, Any] = {"type": "end", "t": self._time(t)}
        if agent_wall_s is not None:
            rec["agent_wall_s"] = _check_float("agent wall time", agent_wall_s)
        if self._open_calls:
            rec["unfinished_calls"] = sorted(self._open_calls)
        self._write(rec)
        with self._lock:
            f, self._file = self._file, None
        if self._owned and f is not None:
            f.close()

    def __enter__(self) -> RecordingWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------------------
    def _time(self, t: float | None) -> float:
        return _check_float("time", self._clock() if t is None else t)

    def _write(self, rec: dict[str, Any]) -> None:
        line = json.dumps(rec, separators=(",", ":"), allow_nan=False, default=str) + "\n"
        with self._lock:
            if self._file is None:
                raise ValueError("recording is closed")
            self._file.write(line)
            self._file.flush()
