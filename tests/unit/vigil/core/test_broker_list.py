"""Broker lists (failover): the comma form and YAML lists, and clear errors for hostile input."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import EdgeConfigError, load_edge_file
from vigil.app.config import ConfigError, load_config
from vigil.core.settings import MqttSettings
from vigil.core.urls import MAX_BROKERS, UrlError, mask_url, parse_broker_list, parse_broker_url


def test_one_address_is_parsed_as_before_and_a_list_in_order() -> None:
    assert parse_broker_list("mqtt://h", env={}) == [parse_broker_url("mqtt://h", env={})]
    brokers = parse_broker_list(" mqtt://u:p@a:1884 ,mqtt://[::1],mqtt://b.example.", env={})
    assert [(b.host, b.port, b.username) for b in brokers] == [("a", 1884, "u"), ("::1", 1883, None),
                                                              ("b.example.", 1883, None)]
    assert parse_broker_list(["mqtts://a", "mqtts://b:8884"], env={})[1].tls
    assert len(parse_broker_list(",".join(f"mqtt://h{i}" for i in range(MAX_BROKERS)), env={})) == 16


@pytest.mark.parametrize(("value", "message"), [
    ("", "broker 1 of 1 is empty"),
    ("mqtt://a,", "broker 2 of 2 is empty: a stray comma?"),
    ("mqtt://a,,mqtt://b", "broker 2 of 3 is empty"),
    ("mqtt://a, ,mqtt://b", "broker 2 of 3 is empty"),
    ([], "expected a broker URL"),
    (["mqtt://a", 3], "broker 2 of 2 is empty"),
    ("mqtt://a,mqtt://A:1883", "A:1883 is given twice"),
    ("mqtt://a:1884,mqtt://b,mqtt://a:1884", "a:1884 is given twice"),
    ("mqtt://a,mqtts://b", "all brokers must use one scheme; the first is mqtt://"),
    ("mqtts://a,mqtt://b", "the first is mqtts://"),
    (",".join(f"mqtt://h{i}" for i in range(17)), "17 brokers given; at most 16"),
    ("mqtt://bad host", "'bad host' is not a valid host name"),
    ("mqtt://a,mqtt://-b", "'-b' is not a valid host name"),
    ("mqtt://a..b", "not a valid host name"),
    ("mqtt://" + "x" * 64, "not a valid host name"),
    ("mqtt://h\u00e9", "not a valid host name"),
    ("mqtt://h;rm", "not a valid host name"),
    ("mqtt://[zz]:1883", "does not appear to be an IPv4 or IPv6 address"),
    ("mqtt://[127.0.0.1]", "An IPv4 address cannot be in brackets"),
    ("mqtt://a:0", "port must be a number 1-65535"),
    ("mqtt://a:65536", "port must be a number 1-65535"),
    ("mqtt://a:-1", "port must be a number 1-65535"),
    ("mqtt://a:http", "port must be a number 1-65535"),
    ("mqtt://:1883", "no host name"),
    ("http://a,mqtt://b", "the scheme must be mqtt:// or mqtts://"),
    ("mqtt://a/topic,mqtt://b", "no path or query"),
])
def test_hostile_lists_are_refused_with_a_clear_message(value: object, message: str) -> None:
    with pytest.raises(UrlError) as err:
        parse_broker_list(value, env={})  # type: ignore[arg-type]
    assert message in str(err.value)


def test_an_ipv6_broker_prints_as_a_url_that_parses_again() -> None:
    b = parse_broker_list("mqtt://u@[::1]:1884,mqtt://h", env={})[0]
    assert (str(b), b.address) == ("mqtt://u@[::1]:1884", "[::1]:1884")
    assert parse_broker_url(str(b), env={}) == b


def test_passwords_of_every_broker_are_masked() -> None:
    assert mask_url("mqtt://u:s1@a,mqtt://u:s2@b") == "mqtt://u:***@a,mqtt://u:***@b"


def test_vigil_yaml_takes_a_list_or_the_comma_form_and_names_the_line(tmp_path: Path) -> None:
    p = tmp_path / "vigil.yaml"
    p.write_text("mqtt:\n  url:\n    - mqtt://a:1883\n    - mqtt://b:1884\n  username: svc\n")
    config = load_config(p)
    assert config.mqtt.url == "mqtt://a:1883,mqtt://b:1884"
    assert [(b.host, b.port, b.username) for b in config.mqtt.brokers(env={})] == [("a", 1883, "svc"),
                                                                                  ("b", 1884, "svc")]
    assert config.mqtt.broker(env={}).host == "a"
    p.write_text("store:\n  retention: 1d\nmqtt:\n  url: [mqtt://a, mqtts://b]\n")
    with pytest.raises(ConfigError) as err:
        load_config(p)
    assert "vigil.yaml:4: mqtt.url: mqtts://b: all brokers must use one scheme" in str(err.value)
    config = load_config(None, overrides={"mqtt.url": ("mqtt://a,mqtt://b", "--broker")})
    assert [b.host for b in config.mqtt.brokers(env={})] == ["a", "b"]
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides={"mqtt.url": ("mqtt://a,mqtt://a", "--broker")})
    assert "--broker" in str(err.value) and "given twice" in str(err.value)


def test_host_and_port_still_give_one_broker() -> None:
    assert [(b.host, b.port) for b in MqttSettings(host="h", port=1999).brokers(env={})] == [("h", 1999)]


def test_edge_yaml_takes_a_list_and_names_the_line(tmp_path: Path) -> None:
    p = tmp_path / "edge.yaml"
    p.write_text("device: pi\nmqtt:\n  url: [mqtt://a, 'mqtt://b:1884']\nsensors: [{name: a, type: simulated}]\n")
    config = load_edge_file(p)
    assert config.mqtt.url == "mqtt://a,mqtt://b:1884" and [b.port for b in config.mqtt.brokers({})] == [1883, 1884]
    p.write_text("device: pi\nmqtt:\n  url:\n    - mqtt://a\n    - 7\nsensors: [{name: a, type: simulated}]\n")
    with pytest.raises(EdgeConfigError) as err:
        load_edge_file(p)
    assert "edge.yaml:3: mqtt.url: expected a list of broker URLs" in str(err.value)
    p.write_text("device: pi\nmqtt:\n  url: 'mqtt://a,,mqtt://b'\nsensors: [{name: a, type: simulated}]\n")
    with pytest.raises(EdgeConfigError) as err:
        load_edge_file(p)
    assert "edge.yaml:3: mqtt.url: broker 2 of 3 is empty" in str(err.value)
