"""The bridge's MQTT link (gmqtt) under the shipped Mosquitto configuration: TLS with the CA from
make-certs.sh, its own user, and a wrong password said as such; and the other server parts'
aiomqtt clients over the same TLS (both take their context from vigil.core.mqtt.ssl_context)."""

from __future__ import annotations

import asyncio

import aiomqtt
import pytest

from broker_bridge.link import Link, LinkError
from tests.support.mqttclient import Session
from tests.support.prodbroker import PASSWORDS, ProductionBroker
from vigil.core.mqtt import build_client
from vigil.core.settings import MqttSettings

pytestmark = pytest.mark.integration


async def test_the_bridge_link_over_tls_as_its_own_user(prod_broker: ProductionBroker) -> None:
    settings = MqttSettings(url=f"mqtts://vigil-bridge:{PASSWORDS['vigil-bridge']}@127.0.0.1:{prod_broker.tls_port}",
                            ca_file=str(prod_broker.ca_file))
    link = Link(settings, "vigil-bridge-tls-test", persistent=False)
    await link.connect()
    try:
        await link.subscribe([("vigil/readings/#", 1)])
        device = Session(prod_broker.plain_port, "pi-1", PASSWORDS["pi-1"])
        assert not device.connect().is_failure
        assert not device.publish("vigil/readings/pi-1/t0", b'{"value": 4.5}').is_failure
        device.close()
        batch = await asyncio.wait_for(link.next_batch(10), 10)
        assert [(d.topic, d.payload) for d in batch] == [("vigil/readings/pi-1/t0", b'{"value": 4.5}')]
        link.ack(batch)
        assert await link.publish_all([("vigil/events/pi-1/temperature", b"{}")]) == []
    finally:
        await link.close()


async def test_a_wrong_password_is_said_as_such(prod_broker: ProductionBroker) -> None:
    settings = MqttSettings(url=f"mqtt://vigil-bridge:wrong@127.0.0.1:{prod_broker.plain_port}")
    with pytest.raises(LinkError, match=r"refused the connection: .*(Not authorized|Bad User Name or Password)"):
        await Link(settings, "vigil-bridge-pw-test").connect()


async def test_a_certificate_the_ca_did_not_sign_is_refused(prod_broker: ProductionBroker) -> None:
    settings = MqttSettings(url=f"mqtts://vigil-bridge:{PASSWORDS['vigil-bridge']}@127.0.0.1:{prod_broker.tls_port}")
    with pytest.raises(LinkError, match=r"cannot connect: .*(certificate|CERTIFICATE)"):
        await Link(settings, "vigil-bridge-ca-test").connect()


async def test_the_rule_engine_client_over_tls_as_its_own_user(prod_broker: ProductionBroker) -> None:
    tls = f"mqtts://vigil-alerting:{PASSWORDS['vigil-alerting']}@127.0.0.1:{prod_broker.tls_port}"
    async with build_client(MqttSettings(url=tls, ca_file=str(prod_broker.ca_file)), "vigil-alerting-tls-test") as c:
        await c.subscribe("vigil/events/#", qos=1)
        device = Session(prod_broker.plain_port, "vigil-bridge", PASSWORDS["vigil-bridge"])
        assert not device.connect().is_failure
        assert not device.publish("vigil/events/pi-1/temperature", b'{"value": 4.5}').is_failure
        device.close()
        message = await asyncio.wait_for(c.messages.__anext__(), 10)
        assert (message.topic.value, message.payload) == ("vigil/events/pi-1/temperature", b'{"value": 4.5}')
    unsigned = MqttSettings(url=tls)  # no CA file: the test CA is not among the system's
    with pytest.raises(aiomqtt.MqttError, match=r"(certificate|CERTIFICATE)"):
        async with build_client(unsigned, "vigil-alerting-tls-test"):
            pass
