"""Replay: a recorded agent session re-created as real memory and CPU load, and how closely it followed.

::

    from agentcgroup.replay import plan, replay, session_for
    from agentcgroup.traces import discover

    task = discover(["trace/dir"])[0].load()
    p = plan(task, time_scale=10, memory_scale=0.5)
    with session_for(p) as s:
        result = replay(p, s)
    result.correlation, result.peak_ratio

:func:`plan` is pure (a :class:`~agentcgroup.traces.Task` in, schedules out); :func:`replay` runs a plan in an
open session: the agent's baseline in the agent leaf, each tool call in its own leaf.
"""

from .fidelity import Fidelity, fidelity, pearson, resample
from .plan import CallPlan, Point, ReplayPlan, plan
from .result import CallResult, ReplayResult
from .runner import replay, session_for

__all__ = [
    "CallPlan",
    "CallResult",
    "Fidelity",
    "Point",
    "ReplayPlan",
    "ReplayResult",
    "fidelity",
    "pearson",
    "plan",
    "replay",
    "resample",
    "session_for",
]
