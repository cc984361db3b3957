"""The controller's ``agentcg_*`` metrics in Prometheus's format, through prometheus-client (docs/metrics.md).

Two kinds of families: counters and histograms fed by the controller's events (calls finished, policy actions,
kernel OOM kills, admission decisions and waits, reaction latency) and by a probe of its loop's lag; gauges
read when Prometheus scrapes (sessions, running calls, memory, CPU, PSI, the admission queue), from the same
figures ``agentcg status`` reads. Labels stay bounded: a session's name and priority, a call's phase, an
outcome or action from a fixed set; never a call id or a command. Counters outlive their sessions, so they
carry the priority, not the session.

The HTTP server is prometheus-client's own (wsgiref), on a thread of its own; the daemon serves it only when
asked (``--metrics HOST:PORT``), on loopback unless told otherwise. What it serves is prometheus-client's
rendering of each family, cached while the family's samples stay the same (:mod:`.exposition`).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.registry import Collector

from ..backends.base import Cgroup, Stats
from ..controller.config import PRIORITIES
from ..controller.events import ACTIONS, OUTCOME_KINDS, Event
from ..errors import CgroupError, InvalidValue
from ..units import MAX_BYTES
from .exposition import Exposition, Rows, serve

if TYPE_CHECKING:
    from ..controller.core import Controller

#: how often the loop-lag probe asks the controller's loop for a timer
LAG_PROBE_S = 0.5
#: reaction (event to action) buckets: the goal is p50 <= 1 ms, p99 <= 10 ms
REACTION_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)
LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)
WAIT_BUCKETS = (0.001, 0.01, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
Row = tuple[tuple[str, ...], float]
PHASES = ("running", "throttled", "frozen")
DECISIONS = ("admitted", "queued", "refused")
#: the families read when scraped, and their types
LIVE_FAMILIES = {
    "agentcg_sessions": "gauge",
    "agentcg_calls_running": "gauge",
    "agentcg_session_memory_bytes": "gauge",
    "agentcg_session_memory_peak_bytes": "gauge",
    "agentcg_session_memory_budget_bytes": "gauge",
    "agentcg_session_cpu_seconds": "counter",
    "agentcg_session_memory_pressure_ratio": "gauge",
    "agentcg_root_memory_bytes": "gauge",
    "agentcg_root_memory_peak_bytes": "gauge",
    "agentcg_root_memory_budget_bytes": "gauge",
    "agentcg_admission_queue_length": "gauge",
}


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` (loopback) or ``PORT`` (loopback); ``[::1]:PORT`` for IPv6."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = "", text
    host = host.strip("[]") or "127.0.0.1"
    try:
        number = int(port)
    except ValueError:
        raise InvalidValue("--metrics", text, "expected HOST:PORT, e.g. 127.0.0.1:9464") from None
    if not 0 <= number <= 65535:
        raise InvalidValue("--metrics", text, "the port must be 0..65535")
    return host, number


class Metrics:
    """The agentcg_* families of one controller, in a registry of their own."""

    def __init__(self, controller: Controller, registry: CollectorRegistry | None = None) -> None:
        self.controller = controller
        # no ``*_created`` series: they double every family and nobody reads them (prometheus-client: untyped)
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.finished = Counter(
            "agentcg_calls_finished", "Tool calls finished, by how they ended.", ["priority", "outcome"], registry=r
        )
        self.actions = Counter(
            "agentcg_policy_actions", "Actions taken on tool calls, by action.", ["action", "priority"], registry=r
        )
        self.oom_kills = Counter(
            "agentcg_kernel_oom_kills",
            "Processes the kernel's OOM killer killed in tool calls.",
            ["priority"],
            registry=r,
        )
        self.admissions = Counter(
            "agentcg_admission_decisions",
            "Admission decisions: admitted at once, admitted after a wait (queued), refused.",
            ["decision"],
            registry=r,
        )
        self.admission_wait = Histogram(
            "agentcg_admission_wait_seconds",
            "Time admitted calls waited in the queue.",
            buckets=WAIT_BUCKETS,
            registry=r,
        )
        self.reaction = Histogram(
            "agentcg_reaction_seconds",
            "From a kernel event's handling to the controller's action done (throttle, freeze, kill, ...).",
            buckets=REACTION_BUCKETS,
            registry=r,
        )
        self.loop_lag = Histogram(
            "agentcg_loop_lag_seconds",
            "How late the controller's loop ran a timer (a busy or starved loop reacts late).",
            buckets=LAG_BUCKETS,
            registry=r,
        )
        for p in PRIORITIES:  # every bounded series from 0, so that rate() and increase() see the first one
            for o in OUTCOME_KINDS:
                self.finished.labels(p, o)
            for a in ACTIONS:
                self.actions.labels(a, p)
            self.oom_kills.labels(p)
        for d in DECISIONS:
            self.admissions.labels(d)
        live = _Live(controller)
        self.registry.register(live)
        #: what /metrics serves: the same text as generate_latest(registry), families unchanged since the last
        #: scrape not rendered again
        self.exposition = Exposition(
            [self.finished, self.actions, self.oom_kills, self.admissions, self.admission_wait, self.reaction,
             self.loop_lag],
            live.rows,
        )  # fmt: skip
        self._server: Any = None
        self._probing = False
        controller.events.subscribe(self.on_event)

    # --- fed by events ------------------------------------------------------------------------------------
    def on_event(self, ev: Event) -> None:
        f = ev.fields
        prio = f.get("priority", "normal")
        touch = self.exposition.touch
        if ev.kind in ACTIONS:
            self.actions.labels(ev.kind, prio).inc()
            touch(self.actions)
            latency = f.get("latency_s")
            if latency is not None:
                self.reaction.observe(latency)
                touch(self.reaction)
        elif ev.kind == "call-end":
            self.finished.labels(prio, f["outcome"]).inc()
            touch(self.finished)
            if f.get("oom_kills"):
                self.oom_kills.labels(prio).inc(f["oom_kills"])
                touch(self.oom_kills)
        elif ev.kind == "refuse":
            self.finished.labels(prio, "refused").inc()
            self.admissions.labels("refused").inc()
            touch(self.finished)
            touch(self.admissions)
        elif ev.kind == "admit":
            queued = f.get("queued_s") or 0.0
            self.admissions.labels("queued" if queued > 0 else "admitted").inc()
            touch(self.admissions)
            if queued > 0:
                self.admission_wait.observe(queued)
                touch(self.admission_wait)

    # --- the loop's lag -----------------------------------------------------------------------------------
    def start_probe(self) -> None:
        """Ask the controller's loop for a timer every LAG_PROBE_S and record how late it came."""
        if not self._probing:
            self._probing = True
            self.controller.loop.call_soon_threadsafe(self._arm)

    def _arm(self) -> None:
        if not self._probing:
            return
        due = time.monotonic() + LAG_PROBE_S
        self.controller.loop.call_at(due, lambda: self._tick(due))

    def _tick(self, due: float) -> None:
        self.loop_lag.observe(max(0.0, time.monotonic() - due))
        self.exposition.touch(self.loop_lag)
        self._arm()

    # --- serving ------------------------------------------------------------------------------------------
    def serve(self, host: str, port: int) -> tuple[str, int]:
        """Serve /metrics on ``host:port`` (its own thread); the address bound (port 0: one the kernel chose)."""
        server = serve(host, port, self.exposition, self.registry)
        self._server = server
        self.start_probe()
        bound = server.server_address
        return str(bound[0]), int(bound[1])

    def close(self) -> None:
        self._probing = False
        self.controller.events.unsubscribe(self.on_event)
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _Live(Collector):
    """The gauges, read when scraped: as :class:`Rows` (what :class:`Exposition` compares with the last
    scrape) or as prometheus-client families (``collect``, for ``generate_latest`` over the registry)."""

    def __init__(self, controller: Controller) -> None:
        self.controller = controller

    def collect(self) -> Iterator[Any]:
        for fam in self.rows():
            yield fam.build()

    def describe(self) -> Iterator[Any]:
        """The families' names without reading anything: what a ``?name[]=`` filtered scrape looks up."""
        for name, kind in LIVE_FAMILIES.items():
            yield Rows(name, "", kind, (), []).build()

    def rows(self) -> list[Rows]:
        ctl = self.controller
        labels = ("session", "priority")
        running: list[Row] = []
        mem: list[Row] = []
        peak: list[Row] = []
        budget: list[Row] = []
        cpu: list[Row] = []
        psi: list[Row] = []
        counts = dict.fromkeys(PRIORITIES, 0)
        for s in ctl.session_states():
            counts[s.priority] = counts.get(s.priority, 0) + 1
            key = (s.name, s.priority)
            phases = dict.fromkeys(PHASES, 0)
            for cs in list(s.calls.values()):
                if cs.phase in phases:
                    phases[cs.phase] += 1
            for phase, n in phases.items():
                if n or phase == "running":  # throttled and frozen only while a call is: fewer lines to scrape
                    running.append(((*key, phase), n))
            st = _usage(ctl, s.cg)
            if st.memory_current is not None:
                mem.append((key, st.memory_current))
            if st.memory_peak is not None:
                peak.append((key, st.memory_peak))
            if s.budget is not None and s.budget < MAX_BYTES:
                budget.append((key, s.budget))
            if st.cpu_usec is not None:
                cpu.append((key, st.cpu_usec / 1e6))
            try:
                some, full = ctl.manager.memory_pressure(s.cg)
            except CgroupError:
                some = full = None
            if some is not None:
                psi.append(((*key, "some"), some / 100))
            if full is not None:
                psi.append(((*key, "full"), full / 100))
        return [
            Rows("agentcg_sessions", "Sessions open, by priority.", "gauge", ("priority",),
                 [((p,), n) for p, n in counts.items()]),
            Rows("agentcg_calls_running",
                 "Tool calls running now, by phase (throttled and frozen only while a call is).",
                 "gauge", (*labels, "phase"), running),
            Rows("agentcg_session_memory_bytes", "A session's memory in use.", "gauge", labels, mem),
            Rows("agentcg_session_memory_peak_bytes", "A session's peak memory.", "gauge", labels, peak),
            Rows("agentcg_session_memory_budget_bytes", "A session's memory budget (its hard limit).", "gauge",
                 labels, budget),
            Rows("agentcg_session_cpu_seconds", "CPU time used by a session's cgroup.", "counter", labels, cpu),
            Rows("agentcg_session_memory_pressure_ratio",
                 "A session's memory PSI (avg10, as a ratio), where the host has per-cgroup PSI.",
                 "gauge", (*labels, "kind"), psi),
            *self._root(),
            Rows("agentcg_admission_queue_length", "Calls waiting for admission now.", "gauge", (),
                 [((), ctl.admission.waiting)]),
        ]  # fmt: skip

    def _root(self) -> list[Rows]:
        ctl = self.controller
        root = ctl.root.cg
        mem: list[Row] = []
        peak: list[Row] = []
        if root is not None:
            st = _usage(ctl, root)
            if st.memory_current is not None:
                mem.append(((), st.memory_current))
            if st.memory_peak is not None:
                peak.append(((), st.memory_peak))
        budget: list[Row] = [] if ctl.config.budget is None else [((), ctl.config.budget)]
        return [
            Rows("agentcg_root_memory_bytes", "Memory in use by every session together.", "gauge", (), mem),
            Rows("agentcg_root_memory_peak_bytes", "Peak memory of every session together.", "gauge", (), peak),
            Rows("agentcg_root_memory_budget_bytes", "The host budget (--budget), if set.", "gauge", (), budget),
        ]


def _usage(ctl: Controller, cg: Cgroup) -> Stats:
    """Memory, peak, CPU of ``cg`` in a few reads (empty if it is gone)."""
    try:
        return ctl.manager.usage_stats(cg)
    except CgroupError:
        return Stats()
