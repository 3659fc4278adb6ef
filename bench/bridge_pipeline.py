"""CPU cost of ``Pipeline.process`` per message, for each format (pure CPU, one run, no I/O).

    .venv/bin/python bench/bridge_pipeline.py [--messages 20000] [--repeat 5]

Each format gets messages from 100 devices with a fresh timestamp each (so none is a
duplicate); the figure is this process's CPU time / messages, the best of a few passes (other load
on the machine only makes a pass slower). A dead-letter row measures refusing malformed JSON.
Last, the memory the duplicate window holds when full.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from broker_bridge.dedup import Deduplicator
from broker_bridge.pipeline import Pipeline
from broker_bridge.settings import BridgeSettings
from vigil.core.event import Event
from vigil.core.topics import Topics

SOURCES = [
    {"name": "shelly", "format": "plain", "topic": "shellies/{device}/ext_temperature/{sensor}",
     "error_values": {"temperature": [85, -127]}},
    {"name": "esphome", "format": "plain", "topic": "esphome/{device}/sensor/{sensor}/state"},
    {"name": "tasmota", "format": "tasmota", "topic": "tele/{device}/SENSOR"},
    {"name": "z2m", "format": "zigbee2mqtt", "topic": "zigbee2mqtt/{device}"},
    {"name": "shelly2", "format": "shelly", "topic": "{device}/events/rpc"},
    {"name": "ha", "format": "json_path", "topic": "home/{device}/climate",
     "options": {"paths": {"temperature": "temperature", "humidity": "humidity"}, "ts_path": "ts"}},
    {"name": "lp", "format": "line_protocol", "topic": "lp/{site}", "options": {"precision": "us"}},
]

Make = Callable[[int, float], tuple[str, bytes]]

CASES: dict[str, Make] = {
    "vigil_json": lambda i, ts: (
        f"vigil/readings/dev{i % 100}/t0",
        f'{{"value":{20 + i % 7}.5,"ts":{ts:.6f},"unit":"°C","metric":"temperature","seq":{i}}}'.encode(),
    ),
    "plain (Shelly gen1)": lambda i, ts: (f"shellies/sh{i % 100}/ext_temperature/0", f"{20 + i % 7}.69".encode()),
    "plain (ESPHome)": lambda i, ts: (f"esphome/node{i % 100}/sensor/room/state", f"{20 + i % 7}.5".encode()),
    "tasmota": lambda i, ts: (
        f"tele/tas{i % 100}/SENSOR",
        f'{{"Time":"2019-01-01T00:00:00","DS18B20":{{"Temperature":{20 + i % 7}.7}},"TempUnit":"C"}}'.encode(),
    ),
    "zigbee2mqtt (4 metrics)": lambda i, ts: (
        f"zigbee2mqtt/z{i % 100}",
        f'{{"temperature":{20 + i % 7}.34,"humidity":44.72,"battery":97,"linkquality":120}}'.encode(),
    ),
    "shelly gen2 NotifyStatus": lambda i, ts: (
        f"shp{i % 100}/events/rpc",
        (f'{{"src":"shp{i % 100}","dst":"shp{i % 100}/events","method":"NotifyStatus",'
         f'"params":{{"ts":{ts:.2f},"temperature:0":{{"id":0,"tC":{20 + i % 7}.5,"tF":74.3}}}}}}').encode(),
    ),
    "json_path (2 metrics)": lambda i, ts: (
        f"home/h{i % 100}/climate", f'{{"temperature":"{20 + i % 7}.1","humidity":40,"ts":{ts:.3f}}}'.encode()
    ),
    "line_protocol": lambda i, ts: (
        f"lp/s{i % 3}",
        f"temperature,device=d{i % 100},sensor=p1,room=lab value={20 + i % 7}.5 {int(ts * 1e6)}".encode(),
    ),
    "refused (malformed JSON)": lambda i, ts: (f"vigil/readings/dev{i % 100}/t0", b'{"value": 21.5, "ts": '),
}


def run(make: Make, n: int, repeat: int) -> tuple[float, int, int]:
    """Best of ``repeat`` timed passes (a fresh pipeline each, so nothing is a duplicate)."""
    base = time.time() - 3600
    now = base + 3600
    messages = [make(i, base + i * 0.001) for i in range(n)]
    best = float("inf")
    events = refused = 0
    for _ in range(repeat):
        pipeline = Pipeline(BridgeSettings.model_validate({"sources": SOURCES}), Topics())
        process = pipeline.process
        outs = []
        start = time.process_time()
        for topic, payload in messages:
            outs.append(process(topic, payload, now))
        best = min(best, time.process_time() - start)
        events, refused = sum(len(o.events) for o in outs), sum(len(o.dead) for o in outs)
    return best / n * 1e6, events, refused


def dedup_memory(series: int, per_series: int) -> float:
    """MB the duplicate memory holds when full (names included), by tracemalloc."""
    dedup = Deduplicator(series, per_series)
    base = time.time()
    tracemalloc.start()
    for s in range(series):
        device = f"device-{s:05d}"
        for i in range(per_series):
            dedup.seen(Event(device, "t0", "temperature", 1.0, base + i, "°C", i))
    used = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return used / 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5, help="timed passes per format; the best is shown")
    args = parser.parse_args()
    print(f"Pipeline.process, {args.messages} messages per format, best of {args.repeat} passes (CPU time), "
          f"Python {sys.version.split()[0]}, load average {os.getloadavg()[0]:.2f}")
    print(f"{'format':28} {'us/message':>11} {'events':>8} {'refused':>8}")
    for name, make in CASES.items():
        us, events, refused = run(make, args.messages, args.repeat)
        print(f"{name:28} {us:11.2f} {events:8d} {refused:8d}")
    defaults = BridgeSettings()
    mb = dedup_memory(defaults.dedup_series, defaults.dedup_per_series)
    print(f"duplicate memory when full ({defaults.dedup_series} series x {defaults.dedup_per_series}): {mb:.1f} MB")


if __name__ == "__main__":
    main()
