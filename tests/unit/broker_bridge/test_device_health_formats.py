"""Device health (battery, signal, uptime) from each format that carries it, with the same metric
names and stored units whatever the format: battery %, voltage V, rssi dBm, linkquality lqi,
uptime s. Then hostile payloads: a bad health field costs that field only, never the message's
other readings, and a message with nothing readable is refused with a reason."""

from __future__ import annotations

from typing import Any

import pytest

from broker_bridge.pipeline import Pipeline
from tests.support.pipeline import NOW, SOURCES, make_pipeline

HEALTH_SOURCES: list[dict[str, Any]] = [
    *(s for s in SOURCES if s["name"] in ("shelly2", "shelly2status", "tasmota", "z2m")),
    {"name": "tasmota_state", "format": "tasmota", "topic": "tele/{device}/STATE"},
    {"name": "tasmota_status", "format": "tasmota", "topic": "stat/{device}/+"},
    {"name": "shelly1info", "format": "shelly", "topic": "shellies/{device}/info"},
    # ESPHome: the node's sensors named battery, rssi, uptime (the sources of docs/devices.md)
    *({"name": f"esphome-{m}", "format": "plain", "topic": f"{{device}}/sensor/{m}/state",
       "defaults": {"sensor": "device", "metric": m, "unit": u}}
      for m, u in (("battery", "%"), ("rssi", "dBm"), ("uptime", "s"))),
]

TASMOTA_STATE = (b'{"Time":"2023-11-14T22:13:00+00:00","Uptime":"1T02:03:04","UptimeSec":93784,"Heap":25,'
                 b'"SleepMode":"Dynamic","Sleep":50,"LoadAvg":19,"MqttCount":3,"POWER":"ON",'
                 b'"Wifi":{"AP":1,"SSId":"home","BSSId":"AA:BB:CC:DD:EE:FF","Channel":6,"Mode":"11n",'
                 b'"RSSI":62,"Signal":-69,"LinkCount":2,"Downtime":"0T00:00:09"}}')
TASMOTA_STATUS0 = (b'{"Status":{"Module":1,"DeviceName":"th16","Topic":"th16"},'
                   b'"StatusPRM":{"Baudrate":115200,"BootCount":17,"RestartReason":"Software/System restart"},'
                   b'"StatusSTS":{"Time":"2023-11-14T23:13:00","UptimeSec":120,'
                   b'"Wifi":{"RSSI":100,"Signal":-41}}}')


@pytest.fixture
def health() -> Pipeline:
    return make_pipeline(sources=HEALTH_SOURCES)


def rows(p: Pipeline, topic: str, payload: bytes) -> set[tuple[str, str, str, float, str]]:
    out = p.process(topic, payload, NOW)
    assert out.dead == [], [(d.reason, d.detail) for d in out.dead]
    return {(e.device, e.sensor, e.metric, round(e.value, 6), e.unit) for e in out.events}


def test_tasmota_state_gives_uptime_signal_and_quality(health: Pipeline) -> None:
    out = health.process("tele/th16/STATE", TASMOTA_STATE, NOW)
    assert {e.ts for e in out.events} == {1699999980.0}  # the message's Time
    assert {(e.device, e.sensor, e.metric, e.value, e.unit) for e in out.events} == {
        ("th16", "system", "uptime", 93784.0, "s"),
        ("th16", "Wifi", "rssi", -69.0, "dBm"),
        ("th16", "Wifi", "wifi_quality", 62.0, "%"),
    }


def test_tasmota_status_reply_gives_boots_too(health: Pipeline) -> None:
    assert rows(health, "stat/th16/STATUS", TASMOTA_STATUS0) == {
        ("th16", "system", "uptime", 120.0, "s"),
        ("th16", "Wifi", "rssi", -41.0, "dBm"),
        ("th16", "Wifi", "wifi_quality", 100.0, "%"),
        ("th16", "system", "boots", 17.0, ""),
    }
    status11 = b'{"StatusSTS":{"UptimeSec":5,"Wifi":{"Signal":-80}}}'
    assert rows(health, "stat/th16/STATUS11", status11) == {
        ("th16", "system", "uptime", 5.0, "s"), ("th16", "Wifi", "rssi", -80.0, "dBm")}


def test_tasmota_sensor_message_unchanged_by_health_keys(health: Pipeline) -> None:
    got = rows(health, "tele/th16/SENSOR", b'{"AM2301":{"Temperature":20.5},"TempUnit":"C"}')
    assert got == {("th16", "AM2301", "temperature", 20.5, "°C")}


def test_shelly_gen2_sys_and_wifi(health: Pipeline) -> None:
    frame = (b'{"src":"shellyplusht-1","method":"NotifyFullStatus","params":{"ts":1699999990.0,'
             b'"sys":{"mac":"08B61F","uptime":3600,"ram_size":246,"restart_required":false},'
             b'"wifi":{"sta_ip":"10.0.0.5","status":"got ip","ssid":"home","rssi":-77},'
             b'"devicepower:0":{"id":0,"battery":{"V":5.43,"percent":12}}}}')
    assert rows(health, "ht/events/rpc", frame) == {
        ("ht", "sys", "uptime", 3600.0, "s"), ("ht", "wifi", "rssi", -77.0, "dBm"),
        ("ht", "devicepower:0", "battery", 12.0, "%"), ("ht", "devicepower:0", "voltage", 5.43, "V")}
    assert rows(health, "ht/status/sys", b'{"uptime":42,"unixtime":1699999990}') == {
        ("ht", "sys", "uptime", 42.0, "s")}
    assert rows(health, "ht/status/wifi", b'{"ssid":"home","rssi":-50}') == {("ht", "wifi", "rssi", -50.0, "dBm")}


def test_shelly_gen1_info(health: Pipeline) -> None:
    info = (b'{"wifi_sta":{"connected":true,"ssid":"home","ip":"10.0.0.9","rssi":-71},"cloud":{"enabled":false},'
            b'"uptime":86400,"bat":{"value":23,"voltage":2.81},"tmp":{"value":21.5}}')
    assert rows(health, "shellies/shellyht-6FD3B3/info", info) == {
        ("shellyht-6FD3B3", "wifi", "rssi", -71.0, "dBm"), ("shellyht-6FD3B3", "sys", "uptime", 86400.0, "s"),
        ("shellyht-6FD3B3", "bat", "battery", 23.0, "%"), ("shellyht-6FD3B3", "bat", "voltage", 2.81, "V")}


def test_zigbee2mqtt_battery_linkquality_voltage_in_the_same_units(health: Pipeline) -> None:
    got = rows(health, "zigbee2mqtt/door-1", b'{"battery":12,"linkquality":24,"voltage":2850,"contact":true}')
    assert got == {("door-1", "main", "battery", 12.0, "%"), ("door-1", "main", "linkquality", 24.0, "lqi"),
                   ("door-1", "main", "voltage", 2.85, "V")}


@pytest.mark.parametrize(("topic", "payload", "row"), [
    ("garden/sensor/battery/state", b"87", ("garden", "device", "battery", 87.0, "%")),
    ("garden/sensor/rssi/state", b"-67", ("garden", "device", "rssi", -67.0, "dBm")),
    ("garden/sensor/uptime/state", b"3600", ("garden", "device", "uptime", 3600.0, "s")),
])
def test_esphome_health_sensors_through_plain(health: Pipeline, topic: str, payload: bytes,
                                              row: tuple[str, str, str, float, str]) -> None:
    assert rows(health, topic, payload) == {row}


def dead(p: Pipeline, topic: str, payload: bytes) -> tuple[set[tuple[str, str]], list[tuple[str, str]]]:
    out = p.process(topic, payload, NOW)
    return {(e.sensor, e.metric) for e in out.events}, [(d.reason, d.detail) for d in out.dead]


@pytest.mark.parametrize("bad", [b'"-69"', b'"strong"', b"null", b"true", b"1e400", b"-1e300", b"[1,2]", b"{}"])
def test_tasmota_bad_signal_costs_that_field_only(health: Pipeline, bad: bytes) -> None:
    payload = b'{"UptimeSec":100,"Wifi":{"Signal":' + bad + b',"RSSI":50}}'
    events, refused = dead(health, "tele/t1/STATE", payload)
    assert events == {("system", "uptime"), ("Wifi", "wifi_quality")}
    assert len(refused) == 1 and refused[0][0] == "value" and "rssi" in refused[0][1]


@pytest.mark.parametrize(("payload", "reason"), [
    (b'{"UptimeSec":NaN}', "json"),
    (b'{"UptimeSec":Infinity}', "json"),
    (b'{"Uptime":"1T00:00:00","Wifi":"down"}', "no_readings"),
    (b'{"Wifi":{"SSId":"x"}}', "no_readings"),
    (b'[{"UptimeSec":1}]', "schema"),
    (b'{"UptimeSec":1', "json"),
    (b'\xff\xfe', "encoding"),
])
def test_tasmota_state_refused_with_a_reason(health: Pipeline, payload: bytes, reason: str) -> None:
    events, refused = dead(health, "tele/t1/STATE", payload)
    assert events == set() and [r[0] for r in refused] == [reason]


@pytest.mark.parametrize("bad", [b'"x"', b"null", b"1e400", b'{"a":1}', b"NaN"])
def test_shelly_bad_health_fields_cost_that_field_only(health: Pipeline, bad: bytes) -> None:
    info = b'{"wifi_sta":{"rssi":' + bad + b'},"uptime":10,"bat":{"value":50}}'
    events, refused = dead(health, "shellies/s1/info", info)
    if bad == b"NaN":  # not JSON at all: the whole message is refused, said so
        assert events == set() and [r[0] for r in refused] == ["json"]
        return
    assert events == {("sys", "uptime"), ("bat", "battery")}
    assert len(refused) == 1 and refused[0][0] == "value" and "rssi" in refused[0][1]
    frame = b'{"src":"x","method":"NotifyStatus","params":{"sys":{"uptime":' + bad + b'},"wifi":{"rssi":-60}}}'
    events, refused = dead(health, "x/events/rpc", frame)
    assert events == {("wifi", "rssi")} and [r[0] for r in refused] == ["value"]


@pytest.mark.parametrize(("topic", "payload", "reason"), [
    ("shellies/s1/info", b'{"wifi_sta":{"connected":false},"cloud":{}}', "no_readings"),
    ("shellies/s1/info", b'{"uptime":1,"bat":"low","wifi_sta":[]}', None),
    ("x/status/sys", b'{"unixtime":1}', "no_readings"),
    ("x/status/wifi", b'"ok"', "value"),
    ("x/status/wifi", b'["rssi",-60]', "value"),
    ("shellies/s1/info", b'{"wifi_sta":{"rssi":-60}', "json"),
])
def test_shelly_health_refusals(health: Pipeline, topic: str, payload: bytes, reason: str) -> None:
    events, refused = dead(health, topic, payload)
    if reason is None:
        assert events == {("sys", "uptime")} and refused == []
    else:
        assert events == set() and [r[0] for r in refused] == [reason]


@pytest.mark.parametrize(("payload", "why"), [(b"-9" * 40, "value"), (b"nan", "value"), (b"", "value"),
                                              (b"1e999", "value"), (b"\xff", "encoding")])
def test_esphome_health_refused(health: Pipeline, payload: bytes, why: str) -> None:
    events, refused = dead(health, "garden/sensor/uptime/state", payload)
    assert events == set() and [r[0] for r in refused] == [why]


def test_zigbee2mqtt_bad_battery_keeps_linkquality(health: Pipeline) -> None:
    events, refused = dead(health, "zigbee2mqtt/d", b'{"battery":"low","linkquality":200,"voltage":1e30}')
    assert events == {("main", "linkquality")}
    assert sorted(r[0] for r in refused) == ["value", "value"]
