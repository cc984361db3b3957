"""The daemon's ``--metrics`` and ``--events``: checked before anything is created, started with the
controller, closed after it."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..errors import AgentCgroupError, InvalidValue
from ..units import parse_size

if TYPE_CHECKING:
    from ..controller.core import Controller
    from ..observe.eventlog import EventLog

log = logging.getLogger("agentcgroup")


@dataclass
class Observing:
    metrics_at: tuple[str, int] | None = None
    events_file: str | None = None
    events_max: int = 64 << 20
    eventlog: EventLog | None = None
    metrics: Any = None

    @classmethod
    def parse(cls, metrics_at: str | None, events_file: str | None, events_max_size: str) -> Observing:
        address = None
        if metrics_at is not None:
            from ..observe.metrics import parse_address

            address = parse_address(metrics_at)
            try:
                import prometheus_client  # noqa: F401
            except ImportError:
                raise InvalidValue(
                    "--metrics", metrics_at, "needs prometheus-client: pip install 'agentcgroup[metrics]'"
                ) from None
        size = parse_size(events_max_size, "--events-max-size")
        if size is None or size < 4096:
            raise InvalidValue("--events-max-size", events_max_size, "at least 4K")
        return cls(address, events_file, size)

    def start(self, ctl: Controller) -> None:
        from ..observe.eventlog import EventLog

        try:
            self.eventlog = EventLog(ctl.events, self.events_file, max_bytes=self.events_max)
        except OSError as exc:
            raise AgentCgroupError(f"cannot write the event log {self.events_file}: {exc.strerror or exc}") from None
        if self.metrics_at is not None:
            from ..observe.metrics import Metrics

            self.metrics = Metrics(ctl)
            host, port = self.metrics_at
            try:
                bound = self.metrics.serve(host, port)
            except OSError as exc:
                raise AgentCgroupError(f"cannot serve metrics at {host}:{port}: {exc.strerror or exc}") from None
            log.info("event=metrics-ready address=%s:%d", *bound)

    def stop_metrics(self) -> None:
        """Before the controller closes: no scrape reads a cgroup that is being removed."""
        if self.metrics is not None:
            self.metrics.close()
            self.metrics = None

    def close(self) -> None:
        self.stop_metrics()
        if self.eventlog is not None:
            self.eventlog.close()
            self.eventlog = None
