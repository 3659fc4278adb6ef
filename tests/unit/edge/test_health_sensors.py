"""The edge agent's own health as metrics (docs/devices.md): two ``file`` sensors, /proc/uptime as
``uptime`` (s) and /proc/net/wireless as ``rssi`` (dBm), read from files shaped like the kernel's."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import load_edge_file
from edge.errors import SensorError
from edge.sensors import build_sensor
from vigil.core.clock import ManualClock

WIRELESS = """Inter-| sta-|   Quality        |   Discarded packets               | Missed | WE
 face | tus | link level noise |  nwid  crypt   frag  retry   misc | beacon | 22
 wlan0: 0000   49.  -61.  -256        0      0      0     12      0        0
"""


def health_config(tmp: Path, uptime: str, wireless: str) -> Path:
    (tmp / "uptime").write_text(uptime)
    (tmp / "wireless").write_text(wireless)
    cfg = tmp / "edge.yaml"
    # the sensors of docs/devices.md, on these files instead of /proc's
    cfg.write_text(f"""device: garage-pi
sensors:
  - {{name: system, type: file, path: {tmp}/uptime, metric: uptime, unit: s, interval: 5m}}
  - {{name: wifi, type: file, path: {tmp}/wireless, pattern: 'wlan0:\\s*\\S+\\s+\\S+\\s+(-?\\d+)',
     metric: rssi, unit: dBm, interval: 5m}}
""")
    return cfg


def read_all(cfg_path: Path) -> dict[str, float]:
    cfg = load_edge_file(str(cfg_path))
    out = {}
    for s in cfg.sensors:
        sensor = build_sensor(s.kind, s.name, s.options, ManualClock(0))
        out[s.metric] = sensor.read()
    return out


def test_uptime_and_rssi_from_proc_shaped_files(tmp_path: Path) -> None:
    assert read_all(health_config(tmp_path, "350735.47 234388.90\n", WIRELESS)) == {"uptime": 350735.47,
                                                                                    "rssi": -61.0}


@pytest.mark.parametrize(("uptime", "wireless"), [
    ("", WIRELESS),  # an empty file
    ("350735.47 234388.90\n", WIRELESS.replace("wlan0", "eth0")),  # no wifi: the pattern finds nothing
])
def test_what_cannot_be_read_is_a_sensor_error_not_a_value(tmp_path: Path, uptime: str, wireless: str) -> None:
    with pytest.raises(SensorError):
        read_all(health_config(tmp_path, uptime, wireless))


@pytest.mark.parametrize(("text", "expected"), [(b"350735.47 234388.90\n", 350735), (b"", None), (b"up", None),
                                                (b"nan 1", None), (b"inf 1", None), (b"\xff\xfe", None)])
def test_the_status_message_carries_the_systems_uptime(tmp_path: Path, text: bytes, expected: object) -> None:
    from edge.agent import system_uptime

    (tmp_path / "uptime").write_bytes(text)
    assert system_uptime(str(tmp_path / "uptime")) == expected
    assert system_uptime(str(tmp_path / "missing")) is None
