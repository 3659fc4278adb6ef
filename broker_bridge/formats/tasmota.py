"""Tasmota telemetry on ``tele/{device}/SENSOR``::

    {"Time":"2019-01-01T00:00:00","DS18B20":{"Temperature":49.7},"TempUnit":"C"}

Each nested object is a sensor (``DS18B20``, ``DS18B20-2``, ``AM2301``, ``BME280``, ``ENERGY``) and
each known key in it a metric. The device's own health comes from ``tele/{device}/STATE`` and the
replies to ``STATUS 0`` / ``STATUS 11`` (``stat/{device}/STATUS``, ``StatusSTS`` and ``StatusPRM``
nested): ``UptimeSec`` is ``uptime`` (s, sensor ``system``), ``Wifi.Signal`` is ``rssi`` (dBm) and
``Wifi.RSSI`` (Tasmota's 0-100 quality) ``wifi_quality`` (%), sensor ``Wifi``; ``BootCount`` is
``boots`` (sensor ``system``). ``Time`` is the device's local time: with an offset it is used,
without one only when ``options.timezone`` names the device's zone (else the receive time is).
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any, Optional
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, Field

from vigil.core.refusal import Refusal

from ._base import MetricKeys, Options, RawReading, base_names, keys_option, load_json, need_device, read_ts

if TYPE_CHECKING:
    from broker_bridge.settings import SourceSettings

__all__ = ["KEY_METRICS", "Tasmota"]

# Tasmota's key -> metric; the unit comes from TempUnit / PressureUnit or is the metric's own.
KEY_METRICS: dict[str, str] = {
    "Temperature": "temperature",
    "Humidity": "humidity",
    "DewPoint": "dew_point",
    "Pressure": "pressure",
    "Illuminance": "illuminance",
    "CarbonDioxide": "co2",
    "CO2": "co2",
    "Voltage": "voltage",
    "Current": "current",
    "Power": "power",
    "Total": "energy",
}
_TEMP_KEYS = frozenset({"Temperature", "DewPoint"})
_UNIT_KEYS = frozenset({"TempUnit", "PressureUnit", "SpeedUnit"})
_MAX_CHANNELS = 16
# The device's own health: (object holding it or None for the top level, key, sensor, metric, unit).
HEALTH_KEYS: tuple[tuple[Optional[str], str, str, str, str], ...] = (
    (None, "UptimeSec", "system", "uptime", "s"),
    ("Wifi", "Signal", "Wifi", "rssi", "dBm"),
    ("Wifi", "RSSI", "Wifi", "wifi_quality", "%"),
    ("StatusPRM", "BootCount", "system", "boots", ""),
)
_LOCAL = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?")


@lru_cache(maxsize=64)
def _zone(name: str) -> ZoneInfo:
    return ZoneInfo(name)


def _known_zone(name: str) -> str:
    try:
        _zone(name)
    except (ValueError, KeyError, OSError) as exc:
        raise ValueError(f"unknown time zone {name!r}; use a name such as Europe/Berlin or UTC") from exc
    return name


class TasmotaOptions(Options):
    """The options of format ``tasmota``."""

    timezone: Optional[Annotated[str, AfterValidator(_known_zone)]] = Field(
        None, description="the device's time zone (`Europe/Berlin`), for a `Time` without an offset; "
        "without it such readings get the receive time."
    )
    keys: MetricKeys = keys_option()


def tasmota_time(text: Any, timezone: Optional[str]) -> Optional[float]:
    """Epoch seconds of Tasmota's ``Time``: offset given, or local in ``timezone``, else None."""
    if not isinstance(text, str):
        raise Refusal("ts", f"Time: expected a date-time string, got {type(text).__name__}")
    if _LOCAL.fullmatch(text):
        if timezone is None:
            return None
        try:
            return datetime.fromisoformat(text).replace(tzinfo=_zone(timezone)).timestamp()
        except ValueError as exc:
            raise Refusal("ts", f"Time: {exc}") from exc
    return read_ts(text, "Time")


class Tasmota:
    """Sensors nested one level down; ``options.keys`` adds key -> metric mappings."""

    name = "tasmota"
    summary = "Tasmota SENSOR"
    options = TasmotaOptions
    usual_topic = "tele/{device}/SENSOR"

    def parse(
        self, topic: str, payload: bytes, source: SourceSettings, fields: dict[str, str]
    ) -> list[RawReading]:
        data = load_json(payload)
        if type(data) is not dict:
            raise Refusal("schema", f"expected a JSON object of sensors, got {type(data).__name__}")
        options = source.options_as(TasmotaOptions)
        ts = tasmota_time(data["Time"], options.timezone) if "Time" in data else None
        temp_unit = data.get("TempUnit", "C")
        pressure_unit = data.get("PressureUnit", "hPa")
        for key in _UNIT_KEYS & data.keys():
            if type(data[key]) is not str:
                raise Refusal("schema", f"{key}: expected a string, got {type(data[key]).__name__}")
        keys = {**KEY_METRICS, **options.keys} if options.keys else KEY_METRICS
        device, _, _, labels = base_names(source, fields)
        device = need_device(device, source)
        out = _health(data, device, ts, labels)
        for sensor, reading in data.items():
            if sensor in _HEALTH_OBJECTS:
                continue
            if type(reading) is not dict:
                continue  # Time, units, and flat keys such as "Switch1": "ON"
            for key, value in reading.items():
                metric = keys.get(key)
                if metric is None:
                    continue
                if key in _TEMP_KEYS:
                    unit = temp_unit
                elif key == "Pressure":
                    unit = pressure_unit
                else:
                    unit = None
                if type(value) is list and value:
                    # Multi-channel meters (Shelly 2.5 on Tasmota): "Power":[12,0] is ENERGY-1 and ENERGY-2.
                    for channel, item in enumerate(value[:_MAX_CHANNELS], 1):
                        out.append(RawReading(device, f"{sensor}-{channel}", metric, item, ts, unit, None, labels))
                else:
                    out.append(RawReading(device, sensor, metric, value, ts, unit, None, labels))
        if not out:
            raise Refusal("no_readings", f"no sensor with a known key ({', '.join(sorted(keys))}) "
                          "and no device health (UptimeSec, Wifi)")
        return out


_HEALTH_OBJECTS = frozenset({"Wifi", "StatusSTS", "StatusPRM"})


def _health(data: dict[str, Any], device: str, ts: Optional[float], labels: tuple[tuple[str, str], ...]
            ) -> list[RawReading]:
    """The device's health readings of a STATE message or a STATUS reply (StatusSTS holds STATE's keys)."""
    out = []
    for top in (data, data.get("StatusSTS")):
        if type(top) is not dict:
            continue
        for holder, key, sensor, metric, unit in HEALTH_KEYS:
            node = top if holder is None else (data if holder == "StatusPRM" else top).get(holder)
            if type(node) is dict and key in node:
                out.append(RawReading(device, sensor, metric, node[key], ts, unit or None, None, labels))
    return list({(r.sensor, r.metric): r for r in out}.values())
