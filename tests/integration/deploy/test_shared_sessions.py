"""What docs/scaling.md says Mosquitto does with a shared subscription group, checked on the real one.

A member whose persistent session is disconnected keeps getting its share (queued for it, not
lost, late); ending that session with a clean start hands everything to the other members.
"""

from __future__ import annotations

import pytest

from tests.support.mqttclient import Session
from tests.support.services import Mosquitto

pytestmark = pytest.mark.integration

GROUP = "$share/bridges/vigil/readings/#"


def member(broker: Mosquitto, client_id: str) -> Session:
    s = Session(broker.port, None, None, client_id=client_id, session_expiry=3600)
    assert not s.connect().is_failure
    return s


def publish(broker: Mosquitto, n: int, start: int) -> None:
    device = Session(broker.port, None, None)
    try:
        assert not device.connect().is_failure
        for i in range(start, start + n):
            assert not device.publish(f"vigil/readings/pi-1/t{i}", str(i).encode()).is_failure
    finally:
        device.close()


def received(s: Session) -> set[int]:
    return {int(m.payload) for m in s.messages}


def test_a_stopped_member_keeps_its_share_until_it_returns(mosquitto: Mosquitto) -> None:
    a, b = member(mosquitto, "vigil-bridge-a"), member(mosquitto, "vigil-bridge-b")
    a.subscribe(GROUP)
    b.subscribe(GROUP)
    b.close()  # stopped, its session kept
    try:
        publish(mosquitto, 20, 0)
        a.pump_for(1.0)
        got_a = received(a)
        assert 0 < len(got_a) < 20, f"the running member got {len(got_a)} of 20"
        back = member(mosquitto, "vigil-bridge-b")
        try:
            back.pump_for(1.0)
            assert received(back) == set(range(20)) - got_a, "the stopped member's share waited for it"
        finally:
            back.close()
    finally:
        a.close()


def test_ending_a_members_session_hands_everything_to_the_others(mosquitto: Mosquitto) -> None:
    a, b = member(mosquitto, "vigil-bridge-a"), member(mosquitto, "vigil-bridge-b")
    a.subscribe(GROUP)
    b.subscribe(GROUP)
    b.close()
    # docs/scaling.md, retiring a bridge: connect once with its client id, a clean start and no expiry.
    ender = Session(mosquitto.port, None, None, client_id="vigil-bridge-b")
    assert not ender.connect().is_failure
    ender.close()
    try:
        publish(mosquitto, 20, 100)
        a.pump_for(1.0)
        assert received(a) == set(range(100, 120))
    finally:
        a.close()
