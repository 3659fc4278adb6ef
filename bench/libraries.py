"""Hand-written parts against the library that would replace them (docs/architecture.md, "Why not a library").

Runs what is installed with the server extra: the line-protocol encoder against influxdb-client's
``Point``, MQTT filter matching against paho's and aiomqtt's, and the memory pydantic would add to
the edge agent. Medians of interleaved rounds; expect ±30 % between runs on a shared machine.

    .venv/bin/python bench/libraries.py
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import aiomqtt  # noqa: E402
import paho.mqtt.client as paho  # noqa: E402
from influxdb_client import Point, WritePrecision  # noqa: E402

from vigil.core.event import Event  # noqa: E402
from vigil.core.stores._lineproto import line  # noqa: E402
from vigil.core.topics import filter_matches  # noqa: E402

EVENT = Event("freezer-1", "t0", "temperature", -18.5, 1_700_000_000.123456, "°C", labels=(("site", "kitchen"),))
CASES = [("vigil/+/freezer-1/#", "vigil/readings/freezer-1/t0"), ("a/b/c", "a/b/d"), ("#", "$SYS/broker/uptime")]
TOPICS = [(aiomqtt.Topic(t), f) for f, t in CASES]
EDGE_MEMORY = """
import sys
sys.path.insert(0, sys.argv[1])
def rss():  # current RSS: ru_maxrss of a child started from a big parent starts at the parent's size
    return int(open("/proc/self/statm").read().split()[1]) * 4096 / 2**20
import edge.config
before = rss()
import pydantic
class M(pydantic.BaseModel):
    x: int = 1
M(x=2)
print(rss() - before)
"""


def point() -> str:
    return str(Point("temperature").tag("device", "freezer-1").tag("sensor", "t0").tag("site", "kitchen")
               .field("value", -18.5).time(1_700_000_000_123_456, WritePrecision.US).to_line_protocol())


def match_ours() -> None:
    for f, t in CASES:
        filter_matches(f, t)


def match_paho() -> None:
    for f, t in CASES:
        paho.topic_matches_sub(f, t)


def match_aiomqtt() -> None:
    for t, f in TOPICS:
        t.matches(f)


def main() -> None:
    runs: dict[str, tuple[Callable[[], object], int]] = {
        "line protocol, ours": (lambda: line(EVENT), 1), "line protocol, Point": (point, 1),
        "filter match, ours": (match_ours, len(CASES)), "filter match, paho": (match_paho, len(CASES)),
        "filter match, aiomqtt": (match_aiomqtt, len(CASES)),
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(7):
        for name, (fn, per_call) in runs.items():
            times[name].append(timeit.timeit(fn, number=20_000) / 20_000 / per_call * 1e6)
    for name, us in times.items():
        print(f"{name:24} {statistics.median(us):6.2f} µs")
    odd = Event("x\ny", "back\\", "temperature", 1.0, 1_700_000_000.0, "")
    print("a newline and a trailing backslash, ours: ", line(odd))
    print("                                   Point: ",
          Point("temperature").tag("device", "x\ny").tag("sensor", "back\\").field("value", 1.0).to_line_protocol())
    print(f"'#' matches $SYS/broker/uptime: ours {filter_matches('#', '$SYS/broker/uptime')}, "
          f"paho {paho.topic_matches_sub('#', '$SYS/broker/uptime')}, "
          f"aiomqtt {aiomqtt.Topic('$SYS/broker/uptime').matches('#')}")
    mib = [float(subprocess.run([sys.executable, "-c", EDGE_MEMORY, str(ROOT)], capture_output=True, text=True,
                                check=True).stdout) for _ in range(3)]
    print(f"pydantic on the edge (import and one model, RSS): +{statistics.median(mib):.1f} MiB")


if __name__ == "__main__":
    main()
