"""The rule engine's metrics (``vigil_alerting_*``) as a prometheus-client collector, and the task that
shows them: on the process's registry while the engine runs, served on ``alerting.metrics_listen``
(vigil.core.metrics.serve) when it is set, and under ``vigil up`` by the dashboard's ``/api/v1/metrics`` too.

The counts are the engine's own (alerting/guard.py, the service's transitions), read when a scrape asks;
the outbox and the deliveries are counted in the state file on a read-only connection of the scrape's own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Optional

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from alerting.notify.outbox import OUTBOX_TABLE
from vigil.core import metrics

if TYPE_CHECKING:
    from alerting.service import AlertService

__all__ = ["AlertingMetrics", "run"]

log = logging.getLogger(__name__)


class AlertingMetrics(Collector):
    """What the engine counts, and the depth of its queues in the state file."""

    def __init__(self, service: AlertService, state_path: str) -> None:
        self.service = service
        self.state_path = state_path

    def collect(self) -> Iterator[Metric]:
        # From the scrape's thread: copies of what the event loop may change while this runs.
        service, guard = self.service, self.service.guard
        yield CounterMetricFamily("vigil_alerting_events", "events evaluated by the rules", value=guard.events)
        yield _by("vigil_alerting_refused", "messages refused, by reason (counted, logged once per topic and reason)",
                  "reason", dict(guard.refused), CounterMetricFamily)
        yield _by("vigil_alerting_transitions", "alert state changes published, by the state entered", "state",
                  dict(service.transitions), CounterMetricFamily)
        yield _by("vigil_alerting_held_out", "readings a hold_out rule (jump, noise) flagged and kept out of the "
                  "other rules on their series, by that rule", "rule", dict(service.engine.intake.held_out),
                  CounterMetricFamily)
        yield _by("vigil_alerting_restarts", "engine tasks restarted after a failure (the log says why), by task",
                  "task", dict(guard.restarts), CounterMetricFamily)
        yield GaugeMetricFamily("vigil_alerting_consuming", "1 while the engine is connected and taking messages",
                                value=int(service.client is not None))
        yield GaugeMetricFamily("vigil_alerting_alerts_firing", "alerts firing or flapping (the pipeline alert "
                                "included)", value=guard.firing)
        yield GaugeMetricFamily("vigil_alerting_receivers_failing", "receivers failing delivery now",
                                value=guard.notify_failing)
        counts = self._state_counts()
        if counts is not None:
            outbox, deliveries = counts
            yield GaugeMetricFamily("vigil_alerting_outbox", "state changes committed, not yet taken by the "
                                    "notifier", value=outbox)
            yield _by("vigil_alerting_deliveries", "notifications in the state file, by state (sent, pending: "
                      "waiting or retrying after a failure, sending, failed: given up)", "state", deliveries,
                      GaugeMetricFamily)

    def _state_counts(self) -> Optional[tuple[int, dict[str, int]]]:
        path = Path(self.state_path)
        if not path.exists():
            return None
        try:
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=1)
            try:
                outbox = db.execute(f"SELECT count(*) FROM {OUTBOX_TABLE} WHERE done = 0").fetchone()[0]
                deliveries: dict[str, int] = {"sent": 0, "pending": 0}
                try:
                    deliveries.update(db.execute("SELECT state, count(*) FROM notify_deliveries GROUP BY state"))
                except sqlite3.OperationalError:  # no receivers: no notifier, no table
                    pass
            finally:
                db.close()
        except sqlite3.Error as exc:  # busy or locked: the next scrape
            log.debug("metrics: could not count in %s: %s", path, exc)
            return None
        return int(outbox), deliveries


def _by(name: str, help_text: str, label: str, values: dict[str, int],
        family: type[CounterMetricFamily] | type[GaugeMetricFamily]) -> Metric:
    metric = family(name, help_text, labels=[label])
    for key, n in sorted(values.items()):
        metric.add_metric([key], n)
    return metric


async def run(service: AlertService, state_path: str, listen: Optional[str]) -> None:
    """Show the engine's metrics on the process's registry until cancelled; serve them on ``listen``."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(metrics.registered(AlertingMetrics(service, state_path)))
        except ValueError:  # names taken: a second engine in one process (tests); the first one's are shown
            log.warning("another rule engine in this process shows its metrics; this one's are not shown")
            listen = None
        if listen:
            host, _, port = listen.rpartition(":")
            await metrics.serve(host.strip("[]"), int(port))
        else:
            await asyncio.Event().wait()
