"""zigbee2mqtt device state on ``zigbee2mqtt/{device}``: several metrics in one flat object::

    {"temperature":27.34,"humidity":44.72,"battery":97,"linkquality":120}

Known keys become metrics (``voltage`` is in mV there); ``last_seen`` (epoch ms or ISO 8601,
when zigbee2mqtt is set to send it) is the source time. Other keys (state, action...) are skipped.
zigbee2mqtt's own messages (``<base>/bridge/...``) and a device's ``availability``, ``set`` and ``get``
topics are passed over, for patterns wide enough to take them (``zigbee2mqtt/{room}/{device}``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from vigil.core.refusal import Refusal

from ._base import (
    FALLBACK_SENSOR,
    MetricKeys,
    Options,
    RawReading,
    base_names,
    keys_option,
    load_json,
    need_device,
    read_ts,
)

if TYPE_CHECKING:
    from broker_bridge.settings import SourceSettings

__all__ = ["KEY_METRICS", "Zigbee2Mqtt"]

# key -> (metric, unit as zigbee2mqtt documents it).
KEY_METRICS: dict[str, tuple[str, Optional[str]]] = {
    "temperature": ("temperature", "°C"),
    "humidity": ("humidity", "%"),
    "pressure": ("pressure", "hPa"),
    "battery": ("battery", "%"),
    "linkquality": ("linkquality", "lqi"),
    "voltage": ("voltage", "mV"),
    "illuminance": ("illuminance", "lx"),
    "illuminance_lux": ("illuminance", "lx"),
    "co2": ("co2", "ppm"),
    "power": ("power", "W"),
    "energy": ("energy", "kWh"),
    "current": ("current", "A"),
    "soil_moisture": ("soil_moisture", "%"),
    "device_temperature": ("device_temperature", "°C"),
}

_NOT_STATE = frozenset({"availability", "set", "get"})


class Zigbee2MqttOptions(Options):
    """The options of format ``zigbee2mqtt``."""

    keys: MetricKeys = keys_option()


class Zigbee2Mqtt:
    """One message, one reading per known key; ``options.keys`` adds key -> metric mappings."""

    name = "zigbee2mqtt"
    summary = "zigbee2mqtt"
    options = Zigbee2MqttOptions
    usual_topic = "zigbee2mqtt/{device}"

    def parse(
        self, topic: str, payload: bytes, source: SourceSettings, fields: dict[str, str]
    ) -> list[RawReading]:
        levels = topic.split("/")
        if levels[-1] in _NOT_STATE or (len(levels) > 1 and levels[1] == "bridge"):
            return []
        data = load_json(payload)
        if type(data) is not dict:
            raise Refusal("schema", f"expected a JSON object, got {type(data).__name__}")
        last_seen = data.get("last_seen")
        ts = None
        if last_seen is not None:
            ts = read_ts(last_seen, "last_seen", millis=not isinstance(last_seen, str))
        device, sensor, _, labels = base_names(source, fields)
        device = need_device(device, source)
        sensor = FALLBACK_SENSOR if sensor is None else sensor
        extra = source.options_as(Zigbee2MqttOptions).keys
        out = []
        for key, value in data.items():
            known = KEY_METRICS.get(key)
            if extra and key in extra:
                known = (extra[key], None)
            if known is None:
                continue
            out.append(RawReading(device, sensor, known[0], value, ts, known[1], None, labels))
        if not out:
            raise Refusal("no_readings", "no key zigbee2mqtt documents as a measurement (temperature, ...)")
        return out
