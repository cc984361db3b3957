"""The cached /metrics exposition over a fake controller: byte for byte what prometheus-client renders of the
whole registry, a family rendered again only when its samples changed, and the HTTP side (text format for
Prometheus's OpenMetrics-first Accept, gzip when asked, prometheus-client's own app for ``name[]`` filters)."""

from __future__ import annotations

import gzip
import urllib.request
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from agentcgroup.backends.base import Stats
from agentcgroup.controller.events import EventBus

prometheus_client = pytest.importorskip("prometheus_client")
from prometheus_client import generate_latest  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

from agentcgroup.observe.metrics import LIVE_FAMILIES, Metrics  # noqa: E402

PROMETHEUS_ACCEPT = (
    "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
    "text/plain;version=0.0.4;q=0.5,*/*;q=0.1"
)


class Fleet:
    """A fake controller with ``n`` sessions whose memory and CPU figures are set by the test."""

    def __init__(self, n: int) -> None:
        self.sessions = [
            SimpleNamespace(
                name=f"s{i:03d}", priority=("high", "normal", "low")[i % 3], calls={}, cg=i, budget=(i + 1) << 20
            )
            for i in range(n)
        ]
        self.memory = {i: 4096 * (i + 1) for i in range(n)}
        self.cpu = dict.fromkeys(range(n), 1000)
        self.ctl = SimpleNamespace(
            events=EventBus(),
            root=SimpleNamespace(cg=-1),
            session_states=lambda: list(self.sessions),
            manager=SimpleNamespace(memory_pressure=lambda cg: (0.0, 0.0), usage_stats=self._usage),
            config=SimpleNamespace(budget=None),
            admission=SimpleNamespace(waiting=0),
            loop=SimpleNamespace(call_soon_threadsafe=lambda f: None),  # no loop-lag probe here
        )

    def _usage(self, cg: int) -> Stats:
        if cg < 0:
            return Stats(memory_current=sum(self.memory.values()), memory_peak=1 << 30, cpu_usec=0)
        return Stats(memory_current=self.memory[cg], memory_peak=1 << 20, cpu_usec=self.cpu[cg])


@pytest.fixture
def fleet() -> Iterator[tuple[Fleet, Metrics]]:
    f = Fleet(30)
    m = Metrics(f.ctl)  # type: ignore[arg-type]
    yield f, m
    m.close()


def test_the_cached_text_is_what_prometheus_client_renders_of_the_registry(fleet) -> None:
    f, m = fleet
    ex = m.exposition
    assert ex.text() == generate_latest(m.registry)
    first = ex.rendered
    # the names a ?name[]= filter looks up are the families the scrape reads
    assert {r.name: r.kind for r in ex.rows()} == LIVE_FAMILIES
    assert first >= 18  # every family once
    # nothing changed: nothing rendered again, the same bytes
    assert ex.text() == generate_latest(m.registry)
    assert ex.rendered == first
    # one session's CPU moved: only that family again, and its new figure is in the text
    f.cpu[7] = 2_500_000
    text = ex.text()
    assert ex.rendered == first + 1
    assert text == generate_latest(m.registry)
    assert b'agentcg_session_cpu_seconds_total{priority="normal",session="s007"} 2.5\n' in text
    # an event: the counters it moves are rendered again, the gauges are not
    f.ctl.events.emit("call-end", "s001", 0, "c1", priority="normal", outcome="memory", oom_kills=2)
    text = ex.text()
    assert ex.rendered == first + 1 + 2  # calls finished, kernel OOM kills
    assert text == generate_latest(m.registry)
    assert b'agentcg_kernel_oom_kills_total{priority="normal"} 2.0\n' in text
    # every kind of event the metrics count shows at the next scrape (each feeder says what it changed)
    events = f.ctl.events
    for kind, fields in (
        ("throttle", {"priority": "high", "latency_s": 0.0004}),
        ("kill", {"priority": "low"}),
        ("refuse", {"priority": "low", "reason": "over budget"}),
        ("admit", {"priority": "high", "queued_s": 0.0}),
        ("admit", {"priority": "high", "queued_s": 1.5}),
    ):
        events.emit(kind, "s002", 0, "c2", **fields)
        assert ex.text() == generate_latest(m.registry), kind
    assert b"agentcg_admission_wait_seconds_count 1.0\n" in ex.text()
    # a session gone and one new: the per-session families follow, the text still the registry's
    f.sessions.pop(0)
    f.sessions.append(SimpleNamespace(name="late", priority="low", calls={}, cg=0, budget=None))
    text = ex.text()
    assert text == generate_latest(m.registry)
    assert b'session="s000"' not in text and b'session="late"' in text


def _get(url: str, **headers: str) -> tuple[Any, bytes]:
    with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10) as resp:
        return resp.headers, resp.read()


def test_served_as_text_for_prometheus_gzipped_when_asked_and_filters_by_name(fleet) -> None:
    _f, m = fleet
    host, port = m.serve("127.0.0.1", 0)
    url = f"http://{host}:{port}/metrics"
    # Prometheus asks for OpenMetrics first: it gets the text format, which it also accepts (OpenMetrics costs
    # twice as much to render and says nothing more here)
    headers, body = _get(url, Accept=PROMETHEUS_ACCEPT, **{"Accept-Encoding": "gzip"})
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert headers["Content-Encoding"] == "gzip"
    text = gzip.decompress(body).decode()
    names = {fam.name for fam in text_string_to_metric_families(text)}
    assert {"agentcg_session_memory_bytes", "agentcg_calls_finished", "agentcg_loop_lag_seconds"} <= names
    # no gzip unless asked; the same families
    headers, body = _get(url)
    assert "Content-Encoding" not in headers
    assert {fam.name for fam in text_string_to_metric_families(body.decode())} == names
    # prometheus-client's own filter still works (its app serves it)
    for name in ("agentcg_admission_queue_length", "agentcg_calls_finished_total"):
        _headers, body = _get(url + "?name[]=" + name)
        assert [fam.name for fam in text_string_to_metric_families(body.decode())] == [name.removesuffix("_total")]
