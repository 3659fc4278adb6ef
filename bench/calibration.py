"""What calibration costs the bridge: CPU of ``Pipeline.process`` per Vigil JSON reading, without
calibrations, and with 10,000 calibrated series (the readings' own among them). Pure CPU, no I/O;
the best of interleaved passes.

    .venv/bin/python bench/calibration.py [--messages 20000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from broker_bridge.pipeline import Pipeline
from broker_bridge.settings import BridgeSettings
from vigil.core.calibration import Correction
from vigil.core.topics import Topics


def per_message(table: dict[tuple[str, str, str], Correction], n: int, r: int) -> float:
    """CPU µs a message of one pass over ``n`` fresh readings (pass ``r``: its own timestamps)."""
    now = time.time()
    pipeline = Pipeline(BridgeSettings(), Topics(), table)
    messages = [(f"vigil/readings/dev-{i % 100}/t0",
                 json.dumps({"value": -18.0 + i % 7, "ts": now - n + i + r * 0.001, "unit": "C"}).encode())
                for i in range(n)]
    t0 = time.process_time()
    for topic, payload in messages:
        out = pipeline.process(topic, payload, now)
    spent = time.process_time() - t0
    assert out.events and (not table or out.events[0].raw is not None)
    return spent / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    table = {(f"dev-{i}", "t0", "temperature"): Correction(points=((0.3, 0.0), (99.1, 100.0))) for i in range(10_000)}
    plain = calibrated = float("inf")
    for r in range(args.repeat):  # interleaved: the machine's other load falls on both alike
        plain = min(plain, per_message({}, args.messages, r))
        calibrated = min(calibrated, per_message(table, args.messages, r))
    print(f"Pipeline.process, Vigil JSON: {plain:.2f} µs a reading without calibrations, {calibrated:.2f} µs with "
          f"10,000 calibrated series ({calibrated - plain:+.2f} µs, {100 * (calibrated / plain - 1):+.1f} %)")


if __name__ == "__main__":
    main()
