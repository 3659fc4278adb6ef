"""Every format through the whole pipeline: payloads as the devices' docs show them, then payloads
wrong in each way the format can be wrong. A row of the first table lists the events a user would
find stored: (device, sensor, metric, value, unit, ts); ts None means the receive time."""

from __future__ import annotations

from typing import Optional

import pytest

from broker_bridge.pipeline import Pipeline
from tests.support.pipeline import NOW, one_dead

Row = tuple[str, str, str, float, str, Optional[float]]

GOOD: list[tuple[str, str, bytes, list[Row]]] = [
    # --- Vigil's own JSON (the contract) ---
    ("vigil: minimal", "vigil/readings/freezer/probe1",
     b'{"value":-18.5,"ts":1699999990,"unit":"\xc2\xb0C"}',
     [("freezer", "probe1", "temperature", -18.5, "°C", 1699999990.0)]),
    ("vigil: RFC 3339 ts, metric, seq, °F", "vigil/readings/greenhouse/air",
     b'{"value":77,"ts":"2023-11-14T22:13:00Z","unit":"\xc2\xb0F","metric":"temperature","seq":12}',
     [("greenhouse", "air", "temperature", 25.0, "°C", 1699999980.0)]),
    ("vigil: humidity, ts with offset", "vigil/readings/greenhouse/air",
     b'{"value":61.5,"ts":"2023-11-14T23:13:10+01:00","unit":"%","metric":"humidity"}',
     [("greenhouse", "air", "humidity", 61.5, "%", 1699999990.0)]),
    ("vigil: kelvin", "vigil/readings/lab/k", b'{"value":300.15,"ts":1699999999.5,"unit":"K"}',
     [("lab", "k", "temperature", 27.0, "°C", 1699999999.5)]),
    ("vigil: unicode and spaces in names", "vigil/readings/Kühlhaus 2, Süd/fühler=1",
     '{"value":4.0,"ts":1699999999,"unit":"°C"}'.encode(),
     [("Kühlhaus 2, Süd", "fühler=1", "temperature", 4.0, "°C", 1699999999.0)]),
    # --- plain numbers: Shelly gen1 and ESPHome ---
    ("shelly gen1 ext_temperature (docs)", "shellies/shelly1-B929CC/ext_temperature/0", b"47.69",
     [("shelly1-B929CC", "0", "temperature", 47.69, "°C", None)]),
    ("shelly gen1 H&T humidity", "shellies/shellyht-6FD3B3/sensor/humidity", b"44.5",
     [("shellyht-6FD3B3", "main", "humidity", 44.5, "%", None)]),
    ("esphome state (docs)", "esphome/livingroom/sensor/living_room_temperature/state", b"21.5",
     [("livingroom", "living_room_temperature", "temperature", 21.5, "°C", None)]),
    ("plain with spaces and newline", "esphome/n1/sensor/t/state", b" -3.25\n",
     [("n1", "t", "temperature", -3.25, "°C", None)]),
    ("plain exponent", "esphome/n1/sensor/t/state", b"2.15e1", [("n1", "t", "temperature", 21.5, "°C", None)]),
    ("w1 millidegrees scaled", "w1/pi/28-0316a2792bff", b"21562",
     [("pi", "28-0316a2792bff", "temperature", 21.562, "°C", None)]),
    ("w1_slave text", "esphome/pi/sensor/28-0316a2792bff/state",
     b"72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=21562\n",
     [("pi", "28-0316a2792bff", "temperature", 21.562, "°C", None)]),
    ("w1_slave below zero", "esphome/pi/sensor/28-1/state",
     b"5e ff 4b 46 7f ff 02 10 8d : crc=8d YES\n5e ff 4b 46 7f ff 02 10 8d t=-10125",
     [("pi", "28-1", "temperature", -10.125, "°C", None)]),
    # --- Tasmota ---
    ("tasmota DS18B20 (docs)", "tele/sonoff-th/SENSOR",
     b'{"Time":"2019-01-01T00:00:00","DS18B20":{"Temperature":49.7},"TempUnit":"C"}',
     [("sonoff-th", "DS18B20", "temperature", 49.7, "°C", None)]),
    ("tasmota AM2301 in °F, two readings", "tele/th16/SENSOR",
     b'{"Time":"2023-11-14T22:12:00+00:00","AM2301":{"Temperature":68.0,"Humidity":40.1,"DewPoint":43.2},'
     b'"TempUnit":"F"}',
     [("th16", "AM2301", "temperature", 20.0, "°C", 1699999920.0),
      ("th16", "AM2301", "humidity", 40.1, "%", 1699999920.0),
      ("th16", "AM2301", "dew_point", 6.222222, "°C", 1699999920.0)]),
    ("tasmota two DS18B20 and a switch", "tele/pool/SENSOR",
     b'{"Time":"2019-01-01T00:00:00","Switch1":"ON","DS18B20-1":{"Id":"00000A1B2C3D","Temperature":24.1},'
     b'"DS18B20-2":{"Id":"00000A1B2C3E","Temperature":25.3},"TempUnit":"C"}',
     [("pool", "DS18B20-1", "temperature", 24.1, "°C", None),
      ("pool", "DS18B20-2", "temperature", 25.3, "°C", None)]),
    ("tasmota BME280 in mmHg", "tele/wx/SENSOR",
     b'{"Time":"2019-01-01T00:00:00","BME280":{"Temperature":20.0,"Pressure":760.0},"PressureUnit":"mmHg",'
     b'"TempUnit":"C"}',
     [("wx", "BME280", "temperature", 20.0, "°C", None), ("wx", "BME280", "pressure", 1013.25, "hPa", None)]),
    ("tasmota local Time in the configured zone", "berlin/tele/th1/SENSOR",
     b'{"Time":"2023-11-14T23:13:00","SI7021":{"Temperature":21.0}}',
     [("th1", "SI7021", "temperature", 21.0, "°C", 1699999980.0)]),
    ("tasmota ENERGY", "tele/plug/SENSOR",
     b'{"Time":"2019-01-01T00:00:00","ENERGY":{"TotalStartTime":"2019-01-01T00:00:00","Total":1.234,'
     b'"Yesterday":0.1,"Today":0.2,"Power":55,"ApparentPower":60,"Factor":0.9,"Voltage":231,"Current":0.25}}',
     [("plug", "ENERGY", "energy", 1.234, "kWh", None), ("plug", "ENERGY", "power", 55.0, "W", None),
      ("plug", "ENERGY", "voltage", 231.0, "V", None), ("plug", "ENERGY", "current", 0.25, "A", None)]),
    ("tasmota two-channel meter", "tele/sh25/SENSOR",
     b'{"Time":"2019-01-01T00:00:00","ENERGY":{"Total":0.5,"Power":[12,0],"Voltage":230}}',
     [("sh25", "ENERGY", "energy", 0.5, "kWh", None), ("sh25", "ENERGY-1", "power", 12.0, "W", None),
      ("sh25", "ENERGY-2", "power", 0.0, "W", None), ("sh25", "ENERGY", "voltage", 230.0, "V", None)]),
    # --- zigbee2mqtt ---
    ("zigbee2mqtt (docs)", "zigbee2mqtt/0x00158d0001b79111",
     b'{"temperature":27.34,"humidity":44.72,"battery":97,"linkquality":120}',
     [("0x00158d0001b79111", "main", "temperature", 27.34, "°C", None),
      ("0x00158d0001b79111", "main", "humidity", 44.72, "%", None),
      ("0x00158d0001b79111", "main", "battery", 97.0, "%", None),
      ("0x00158d0001b79111", "main", "linkquality", 120.0, "lqi", None)]),
    ("zigbee2mqtt pressure, mV voltage, last_seen epoch ms", "zigbee2mqtt/weather",
     b'{"pressure":1012.5,"voltage":2995,"last_seen":1699999990000,"action":"","state":"ON"}',
     [("weather", "main", "pressure", 1012.5, "hPa", 1699999990.0),
      ("weather", "main", "voltage", 2.995, "V", 1699999990.0)]),
    ("zigbee2mqtt last_seen ISO", "zigbee2mqtt/kitchen",
     b'{"temperature":20.5,"last_seen":"2023-11-14T23:13:05+01:00"}',
     [("kitchen", "main", "temperature", 20.5, "°C", 1699999985.0)]),
    # --- Shelly gen2 ---
    ("shelly gen2 NotifyStatus (docs)", "shellyplusht-08b61fcb7f3c/events/rpc",
     b'{"src":"shellyplusht-08b61fcb7f3c","dst":"shellyplusht-08b61fcb7f3c/events","method":"NotifyStatus",'
     b'"params":{"ts":1699999996.16,"temperature:0":{"id":0,"tC":23.5,"tF":74.3}}}',
     [("shellyplusht-08b61fcb7f3c", "temperature:0", "temperature", 23.5, "°C", 1699999996.16)]),
    ("shelly gen2 full status: H&T, battery", "ht/events/rpc",
     b'{"src":"shellyplusht-1","method":"NotifyFullStatus","params":{"ts":1699999990.0,'
     b'"humidity:0":{"id":0,"rh":55.2},"devicepower:0":{"id":0,"battery":{"V":5.43,"percent":93},'
     b'"external":{"present":false}},"wifi":{"rssi":-60},"temperature:0":{"id":0,"tC":21.0,"tF":69.8}}}',
     [("ht", "humidity:0", "humidity", 55.2, "%", 1699999990.0),
      ("ht", "devicepower:0", "battery", 93.0, "%", 1699999990.0),
      ("ht", "devicepower:0", "voltage", 5.43, "V", 1699999990.0),
      ("ht", "wifi", "rssi", -60.0, "dBm", 1699999990.0),
      ("ht", "temperature:0", "temperature", 21.0, "°C", 1699999990.0)]),
    ("shelly gen2 switch power meter", "plug/events/rpc",
     b'{"src":"shellyplusplugs-1","method":"NotifyStatus","params":{"ts":1699999990.0,"switch:0":'
     b'{"id":0,"apower":12.5,"voltage":230.1,"current":0.06,"aenergy":{"total":1500.0},'
     b'"temperature":{"tC":40.1,"tF":104.2}}}}',
     [("plug", "switch:0", "power", 12.5, "W", 1699999990.0),
      ("plug", "switch:0", "voltage", 230.1, "V", 1699999990.0),
      ("plug", "switch:0", "current", 0.06, "A", 1699999990.0),
      ("plug", "switch:0", "energy", 1.5, "kWh", 1699999990.0),
      ("plug", "switch:0", "temperature", 40.1, "°C", 1699999990.0)]),
    ("shelly gen2 component status topic", "shellyplusht-1/status/temperature:0",
     b'{"id":0,"tC":22.1,"tF":71.8}',
     [("shellyplusht-1", "temperature:0", "temperature", 22.1, "°C", None)]),
    # --- JSON with a path (Home Assistant style) ---
    ("json_path value_json.temperature", "home/kitchen/aqara1", b'{"temperature":21.3,"humidity":40}',
     [("aqara1", "main", "temperature", 21.3, "°C", None)]),
    ("json_path unit path", "home/k/a", b'{"temperature":68,"unit":"\xc2\xb0F"}',
     [("a", "main", "temperature", 20.0, "°C", None)]),
    ("json_path number as string", "home/kitchen/aqara1", b'{"temperature":"21.3"}',
     [("aqara1", "main", "temperature", 21.3, "°C", None)]),
    ("json_path paths, list index, ts and unit paths", "hass/attic/state",
     b'{"time":"2023-11-14T22:13:00Z","sensors":{"air":[{"t":20,"rh":30}]}}',
     [("attic", "main", "temperature", 20.0, "°C", 1699999980.0),
      ("attic", "main", "humidity", 30.0, "%", 1699999980.0)]),
    # --- InfluxDB line protocol ---
    ("line protocol with tags and ns time", "telegraf/host1",
     b"temperature,device=freezer,sensor=probe1,room=lab value=-18.5 1699999990000000000",
     [("freezer", "probe1", "temperature", -18.5, "°C", 1699999990.0)]),
    ("line protocol several fields and lines, int field, no time", "telegraf/host1",
     b"climate,device=greenhouse temperature=24.1,humidity=61i,door=\"open\",ok=true\n"
     b"# a comment\n\nclimate,device=greenhouse co2=800i\n",
     [("greenhouse", "main", "temperature", 24.1, "°C", None), ("greenhouse", "main", "humidity", 61.0, "%", None),
      ("greenhouse", "main", "co2", 800.0, "ppm", None)]),
    ("line protocol escapes", "telegraf/h",
     b"temperature,device=cold\\ room\\,\\ north,sensor=a\\=b value=4.5 1699999990000000000",
     [("cold room, north", "a=b", "temperature", 4.5, "°C", 1699999990.0)]),
    ("line protocol seconds precision, device from topic", "lp_s/boiler", b"temperature value=65.5 1699999990",
     [("boiler", "main", "temperature", 65.5, "°C", 1699999990.0)]),
]


@pytest.mark.parametrize(("case", "topic", "payload", "expected"), GOOD, ids=[g[0] for g in GOOD])
def test_good_payloads_become_these_events(
    pipeline: Pipeline, case: str, topic: str, payload: bytes, expected: list[Row]
) -> None:
    out = pipeline.process(topic, payload, NOW)
    assert out.dead == [], [(d.reason, d.detail) for d in out.dead]
    got = [(e.device, e.sensor, e.metric, e.value, e.unit, e.ts) for e in out.events]
    assert len(got) == len(expected), got
    for g, (device, sensor, metric, value, unit, ts) in zip(got, expected):
        assert g[:3] == (device, sensor, metric)
        assert g[3] == pytest.approx(value, abs=1e-6)
        assert g[4] == unit
        assert g[5] == pytest.approx(NOW if ts is None else ts, abs=1e-6)


def test_labels_from_topic_source_and_device(pipeline: Pipeline) -> None:
    from tests.support.pipeline import make_pipeline

    p = make_pipeline(device_labels={"aqara1": {"site": "home", "room": "kitchen-by-config"}})
    out = p.process("home/kitchen/aqara1", b'{"temperature":21.3}', NOW)
    assert out.events[0].labels == (("room", "kitchen-by-config"), ("site", "home"))
    out = pipeline.process("home/kitchen/aqara1", b'{"temperature":21.3}', NOW)
    assert out.events[0].labels == (("room", "kitchen"),)
    out = pipeline.process("telegraf/host1", b"temperature,device=f,room=lab value=1", NOW)
    assert out.events[0].labels == (("host", "host1"), ("room", "lab"))
    # Escaped commas, = and quotes in a tag are stored as they are meant, never re-injected.
    out = pipeline.process("telegraf/h", rb't,device=a\,b,room=x\,y\=z"q value=1', NOW)
    assert (out.events[0].device, out.events[0].labels) == ("a,b", (("host", "h"), ("room", 'x,y=z"q')))


def test_shelly_button_events_are_passed_over_not_refused(pipeline: Pipeline) -> None:
    frame = b'{"src":"shellyplus1-1","method":"NotifyEvent","params":{"ts":1,"events":[{"event":"single_push"}]}}'
    out = pipeline.process("sw/events/rpc", frame, NOW)
    assert (out.events, out.dead, out.duplicates) == ([], [], 0)
    status = b'{"src":"shellyplus1-1","method":"NotifyStatus","params":{"ts":1699999990,"switch:0":{"output":true}}}'
    out = pipeline.process("sw/events/rpc", status, NOW)
    assert (out.events, out.dead) == ([], [])


BAD: list[tuple[str, str, bytes, str, str]] = [
    # (case, topic, payload, reason, words the detail must hold)
    # --- Vigil JSON ---
    ("vigil: not JSON", "vigil/readings/d/s", b'{"value": 21.5, "ts": ', "json", "not JSON"),
    ("vigil: not UTF-8", "vigil/readings/d/s", b'{"value":1,"ts":1,"unit":"\xff"}', "encoding", "UTF-8"),
    ("vigil: array", "vigil/readings/d/s", b"[1,2]", "schema", "JSON object"),
    ("vigil: bare number", "vigil/readings/d/s", b"21.5", "schema", "JSON object"),
    ("vigil: NaN", "vigil/readings/d/s", b'{"value":NaN,"ts":1699999999,"unit":"C"}', "json", "NaN"),
    ("vigil: Infinity", "vigil/readings/d/s", b'{"value":Infinity,"ts":1699999999,"unit":"C"}', "json", "Infinity"),
    ("vigil: 1e400", "vigil/readings/d/s", b'{"value":1e400,"ts":1699999999,"unit":"C"}', "value", "finite"),
    ("vigil: value string", "vigil/readings/d/s", b'{"value":"21.5","ts":1699999999,"unit":"C"}', "value",
     "expected a number"),
    ("vigil: value bool", "vigil/readings/d/s", b'{"value":true,"ts":1699999999,"unit":"C"}', "value", "True"),
    ("vigil: value null", "vigil/readings/d/s", b'{"value":null,"ts":1699999999,"unit":"C"}', "value", "None"),
    ("vigil: value missing", "vigil/readings/d/s", b'{"ts":1699999999,"unit":"C"}', "schema", "value"),
    ("vigil: ts missing", "vigil/readings/d/s", b'{"value":1,"unit":"C"}', "schema", "ts: this field is required"),
    ("vigil: unit missing", "vigil/readings/d/s", b'{"value":1,"ts":1699999999}', "schema", "unit"),
    ("vigil: ts without offset", "vigil/readings/d/s", b'{"value":1,"ts":"2023-11-14T22:13:00","unit":"C"}', "ts",
     "RFC 3339"),
    ("vigil: ts negative", "vigil/readings/d/s", b'{"value":1,"ts":-5,"unit":"C"}', "ts", "non-negative"),
    ("vigil: ts in the future", "vigil/readings/d/s", b'{"value":1,"ts":1700003600,"unit":"C"}', "ts_future",
     "ahead"),
    ("vigil: ts in ms (far future)", "vigil/readings/d/s", b'{"value":1,"ts":1699999999000,"unit":"C"}',
     "ts_future", "ahead"),
    ("vigil: ts of 1970", "vigil/readings/d/s", b'{"value":1,"ts":12,"unit":"C"}', "ts_past", "before"),
    ("vigil: unknown field", "vigil/readings/d/s", b'{"value":1,"ts":1699999999,"unit":"C","temp":2}', "schema",
     "unknown field 'temp'"),
    ("vigil: unit not of the metric", "vigil/readings/d/s", b'{"value":1,"ts":1699999999,"unit":"hPa"}', "unit",
     "does not convert"),
    ("vigil: unit too long", "vigil/readings/d/s", b'{"value":1,"ts":1699999999,"unit":"' + b"x" * 17 + b'"}',
     "schema", "unit"),
    ("vigil: metric with a space", "vigil/readings/d/s",
     b'{"value":1,"ts":1699999999,"unit":"C","metric":"air temp"}', "schema", "metric"),
    ("vigil: seq negative", "vigil/readings/d/s", b'{"value":1,"ts":1699999999,"unit":"C","seq":-1}', "schema",
     "seq"),
    ("vigil: seq float", "vigil/readings/d/s", b'{"value":1,"ts":1699999999,"unit":"C","seq":1.5}', "schema", "seq"),
    ("vigil: labels not an object", "vigil/readings/d/s", b'{"value":1,"ts":1699999999,"unit":"C","labels":[1]}',
     "schema", "labels"),
    ("vigil: label value not a string", "vigil/readings/d/s",
     b'{"value":1,"ts":1699999999,"unit":"C","labels":{"room":5}}', "schema", "labels.room"),
    ("vigil: reserved label", "vigil/readings/d/s",
     b'{"value":1,"ts":1699999999,"unit":"C","labels":{"device":"x"}}', "name", "reserved"),
    ("vigil: humidity over 100", "vigil/readings/d/s",
     b'{"value":140,"ts":1699999999,"unit":"%","metric":"humidity"}', "range", "outside 0..100"),
    ("vigil: -300 C", "vigil/readings/d/s", b'{"value":-300,"ts":1699999999,"unit":"C"}', "range", "outside"),
    ("vigil: topic with too many levels", "vigil/readings/d/s/extra", b'{"value":1,"ts":1699999999,"unit":"C"}',
     "topic", "does not fit"),
    ("vigil: topic with too few levels", "vigil/readings/d", b'{"value":1,"ts":1699999999,"unit":"C"}',
     "topic", "does not fit"),
    ("vigil: deeply nested", "vigil/readings/d/s", b"[" * 50_000 + b"]" * 50_000, "too_large", "65536"),
    ("vigil: nested too deeply under the bound", "vigil/readings/d/s", b"[" * 30_000, "json", "nested more than 32"),
    ("vigil: empty payload", "vigil/readings/d/s", b"", "json", "not JSON"),
    # --- hostile names ---
    ("name: 10 KB device", "vigil/readings/" + "d" * 10_240 + "/s", b'{"value":1,"ts":1699999999,"unit":"C"}',
     "name", "longer than 128 bytes"),
    ("name: newline in device", "vigil/readings/a\nb/s", b'{"value":1,"ts":1699999999,"unit":"C"}', "name",
     "control character"),
    ("name: blank sensor", "vigil/readings/d/ ", b'{"value":1,"ts":1699999999,"unit":"C"}', "name", "blank"),
    ("name: padded device", "vigil/readings/ d/s", b'{"value":1,"ts":1699999999,"unit":"C"}', "name", "white space"),
    ("name: empty device", "vigil/readings//s", b'{"value":1,"ts":1699999999,"unit":"C"}', "name", "empty"),
    ("name: empty sensor", "vigil/readings/d/", b'{"value":1,"ts":1699999999,"unit":"C"}', "name", "empty"),
    ("name: empty metric from the topic", "shellies/s/sensor/", b"1", "name", "metric"),
    ("name: $ device", "vigil/readings/$SYS/s", b'{"value":1,"ts":1699999999,"unit":"C"}', "name", "reserved"),
    ("name: line separator", "vigil/readings/a\u2028b/s", b'{"value":1,"ts":1699999999,"unit":"C"}', "name",
     "U+2028"),
    ("name: C1 control", "vigil/readings/a\u0085b/s", b'{"value":1,"ts":1699999999,"unit":"C"}', "name", "U+0085"),
    # --- plain ---
    ("plain: word", "esphome/n/sensor/t/state", b"unavailable", "value", "expected a number"),
    ("plain: nan", "esphome/n/sensor/t/state", b"nan", "value", "expected a number"),
    ("plain: inf", "esphome/n/sensor/t/state", b"inf", "value", "expected a number"),
    ("plain: 1e999", "esphome/n/sensor/t/state", b"1e999", "value", "out of range"),
    ("plain: underscores", "esphome/n/sensor/t/state", b"1_000", "value", "expected a number"),
    ("plain: hex", "esphome/n/sensor/t/state", b"0x10", "value", "expected a number"),
    ("plain: two numbers", "esphome/n/sensor/t/state", b"1 2", "value", "expected a number"),
    ("plain: empty", "esphome/n/sensor/t/state", b"", "value", "empty"),
    ("plain: non-ASCII", "esphome/n/sensor/t/state", "21,5°".encode(), "encoding", "ASCII"),
    ("plain: huge digit string", "esphome/n/sensor/t/state", b"1" * 5000, "value", "expected a number"),
    ("plain: DS18B20 power-on 85", "shellies/sh1/ext_temperature/0", b"85", "error_value", "error value"),
    ("plain: DS18B20 disconnected", "shellies/sh1/ext_temperature/0", b"-127.00", "error_value", "error value"),
    ("plain: 1000 C from w1 millidegrees", "w1/pi/x", b"1000000", "range", "outside"),
    ("w1_slave: CRC NO", "esphome/pi/sensor/28-1/state",
     b"72 01 4b 46 7f ff 0e 10 57 : crc=57 NO\n72 01 4b 46 7f ff 0e 10 57 t=21562\n", "value", "CRC check failed"),
    ("w1_slave: no t= line", "esphome/pi/sensor/28-1/state", b"72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n",
     "value", "w1_slave"),
    ("w1_slave: power-on 85000 refused as an error value", "w1/pi/28-1",
     b"50 05 4b 46 7f ff 0c 10 1c : crc=1c YES\n50 05 4b 46 7f ff 0c 10 1c t=85000", "error_value", "85"),
    # --- Tasmota ---
    ("tasmota: not JSON", "tele/t/SENSOR", b"Online", "json", "not JSON"),
    ("tasmota: array", "tele/t/SENSOR", b"[]", "schema", "JSON object"),
    ("tasmota: no sensors (STATE-like)", "tele/t/SENSOR", b'{"Time":"2019-01-01T00:00:00","Switch1":"ON"}',
     "no_readings", "no sensor"),
    ("tasmota: null temperature", "tele/t/SENSOR", b'{"Time":"2019-01-01T00:00:00","DS18B20":{"Temperature":null}}',
     "value", "expected a number"),
    ("tasmota: string temperature", "tele/t/SENSOR",
     b'{"Time":"2019-01-01T00:00:00","DS18B20":{"Temperature":"49.7"}}', "value", "expected a number"),
    ("tasmota: bad Time", "tele/t/SENSOR", b'{"Time":"yesterday","DS18B20":{"Temperature":20}}', "ts", "Time"),
    ("tasmota: Time a number", "tele/t/SENSOR", b'{"Time":5,"DS18B20":{"Temperature":20}}', "ts", "Time"),
    ("tasmota: unknown TempUnit", "tele/t/SENSOR", b'{"DS18B20":{"Temperature":20},"TempUnit":"X"}', "unit",
     "'X'"),
    ("tasmota: TempUnit not a string", "tele/t/SENSOR", b'{"DS18B20":{"Temperature":20},"TempUnit":1}', "schema",
     "TempUnit"),
    ("tasmota: DS18B20 85 is kept without error_values, refused by range?", "tele/t/SENSOR",
     b'{"DS18B20":{"Temperature":400}}', "range", "outside"),
    # --- zigbee2mqtt ---
    ("z2m: not JSON", "zigbee2mqtt/x", b"{temperature: 1}", "json", "not JSON"),
    ("z2m: array", "zigbee2mqtt/x", b'[{"temperature":1}]', "schema", "JSON object"),
    ("z2m: nothing known", "zigbee2mqtt/x", b'{"state":"ON","action":"single"}', "no_readings", "no key"),
    ("z2m: string value", "zigbee2mqtt/x", b'{"temperature":"27.3"}', "value", "expected a number"),
    ("z2m: bool value", "zigbee2mqtt/x", b'{"humidity":true}', "value", "expected a number"),
    ("z2m: bad last_seen", "zigbee2mqtt/x", b'{"temperature":20,"last_seen":"soon"}', "ts", "last_seen"),
    ("z2m: battery 250", "zigbee2mqtt/x", b'{"battery":250}', "range", "outside 0..100"),
    ("z2m: linkquality negative", "zigbee2mqtt/x", b'{"linkquality":-1}', "range", "outside"),
    # --- Shelly ---
    ("shelly gen1: word", "shellies/s/ext_temperature/0", b"error", "value", "expected a number"),
    # an ASCII separator (\x1c-\x1f) counts as space to a regex but not to float(): found by the fuzz test
    ("shelly gen1: file separator before the number", "shellies/s/ext_temperature/0", b"\x1c0", "value",
     "expected a number"),
    ("shelly gen2: not JSON", "s/events/rpc", b"{method", "json", "not JSON"),
    ("shelly gen2: array", "s/events/rpc", b"[]", "value", "expected a number"),
    ("shelly gen2: method not a string", "s/events/rpc", b'{"method":1,"params":{}}', "schema", "method"),
    ("shelly gen2: params missing", "s/events/rpc", b'{"method":"NotifyStatus"}', "schema", "params"),
    ("shelly gen2: bad ts", "s/events/rpc", b'{"method":"NotifyStatus","params":{"ts":"x","temperature:0":{"tC":1}}}',
     "ts", "params.ts"),
    ("shelly gen2: tC string", "s/events/rpc", b'{"method":"NotifyStatus","params":{"temperature:0":{"tC":"1"}}}',
     "value", "expected a number"),
    ("shelly gen2: full status without readings", "s/events/rpc",
     b'{"src":"x","method":"NotifyFullStatus","params":{"wifi":{}}}', "no_readings", "NotifyFullStatus"),
    ("shelly gen2: component status of no measurement", "s/status/ble:0", b'{"rssi":-60}', "no_readings",
     "ble:0"),
    ("shelly gen2: component status not named", "s/status/cloud", b'{"uptime":5}', "schema", "component"),
    ("shelly gen2: component status without a measurement", "s/status/input:0", b'{"state":true}',
     "no_readings", "input:0"),
    # --- json_path ---
    ("json_path: path missing", "home/k/a", b'{"humidity":40}', "no_readings", "temperature"),
    ("json_path: not JSON", "home/k/a", b"21.3 C", "json", "not JSON"),
    ("json_path: value an object", "home/k/a", b'{"temperature":{"v":1}}', "value", "expected a number"),
    ("json_path: numeric string with words", "home/k/a", b'{"temperature":"21 C"}', "value", "expected a number"),
    ("json_path: string nan", "home/k/a", b'{"temperature":"nan"}', "value", "expected a number"),
    ("json_path: index past the end", "hass/a/state", b'{"sensors":{"air":[]}}', "no_readings", "sensors"),
    ("json_path: unit not a string", "home/k/a", b'{"temperature":1,"unit":5}', "schema", "unit"),
    ("json_path: bad ts", "hass/a/state", b'{"time":"noon","sensors":{"air":[{"t":1}]}}', "ts", "time"),
    # --- line protocol ---
    ("lp: no fields", "telegraf/h", b"temperature,device=a", "schema", "line 1"),
    ("lp: field without =", "telegraf/h", b"temperature,device=a value", "schema", "key=value"),
    ("lp: bad number", "telegraf/h", b"temperature,device=a value=abc", "schema", "not a number"),
    ("lp: nan", "telegraf/h", b"temperature,device=a value=nan", "schema", "not a number"),
    ("lp: bad timestamp", "telegraf/h", b"temperature,device=a value=1 soon", "schema", "timestamp"),
    ("lp: extra text", "telegraf/h", b"temperature,device=a value=1 1 2", "schema", "after the timestamp"),
    ("lp: unclosed string", "telegraf/h", b'temperature,device=a note="x value=1', "schema", "closing quote"),
    ("lp: empty tag value", "telegraf/h", b"temperature,device= value=1", "schema", "empty value"),
    ("lp: only strings", "telegraf/h", b'status,device=a state="ok"', "no_readings", "numeric"),
    ("lp: no device anywhere", "telegraf/h", b"temperature value=1", "name", "no device"),
    ("lp: second line bad", "telegraf/h", b"t,device=a value=1\nt,device=a value=", "schema", "line 2"),
    ("lp: not UTF-8", "telegraf/h", b"t,device=\xff value=1", "encoding", "UTF-8"),
    ("lp: measurement not a metric name", "telegraf/h", b"air-temp,device=a value=1", "name", "metric"),
    ("lp: label value with a newline", "telegraf/h", b"t,device=a,room=x\\\n value=1", "schema", "line 1"),
    ("lp: tag key not a label name", "telegraf/h", b"t,device=a,r-oom=x value=1", "name", "label"),
    ("lp: timestamp in the future", "telegraf/h", b"t,device=a value=1 1800000000000000000", "ts_future", "ahead"),
]


@pytest.mark.parametrize(("case", "topic", "payload", "reason", "words"), BAD, ids=[b[0] for b in BAD])
def test_bad_payloads_are_refused_with_a_reason(
    pipeline: Pipeline, case: str, topic: str, payload: bytes, reason: str, words: str
) -> None:
    got_reason, detail = one_dead(pipeline.process(topic, payload, NOW))
    assert (got_reason, words in detail) == (reason, True), detail


def test_zigbee2mqtt_bridge_and_availability_messages_are_passed_over() -> None:
    from tests.support.pipeline import make_pipeline

    p = make_pipeline(sources=[{"name": "z2m", "format": "zigbee2mqtt", "topic": "zigbee2mqtt/#"}])
    for topic in ("zigbee2mqtt/bridge/state", "zigbee2mqtt/kitchen/availability", "zigbee2mqtt/kitchen/set"):
        out = p.process(topic, b'{"state":"online"}', NOW)
        assert (out.events, out.dead) == ([], []), topic
    out = p.process("zigbee2mqtt/kitchen", b'{"temperature":20}', NOW)
    assert [d.reason for d in out.dead] == ["name"]  # zigbee2mqtt/# takes no {device}
    p = make_pipeline(sources=[{"name": "z2m", "format": "zigbee2mqtt", "topic": "zigbee2mqtt/{room}/{device}"}])
    out = p.process("zigbee2mqtt/kitchen/th1", b'{"temperature":20}', NOW)
    assert [(e.device, e.labels) for e in out.events] == [("th1", (("room", "kitchen"),))]
    assert p.process("zigbee2mqtt/bridge/state", b"online", NOW).dead == []


def test_one_bad_reading_of_a_message_does_not_cost_the_others(pipeline: Pipeline) -> None:
    out = pipeline.process("zigbee2mqtt/x", b'{"temperature":21.5,"humidity":140,"battery":"low"}', NOW)
    assert [(e.metric, e.value) for e in out.events] == [("temperature", 21.5)]
    assert sorted(d.reason for d in out.dead) == ["range", "value"]
    out = pipeline.process("tele/pool/SENSOR", b'{"DS18B20-1":{"Temperature":24.1},"DS18B20-2":{"Temperature":-127}}',
                           NOW)
    assert [e.sensor for e in out.events] == ["DS18B20-1"]
    assert out.dead[0].detail.startswith("DS18B20-2/temperature: temperature -127 °C is outside")


def test_scale_multiplies_numbers_and_numeric_strings_alike() -> None:
    from tests.support.pipeline import make_pipeline

    p = make_pipeline(sources=[{"name": "deci", "format": "json_path", "topic": "deci/{device}",
                                "options": {"paths": {"temperature": "t", "humidity": "h"}, "scale": 0.1}}])
    out = p.process("deci/x", b'{"t": 215, "h": "400"}', NOW)
    assert [(e.metric, round(e.value, 6)) for e in out.events] == [("temperature", 21.5), ("humidity", 40.0)]
    assert [d.reason for d in p.process("deci/x", b'{"t": true}', NOW).dead] == ["value"]


_DEEP_ARRAY = b"[" * 100_000 + b"]" * 100_000
_DEEP_OBJECT = b'{"a":' * 100_000 + b"1" + b"}" * 100_000


@pytest.mark.parametrize(("topic", "payload"), [
    *((t, p) for t in ("vigil/readings/d/s", "tele/d/SENSOR", "zigbee2mqtt/d", "home/r/d", "hass/d/state")
      for p in (_DEEP_ARRAY, _DEEP_OBJECT)),
    ("d/events/rpc", _DEEP_OBJECT),  # Shelly gen2 (its gen1 plain numbers do not start with "{")
])
def test_json_nested_100000_deep_is_refused_in_every_json_format_whatever_the_size_bound(
        topic: str, payload: bytes) -> None:
    from tests.support.pipeline import make_pipeline

    big = make_pipeline(max_payload_bytes=16 * 1024 * 1024)
    reason, detail = one_dead(big.process(topic, payload, NOW))
    assert (reason, detail) == ("json", "payload is nested more than 32 levels deep")
