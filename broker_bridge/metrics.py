"""The bridge's counters: a prometheus-client collector (served by vigil.core.metrics) and a log line a minute.

The counts live here as plain numbers, changed on the event loop; ``collect`` reads them when a
scrape asks (from the server's thread), so counting costs nothing between scrapes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Callable

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

__all__ = ["Metrics"]

_HELP = {
    "received": "MQTT messages received",
    "stored": "events written to the store",
    "republished": "events republished on the events topics",
    "republish_refused": "events or dead letters the broker refused to take (MQTT 5 reason code, e.g. the ACL)",
    "refused": "messages or readings refused, by reason (dead-lettered)",
    "duplicates": "readings dropped as duplicates (same series and seq or timestamp)",
    "corrected_ts": "readings stored at receive time because their source time was implausible",
    "spooled": "events written to the disk spool because the store was down",
    "spool_dropped": "spooled events dropped because the spool was full",
    "spool_refused": "spooled events the store refused when written later",
    "restarts": "consumers and background tasks restarted after a failure (the log says why)",
}


class Metrics(Collector):
    """Counters plus gauges read from callbacks, as ``vigil_bridge_*`` metrics."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self.gauges: dict[str, tuple[str, Callable[[], float]]] = {}
        self.store_seconds = 0.0
        self.store_batches = 0
        self.lag_seconds = 0.0

    def inc(self, name: str, n: int = 1) -> None:
        self.counts[name] += n

    def refuse(self, reason: str, n: int = 1) -> None:
        self.refused[reason] += n

    def observe_store(self, seconds: float, events: int) -> None:
        self.store_seconds += seconds
        self.store_batches += 1
        self.counts["stored"] += events

    def gauge(self, name: str, help_text: str, read: Callable[[], float]) -> None:
        self.gauges[name] = (help_text, read)

    def collect(self) -> Iterator[Metric]:
        for name, help_text in _HELP.items():
            if name == "refused":
                refused = CounterMetricFamily("vigil_bridge_refused", help_text, labels=["reason"])
                for reason, n in sorted(dict(self.refused).items()):  # a copy: the event loop may add a reason
                    refused.add_metric([reason], n)
                yield refused
            else:
                yield CounterMetricFamily(f"vigil_bridge_{name}", help_text, value=self.counts[name])
        yield CounterMetricFamily("vigil_bridge_store_seconds", "time spent in store writes", value=self.store_seconds)
        yield CounterMetricFamily("vigil_bridge_store_batches", "store write calls", value=self.store_batches)
        yield GaugeMetricFamily("vigil_bridge_lag_seconds",
                                "receive time minus source time of the last batch's newest reading",
                                value=self.lag_seconds)
        for name, (help_text, read) in list(self.gauges.items()):
            yield GaugeMetricFamily(f"vigil_bridge_{name}", help_text, value=read())

    def summary(self) -> str:
        c = self.counts
        refused = sum(self.refused.values())
        avg = (self.store_seconds / self.store_batches * 1000) if self.store_batches else 0.0
        return (f"received {c['received']}, stored {c['stored']}, refused {refused}, duplicates {c['duplicates']}, "
                f"spooled {c['spooled']}, spool dropped {c['spool_dropped']}, store write {avg:.1f} ms avg")
