"""thermal_zone, file, command and simulated sensors, with fixture files and an injected clock."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from edge.errors import SensorError
from edge.sensors import command, file, simulated, thermal_zone
from edge.sensors.simulated import Fault
from vigil.core.clock import ManualClock


def test_thermal_zone_reads_millidegrees(tmp_path: Path) -> None:
    (tmp_path / "thermal_zone1").mkdir()
    (tmp_path / "thermal_zone1" / "temp").write_text("48312\n")
    sensor = thermal_zone.ThermalZoneSensor("soc", thermal_zone.Options(1, str(tmp_path)))
    assert sensor.read() == pytest.approx(48.312)
    missing = thermal_zone.ThermalZoneSensor("soc", thermal_zone.Options(7, str(tmp_path)))
    with pytest.raises(SensorError, match=r"cannot read .*thermal_zone7/temp"):
        missing.read()


@pytest.mark.parametrize(("text", "scale", "pattern", "expected"), [
    ("21.5\n", 1.0, None, 21.5),
    ("t=21562", 0.001, None, 21.562),
    ("temp=48.3'C\n", 1.0, r"temp=([\d.]+)", 48.3),
    ("  -4e1 ", 1.0, None, -40.0),
])
def test_file_sensor_parses_a_number(tmp_path: Path, text: str, scale: float, pattern: str | None,
                                     expected: float) -> None:
    path = tmp_path / "value"
    path.write_text(text)
    options = file.Options(str(path), scale, re.compile(pattern) if pattern else None)
    assert file.FileSensor("f", options).read() == pytest.approx(expected)


@pytest.mark.parametrize(("text", "reason"), [("", "no_number"), ("nan", "no_number"), ("inf\n", "no_number"),
                                              ("1e999", "not_finite"), ("\xff\xfe", "no_number")])
def test_file_sensor_rejects_what_is_not_a_finite_number(tmp_path: Path, text: str, reason: str) -> None:
    path = tmp_path / "value"
    path.write_text(text, encoding="latin-1")
    with pytest.raises(SensorError) as info:
        file.FileSensor("f", file.Options(str(path))).read()
    assert info.value.reason == reason


def test_command_sensor_parses_output_and_reports_failures() -> None:
    py = sys.executable
    ok = command.CommandSensor("c", command.Options((py, "-c", "print(\"temp=48.3'C\")"), 5.0, 1.0,
                                                    re.compile(r"temp=([\d.]+)")))
    assert ok.read() == 48.3
    cases = [
        ((py, "-c", "import sys; sys.stderr.write('boom'); sys.exit(3)"), "exit", "exited with 3: boom"),
        ((py, "-c", "import time; time.sleep(5)"), "timeout", "did not finish within 0.3s"),
        ((py, "-c", "print('hello')"), "no_number", "no number"),
        (("/nonexistent/tool",), "exec", "cannot run /nonexistent/tool"),
    ]
    for argv, reason, words in cases:
        with pytest.raises(SensorError) as info:
            command.CommandSensor("c", command.Options(argv, 0.3)).read()
        assert info.value.reason == reason
        assert words in str(info.value)


def test_command_sensor_survives_a_flood_of_output() -> None:
    flood = (sys.executable, "-c", "import sys; sys.stdout.write('21.5 ' + 'x' * 5_000_000)")
    assert command.CommandSensor("c", command.Options(flood, 10.0)).read() == 21.5


def test_simulated_series_is_believable_and_repeatable() -> None:
    clock = ManualClock()
    a = simulated.SimulatedSensor("t0", simulated.Options(base=4.0, amplitude=1.0, noise=0.05), clock)
    b = simulated.SimulatedSensor("t0", simulated.Options(base=4.0, amplitude=1.0, noise=0.05), clock)
    values = []
    for _ in range(200):
        values.append(a.read())
        assert b.read() == values[-1]
        clock.advance(600)
    assert 2.5 < min(values) < 3.5 and 4.5 < max(values) < 5.5
    assert len(set(values)) > 150


def test_simulated_faults_happen_on_schedule() -> None:
    clock = ManualClock()
    faults = (Fault("spike", at=10, duration=5, magnitude=30), Fault("stuck", at=20, duration=10),
              Fault("dropout", at=40, duration=10), Fault("rise", at=60, rate=1.0))
    s = simulated.SimulatedSensor("t0", simulated.Options(base=4, amplitude=0, noise=0, faults=faults), clock)
    assert s.read() == 4.0
    clock.advance(10)
    assert s.read() == 34.0
    clock.advance(10)
    stuck = s.read()
    clock.advance(5)
    assert s.read() == stuck
    clock.advance(15)
    with pytest.raises(SensorError) as info:
        s.read()
    assert info.value.reason == "dropout"
    clock.advance(20 + 600)
    assert s.read() == pytest.approx(14.0)
