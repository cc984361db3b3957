"""A controller that hands every tool call it starts to a recorder, so none is missed however short it is.

``agentcg record`` runs one, and serves it to the recorded agent on a private socket (:mod:`.serve`): the
agent's ``agentcg run --session``, the shim and the mini-swe-agent integration then start their calls here,
each recorded with its argv, intent and exact outcome.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..controller.core import CallHandle, Controller


class TrackingController(Controller):
    """A :class:`~agentcgroup.Controller` whose calls in ``recorder.session`` go to ``recorder.track``."""

    recorder: Any = None

    def submit(self, session: str, argv: Sequence[str], **kwargs: Any) -> CallHandle:
        handle = super().submit(session, argv, **kwargs)
        rec = self.recorder
        if rec is not None and session == rec.session:
            rec.track(handle)
        return handle
