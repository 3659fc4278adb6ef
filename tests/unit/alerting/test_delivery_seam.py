"""Where the engine meets delivery: what the service asks of the dispatcher (alerting.delivery.AlertDispatcher)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from alerting.delivery import AlertDispatcher
from alerting.engine import Engine
from alerting.notify.config import NotifyConfig
from alerting.notify.dispatcher import NotifyStatus
from alerting.rules import load_rules_text
from alerting.service import AlertService
from alerting.settings import AlertingSettings
from tests.support.engine import T0, Recorder
from vigil.core.clock import ManualClock
from vigil.core.settings import MqttSettings


class FakeDispatcher:
    """Records what the service asks of delivery."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def wake(self) -> None:
        self.calls.append(("wake",))

    def acknowledge(self, key: str, by: str, comment: str = "") -> bool:
        self.calls.append(("acknowledge", key, by, comment))
        return True

    def add_silence(self, match: Mapping[str, str], until: float, *, by: str, comment: str = "") -> str:
        self.calls.append(("add_silence", dict(match), until, by, comment))
        return "s1"

    def expire_silence(self, silence_id: str) -> bool:
        self.calls.append(("expire_silence", silence_id))
        return True

    def status(self) -> NotifyStatus:
        return NotifyStatus((), (), (), 0)

    def reload(self, config: NotifyConfig) -> None:
        self.calls.append(("reload", config))

    async def run(self) -> None:
        pass

    def close(self) -> None:
        pass


def _service(clock: ManualClock) -> tuple[AlertService, FakeDispatcher]:
    rules, _ = load_rules_text("rules: [{name: hot, above: 30, for: 1m}]", "r.yaml")
    fake = FakeDispatcher()
    seam: AlertDispatcher = fake  # the fake is a dispatcher as far as the service knows
    engine = Engine(rules, sink=Recorder(), clock=clock)
    return AlertService(AlertingSettings(), MqttSettings(), engine, dispatcher=seam), fake


def _event(value: float, ts: float) -> bytes:
    return json.dumps({"device": "d", "sensor": "s", "metric": "temperature", "value": value, "ts": ts}).encode()


def test_delivery_is_woken_only_by_changes_a_person_hears_of() -> None:
    clock = ManualClock(T0)
    service, fake = _service(clock)
    service.handle("vigil/events/d/temperature", _event(35, T0))  # pending: nobody hears of it
    assert fake.calls == []
    clock.advance(60)
    service.handle("vigil/events/d/temperature", _event(36, T0 + 60))  # firing
    assert fake.calls == [("wake",)]


def test_acknowledgements_and_silences_from_mqtt_reach_delivery() -> None:
    service, fake = _service(ManualClock(T0))
    service.handle("vigil/events/d/temperature", _event(35, T0))
    service.handle("vigil/ack/hot/d/s/temperature", b'{"by": "ana", "comment": "on it"}')
    silence = {"matchers": {"device": "d"}, "until": T0 + 3600, "by": "bo", "comment": "defrost"}
    service.handle("vigil/silences/x1", json.dumps(silence).encode())
    service.handle("vigil/silences/x1", b"")
    assert fake.calls == [("acknowledge", "hot/d/s/temperature", "ana", "on it"),
                          ("add_silence", {"device": "d"}, T0 + 3600, "bo", "defrost"),
                          ("expire_silence", "s1")]
