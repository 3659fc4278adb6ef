"""What the engine's poison guard (alerting/inhand.py) costs per message: fingerprints, one SQLite
insert and delete per batch in a file on disk, nothing handled (handle and acknowledge do nothing).
Compare with the engine's own CPU per event (bench/rules/throughput.py).

    .venv/bin/python bench/rules/inhand.py
    .venv/bin/python bench/rules/inhand.py --messages 100000
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from alerting.inhand import InHand  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=50_000)
    args = parser.parse_args()
    messages = [(f"vigil/events/dev-{i % 1000}/temperature", json.dumps(
        {"device": f"dev-{i % 1000}", "sensor": "t0", "metric": "temperature", "value": 4.0 + i % 7,
         "ts": 1.7e9 + i, "unit": "°C"}).encode()) for i in range(args.messages)]
    with tempfile.TemporaryDirectory() as tmp:
        in_hand = InHand(Path(tmp) / "alerts.poison.db", lambda *a: None, key=lambda m: m)
        for size in (1, 10, 51):  # 51: a full drained batch (alerting/service.py)
            batches = [messages[i:i + size] for i in range(0, len(messages), size)]
            cpu, wall = time.process_time(), time.perf_counter()
            for batch in batches:
                in_hand.consume(batch, lambda t, p: None, lambda ms: None)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            n = len(messages)
            print(f"batches of {size:>2}: {cpu / n * 1e6:6.1f} µs CPU, {wall / n * 1e6:6.1f} µs wall per message")
        in_hand.close()


if __name__ == "__main__":
    main()
