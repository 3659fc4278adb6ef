"""Configuration errors name the file, the line, the key and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import EdgeConfig, load_edge_file, parse_edge_section, simulated_sensor
from edge.errors import EdgeConfigError
from edge.sensors.simulated import Fault
from vigil.core._yaml import load_yaml

GOOD = """\
device: pi-1
interval: 5s
labels: {site: home}
mqtt:
  url: mqtt://broker.lan:1883
  username: pi
  protocol: "3.1.1"
buffer:
  path: /var/lib/vigil-edge
  max_readings: 5000
  sync: always
sensors:
  - name: freezer
    type: w1
    id: 28-0316a2799fff
    deadband: 0.2
    heartbeat: 5m
  - name: soc
    type: thermal_zone
    interval: 1m
  - name: demo
    type: simulated
    faults:
      - {kind: rise, at: 60s, rate: 0.5}
"""


def parse(text: str, file: str = "edge.yaml") -> EdgeConfig:
    data, positions = load_yaml(text, file)
    return parse_edge_section(data, positions, file, prefix=())


def issues(text: str) -> list[str]:
    with pytest.raises(EdgeConfigError) as info:
        parse(text)
    return [str(i) for i in info.value.issues]


def test_a_good_file_becomes_typed_config() -> None:
    c = parse(GOOD)
    assert c.device == "pi-1" and c.interval == 5 and c.labels == {"site": "home"}
    assert c.mqtt.protocol == "3.1.1" and c.mqtt.username == "pi" and c.client_id == "vigil-edge-pi-1"
    assert c.buffer.max_readings == 5000 and c.buffer.sync == "always"
    freezer, soc, demo = c.sensors
    assert (freezer.kind, freezer.options.id) == ("w1", "28-0316a2799fff")
    assert (freezer.deadband, freezer.heartbeat) == (0.2, 300)
    assert c.interval_of(soc) == 60 and c.interval_of(freezer) == 5
    assert demo.options.faults == (Fault("rise", 60, None, 10.0, 0.5),)


def test_every_mistake_is_reported_with_its_line() -> None:
    text = GOOD.replace("interval: 5s", "interval: soon").replace("max_readings: 5000", "max_readings: -3") \
        .replace("id: 28-0316a2799fff", "id: 28-bad").replace("type: thermal_zone", "type: thermal")
    text += "  - name: demo\n    type: simulated\n    bse: 3\n"
    found = issues(text)
    assert found == [
        "edge.yaml:2: interval: expected a duration such as 30s, 5m, 1h30m or 7d, got 'soon'",
        "edge.yaml:10: buffer.max_readings: expected an integer from 10 to 1e+08, got -3",
        "edge.yaml:15: sensors[0].id: expected a 1-wire id such as 28-0316a2799fff (family-serial), got '28-bad'",
        "edge.yaml:19: sensors[1].type: expected one of w1, thermal_zone, command, file, simulated, got 'thermal'",
        "edge.yaml:25: sensors[3].name: sensor 'demo' is listed twice; names must be unique",
        "edge.yaml:27: sensors[3].bse: unknown key; did you mean 'base'?",
    ]


@pytest.mark.parametrize(("text", "expected"), [
    ("device: pi/1\nsensors: [{name: a, type: simulated}]\n", "edge.yaml:1: device: it contains a '/'"),
    ("device: pi\n", "edge.yaml:1: sensors: no sensors"),
    ("device: pi\nsensors: []\n", "edge.yaml:2: sensors: the list is empty"),
    ("device: pi\nsensors: [{name: '#', type: simulated}]\n", "sensors[0].name: it contains a '#' wildcard"),
    ("device: pi\nsensors: [{name: a}]\n", "edge.yaml:2: sensors[0].type: is required"),
    ("device: pi\nsensors: [{name: a, type: command}]\n", "sensors[0].command: is required"),
    ("device: pi\nsensors: [{name: a, type: file, path: /x, pattern: '(('}]\n", "not a valid regular expression"),
    ("device: pi\nsensors: [{name: a, type: simulated, metric: 'te mp'}]\n", "sensors[0].metric: expected letters"),
    ("device: pi\nsensors: [{name: a, type: simulated, heartbeat: 1m}]\n", "only means something with a deadband"),
    ("device: pi\nsensors: [{name: a, type: simulated, labels: {'bad-name': x}}]\n", "a label name is"),
    ("device: pi\nsensors: [{name: a, type: simulated, labels: {room: \"kitch\\u200Ben\"}}]\n",
     "sensors[0].labels.room: a label value must be visible text: it contains the invisible character U+200B"),
    ("device: pi\nmqtt: {url: 'http://x'}\nsensors: [{name: a, type: simulated}]\n",
     "edge.yaml:2: mqtt.url: http://x: the scheme must be mqtt://"),
    ("device: pi\nmqtt: {ca_file: /nonexistent/ca.pem}\nsensors: [{name: a, type: simulated}]\n",
     "mqtt.ca_file: no such file: /nonexistent/ca.pem"),
    ("device: pi\nmqtt: {protocol: 4}\nsensors: [{name: a, type: simulated}]\n", "expected one of auto, 5, 3.1.1"),
    ("device: pi\nbuffer: {sync: sometimes}\nsensors: [{name: a, type: simulated}]\n",
     "buffer.sync: expected one of always, batch, off"),
    ("device: pi\nbuffer: []\nsensors: [{name: a, type: simulated}]\n", "buffer: expected a mapping"),
    ("device: pi\nsensors: [{name: a, type: simulated, faults: [{kind: melt}]}]\n",
     "sensors[0].faults[0].kind: expected one of spike, stuck, dropout, rise, got 'melt'"),
    ("device: pi\nsensors: [{name: a, type: simulated, interval: .nan}]\n", "interval: expected a duration"),
    ("- just\n- a list\n", "expected a mapping of keys, got a list"),
])
def test_hostile_and_mistaken_configs_get_a_clear_line(text: str, expected: str) -> None:
    assert any(expected in line for line in issues(text)), issues(text)


def test_files_flags_and_a_whole_vigil_yaml(tmp_path: Path) -> None:
    vigil_yaml = tmp_path / "vigil.yaml"
    vigil_yaml.write_text("mqtt:\n  url: mqtt://hub.lan:1883\n  root: home\nedge:\n  device: pi-2\n"
                          "  sensors:\n    - {name: soc, type: thermal_zone}\n")
    c = load_edge_file(str(vigil_yaml), {"--simulate": ((), ["t0", "t1"]), "--interval": (("interval",), "1")})
    assert c.mqtt.url == "mqtt://hub.lan:1883" and c.mqtt.root == "home" and c.interval == 1
    assert [s.name for s in c.sensors] == ["soc", "t0", "t1"]
    with pytest.raises(EdgeConfigError) as info:
        load_edge_file(str(vigil_yaml), {"--broker": (("mqtt", "url"), "ftp://x")})
    assert [str(i) for i in info.value.issues] == [
        "command line: --broker: ftp://x: the scheme must be mqtt:// or mqtts:// (TLS), got ftp://"]
    bad = tmp_path / "edge.yaml"
    bad.write_text("device: pi\n  sensors: [\n")
    with pytest.raises(EdgeConfigError) as info:
        load_edge_file(str(bad))
    assert str(info.value).startswith(f"{bad}:2: not valid YAML")
    with pytest.raises(EdgeConfigError, match="cannot read the file"):
        load_edge_file(str(tmp_path / "missing.yaml"))
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(EdgeConfigError, match="not UTF-8"):
        load_edge_file(str(binary))


def test_vigil_config_check_reports_edge_mistakes_with_lines(tmp_path: Path) -> None:
    from vigil.app.config import ConfigError, load_config

    path = tmp_path / "vigil.yaml"
    path.write_text("edge:\n  device: pi\n  sensors:\n    - name: a\n      type: w1\n      id: nope\n")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert any("vigil.yaml:6" in str(i) and "edge.sensors[0].id" in str(i) for i in info.value.issues), \
        [str(i) for i in info.value.issues]


def test_a_yaml_alias_bomb_is_refused_at_once(tmp_path: Path) -> None:
    lines = ['a: &a ["x","x","x","x","x","x","x","x","x"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [{','.join([f'*{prev}'] * 9)}]")
    bomb = tmp_path / "edge.yaml"
    bomb.write_text("\n".join(lines) + "\n")
    with pytest.raises(EdgeConfigError) as info:
        load_edge_file(str(bomb))
    assert [str(i) for i in info.value.issues] == [
        f"{bomb}:2: YAML aliases (*name) are not supported here; write the value out"]


def test_sync_off_unquoted_is_off_not_a_boolean() -> None:
    assert parse("device: pi\nbuffer: {sync: off}\nsensors: [{name: a, type: simulated}]\n").buffer.sync == "off"


def test_simulated_sensor_builds_config_in_code() -> None:
    door = simulated_sensor("freezer", base=-18, faults=[Fault("rise", at=30, rate=0.5)], interval=1)
    c = EdgeConfig(device="demo", sensors=(door,))
    assert c.interval_of(door) == 1 and door.options.base == -18 and door.kind == "simulated"
