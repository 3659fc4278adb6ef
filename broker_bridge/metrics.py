"""The bridge's counters, in Prometheus text format on an HTTP port and as a log line a minute."""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from typing import Callable, Optional

__all__ = ["Metrics", "serve_metrics"]

log = logging.getLogger(__name__)

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


class Metrics:
    """Counters plus gauges read from callbacks; ``render()`` gives Prometheus text."""

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

    def render(self) -> str:
        out = []
        for name, help_text in _HELP.items():
            metric = f"vigil_bridge_{name}_total"
            out.append(f"# HELP {metric} {help_text}\n# TYPE {metric} counter")
            if name == "refused":
                for reason, n in sorted(self.refused.items()):
                    out.append(f'{metric}{{reason="{_label(reason)}"}} {n}')
            else:
                out.append(f"{metric} {self.counts[name]}")
        out.append("# HELP vigil_bridge_store_seconds_total time spent in store writes\n"
                   f"# TYPE vigil_bridge_store_seconds_total counter\nvigil_bridge_store_seconds_total "
                   f"{self.store_seconds:.6f}")
        out.append("# HELP vigil_bridge_store_batches_total store write calls\n"
                   f"# TYPE vigil_bridge_store_batches_total counter\nvigil_bridge_store_batches_total "
                   f"{self.store_batches}")
        out.append("# HELP vigil_bridge_lag_seconds receive time minus source time of the last batch's newest reading"
                   f"\n# TYPE vigil_bridge_lag_seconds gauge\nvigil_bridge_lag_seconds {self.lag_seconds:.3f}")
        for name, (help_text, read) in self.gauges.items():
            out.append(f"# HELP vigil_bridge_{name} {help_text}\n# TYPE vigil_bridge_{name} gauge\n"
                       f"vigil_bridge_{name} {read()}")
        return "\n".join(out) + "\n"

    def summary(self) -> str:
        c = self.counts
        refused = sum(self.refused.values())
        avg = (self.store_seconds / self.store_batches * 1000) if self.store_batches else 0.0
        return (f"received {c['received']}, stored {c['stored']}, refused {refused}, duplicates {c['duplicates']}, "
                f"spooled {c['spooled']}, spool dropped {c['spool_dropped']}, store write {avg:.1f} ms avg")


def _label(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


async def serve_metrics(metrics: Metrics, host: str, port: int, started: Optional[asyncio.Event] = None) -> None:
    """A minimal HTTP server: GET /metrics gives the Prometheus text; runs until cancelled."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await asyncio.wait_for(reader.readline(), 5)
            while (await asyncio.wait_for(reader.readline(), 5)) not in (b"\r\n", b"\n", b""):
                pass
            parts = request.split()
            if len(parts) >= 2 and parts[0] == b"GET" and parts[1].split(b"?")[0] == b"/metrics":
                body, status = metrics.render().encode(), "200 OK"
            else:
                body, status = b"not found: try GET /metrics\n", "404 Not Found"
            writer.write(f"HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\n"
                         f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
            await writer.drain()
        except (TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host, port)
    log.info("metrics on http://%s:%d/metrics", host, port)
    if started is not None:
        started.set()
    async with server:
        await server.serve_forever()
