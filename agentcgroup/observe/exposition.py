"""Serving the ``agentcg_*`` families cheaply: prometheus-client renders each family, and a family whose
samples are the same as at the last scrape is not rendered again.

Why: prometheus-client's text exposition costs ~6-10 µs a line in Python, and 100 sessions make ~800 lines,
most of which (budgets, calls running, the counters, the memory and CPU of idle sessions) do not change from
one scrape to the next. The text of each family is what ``generate_latest`` makes of that family alone (the
format has no state across families), so the response is byte for byte ``generate_latest(registry)``; the
test suite checks it. Prometheus's own HTTP server machinery (``wsgiref``, as prometheus-client's
``start_http_server``) serves it.

The response is always the classic text format (``text/plain; version=0.0.4``), which every Prometheus
accepts: prometheus-client's OpenMetrics encoder costs twice as much a line and these families carry nothing
only OpenMetrics could say (no exemplars; ``*_created`` series are off). gzip when the scraper accepts it
(Prometheus does), at level 1: a 65 kB scrape becomes ~4 kB in ~0.1 ms.
"""

from __future__ import annotations

import gzip
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from typing import Any, NamedTuple
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CONTENT_TYPE_PLAIN_0_0_4, generate_latest, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer, gzip_accepted
from prometheus_client.registry import Collector, CollectorRegistry

#: gzip level of a compressed scrape: 1 is ~10x cheaper than gzip's default 9 and ~15 % larger
GZIP_LEVEL = 1


class Rows(NamedTuple):
    """One family as plain rows, before prometheus-client objects are built for it: what a scrape compares
    with the last one (cheap), building and rendering the family only when it changed."""

    name: str
    doc: str
    kind: str  # "gauge" or "counter"
    labels: tuple[str, ...]
    rows: list[tuple[tuple[str, ...], float]]

    def build(self) -> Metric:
        family = (GaugeMetricFamily if self.kind == "gauge" else CounterMetricFamily)(
            self.name, self.doc, labels=list(self.labels)
        )
        for values, value in self.rows:
            family.add_metric(list(values), value)
        return family


def _itself(metric: Metric) -> Metric:
    return metric


class _One(Collector):
    def __init__(self, metric: Metric) -> None:
        self.metric = metric

    def collect(self) -> Iterator[Metric]:
        yield self.metric


class Exposition:
    """The text of a scrape, from families that are either prometheus-client metrics (counters, histograms:
    ``metrics``) or :class:`Rows` (gauges read at the scrape: ``rows()``), each rendered again only when its
    samples differ from the last scrape's. One scrape at a time (a lock); the cache holds one text per
    family, so it is as bounded as the families are."""

    def __init__(self, metrics: Iterable[Collector], rows: Callable[[], Iterable[Rows]]) -> None:
        self.metrics = list(metrics)
        self.rows = rows
        self._cache: dict[str, tuple[Any, bytes]] = {}
        self._lock = threading.Lock()
        self.rendered = 0  # families rendered (a cache miss), for the tests and the benchmark

    def text(self) -> bytes:
        with self._lock:
            parts: list[bytes] = []
            seen: dict[str, tuple[Any, bytes]] = {}
            for collector in self.metrics:
                for metric in collector.collect():
                    parts.append(self._render(seen, metric.name, metric.samples, partial(_itself, metric)))
            for fam in self.rows():
                parts.append(self._render(seen, fam.name, fam.rows, fam.build))
            self._cache = seen  # families gone since the last scrape are dropped
            return b"".join(parts)

    def _render(self, seen: dict[str, tuple[Any, bytes]], name: str, key: Any, build: Callable[[], Metric]) -> bytes:
        hit = self._cache.get(name)
        if hit is not None and hit[0] == key:
            seen[name] = hit
            return hit[1]
        text = generate_latest(_One(build()))
        self.rendered += 1
        seen[name] = (key, text)
        return text


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """No access log: the daemon's log is for the controller."""


def serve(host: str, port: int, exposition: Exposition, registry: CollectorRegistry) -> WSGIServer:
    """Serve ``exposition`` at any path of ``host:port`` on a thread of its own (as prometheus-client's
    ``start_http_server``: its threading WSGI server, one thread a request). A request prometheus-client's own
    app knows more about (``?name[]=`` filters, methods other than GET) goes to that app over ``registry``."""
    fallback = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        if environ["REQUEST_METHOD"] != "GET" or "name[]" in parse_qs(environ.get("QUERY_STRING", "")):
            return fallback(environ, start_response)  # type: ignore[no-any-return]
        body = exposition.text()
        headers = [("Content-Type", CONTENT_TYPE_PLAIN_0_0_4)]
        if gzip_accepted(environ.get("HTTP_ACCEPT_ENCODING", "")):
            body = gzip.compress(body, compresslevel=GZIP_LEVEL)
            headers.append(("Content-Encoding", "gzip"))
        start_response("200 OK", headers)
        return [body]

    family, _, _, _, sockaddr = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0]

    class Server(ThreadingWSGIServer):
        address_family = family

    server = make_server(str(sockaddr[0]), port, app, Server, handler_class=_Quiet)
    threading.Thread(target=server.serve_forever, name="agentcg-metrics", daemon=True).start()
    return server
