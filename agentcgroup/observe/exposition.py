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


class _One(Collector):
    def __init__(self, metric: Metric) -> None:
        self.metric = metric

    def collect(self) -> Iterator[Metric]:
        yield self.metric


class Exposition:
    """The text of a scrape, from prometheus-client metrics fed by events (counters, histograms: ``metrics``)
    and from :class:`Rows` (gauges read at the scrape: ``rows()``).

    A metric is rendered again only after :meth:`touch` says it changed (its feeder calls it after each
    update: collecting ~100 counter and bucket samples only to find them the same costs more than the rest of
    an idle scrape); a family of rows only when its rows differ from the last scrape's. One scrape at a time
    (a lock); the cache holds one text per metric and family, so it is as bounded as they are. An update that
    races a scrape (counted, not yet touched) shows at the next scrape."""

    def __init__(self, metrics: Iterable[Collector], rows: Callable[[], Iterable[Rows]]) -> None:
        self.metrics = list(metrics)
        self.rows = rows
        self._changes = [0] * len(self.metrics)
        self._index = {id(m): i for i, m in enumerate(self.metrics)}
        self._texts: list[tuple[int, bytes] | None] = [None] * len(self.metrics)
        self._cache: dict[str, tuple[Any, bytes]] = {}
        self._lock = threading.Lock()
        self.rendered = 0  # metrics and families rendered (cache misses), for the tests

    def touch(self, metric: Collector) -> None:
        """``metric`` (one of ``metrics``) changed: render it at the next scrape. Any thread."""
        self._changes[self._index[id(metric)]] += 1

    def text(self) -> bytes:
        with self._lock:
            parts: list[bytes] = []
            for i, metric in enumerate(self.metrics):
                changes, cached = self._changes[i], self._texts[i]
                if cached is None or cached[0] != changes:
                    cached = self._texts[i] = (changes, generate_latest(metric))
                    self.rendered += 1
                parts.append(cached[1])
            seen: dict[str, tuple[Any, bytes]] = {}
            for fam in self.rows():
                hit = self._cache.get(fam.name)
                if hit is None or hit[0] != fam.rows:
                    hit = (fam.rows, generate_latest(_One(fam.build())))
                    self.rendered += 1
                seen[fam.name] = hit
                parts.append(hit[1])
            self._cache = seen  # families gone since the last scrape are dropped
            return b"".join(parts)


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
