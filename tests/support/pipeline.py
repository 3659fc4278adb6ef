"""The bridge's pipeline built from a settings dict (a source of every format), and a fixed receive time."""

from __future__ import annotations

from typing import Any

from broker_bridge.pipeline import Outcome, Pipeline
from broker_bridge.settings import BridgeSettings
from vigil.core.topics import Topics

# 2023-11-14T22:13:20Z: the receive time of every message in these tests.
NOW = 1_700_000_000.0

SOURCES: list[dict[str, Any]] = [
    {"name": "shelly1", "format": "shelly", "topic": "shellies/{device}/ext_temperature/{sensor}",
     "defaults": {"metric": "temperature", "unit": "°C"}, "error_values": {"temperature": [85, -127]}},
    {"name": "shellyht", "format": "shelly", "topic": "shellies/{device}/sensor/{metric}"},
    {"name": "shelly2", "format": "shelly", "topic": "{device}/events/rpc"},
    {"name": "shelly2status", "format": "shelly", "topic": "{device}/status/{sensor}"},
    {"name": "esphome", "format": "plain", "topic": "esphome/{device}/sensor/{sensor}/state"},
    {"name": "w1", "format": "plain", "topic": "w1/{device}/{sensor}", "options": {"scale": 0.001},
     "error_values": {"temperature": [85, -127]}},
    {"name": "tasmota", "format": "tasmota", "topic": "tele/{device}/SENSOR"},
    {"name": "tasmota_berlin", "format": "tasmota", "topic": "berlin/tele/{device}/SENSOR",
     "options": {"timezone": "Europe/Berlin"}},
    {"name": "z2m", "format": "zigbee2mqtt", "topic": "zigbee2mqtt/{device}"},
    {"name": "ha", "format": "json_path", "topic": "home/{room}/{device}",
     "options": {"value_path": "value_json.temperature", "unit_path": "unit"},
     "defaults": {"metric": "temperature"}},
    {"name": "ha_multi", "format": "json_path", "topic": "hass/{device}/state",
     "options": {"paths": {"temperature": "sensors.air[0].t", "humidity": "sensors.air[0].rh"},
                 "ts_path": "time"}},
    {"name": "lp", "format": "line_protocol", "topic": "telegraf/{host}"},
    {"name": "lp_s", "format": "line_protocol", "topic": "lp_s/{device}", "options": {"precision": "s"}},
]


def make_pipeline(**overrides: Any) -> Pipeline:
    """A pipeline of SOURCES (or ``sources=``) and any other bridge settings."""
    data: dict[str, Any] = {"sources": SOURCES, **overrides}
    return Pipeline(BridgeSettings.model_validate(data), Topics())


def one_dead(outcome: Outcome) -> tuple[str, str]:
    """(reason, detail) of the only dead letter of an outcome with no events."""
    assert outcome.events == [], outcome.events
    assert len(outcome.dead) == 1, outcome.dead
    return outcome.dead[0].reason, outcome.dead[0].detail
