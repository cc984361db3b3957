"""The controller: sessions, intents, admission, graduated enforcement, kernel events."""

from .actions import Action, Actuator
from .callspec import CallSpec
from .config import PRIORITIES, ControllerConfig
from .core import AccessDenied, CallHandle, Controller
from .intent import Intent

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
