"""vigil.yaml: every problem reported with file, line, key and what was expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from vigil.app.cli import main
from vigil.app.config import ConfigError, dump_config, load_config
from vigil.core.durations import format_duration, parse_duration
from vigil.core.urls import UrlError, parse_broker_url, parse_store_url


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "vigil.yaml"
    p.write_text(text)
    return p


def test_config_check_reports_wrong_type_unknown_key_and_bad_broker_url(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    p = write(tmp_path, "mqtt:\n  url: http://broker:1883\n\nbridge:\n  batch_size: lots\n  batchsize: 5\n")
    assert main(["config", "check", str(p)]) == 3
    err = capsys.readouterr().err.splitlines()
    assert err[0] == f"{p}:2: mqtt.url: http://broker:1883: the scheme must be mqtt:// or mqtts:// (TLS), got http://"
    assert err[1] == f"{p}:5: bridge.batch_size: expected an integer, got 'lots'"
    assert err[2].startswith(f"{p}:6: bridge.batchsize: unknown key; did you mean 'batch_size'?")
    assert err[3] == f"{p}: 3 problems found"


def test_port_error_reads_as_the_issue_says(tmp_path: Path) -> None:
    p = write(tmp_path, "# broker\nmqtt:\n  host: broker.lan\n" + "\n" * 8 + "  port: \"18a3\"\n")
    with pytest.raises(ConfigError) as err:
        load_config(p)
    assert str(err.value) == f"{p}:12: mqtt.port: expected an integer 1-65535, got '18a3'"


def test_config_check_prints_effective_config_with_secrets_masked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_MQTT_PASSWORD", "hunter2")
    p = write(tmp_path, "mqtt:\n  url: mqtt://vigil:s3cret@broker.lan:1883\n  password: alsosecret\n"
                        "store:\n  url: influxdb1://admin:pw@db:8086/vigil\n  token: tok\n")
    assert main(["config", "check", str(p)]) == 0
    out = capsys.readouterr().out
    assert "OK" in out
    assert "url: mqtt://vigil:***@broker.lan:1883" in out
    assert "url: influxdb1://admin:***@db:8086/vigil" in out
    for secret in ("s3cret", "alsosecret", "hunter2", "tok\n", ":pw@"):
        assert secret not in out
    assert "retention: 30d" in out


def test_secrets_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIL_MQTT_PASSWORD", "from-env")
    monkeypatch.setenv("VIGIL_INFLUXDB_TOKEN", "tok-env")
    cfg = load_config(None, overrides={"mqtt.url": ("mqtt://vigil@broker:1884", "--broker"),
                                       "store.url": ("influxdb2://db:8086/b?org=o", "--store")})
    b = cfg.mqtt.broker()
    assert (b.host, b.port, b.username, b.password) == ("broker", 1884, "vigil", "from-env")
    assert cfg.store.store_url().token == "tok-env"


def test_flag_errors_name_the_flag() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides={"mqtt.url": ("mqtt://h:99999", "--broker")})
    assert str(err.value) == "--broker: mqtt://h:99999: port must be a number 1-65535, got '99999'"


def test_flag_overrides_file(tmp_path: Path) -> None:
    p = write(tmp_path, "mqtt:\n  host: a\n  port: 1\n")
    cfg = load_config(p, overrides={"mqtt.url": ("mqtt://b:2", "--broker")})
    assert (cfg.mqtt.broker().host, cfg.mqtt.broker().port) == ("b", 2)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("mqtt: [1, 2\n", ":2: not valid YAML: expected ',' or ']', but got '<stream end>' (while parsing a flow "
                          "sequence that starts on line 1)"),
        ("mqtt:\n  url: mqtt://a\nmqtt:\n  url: mqtt://b\n", ":3: duplicate key 'mqtt'"),
        ("- a\n- b\n", ":1: expected a mapping of sections"),
        ("mqtt:\n  keepalive: 1\n", ":2: mqtt.keepalive: expected greater than or equal to 5, got 1"),
        ("mqtt:\n  protocol: 4\n", ":2: mqtt.protocol: expected '5' or '3.1.1', got 4"),
        ("mqtt: 5\n", ":1: mqtt: expected a mapping (key: value lines), got 5"),
        ("store:\n  retention: forever\n", ":2: store.retention: expected a duration such as 30s, 5m, 1h30m or 7d"),
        ("store:\n  url: postgres://x/y\n", ":2: store.url: postgres://x/y: unknown store scheme postgres://"),
        ("mqtt:\n  url: mqtt://a\n  host: b\n", ":1: mqtt: give either url or host/port, not both"),
        ("dashboard:\n  listen: 8080\n", ":2: dashboard.listen: expected HOST:PORT"),
        ("mqtt:\n  root: a/#\n", ":1: mqtt: topic root level '#' is not a valid topic segment"),
        ("a: &x 1\nb: *x\nc: !!python/object:os.system x\n", ":3: cannot read value 'x': could not determine a "
                                                              "constructor for the tag"),
    ],
)
def test_each_mistake_gets_its_line(tmp_path: Path, text: str, expected: str) -> None:
    p = write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        load_config(p)
    assert expected in str(err.value), str(err.value)
    assert str(err.value).startswith(str(p))


def test_missing_and_empty_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(tmp_path / "nope.yaml")]) == 3
    assert "nope.yaml: no such file" in capsys.readouterr().err
    cfg = load_config(write(tmp_path, "# nothing yet\n"))
    assert cfg.mqtt.broker().port == 1883 and cfg.store.url.startswith("sqlite:///")
    assert "edge: null" in dump_config(cfg)


def test_huge_and_binary_files_are_refused_cleanly(tmp_path: Path) -> None:
    p = tmp_path / "bin.yaml"
    p.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ConfigError, match="cannot read"):
        load_config(p)
    deep = write(tmp_path, "a: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError):
        load_config(deep)


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("30s", 30), ("5m", 300), ("1h30m", 5400),
                                                ("7d", 604800), ("250ms", 0.25), (12, 12), ("2w", 1209600)])
def test_durations(text: str | int, seconds: float) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "5x", "m5", "-5s", "1h 30", "nan", True, None, "5m5"])
def test_bad_durations(text: object) -> None:
    with pytest.raises(ValueError, match="expected a duration"):
        parse_duration(text)  # type: ignore[arg-type]


def test_format_duration_inverts_parse() -> None:
    for s in ("1h30m", "7d", "45s", "250ms", "1d2h3m4s"):
        assert format_duration(parse_duration(s)) == s


@pytest.mark.parametrize("url", ["broker:1883", "mqtt://", "mqtt://:1883", "mqtt://h:0", "mqtt://h:x",
                                 "mqtt://h/topic", "ws://h", "mqtt://h?x=1"])
def test_bad_broker_urls(url: str) -> None:
    with pytest.raises(UrlError):
        parse_broker_url(url, env={})


@pytest.mark.parametrize("url", ["influxdb1://h:8086", "influxdb1://h:8086/a/b", "influxdb2://h/b",
                                 "influxdb1://h/db?colour=red", "sqlite:/x.db", "sqlite:///", "mysql://h/db"])
def test_bad_store_urls(url: str) -> None:
    with pytest.raises(UrlError):
        parse_store_url(url, env={})


def test_store_url_forms() -> None:
    u = parse_store_url("influxdb1s://me:p%40ss@db.lan/vigil?ca=/etc/ca.pem", env={})
    assert (u.kind, u.tls, u.port, u.username, u.password, u.ca_file, u.http_base) == (
        "influxdb1", True, 8086, "me", "p@ss", "/etc/ca.pem", "https://db.lan:8086")
    assert str(u) == "influxdb1s://me@db.lan:8086/vigil"
    assert parse_store_url("sqlite:////var/lib/vigil/v.db").path == "/var/lib/vigil/v.db"
    assert parse_store_url("sqlite:///v.db").path == "v.db"


def test_an_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    lines = ['a0: &a0 ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 9)]
    p = write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(ConfigError, match="once aliases are expanded"):
        load_config(p)


def test_the_lingers_take_durations_and_refuse_bad_ones_by_file_line_and_key(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, "alerting:\n  batch_linger: 2ms\nbridge:\n  batch_linger: 0\n")
    config = load_config(good)
    assert config.alerting.batch_linger == pytest.approx(0.002)
    assert config.bridge.batch_linger == 0.0
    assert load_config(write(tmp_path, "")).alerting.batch_linger == pytest.approx(0.01)  # the default
    bad = write(tmp_path, "alerting:\n  batch_linger: 2 seconds\nbridge:\n  batch_linger: 5s\n")
    assert main(["config", "check", str(bad)]) == 3
    err = capsys.readouterr().err.splitlines()
    assert sorted(err[:2]) == [
        f"{bad}:2: alerting.batch_linger: expected a duration such as 30s, 5m, 1h30m or 7d, got '2 seconds'",
        f"{bad}:4: bridge.batch_linger: expected a duration of at most 1s, such as 10ms, got '5s'",
    ]
    assert err[2] == f"{bad}: 2 problems found"
    negative = write(tmp_path, "alerting:\n  batch_linger: -1\n")
    with pytest.raises(ConfigError, match=r":2: alerting.batch_linger: expected a duration .*\(not negative\)"):
        load_config(negative)
