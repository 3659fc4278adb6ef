"""``vigil edge`` as a user runs it: --once output, exit codes and error lines, before connecting."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vigil.app.cli import main

W1_GOOD = "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n"


def test_once_prints_one_reading_per_sensor_and_exits(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["edge", "--once", "--device", "pi-1", "--simulate", "t0,t1"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(" ", 1)[0] for line in lines] == ["vigil/readings/pi-1/t0", "vigil/readings/pi-1/t1"]
    body = json.loads(lines[0].split(" ", 1)[1])
    assert body["unit"] == "°C" and body["metric"] == "temperature" and isinstance(body["value"], float)


def test_once_shows_wiring_problems_and_exits_non_zero(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "w1" / "28-000000000001").mkdir(parents=True)
    (tmp_path / "w1" / "28-000000000001" / "w1_slave").write_text(W1_GOOD)
    config = tmp_path / "edge.yaml"
    config.write_text(f"device: pi-1\nsensors:\n  - {{name: ok, type: w1, id: 28-000000000001, base: {tmp_path}/w1}}\n"
                      f"  - {{name: gone, type: w1, id: 28-000000000009, base: {tmp_path}/w1}}\n")
    assert main(["edge", "-c", str(config), "--once"]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith('vigil/readings/pi-1/ok {"value":23.125,')
    assert out[1].startswith("gone: ERROR missing: no 1-wire device 28-000000000009")


def test_bad_configuration_exits_before_connecting_with_file_line_and_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "edge.yaml"
    config.write_text("device: pi-1\nmqtt:\n  url: mqtt://127.0.0.1:1\n  passwrd: x\nsensors:\n"
                      "  - {name: t0, type: simulated, interval: -1}\n")
    assert main(["edge", "-c", str(config)]) == 3
    err = capsys.readouterr().err.splitlines()
    assert err == [
        f"vigil edge: {config}:4: mqtt.passwrd: unknown key; did you mean 'password'?",
        f"vigil edge: {config}:6: sensors[0].interval: expected a duration such as 30s, 5m, 1h30m or 7d "
        "(not negative), got -1",
    ]


def test_help_shows_the_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["edge", "--help"])
    assert info.value.code == 0
    assert "vigil edge --broker mqtt://127.0.0.1:1883 --device pi-1 --simulate t0" in capsys.readouterr().out


def test_help_says_where_the_queue_is_for_this_user(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("STATE_DIRECTORY", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    with pytest.raises(SystemExit):
        main(["edge", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert f"For you, here: {tmp_path}/vigil-edge/queue.db" in out
    assert "else in $STATE_DIRECTORY (the systemd unit's /var/lib/vigil-edge)" in out
    assert ":memory: keeps it in memory only, and what is not sent is lost on stop" in out


def test_a_second_agent_on_the_same_queue_is_refused_before_connecting(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edge.queue import ReadingQueue

    held = ReadingQueue(str(tmp_path), owner="device pi-1")
    try:
        code = main(["edge", "--queue", str(tmp_path), "--device", "pi-2", "--simulate", "t0",
                     "--broker", "mqtt://127.0.0.1:1"])
    finally:
        held.close()
    assert code == 3
    assert "vigil edge: reading queue " + str(tmp_path / "queue.db") + ": in use by another vigil edge (device pi-1" \
        in capsys.readouterr().err
