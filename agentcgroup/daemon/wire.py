"""What the daemon's client needs of the wire protocol (protocol.py has the rest): the error names both sides
share and a request's encoding. The standard library's json only: a thin client (``agentcg run`` with
``AGENTCG_SOCKET``) is a process per call, and does not import msgspec or the validators."""

from __future__ import annotations

import json

from ..errors import AgentCgroupError, InvalidValue

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (a process per call pays for it)
if TYPE_CHECKING:
    from typing import Any


class ProtocolError(AgentCgroupError):
    """A request that cannot be understood (``type`` is sent as the error's type)."""

    type = "BadRequest"

    def __init__(self, message: str, req_id: Any = None) -> None:
        super().__init__(message)
        self.req_id = req_id


class TooLarge(ProtocolError):
    type = "TooLarge"


def encode_request(obj: dict[str, Any]) -> bytes:
    """One request line: compact JSON, strict (NaN and infinities refused, as the daemon refuses them)."""
    try:
        return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode() + b"\n"
    except ValueError as exc:  # NaN or an infinity somewhere in it
        raise InvalidValue("request", obj.get("op"), f"cannot be sent: {exc}") from None
