"""1-wire thermometers read from fixture sysfs trees: one value and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.errors import SensorError
from edge.sensors.w1 import Options, W1Sensor

GOOD = "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n"
CRC_NO = "72 01 4b 46 7f ff 0e 10 57 : crc=12 NO\n72 01 4b 46 7f ff 0e 10 57 t=23125\n"
POWER_ON = "50 05 4b 46 7f ff 0c 10 1c : crc=1c YES\n50 05 4b 46 7f ff 0c 10 1c t=85000\n"
CUT = "00 00 00 00 00 00 00 00 00 : crc=00 YES\n00 00 00 00 00 00 00 00 00 t=-127000\n"
GARBAGE = "\x00\xff nonsense\n"


def tree(tmp_path: Path, devices: dict[str, str], plain: bool = False) -> Path:
    base = tmp_path / "w1"
    for dev, text in devices.items():
        (base / dev).mkdir(parents=True)
        (base / dev / ("temperature" if plain else "w1_slave")).write_text(text)
    base.mkdir(exist_ok=True)
    return base


def read(base: Path, dev: str) -> float:
    return W1Sensor("freezer", Options(dev, str(base))).read()


def test_one_value_and_four_clear_errors(tmp_path: Path) -> None:
    base = tree(tmp_path, {"28-000000000001": GOOD, "28-000000000002": CRC_NO, "28-000000000003": POWER_ON,
                           "28-000000000004": CUT, "28-000000000006": GARBAGE})
    assert read(base, "28-000000000001") == 23.125
    expected = {
        "28-000000000002": ("crc", "CRC check failed"),
        "28-000000000003": ("power_on", "85.0 °C, its power-on value"),
        "28-000000000004": ("disconnected", "-127 °C"),
        "28-000000000005": ("missing", "no 1-wire device 28-000000000005"),
        "28-000000000006": ("garbage", "not in the kernel's format"),
    }
    for dev, (reason, words) in expected.items():
        with pytest.raises(SensorError) as info:
            read(base, dev)
        assert info.value.reason == reason
        assert info.value.sensor == "freezer"
        assert words in str(info.value)


def test_a_replaced_sensor_is_noticed_and_the_new_id_named(tmp_path: Path) -> None:
    base = tree(tmp_path, {"28-0316a2799fff": GOOD})
    with pytest.raises(SensorError) as info:
        read(base, "28-000000000001")
    assert info.value.reason == "missing"
    assert "present: 28-0316a2799fff" in info.value.detail


def test_missing_base_directory_says_to_enable_the_overlay(tmp_path: Path) -> None:
    with pytest.raises(SensorError) as info:
        read(tmp_path / "nowhere", "28-000000000001")
    assert "w1-gpio" in info.value.detail


def test_the_kernel_temperature_file_is_read_where_there_is_no_w1_slave(tmp_path: Path) -> None:
    base = tree(tmp_path, {"28-000000000001": "-1500\n", "28-000000000002": "85000\n",
                           "28-000000000003": "abc\n"}, plain=True)
    assert read(base, "28-000000000001") == -1.5
    with pytest.raises(SensorError, match="power-on"):
        read(base, "28-000000000002")
    with pytest.raises(SensorError, match="millidegrees"):
        read(base, "28-000000000003")


@pytest.mark.parametrize("text", ["", "crc=57 YES\n", "x : crc=57 YES\nt=\n", "a" * 100_000,
                                  "72 : crc=57 YES\n72 t=1e9999\n"])
def test_hostile_w1_slave_contents_are_errors_not_values(tmp_path: Path, text: str) -> None:
    base = tree(tmp_path, {"28-000000000001": text})
    with pytest.raises(SensorError) as info:
        read(base, "28-000000000001")
    assert info.value.reason == "garbage"
