"""What ``submit`` returns: a handle on one call, from any thread."""

from __future__ import annotations

from collections.abc import Callable

from ..outcome import Outcome
from ..toolcall import ToolCall
from .state import CallFuture, CallState


class CallHandle:
    """A submitted call: ``wait()`` returns its :class:`Outcome` (a refused call's at once)."""

    def __init__(
        self,
        cs: CallState | None,
        kill: Callable[[CallState, str], None] | None = None,
        future: CallFuture | None = None,
        call_id: str | None = None,
    ) -> None:
        self._cs, self._kill = cs, kill
        self.future = future if future is not None else (cs.future if cs is not None else CallFuture())
        self.call_id = call_id if call_id is not None else (cs.id if cs is not None else "")

    @classmethod
    def refused(cls, out: Outcome) -> CallHandle:
        fut = CallFuture()
        fut.set(out)
        return cls(None, None, fut, out.call_id)

    def wait(self, timeout: float | None = None) -> Outcome | None:
        return self.future.wait(timeout)

    def done(self) -> bool:
        return self.future.done()

    def kill(self, reason: str = "killed on request") -> None:
        if self._cs is not None and self._kill is not None:
            self._kill(self._cs, reason)

    @property
    def state(self) -> CallState | None:
        """The controller's record of the call while it runs (None if it was refused)."""
        return self._cs

    @property
    def call(self) -> ToolCall | None:
        return None if self._cs is None else self._cs.call
