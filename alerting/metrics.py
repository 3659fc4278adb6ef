"""The rule engine's metrics (``vigil_alerting_*``) as a prometheus-client collector, and the task that
shows them: on the process's registry while the engine runs, served on ``alerting.metrics_listen``
(vigil.core.metrics.serve) when it is set, and under ``vigil up`` by the dashboard's ``/api/v1/metrics`` too.

The counts are the engine's own (alerting/guard.py, the service's transitions), read when a scrape asks;
the outbox and the deliveries are counted in the state file on a read-only connection of the scrape's own.
Engines sharing a PostgreSQL state (alerting/failover.py) show :class:`SharedMetrics`: one process, the engines of
the partitions it holds, each labelled with its partition, and the shared tables' counts.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from alerting.notify.outbox import OUTBOX_TABLE
from vigil.core import metrics, sqldb

if TYPE_CHECKING:
    from alerting.service import AlertService

__all__ = ["AlertingMetrics", "SharedMetrics", "run", "show"]

log = logging.getLogger(__name__)

_Family = type[CounterMetricFamily] | type[GaugeMetricFamily]


class AlertingMetrics(Collector):
    """What the engine counts, and the depth of its queues in the state file."""

    def __init__(self, service: AlertService, state_path: str) -> None:
        self.service = service
        self.state_path = state_path

    def collect(self) -> Iterator[Metric]:
        yield from _engine_families([((), self.service)], [])
        yield from _state_families(self.state_path, "the state file")


class SharedMetrics(Collector):
    """The metrics of one member of engines sharing a PostgreSQL state (alerting/failover.py): each partition's
    engine this process runs, labelled ``partition``; how many partitions it holds; and the deployment's outbox and
    deliveries, counted in the shared tables (the same figures from every member)."""

    def __init__(self, held: dict[int, AlertService], state: str) -> None:
        self.held = held  # {partition: its engine's service}, kept by the member while engines start and stop
        self.state = state

    def collect(self) -> Iterator[Metric]:
        held = sorted(dict(self.held).items())
        yield GaugeMetricFamily("vigil_alerting_partitions_held", "partitions whose engine runs in this process",
                                value=len(held))
        yield from _engine_families([((str(p),), service) for p, service in held], ["partition"])
        yield from _state_families(self.state, "the shared state (every member's)")


def _engine_families(engines: list[tuple[tuple[str, ...], AlertService]], labels: list[str]) -> Iterator[Metric]:
    """The engines' own counts, one sample per engine with ``labels`` (none for a lone engine)."""
    # From the scrape's thread: copies of what the event loop may change while this runs.
    def one(family: _Family, name: str, help_text: str,
            value: Callable[[AlertService], float]) -> Metric:
        metric = family(name, help_text, labels=labels)
        for key, service in engines:
            metric.add_metric(list(key), value(service))
        return metric

    def by(family: _Family, name: str, help_text: str, label: str,
           values: Callable[[AlertService], dict[str, int]]) -> Metric:
        return _by(family, name, help_text, labels, label, [(key, values(service)) for key, service in engines])

    yield one(CounterMetricFamily, "vigil_alerting_events", "events evaluated by the rules",
              lambda s: s.guard.events)
    yield by(CounterMetricFamily, "vigil_alerting_refused", "messages refused, by reason (counted, logged once per "
             "topic and reason)", "reason", lambda s: s.guard.refused)
    yield by(CounterMetricFamily, "vigil_alerting_transitions", "alert state changes published, by the state "
             "entered", "state", lambda s: s.transitions)
    yield by(CounterMetricFamily, "vigil_alerting_held_out", "readings a hold_out rule (jump, noise) flagged and "
             "kept out of the other rules on their series, by that rule", "rule", lambda s: s.engine.intake.held_out)
    yield by(CounterMetricFamily, "vigil_alerting_restarts", "engine tasks restarted after a failure (the log says "
             "why), by task", "task", lambda s: s.guard.restarts)
    yield one(GaugeMetricFamily, "vigil_alerting_consuming", "1 while the engine is connected and taking messages",
              lambda s: int(s.client is not None))
    yield one(GaugeMetricFamily, "vigil_alerting_alerts_firing", "alerts firing or flapping (the pipeline alert "
              "included)", lambda s: s.guard.firing)
    yield one(GaugeMetricFamily, "vigil_alerting_receivers_failing", "receivers failing delivery now",
              lambda s: s.guard.notify_failing)


def _state_families(state: str, where: str) -> Iterator[Metric]:
    counts = _state_counts(state)
    if counts is None:
        return
    outbox, deliveries = counts
    yield GaugeMetricFamily("vigil_alerting_outbox", f"state changes committed, not yet taken by the notifier, in "
                            f"{where}", value=outbox)
    yield _by(GaugeMetricFamily, "vigil_alerting_deliveries", f"notifications in {where}, by state (sent, pending: "
              "waiting or retrying after a failure, sending, failed: given up)", [], "state", [((), deliveries)])


def _state_counts(state: str) -> Optional[tuple[int, dict[str, int]]]:
    """(outbox entries not yet taken, deliveries by state) in the state file or database; None if it cannot say
    now (no file yet, busy, locked, the database away: the next scrape)."""
    shared = sqldb.is_postgres(state)
    errors = sqldb.errors() if shared else (sqlite3.Error,)  # (psycopg imported only for a shared state)
    try:
        if shared:
            # a short connect timeout: a scrape answers without these while the database is away
            db: Any = sqldb.connect(state, application_name="vigil-metrics", connect_timeout=2)
        else:
            path = Path(state)
            if not path.exists():
                return None
            db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=1)
        try:
            outbox = db.execute(f"SELECT count(*) FROM {OUTBOX_TABLE} WHERE done = 0").fetchone()[0]
            deliveries: dict[str, int] = {"sent": 0, "pending": 0}
            with contextlib.suppress(*errors):  # no receivers: no notifier, no table
                deliveries.update(db.execute("SELECT state, count(*) FROM notify_deliveries GROUP BY state"))
        finally:
            db.close()
    except errors as exc:
        log.debug("metrics: could not count in %s: %s", sqldb.redact(state), exc)
        return None
    return int(outbox), deliveries


def _by(family: _Family, name: str, help_text: str, labels: list[str], label: str,
        samples: list[tuple[tuple[str, ...], dict[str, int]]]) -> Metric:
    """A metric counted by ``label``: for each (values of ``labels``, {value of ``label``: count}) in ``samples``."""
    metric = family(name, help_text, labels=[*labels, label])
    for key, values in samples:
        for what, n in sorted(dict(values).items()):  # (a copy: the event loop may change it meanwhile)
            metric.add_metric([*key, what], n)
    return metric


async def run(service: AlertService, state_path: str, listen: Optional[str]) -> None:
    """Show the engine's metrics on the process's registry until cancelled; serve them on ``listen``."""
    await show(AlertingMetrics(service, state_path), listen)


async def show(collector: Collector, listen: Optional[str]) -> None:
    """Show ``collector``'s metrics on the process's registry until cancelled; serve them on ``listen``."""
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(metrics.registered(collector))
        except ValueError:  # names taken: a second engine in one process (tests); the first one's are shown
            log.warning("another rule engine in this process shows its metrics; this one's are not shown")
            listen = None
        if listen:
            host, _, port = listen.rpartition(":")
            await metrics.serve(host.strip("[]"), int(port))
        else:
            await asyncio.Event().wait()
