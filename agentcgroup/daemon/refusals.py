"""The errors of the operator's policy (policy.py), apart: the client raises them too, and importing the policy
(its caps, the controller's config) would cost a process per call (``agentcg run`` through the daemon) for
nothing."""

from __future__ import annotations

from ..errors import AgentCgroupError, InvalidValue


class NotAllowed(InvalidValue):
    """A value above what the operator allows this uid (the error names the value and the cap)."""


class TooMany(AgentCgroupError):
    """A count cap (sessions, calls, connections) is reached for this uid."""
