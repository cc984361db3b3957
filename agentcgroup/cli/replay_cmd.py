"""``agentcg replay TRACE``: a recorded session re-created as real memory and CPU load, and how closely it followed."""

from __future__ import annotations

import contextlib
import json
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from ..cgroupfs import check_name
from ..errors import AgentCgroupError, InvalidValue
from ..replay import ReplayPlan, ReplayResult, plan, replay, session_for
from ..spawn import SpawnError
from ..traces import RecordingWriter, Task, discover
from ..units import format_duration, format_size, parse_duration, parse_factor
from .errors import RUNNER_FAILED, fail
from .record_cmd import check_out_path

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

#: the replay may use at most this share of the memory available now
HOST_SHARE = 0.8
#: past this the host is unlikely to fault memory in fast enough (a note, not an error)
FAST_RISE = 1 << 30


def _load(trace: str) -> Task:
    try:
        sources = discover([trace])
    except FileNotFoundError:
        raise InvalidValue("trace", trace, "no such file or directory") from None
    except ValueError:
        raise InvalidValue("trace", trace, "neither an agentcg recording nor a trace of the paper's format") from None
    if not sources:
        raise InvalidValue("trace", trace, "holds no trace (no recording, no attempt directory of the paper's format)")
    if len(sources) > 1:
        raise InvalidValue("trace", trace, f"holds {len(sources)} traces; name one of them, e.g. {sources[0].path}")
    try:
        task = sources[0].load()
    except (OSError, ValueError) as exc:
        raise InvalidValue("trace", trace, f"cannot be read: {exc}") from None
    if len(task.samples) < 2:
        raise InvalidValue("trace", trace, f"has {len(task.samples)} resource samples; a replay needs two or more")
    return task


def _available() -> int | None:
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:
        return None


@click.command("replay")
@click.argument("trace")
@click.option("--time-scale", default="1", show_default=True, metavar="F", help="Speed-up: 10 runs 10x faster.")
@click.option("--memory-scale", default="1", show_default=True, metavar="F", help="Multiply memory: 0.5 halves it.")
@click.option("--cpu-scale", default="1", show_default=True, metavar="F", help="Multiply CPU rates.")
@click.option("--max-duration", metavar="SEC", help="Replay at most this long (replay time): 30, 2m.")
@click.option("--session", "session_name", metavar="S", help="Session to replay in (default: a new one).")
@click.option(
    "--priority",
    type=click.Choice(["high", "normal", "low"]),
    default="normal",
    show_default=True,
    help="The new session's priority (high: CPU hogs beside it do not make it fall behind its trace).",
)
@click.option("--record", "record_path", metavar="FILE.jsonl", help="Also record the replayed session.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of the table.")
@click.option("--root", metavar="NAME", help="Root cgroup name (default agentcg, or $AGENTCG_ROOT).")
@click.option("--backend", type=click.Choice(["auto", "v2", "hybrid", "none"]), help="Force a backend.")
def replay_cmd(
    trace: str,
    time_scale: str,
    memory_scale: str,
    cpu_scale: str,
    max_duration: str | None,
    session_name: str | None,
    priority: str,
    record_path: str | None,
    as_json: bool,
    root: str | None,
    backend: str | None,
) -> None:
    """Replay TRACE (an agentcg recording or a task of the AgentCgroup paper's format) as real load.

    The agent's memory and CPU run in the session's agent leaf, each tool call in a leaf of its own, along the
    trace's timeline; the session's memory is measured meanwhile. Prints how closely it followed the trace:
    the correlation of the two memory timelines and the ratio of their peaks.

    \b
    Example:
      agentcg replay traces/haiku/dask__dask-11628 --time-scale 10
    """
    try:
        ts = parse_factor(time_scale, "time scale")
        ms = parse_factor(memory_scale, "memory scale")
        cs = parse_factor(cpu_scale, "CPU scale")
        max_s = parse_duration(max_duration, "max duration") if max_duration is not None else None
        if session_name is not None:
            check_name(session_name, "session")
        if root is not None:
            check_name(root, "root")
        if record_path is not None:
            check_out_path(record_path, "recording file")
        task = _load(trace)
        p = plan(task, ts, ms, cpu_scale=cs, max_duration=max_s)
        free = _available()
        if free is not None and p.trace_peak > free * HOST_SHARE:
            raise InvalidValue(
                "memory scale",
                memory_scale,
                f"the replay would peak at {format_size(p.trace_peak)} but {format_size(free)} is available; "
                "lower --memory-scale",
            )
    except InvalidValue as exc:
        fail(str(exc))
    if not as_json and p.max_rise_rate > FAST_RISE:
        sys.stderr.write(
            f"agentcg: note: the trace grows by up to {format_size(p.max_rise_rate)}/s at this time scale; the "
            f"host may lag behind (a --time-scale of {ts * FAST_RISE / p.max_rise_rate:.2g} or less keeps it "
            f"under {format_size(FAST_RISE)}/s)\n"
        )
    try:
        result = _run(p, session_name, record_path, root, backend, progress=not as_json, priority=priority)
    except KeyboardInterrupt:
        raise SystemExit(130) from None
    except InvalidValue as exc:
        fail(str(exc))
    except (AgentCgroupError, SpawnError, OSError) as exc:
        fail(str(exc), RUNNER_FAILED)
    if as_json:
        sys.stdout.write(json.dumps(result.to_dict(), separators=(",", ":")) + "\n")
    else:
        _table(result)
    raise SystemExit(1 if result.failed_calls or result.agent_error else 0)


def _run(
    p: ReplayPlan,
    session_name: str | None,
    record_path: str | None,
    root: str | None,
    backend: str | None,
    progress: bool,
    priority: str = "normal",
) -> ReplayResult:
    with (
        session_for(p, name=session_name, root=root, backend=backend, priority=priority) as s,
        contextlib.ExitStack() as stack,
    ):
        on_call = None
        if record_path is not None:
            from ..record import Recorder

            meta = {"replay_of": p.source, "time_scale": p.time_scale, "memory_scale": p.memory_scale}
            writer = stack.enter_context(RecordingWriter(record_path, s.name, meta=meta))
            recorder = stack.enter_context(Recorder.for_session(s, writer, tracked=True))
            on_call = lambda c, h: recorder.track(h, c.command or c.tool)  # noqa: E731
        bar = stack.enter_context(_Progress(p, enabled=progress))
        return replay(p, s, on_call=on_call, progress=bar.update)


class _Progress:
    """A bar on stderr when it is a terminal; a line every 30 s otherwise (only for replays over 30 s)."""

    def __init__(self, p: ReplayPlan, enabled: bool) -> None:
        self.total = p.duration
        self.enabled = enabled
        self.tty = sys.stderr.isatty()
        self._bar: Progress | None = None
        self._task: TaskID | None = None
        self._last = time.monotonic()
        self.update: Callable[[float, float], None] = self._update

    def __enter__(self) -> _Progress:
        if self.enabled and self.tty and self.total > 3:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._bar = Progress(
                TextColumn("replaying"),
                BarColumn(),
                TextColumn("{task.completed:.0f}/{task.total:.0f} s"),
                TimeRemainingColumn(),
                transient=True,
                console=_stderr_console(),
            )
            self._bar.start()
            self._task = self._bar.add_task("replay", total=self.total)
        return self

    def _update(self, elapsed: float, total: float) -> None:
        if self._bar is not None:
            assert self._task is not None
            self._bar.update(self._task, completed=min(elapsed, total))
        elif self.enabled and total > 30 and time.monotonic() - self._last >= 30:
            self._last = time.monotonic()
            sys.stderr.write(f"agentcg: replaying: {elapsed:.0f}/{total:.0f} s\n")

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


def _stderr_console() -> Console:
    from rich.console import Console

    return Console(stderr=True)


def _table(r: ReplayResult) -> None:
    p = r.plan
    f = r.fidelity
    failed, killed = len(r.failed_calls), len(r.killed_calls)
    calls = f"{len(r.calls)}" + (f", {failed} failed" if failed else "") + (f", {killed} killed" if killed else "")
    rows = [
        ("trace", f"{p.task} ({p.source})"),
        ("scales", f"time x{p.time_scale:g}, memory x{p.memory_scale:g}, CPU x{p.cpu_scale:g}"),
        ("correlation", "-" if f.correlation is None else f"{f.correlation:.3f}"),
        ("peak ratio", "-" if f.peak_ratio is None else f"{f.peak_ratio:.3f}"),
        ("peak", f"{format_size(f.measured_peak)} measured, {format_size(f.trace_peak)} in the trace (scaled)"),
        ("duration", f"{format_duration(r.duration_s)} (planned {format_duration(p.duration)})"),
        ("calls", calls),
        ("samples", f"{f.samples} measured, {len(p.trace)} in the trace"),
    ]
    for note in (*p.notes, *r.notes):
        rows.append(("note", note))
    if r.agent_error:
        rows.append(("agent", r.agent_error))
    for c in r.failed_calls[:5]:
        rows.append((f"call {c.index}", c.error or ""))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        click.echo(f"{k:<{width}}  {v}")
