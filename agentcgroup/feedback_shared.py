"""Feedback when a call paid for a *shared* budget running short, not for its own size.

A call dies or is slowed for one of two reasons: it reached its own limit (then using less memory is the fix), or
the budget it shares with other work (the host's, or its session's) ran out while it was within its own (then
the command was not at fault: the fix is to retry when there is room, declare its memory so it waits for room
instead of starting into a full budget, or run fewer workers). These messages say which, with the figures, and
never name what else was running (other tenants' commands are not this agent's business).
"""

from __future__ import annotations

from .outcome import Outcome, Step
from .units import MAX_BYTES, format_size, format_size_arg

#: a kernel OOM kill with usage this close to the call's own limit is the call's own doing
OWN_LIMIT_FRACTION = 0.95

#: the ``scope`` figure of the pressure policy's steps: "host" or the session's name
SCOPE = "scope"


def own_limit_hit(o: Outcome) -> bool:
    """The call had a limit of its own and its peak reached it."""
    limit = o.memory_limit
    if limit is None or limit >= MAX_BYTES:
        return False
    return o.memory_peak is None or o.memory_peak >= OWN_LIMIT_FRACTION * limit


def shared_step(o: Outcome, action: str) -> Step | None:
    """The pressure policy's ``action`` step on this call (it names the shared budget), if any."""
    return next((s for s in o.steps if s.action == action and SCOPE in s.figures), None)


def _budget(step: Step | None, session: str) -> str:
    scope = step.figures.get(SCOPE) if step is not None else "host"
    if scope in (None, "host"):
        return "the host's memory budget, shared with other sessions,"
    return f"its session's memory budget (session {session}), shared with the session's other calls,"


def _declare(o: Outcome) -> str:
    if not o.memory_peak:
        return "declare the memory it needs (memory=...) so it waits for room instead of starting into a full budget"
    need = format_size_arg(max(o.memory_peak, 64 << 20) // (1 << 20) * (1 << 20))
    return f"declare memory={need} so it waits for room instead of starting into a full budget"


def _what_to_do(o: Outcome, step: Step | None) -> str:
    scope = step.figures.get(SCOPE) if step is not None else "host"
    first = (
        "retry it once your session's other calls are done"
        if scope not in (None, "host")
        else "retry it when the host has room (other work ends)"
    )
    return f"Try: {first}; {_declare(o)}; or use fewer workers or processes at once."


def killed_for_shared_budget(o: Outcome, cmd: str, frozen: str, peak: str, took: str) -> list[str]:
    """The call died because the shared budget ran out (the kernel's OOM killer or the pressure policy)."""
    step = shared_step(o, "kill")
    if o.killed_by == "policy" and step is not None and "cap" in step.figures:
        what = f"{frozen}killed: {_budget(step, o.session)} had no more room for it beside the other work"
        why = f" ({o.kill_reason})" if o.kill_reason else ""
    elif o.killed_by == "policy" and step is not None:
        what = f"{frozen}killed to free memory for higher-priority work: {_budget(step, o.session)} was full"
        why = f" ({o.kill_reason})" if o.kill_reason else ""
    else:
        what = f"{frozen}killed by the kernel's OOM killer: {_budget(None, o.session)} was exhausted"
        why = ""
    own = ""
    if o.memory_limit is not None and o.memory_limit < MAX_BYTES:
        own = f", under its own {format_size(o.memory_limit)} limit"
    return [
        f"{what}{why}. {cmd} was not at fault: it used {peak}{own} after {took}.",
        _what_to_do(o, step),
    ]


def slowed_for_shared_budget(o: Outcome, cmd: str) -> str | None:
    """The call lived but was held back because the shared budget ran short."""
    step = shared_step(o, "throttle")
    if step is None or o.killed_by is not None:
        return None
    held = f" and frozen {o.frozen_s:.1f} s" if o.frozen_s >= 0.05 else ""
    return (
        f"{cmd} was slowed down{held} while {_budget(step, o.session)} was nearly full with higher-priority "
        "work; it was not at fault and finished normally."
    )
