"""agentcgroup: a cgroup for every tool call of an AI agent.

The public API::

    from agentcgroup import Session, Limits, run

    out = run(["python3", "-c", "bytearray(1 << 30)"], memory="256M")
    out.killed_by   # "memory"
    out.feedback    # a short message for the LLM
"""

from .backends import get_manager
from .backends.base import Features, Manager, Stats
from .controller import Controller, ControllerConfig, Intent
from .detect import HostLayout, detect
from .errors import (
    AgentCgroupError,
    CgroupError,
    InvalidName,
    InvalidValue,
    LimitRejected,
    NotFound,
    PermissionDenied,
    Unsupported,
)
from .limits import Limits
from .outcome import Outcome, Step
from .session import Session, run
from .toolcall import ToolCall

__version__ = "0.1.0"

__all__ = [
    "AgentCgroupError",
    "CgroupError",
    "Controller",
    "ControllerConfig",
    "Features",
    "HostLayout",
    "Intent",
    "InvalidName",
    "InvalidValue",
    "LimitRejected",
    "Limits",
    "Manager",
    "NotFound",
    "Outcome",
    "PermissionDenied",
    "Session",
    "Stats",
    "Step",
    "ToolCall",
    "Unsupported",
    "__version__",
    "detect",
    "get_manager",
    "run",
]
