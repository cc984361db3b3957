"""agentcgroup: a cgroup for every tool call of an AI agent.

The public API::

    from agentcgroup import Session, Limits, run

    out = run(["python3", "-c", "bytearray(1 << 30)"], memory="256M")
    out.killed_by   # "memory"
    out.feedback    # a short message for the LLM
"""

from ._lazy import lazy_names
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

TYPE_CHECKING = False  # typing.TYPE_CHECKING, without importing typing (a process per call pays for it)

if TYPE_CHECKING:
    from .backends import get_manager
    from .backends.base import Features, Manager, Stats
    from .controller import Controller, ControllerConfig, Intent
    from .detect import HostLayout, detect
    from .limits import Limits
    from .outcome import Outcome, Step
    from .session import Session, run
    from .toolcall import ToolCall

# imported on first use: a process that needs only a part (``agentcg run`` through the daemon, a parser)
# does not pay for the controller and its backends (PEP 562)
_LAZY = {
    "get_manager": "backends",
    "Features": "backends.base",
    "Manager": "backends.base",
    "Stats": "backends.base",
    "Controller": "controller",
    "ControllerConfig": "controller",
    "Intent": "controller",
    "HostLayout": "detect",
    "detect": "detect",
    "Limits": "limits",
    "Outcome": "outcome",
    "Step": "outcome",
    "Session": "session",
    "run": "session",
    "ToolCall": "toolcall",
}


__getattr__ = lazy_names(__name__, _LAZY, globals())


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
