"""The controller: sessions, intents, admission, graduated enforcement, kernel events."""

from .actions import Action, Actuator, RecordingActuator
from .config import PRIORITIES, ControllerConfig
from .core import AccessDenied, CallHandle, Controller
from .intent import Intent

__all__ = [
    "PRIORITIES",
    "AccessDenied",
    "Action",
    "Actuator",
    "CallHandle",
    "Controller",
    "ControllerConfig",
    "Intent",
    "RecordingActuator",
]
