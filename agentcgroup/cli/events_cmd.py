"""``agentcg events``: the daemon's event log, every step it took (yours; all, as root), and with ``--follow``
each new one as it happens."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

import click

from ..daemon.client import Client
from ..errors import AgentCgroupError
from ..units import format_size
from .errors import RUNNER_FAILED, fail

#: fields shown as key=value after the kind, in this order, when present
SHOWN = ("priority", "outcome", "by", "policy", "returncode", "queued_s", "latency_s", "memory_peak", "budget")


def format_record(r: dict[str, Any]) -> str:
    """One line a person reads: time, kind, session/call, the figures, the reason."""
    t = float(r.get("t", 0.0))
    stamp = time.strftime("%H:%M:%S", time.localtime(t)) + f".{int((t % 1) * 1000):03d}"
    where = r.get("session", "?") + (f"/{r['call']}" if r.get("call") else "")
    parts = [stamp, f"{r.get('kind', '?'):13s}", where]
    for key in SHOWN:
        value = r.get(key)
        if value is None:
            continue
        if key in ("memory_peak", "budget") and isinstance(value, int):
            value = format_size(value)
        elif key == "latency_s" and isinstance(value, float):
            value = f"{value * 1000:.2f}ms"
        parts.append(f"{key}={value}")
    if r.get("command"):
        parts.append(repr(r["command"][:80]))
    if r.get("reason"):
        parts.append(f"— {r['reason']}")
    return " ".join(parts)


@click.command()
@click.option("-f", "--follow", is_flag=True, help="Keep printing new events as they happen (until interrupted).")
@click.option("--session", metavar="NAME", help="Only this session's events.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--last", metavar="N", type=click.IntRange(0, 2000), default=50, show_default=True, help="Past events.")
@click.option("--socket", "socket_path", metavar="PATH", help="The daemon's socket ($AGENTCG_SOCKET).")
def events(follow: bool, session: str | None, as_json: bool, last: int, socket_path: str | None) -> None:
    """Every step the daemon took for your sessions (all, as root): sessions opened and closed, admission,
    calls started and ended, each throttle, freeze, thaw and kill with its reason."""
    out = sys.stdout
    try:
        for rec in Client(socket_path).events(follow=follow, session=session, last=last):
            out.write((json.dumps(rec) if as_json else format_record(rec)) + "\n")
            out.flush()
    except AgentCgroupError as exc:
        fail(str(exc), RUNNER_FAILED)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except BrokenPipeError:  # `agentcg events | head`
        raise SystemExit(0) from None
