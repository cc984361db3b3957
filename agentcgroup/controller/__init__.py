"""The controller: sessions, intents, admission, graduated enforcement, kernel events.

Its names are imported on first use (PEP 562): ``controller.config`` and ``controller.intent`` are small and
the daemon's client and wire need them, without the controller itself.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_names
from ..errors import AccessDenied

if TYPE_CHECKING:
    from .actions import Action, Actuator
    from .callspec import CallSpec
    from .config import PRIORITIES, ControllerConfig
    from .core import CallHandle, Controller
    from .intent import Intent

_LAZY = {
    "Action": "actions",
    "Actuator": "actions",
    "CallSpec": "callspec",
    "PRIORITIES": "config",
    "ControllerConfig": "config",
    "CallHandle": "core",
    "Controller": "core",
    "Intent": "intent",
}

__all__ = [
    "PRIORITIES",
    "AccessDenied",
    "Action",
    "Actuator",
    "CallHandle",
    "CallSpec",
    "Controller",
    "ControllerConfig",
    "Intent",
]


__getattr__ = lazy_names(__name__, _LAZY, globals())
