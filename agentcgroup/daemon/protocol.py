"""The daemon's wire protocol (docs/daemon-api.md): one JSON object per line over a Unix stream socket.

Requests ``{"op": ..., "id": ..., ...}``; replies ``{"id": ..., "ok": true, ...}`` or
``{"id": ..., "ok": false, "error": {"type": ..., "message": ...}}``. ``run`` first answers
``{"id": ..., "event": "started", "call_id": ...}``, then the outcome. A client's stdin/stdout/stderr travel
with its ``run`` request as SCM_RIGHTS fds (``"stdio": [true, true, true]`` says which). Everything here is
pure: parsing and validating, encoding, and the error names both sides share.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import msgspec

from ..controller.config import check_priority
from ..controller.intent import Intent
from ..errors import InvalidValue
from ..limits import Limits
from ..units import parse_duration, parse_size
from .wire import ProtocolError, TooLarge

__all__ = ["ProtocolError", "Request", "TooLarge", "encode", "error_reply", "parse_request"]

VERSION = 1
MAX_LINE = 1 << 20  # a request line longer than this is refused (TooLarge) and the connection closed
MAX_FDS = 3  # stdin, stdout, stderr: the most fds one request (and one connection, at once) may carry
MAX_ARGS = 65536  # argv and env entries
OPS = ("hello", "open_session", "close_session", "status", "run", "outcome", "kill", "events", "top")
LIMIT_KEYS = ("memory", "memory_high", "memory_low", "cpu", "cpu_weight", "pids")
INTENT_KEYS = ("memory", "cpu", "duration", "priority")


@dataclass
class Request:
    op: str
    id: Any
    body: dict[str, Any]


def _field(body: dict[str, Any], name: str, kind: type | tuple[type, ...], required: bool = False) -> Any:
    value = body.get(name)
    if value is None:
        if required:
            raise ProtocolError(f"field {name!r} is required")
        return None
    if isinstance(value, bool) and kind is not bool and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ProtocolError(f"field {name!r}: expected {_kind_name(kind)}, got {_short(value)}")
    if not isinstance(value, kind):
        raise ProtocolError(f"field {name!r}: expected {_kind_name(kind)}, got {_short(value)}")
    return value


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(
        {
            str: "a string",
            int: "an integer",
            float: "a number",
            bool: "true/false",
            list: "a list",
            dict: "an object",
        }.get(k, k.__name__)
        for k in kinds
    )


def parse_request(line: bytes) -> Request:
    """One request line into a :class:`Request`; raises :class:`ProtocolError` naming what is wrong."""
    if len(line) > MAX_LINE:
        raise TooLarge(f"request of {len(line)} bytes is over the {MAX_LINE}-byte limit")
    if line.lstrip()[:1] != b"{":  # refused before decoding: a flood of 5000 '[' cost ~100 us a line to decode
        start = line.strip()[:16].decode(errors="replace")
        raise ProtocolError(f"a request is a JSON object, got a line starting {start!r}")
    try:
        try:
            body = msgspec.json.decode(line)  # strict JSON (no NaN, no Infinity), ~10x json.loads
        except msgspec.ValidationError:  # a number out of range (1e999, a huge integer): the slow path names it
            import json

            body = json.loads(line, parse_constant=_no_constant)
    except (msgspec.MsgspecError, ValueError, UnicodeDecodeError) as exc:
        raise ProtocolError(f"not JSON: {exc}{_where(line, str(exc))}") from None
    except RecursionError:
        raise ProtocolError("not JSON: nested too deeply") from None
    if not isinstance(body, dict):
        raise ProtocolError(f"a request is a JSON object, got {type(body).__name__}")
    req_id = body.pop("id", None)
    if not (req_id is None or isinstance(req_id, (str, int, float, bool))):
        raise ProtocolError(f"field 'id': expected a string or a number, got {type(req_id).__name__}")
    op = body.pop("op", None)
    if not isinstance(op, str) or op not in OPS:
        raise ProtocolError(f"unknown op {_short(op)}; known: {', '.join(OPS)}", req_id)
    return Request(op, req_id, body)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _where(line: bytes, message: str) -> str:
    """`` at 'NaN}'``: what stands at the byte the decoder names, so the error names the value."""
    m = re.search(r"\(byte (\d+)\)", message)
    if m is None:
        return ""
    at = int(m.group(1))
    return f" at {line[at : at + 16].decode(errors='replace')!r}"


def _short(value: Any, most: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= most else text[: most - 3] + "..."


def _text(name: str, value: str) -> str:
    if "\0" in value:
        raise InvalidValue(name, _short(value), "contains a NUL byte")
    return value


def limits_from(body: dict[str, Any]) -> Limits:
    """``{"memory": "512M", "cpu": "50%", ...}`` into validated :class:`Limits` (errors name the value)."""
    raw = _field(body, "limits", dict) or {}
    unknown = sorted(set(raw) - set(LIMIT_KEYS))
    if unknown:
        raise ProtocolError(f"unknown limit(s) {_short(', '.join(unknown))}; known: {', '.join(LIMIT_KEYS)}")
    return Limits.parse(**{k: _scalar(k, v) for k, v in raw.items()})


def intent_from(body: dict[str, Any]) -> Intent | None:
    raw = _field(body, "intent", dict)
    if raw is None:
        return None
    unknown = sorted(set(raw) - set(INTENT_KEYS))
    if unknown:
        raise ProtocolError(f"unknown intent field(s) {_short(', '.join(unknown))}; known: {', '.join(INTENT_KEYS)}")
    return Intent.parse(**{k: _scalar(k, v) for k, v in raw.items()})


def _scalar(name: str, value: Any) -> Any:
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InvalidValue(name, _short(value), "expected a string or a number")
    if isinstance(value, str) and len(value) > 64:
        raise InvalidValue(name, _short(value), "expected a short value such as 512M, 50% or 30s")
    return value


def run_from(body: dict[str, Any]) -> dict[str, Any]:
    """Validate a ``run`` request; return the controller's keyword arguments (fds are the server's job)."""
    session = _field(body, "session", str, required=True)
    argv = _field(body, "argv", list, required=True)
    if not argv or len(argv) > MAX_ARGS or not all(isinstance(a, str) for a in argv):
        raise ProtocolError(f"field 'argv': expected a non-empty list of strings, got {_short(argv)}")
    for a in argv:
        _text("argv", a)
    env = _field(body, "env", dict)
    if env is not None:
        if len(env) > MAX_ARGS or not all(isinstance(k, str) and isinstance(v, str) for k, v in env.items()):
            raise ProtocolError("field 'env': expected an object of strings")
        for k, v in env.items():
            if not k or "=" in k:
                raise InvalidValue("env name", _short(k), "must be non-empty and without '='")
            _text("env name", k)
            _text(f"env {_short(k, 40)}", v)
    cwd = _field(body, "cwd", str)
    if cwd is not None and not cwd.startswith("/"):
        raise InvalidValue("cwd", _short(cwd), "must be an absolute path")
    if cwd is not None:
        _text("cwd", cwd)
    timeout = body.get("timeout")
    on_disconnect = body.get("on_disconnect", "kill")
    if on_disconnect not in ("kill", "detach"):
        raise ProtocolError(f"field 'on_disconnect': expected 'kill' or 'detach', got {on_disconnect!r}")
    stdio = _field(body, "stdio", list) or [False, False, False]
    if len(stdio) != 3 or not all(isinstance(x, bool) for x in stdio):
        raise ProtocolError(f"field 'stdio': expected three true/false, got {_short(stdio)}")
    return {
        "session": session,
        "argv": argv,
        "limits": limits_from(body),
        "intent": intent_from(body),
        "timeout": parse_duration(_scalar("timeout", timeout), "timeout") if timeout is not None else None,
        "env": env,
        "cwd": cwd,
        "capture_output": bool(_field(body, "capture_output", bool)),
        "merge_stderr": bool(_field(body, "merge_stderr", bool)),
        "keep_background": bool(_field(body, "keep_background", bool)),
        "own_session": bool(_field(body, "own_session", bool)),
        "on_disconnect": on_disconnect,
        "stdio": stdio,
    }


def session_from(body: dict[str, Any]) -> dict[str, Any]:
    name = _field(body, "name", str, required=True)
    priority = check_priority(_field(body, "priority", str) or "normal")
    agent_memory = body.get("agent_memory")
    return {
        "name": name,
        "priority": priority,
        "limits": limits_from(body),
        "agent_memory": parse_size(_scalar("agent_memory", agent_memory), "agent_memory")
        if agent_memory is not None
        else None,
    }


def name_from(body: dict[str, Any], field: str = "name") -> str:
    value: str = _field(body, field, str, required=True)
    return value


def encode(obj: dict[str, Any]) -> bytes:
    return msgspec.json.encode(obj) + b"\n"


def error_reply(req_id: Any, exc: BaseException, message: str | None = None) -> dict[str, Any]:
    kind = getattr(exc, "type", None) if isinstance(exc, ProtocolError) else type(exc).__name__
    error: dict[str, Any] = {"type": kind, "message": str(exc) if message is None else message}
    if isinstance(exc, OSError) and exc.errno:
        error["errno"] = exc.errno  # a command that could not start: the client raises what the embedded path does
    return {"id": req_id, "ok": False, "error": error}
