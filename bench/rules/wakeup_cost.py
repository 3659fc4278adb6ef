"""What a wake-up costs: the same events through the rule engine's handling, back to back and with pauses.

    .venv/bin/python bench/rules/wakeup_cost.py [--events 10000] [--series 1000]

In one process, no broker and no socket: ``AlertService.handle`` (decode, evaluate one threshold rule,
no alert) over ``--events`` events of ``--series`` series, then ``Engine.flush`` (one commit, in memory).
Each line is the same work in batches of B events with a pause of P ms after each batch (``time.sleep``, so
the process sleeps as it does between messages); the figure is the process's CPU time per event. Back to back
(no pause) is the cost of the code; the rest is what sleeping between small batches adds on this machine (a
cold cache and branch predictor after other processes ran, and the sleep's own system call). It is why the
engine and the bridge cost several times more per reading at a steady 1,000 readings/s than draining a backlog,
and why a linger that makes fewer, larger batches saves more than trimming the code (docs/proof.md, Issue 18,
The lingers).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))

from alerting.engine import Engine
from alerting.rules import load_rules_text
from alerting.service import AlertService
from alerting.settings import AlertingSettings
from vigil.core.clock import ManualClock
from vigil.core.event import Event
from vigil.core.settings import MqttSettings

# (events per batch, pause after each batch in seconds)
SHAPES = [(5, 0.0), (1, 0.001), (5, 0.005), (10, 0.01), (50, 0.05)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=10000)
    ap.add_argument("--series", type=int, default=1000)
    args = ap.parse_args()
    rules, _ = load_rules_text("rules:\n  - name: hot\n    match: {metric: temperature}\n    above: 60\n", "r.yaml")
    clock = ManualClock(time.time())
    engine = Engine(rules, clock=clock)
    service = AlertService(AlertingSettings(), MqttSettings(), engine)
    now = clock.now()
    messages = [(f"vigil/events/s{i % args.series}/temperature",
                 Event(f"s{i % args.series}", "t0", "temperature", 20.0 + i % 7, now, "°C", i, (), "vigil",
                       now).to_json()) for i in range(args.events)]
    for topic, payload in messages[: args.series * 2]:  # every series known: its first event costs more
        service.handle(topic, payload)
    print(f"{args.events:,} events over {args.series:,} series, one threshold rule, no alert; "
          f"load average {os.getloadavg()[0]:.2f}")
    print(f"{'events a batch':>14}  {'pause':>7}  {'CPU µs an event':>15}  {'x back to back':>14}")
    base = 0.0
    for batch, pause in SHAPES:
        started = time.process_time()
        for i in range(0, len(messages), batch):
            for topic, payload in messages[i:i + batch]:
                service.handle(topic, payload)
            if pause:
                time.sleep(pause)
        engine.flush()
        per_event = (time.process_time() - started) / len(messages) * 1e6
        base = base or per_event
        print(f"{batch:>14}  {pause * 1000:>5.0f} ms  {per_event:>15.2f}  {per_event / base:>14.1f}")


if __name__ == "__main__":
    main()
