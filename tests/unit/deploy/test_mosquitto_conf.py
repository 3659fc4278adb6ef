"""The shipped Mosquitto configurations tie every connection's client id to its username."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
CONFS = [ROOT / "deploy" / "mosquitto" / "mosquitto.conf", ROOT / "deploy" / "docker" / "mosquitto.conf"]


def listener_blocks(conf: Path) -> list[list[str]]:
    """The settings before the first listener, then those of each listener."""
    blocks: list[list[str]] = [[]]
    for line in conf.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if line.split()[0] == "listener":
            blocks.append([])
        blocks[-1].append(line.strip())
    return blocks


@pytest.mark.parametrize("conf", CONFS, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_listener_uses_the_username_as_client_id(conf: Path) -> None:
    before, *listeners = listener_blocks(conf)
    assert len(listeners) == 2
    for block in listeners:
        assert "use_username_as_clientid true" in block, f"{block[0]} lets a client choose its id"
    # Before the first listener it would configure Mosquitto's default listener, which 2.0.11
    # then opens on port 1883 of every interface, without TLS.
    assert not any(line.startswith("use_username_as_clientid") for line in before)
