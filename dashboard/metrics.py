"""The dashboard's metrics as a prometheus-client collector (``vigil_dashboard_*``), read when a scrape asks.

Registered on the process's registry for the app's lifetime (dashboard/app.py); ``GET /api/v1/metrics``
serves that registry through :func:`vigil.core.metrics.exposition`, so process metrics come along, and under
``vigil up`` the bridge's and the rule engine's too.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .context import Context

__all__ = ["DashboardMetrics"]


class DashboardMetrics(Collector):
    """Reads the dashboard's live state and counters; nothing is counted twice."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def collect(self) -> Iterator[Metric]:
        # From the scrape's thread: copies of what the event loop may change while this runs.
        ctx = self.ctx
        live = ctx.live
        yield GaugeMetricFamily("vigil_dashboard_broker_connected", "1 while the live feed is connected to the broker",
                                value=int(live.connected))
        yield GaugeMetricFamily("vigil_dashboard_live_subscribers", "browsers on the live stream",
                                value=live.subscribers)
        yield CounterMetricFamily("vigil_dashboard_mqtt_messages", "MQTT messages the live feed received",
                                  value=live.counters["messages"])
        yield CounterMetricFamily("vigil_dashboard_mqtt_bad_messages",
                                  "MQTT messages the live feed could not read (the log names the first topics)",
                                  value=live.counters["bad_messages"])
        yield CounterMetricFamily("vigil_dashboard_feed_restarts", "live feed restarts after a failure",
                                  value=getattr(ctx.publisher, "restarts", 0))
        yield GaugeMetricFamily("vigil_dashboard_series", "series with a latest value", value=len(live.latest))
        alerts = GaugeMetricFamily("vigil_dashboard_alerts", "alerts now, by state", labels=["state"])
        states = [a["state"] for a in list(live.alerts.values())]
        for state in ("pending", "firing"):
            alerts.add_metric([state], states.count(state))
        yield alerts
        events = CounterMetricFamily("vigil_dashboard_events",
                                     "dashboard events: HTTP answers by status, auth refusals, acknowledgements, "
                                     "silences, rule previews, ingested readings", labels=["event"])
        for name, value in sorted(dict(ctx.counters).items()):
            events.add_metric([name], value)
        yield events
