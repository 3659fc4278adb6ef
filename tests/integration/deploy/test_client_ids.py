"""Client ids under the shipped Mosquitto configuration: every account connects as itself only.

A device's or a service's credentials connecting with another client's id (a service's, another
device's, an instance's of the same role) or any id at all, over the plain and the TLS listener,
must not disconnect that client, must not resume its persistent session, and must not cost it one
message: deploy/mosquitto/mosquitto.conf sets use_username_as_clientid on each listener, so the
broker replaces the id a client asks for by its username.

The services are stand-ins with each service's own client id and a persistent session, as the
bridge and the rule engine connect (test_services_under_acl.py runs the real processes).
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator

import pytest

from tests.support.mqttclient import NOT_AUTHORIZED, Session
from tests.support.prodbroker import PASSWORDS, ProductionBroker

pytestmark = pytest.mark.integration

PHASE = 30  # readings (and statuses) the device publishes before the attempt, and again after
READINGS = "vigil/readings/pi-1/t0"
STATUS = "vigil/status/pi-1"

# The clients attacked: account -> (what it subscribes to, the topics it must receive everything on).
VICTIMS = {
    "vigil-bridge": ("$share/vigil-bridges/vigil/readings/#", [READINGS]),
    "vigil-alerting": ("vigil/status/+", [STATUS]),
    "vigil-alerting-0": ("vigil/status/+", [STATUS]),
    "vigil-dashboard": ("vigil/#", [READINGS, STATUS]),
}
RANDOM = "<random>"

# (account, the client id it asks for)
ATTEMPTS = [
    ("pi-2", "vigil-bridge"),
    ("pi-2", "vigil-alerting"),
    ("pi-2", "vigil-dashboard"),
    ("pi-2", "pi-1"),
    ("pi-2", RANDOM),
    ("vigil-dashboard", "vigil-bridge"),
    ("vigil-bridge", "vigil-alerting"),
    ("vigil-alerting", "vigil-dashboard"),
    ("vigil-bridge-2", "vigil-bridge"),  # a second bridge of the shared group
    ("vigil-alerting-1", "vigil-alerting-0"),  # another partition of the rule engine
]


@pytest.fixture
def opened() -> Iterator[list[Session]]:
    """Sessions to close after the test, ending their persistent sessions (the broker is the module's)."""
    sessions: list[Session] = []
    yield sessions
    for s in sessions:
        s.close(end_session=True)


def _persistent(broker: ProductionBroker, account: str, client_id: str, *, tls: bool = False) -> Session:
    port = broker.tls_port if tls else broker.plain_port
    return Session(port, account, PASSWORDS[account], client_id=client_id, session_expiry=3600,
                   ca_file=broker.ca_file if tls else None)


def _publish(device: Session, run: str, seqs: range) -> None:
    for seq in seqs:
        body = json.dumps({"value": 4.0, "run": run, "seq": seq}).encode()
        for topic in (READINGS, STATUS):
            reason = device.publish(topic, body)
            assert not reason.is_failure, f"pi-1 could not publish on {topic}: {reason}"


def _seqs(session: Session, topic: str, run: str) -> list[int]:
    out = []
    for m in session.messages:
        if m.topic == topic:
            body = json.loads(m.payload)
            if body.get("run") == run:
                out.append(body["seq"])
    return out


def _received(victims: dict[str, list[Session]], run: str, expected: set[int],
              timeout: float = 10.0) -> dict[str, str]:
    """Wait until every victim has every message of this run; what is missing, per victim."""
    deadline = time.monotonic() + timeout
    while True:
        missing = {}
        for name, sessions in victims.items():
            sessions[-1].pump_for(0.02)
            for topic in VICTIMS[name][1]:
                lost = expected - {seq for s in sessions for seq in _seqs(s, topic, run)}
                if lost:
                    missing[name] = f"{len(lost)} of {len(expected)} on {topic}"
        if not missing or time.monotonic() > deadline:
            return missing


@pytest.mark.parametrize("listener", ["plain", "tls"])
@pytest.mark.parametrize(("account", "client_id"), ATTEMPTS)
def test_an_account_cannot_take_another_clients_id_or_session(
    prod_broker: ProductionBroker, opened: list[Session], listener: str, account: str, client_id: str,
) -> None:
    run = uuid.uuid4().hex
    if client_id == RANDOM:
        client_id = f"x-{run[:12]}"

    def connect(name: str, *, tls: bool = False) -> Session:
        s = _persistent(prod_broker, name, name if name != account else client_id, tls=tls)
        opened.append(s)
        reason = s.connect()
        assert not reason.is_failure, f"{name} could not log in: {reason}"
        return s

    # Each victim is a list of sessions: after a takeover it logs in again, as the services do.
    victims: dict[str, list[Session]] = {}
    for name, (topic_filter, _) in VICTIMS.items():
        if name != account:  # a second login of one's own account is the same client
            victims[name] = [connect(name)]
            victims[name][0].subscribe(topic_filter)
    device = connect("pi-1")
    _publish(device, run, range(PHASE))

    attacker = connect(account, tls=listener == "tls")
    problems = []
    if attacker.session_present:
        problems.append(f"it resumed the session of {client_id!r}")
    down = [name for name, sessions in victims.items() if not sessions[0].alive()]
    if not device.alive():
        down.append("pi-1")
        device = connect("pi-1")
    _publish(device, run, range(PHASE, 2 * PHASE))
    if not attacker.alive():
        problems.append("it lost its connection to the session's owner")
    if attacker.messages:
        problems.append(f"it received {len(attacker.messages)} messages: {attacker.received_topics()[:3]}")
    for name in down:
        if name in victims:
            victims[name].append(connect(name))
    if down:
        problems.append(f"it disconnected {down}")
    missing = _received(victims, run, set(range(2 * PHASE)))
    if missing:
        problems.append(f"lost for good: {missing}")
    # The broker knows the connection by the account's name, whatever id it asked for.
    log = prod_broker.log()
    if f" as {client_id} (p5, c0, k30, u'{account}')" in log:
        problems.append(f"the broker took client id {client_id!r} from it")
    assert not problems, f"{account} asking for client id {client_id!r} over {listener}: " + "; ".join(problems)
    assert re.search(rf" as {re.escape(account)} \(p5, c0, k30, u'{re.escape(account)}'\)", log), log[-1500:]


def test_instance_accounts_made_by_add_service_get_their_roles_grants(
    prod_broker: ProductionBroker, opened: list[Session],
) -> None:
    run = uuid.uuid4().hex
    bridges = [_persistent(prod_broker, name, name) for name in ("vigil-bridge", "vigil-bridge-2")]
    engines = [_persistent(prod_broker, name, name) for name in ("vigil-alerting-0", "vigil-alerting-1")]
    device = _persistent(prod_broker, "pi-1", "pi-1")
    opened.extend([*bridges, *engines, device])
    for s in [*bridges, *engines, device]:
        assert not s.connect().is_failure
    for b in bridges:
        b.subscribe("$share/vigil-bridges/vigil/readings/#")
    for e in engines:
        e.subscribe("vigil/events/#")
    for seq in range(2 * PHASE):
        body = json.dumps({"value": 4.0, "run": run, "seq": seq}).encode()
        assert not device.publish(READINGS, body).is_failure
        assert not bridges[seq % 2].publish("vigil/events/pi-1/temperature", body).is_failure
    expected = set(range(2 * PHASE))

    def shares() -> list[list[int]]:
        for s in [*bridges, *engines]:
            s.pump_for(0.02)
        return [_seqs(b, READINGS, run) for b in bridges]

    deadline = time.monotonic() + 15
    first, second = shares()
    while sorted(first + second) != sorted(expected) and time.monotonic() < deadline:
        first, second = shares()
    # The group hands every reading to exactly one bridge, and to both of them over the run.
    assert sorted(first + second) == sorted(expected) and first and second, (len(first), len(second))
    deadline = time.monotonic() + 15
    while any(set(_seqs(e, "vigil/events/pi-1/temperature", run)) != expected for e in engines):
        assert time.monotonic() < deadline, "a rule-engine partition did not receive every event"
        for e in engines:
            e.pump_for(0.02)
    # The grants are the role's, no more: a bridge account may not forge a device's reading.
    assert bridges[1].publish("vigil/readings/pi-1/t0", b'{"value": 1}').value == NOT_AUTHORIZED
    assert engines[1].publish("vigil/alerts/r/pi-1/t0/temperature", b"").is_failure is False
    assert engines[1].publish("vigil/events/pi-1/temperature", b"{}").value == NOT_AUTHORIZED
