"""Two real ``vigil alerting`` processes on one private PostgreSQL share the partitions; one is killed with SIGKILL
while alerts are firing and pending: the other takes its partitions within 15 s, pending timers fire once,
firing alerts are not told again, readings sent meanwhile are judged, and every alert is told exactly once."""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable

import pytest

from alerting.partition import owns
from tests.support.alerting import EngineProcess, MqttProbe, Receiver, wait_for
from tests.support.failover_load import holders

pytestmark = pytest.mark.integration

PARTITIONS = 4
RULES = """
receivers:
  ops: ["{url}"]
grouping: {group_by: [device, alertname], group_wait: 0s, group_interval: 1s}
rules:
  - {name: hot, match: {metric: temperature}, above: 30, notify: ops, message: "hot {{ device }}"}
  - {name: slow, match: {metric: humidity}, above: 80, for: 6s, notify: ops, message: "slow {{ device }}"}
"""


def told(receiver: Receiver) -> Counter[str]:
    """Firing messages per (rule, device), from the receiver's bodies (a message names its alert in its title and
    in its text: counted once)."""
    out: Counter[str] = Counter()
    for text in receiver.texts():
        out.update({f"{m.group(1)} {m.group(2)}" for m in re.finditer(r"\b(hot|slow) (d\d+)\b", text)})
    return out


@pytest.mark.parametrize("victim", ["the-other", "the-dispatcher-s"])
def test_a_killed_engine_s_partitions_are_taken_over_and_nothing_is_told_twice(
        tmp_path: Path, mosquitto: Any, probe: MqttProbe, receiver: Receiver, pg_url: str,
        engine_process: Callable[[list[str]], EngineProcess], victim: str) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES.replace("{url}", receiver.url))
    engines = []
    for i in range(2):
        p = engine_process(["alerting", "--broker", mosquitto.url, "--rules", str(rules), "--state", pg_url,
                            "--client-id", "vigil-alerting", "--data-dir", str(tmp_path / f"data-{i}")])
        p.start()
        engines.append(p)
        time.sleep(0.5)
    # both members hold a share: two partitions each
    wait_for(lambda: len(set(holders(pg_url).values())) == 2 and len(holders(pg_url)) == PARTITIONS,
             timeout=40, what="two engines holding two partitions each")
    held = holders(pg_url)
    assert sorted(Counter(held.values()).values()) == [2, 2], held
    # the victim: the member without partition 0, or the one with it (which sends the notifications)
    victim_member = held[0] if victim == "the-dispatcher-s" else next(m for m in set(held.values()) if m != held[0])
    survivor_member = next(m for m in set(held.values()) if m != victim_member)
    victim_parts = {p for p, m in held.items() if m == victim_member}
    killed_engine = next(e for e in engines if f":{e.proc.pid}" in victim_member)  # type: ignore[union-attr]
    devices = [f"d{i}" for i in range(16)]
    of_victim = [d for d in devices if any(owns(f"{d}/t0/temperature", (p, PARTITIONS)) for p in victim_parts)]
    assert of_victim and len(of_victim) < len(devices)
    for d in devices:
        probe.event(d, 40.0)  # hot: fires at once
    wait_for(lambda: all(told(receiver)[f"hot {d}"] == 1 for d in devices), timeout=30, what="16 hot alerts told")
    for d in devices:
        probe.event(d, 90.0, metric="humidity")  # slow: pending for 6 s
    wait_for(lambda: all("pending" in probe.states(f"slow/{d}/t0/humidity") for d in devices), timeout=15,
             what="16 slow alerts pending")
    killed_engine.kill()
    killed = time.monotonic()
    probe.event("d99", 45.0)  # a reading while nobody holds the victim's partitions (if d99 is one of theirs)
    wait_for(lambda: set(holders(pg_url).values()) == {survivor_member} and len(holders(pg_url)) == PARTITIONS,
             timeout=40, what="the survivor holding every partition")
    taken = time.monotonic() - killed
    print(f"partitions {sorted(victim_parts)} taken over {taken:.1f} s after the SIGKILL")
    assert taken < 20, f"takeover took {taken:.1f} s"
    everyone = [*devices, "d99"]
    wait_for(lambda: all(told(receiver)[f"slow {d}"] == 1 for d in devices) and told(receiver)["hot d99"] == 1,
             timeout=30, what="every slow alert and d99 told")
    time.sleep(3)  # anything told twice would have come by now
    counts = told(receiver)
    assert {k: v for k, v in counts.items() if v != 1} == {}, counts
    assert set(counts) == {f"hot {d}" for d in everyone} | {f"slow {d}" for d in devices}
