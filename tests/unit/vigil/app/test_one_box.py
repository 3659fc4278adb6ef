"""The pieces of one box: the managed broker's configuration, client ids, the data directory, start-up checks."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from vigil.app.broker import BrokerError, ManagedMosquitto, managed_config, shipped_config_path
from vigil.app.config import load_config
from vigil.app.preflight import check_port
from vigil.app.runtime import under_data_dir
from vigil.core.mqtt import installation_client_id

SHIPPED = shipped_config_path().read_text("utf-8")


def _settings(text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.strip() and not line.startswith("#"):
            key, _, value = line.partition(" ")
            out.setdefault(key, []).append(value)
    return out


def test_managed_broker_keeps_the_shipped_queue_tcp_and_persistence_settings(tmp_path: Path) -> None:
    shipped, managed = _settings(SHIPPED), _settings(managed_config(SHIPPED, 18830, tmp_path))
    for key in ("max_inflight_messages", "max_queued_messages", "max_queued_bytes", "set_tcp_nodelay",
                "persistent_client_expiration", "max_packet_size", "autosave_interval"):
        assert managed[key] == shipped[key], key
    assert managed["persistence"] == ["true"]
    assert managed["persistence_location"] == [f"{tmp_path}/"]
    assert managed["listener"] == ["18830 127.0.0.1"]  # one listener, loopback, the chosen port
    assert managed["allow_anonymous"] == ["true"]


def test_managed_broker_leaves_out_identity_tls_and_acl_lines(tmp_path: Path) -> None:
    shipped = SHIPPED + "\nuse_username_as_clientid true\nrequire_certificate true\nacl_file /x\n"
    managed = _settings(managed_config(shipped, 1883, tmp_path))
    for key in ("password_file", "acl_file", "certfile", "keyfile", "tls_version", "use_username_as_clientid",
                "require_certificate"):
        assert key not in managed, key
    assert "8883" not in managed_config(shipped, 1883, tmp_path)


def test_without_mosquitto_one_line_says_how_to_install_it(tmp_path: Path) -> None:
    broker = ManagedMosquitto(tmp_path / "mosquitto", 1883, search_path=str(tmp_path))
    with pytest.raises(BrokerError) as err:
        broker.start(lambda: False)
    assert "Mosquitto is not installed" in str(err.value)
    assert "apt-get install mosquitto" in str(err.value)
    assert "\n" not in str(err.value)


def test_client_ids_are_stable_per_installation_and_differ_between_data_directories(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    a = installation_client_id("bridge", "vigil-data")
    assert a == installation_client_id("bridge", tmp_path / "vigil-data")  # the absolute path counts
    assert a.startswith("vigil-bridge-") and len(a) == len("vigil-bridge-") + 8
    assert installation_client_id("bridge", "other") != a
    assert installation_client_id("alerting", "vigil-data") != a


def test_data_dir_holds_the_store_and_the_alert_state_unless_they_are_named(tmp_path: Path) -> None:
    config = under_data_dir(load_config(None, overrides={"data_dir": ("/srv/vigil", "--data-dir")}))
    assert config.store.url == "sqlite:////srv/vigil/vigil.db"
    assert config.alerting.state == "/srv/vigil/alerts.db"
    named = under_data_dir(load_config(None, overrides={"data_dir": ("d", "--data-dir"),
                                                        "store.url": ("sqlite:///elsewhere.db", "--store")}))
    assert named.store.url == "sqlite:///elsewhere.db"
    assert named.alerting.state == "d/alerts.db"


def test_a_port_in_use_is_one_line_naming_the_port_and_the_flag() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        finding = check_port(f"127.0.0.1:{port}", "the dashboard", "--listen")
    assert finding is not None and finding.fatal
    assert str(finding) == (f"port {port} (the dashboard) is already in use, perhaps by another Vigil; stop that, "
                            "or choose another port with --listen 127.0.0.1:PORT")
    assert check_port(f"127.0.0.1:{port}", "the dashboard", "--listen") is None  # free again
