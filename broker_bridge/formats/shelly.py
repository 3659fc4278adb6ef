"""Shelly devices, both generations.

Gen1 publishes one plain number per topic (``shellies/<id>/ext_temperature/0`` -> ``47.69``,
``shellies/<id>/sensor/temperature`` -> ``21.5``); names come from the topic pattern.

Gen2 (Plus, Pro) sends JSON-RPC frames on ``<prefix>/events/rpc``::

    {"src":"shellyplusht-08b61fcb7f3c","dst":"shellyplusht-08b61fcb7f3c/events","method":"NotifyStatus",
     "params":{"ts":1631186296.16,"temperature:0":{"id":0,"tC":23.5,"tF":74.3}}}

and, with "generic status update" on, one component's status on ``<prefix>/status/<component>``.
Each component (``temperature:0``, ``humidity:0``, ``switch:0``...) is a sensor; the device is
the topic's ``{device}``, else the frame's ``src``. Frames other than NotifyStatus/NotifyFullStatus
(button events) carry no reading and are passed over.

The device's own health: gen2's ``sys`` component gives ``uptime`` (s) and ``wifi`` gives ``rssi``
(dBm), in NotifyFullStatus frames and on ``<prefix>/status/sys`` / ``<prefix>/status/wifi``;
gen1's announce on ``shellies/<id>/info`` (a JSON object with ``wifi_sta``, ``uptime``, ``bat``)
gives ``rssi`` (sensor ``wifi``), ``uptime`` (``sys``), ``battery`` and ``voltage`` (``bat``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Optional

from vigil.core.refusal import Refusal

from ._base import FALLBACK_SENSOR, RawReading, Scaled, base_names, load_json, need_device, read_ts
from .plain import plain_value

if TYPE_CHECKING:
    from broker_bridge.settings import SourceSettings

__all__ = ["COMPONENT_FIELDS", "Shelly"]

# component kind -> [(path in its status, metric, unit)].
COMPONENT_FIELDS: dict[str, list[tuple[tuple[str, ...], str, str]]] = {
    "temperature": [(("tC",), "temperature", "°C")],
    "humidity": [(("rh",), "humidity", "%")],
    "illuminance": [(("lux",), "illuminance", "lx")],
    "voltmeter": [(("voltage",), "voltage", "V")],
    "devicepower": [(("battery", "percent"), "battery", "%"), (("battery", "V"), "voltage", "V")],
    "sys": [(("uptime",), "uptime", "s")],
    "wifi": [(("rssi",), "rssi", "dBm")],
}
# gen1 ``shellies/<id>/info``: (path, sensor, metric, unit).
GEN1_INFO: list[tuple[tuple[str, ...], str, str, str]] = [
    (("wifi_sta", "rssi"), "wifi", "rssi", "dBm"),
    (("uptime",), "sys", "uptime", "s"),
    (("bat", "value"), "bat", "battery", "%"),
    (("bat", "voltage"), "bat", "voltage", "V"),
]
_GEN1_INFO_KEYS = frozenset({"wifi_sta", "uptime", "bat"})
_METERED = [
    (("apower",), "power", "W"),
    (("act_power",), "power", "W"),
    (("voltage",), "voltage", "V"),
    (("current",), "current", "A"),
    (("aenergy", "total"), "energy", "Wh"),
    (("temperature", "tC"), "temperature", "°C"),
]
for _kind in ("switch", "pm1", "em1", "cover"):
    COMPONENT_FIELDS[_kind] = _METERED
_STATUS_METHODS = frozenset({"NotifyStatus", "NotifyFullStatus"})


def _dig(status: dict[str, Any], path: tuple[str, ...]) -> tuple[bool, Any]:
    node: Any = status
    for key in path:
        if type(node) is not dict or key not in node:
            return False, None
        node = node[key]
    return True, node


def _component(
    device: str, key: str, status: Any, ts: Optional[float], labels: tuple[tuple[str, str], ...]
) -> list[RawReading]:
    kind = key.partition(":")[0]
    spec = COMPONENT_FIELDS.get(kind)
    if spec is None or type(status) is not dict:
        return []
    out = []
    for path, metric, unit in spec:
        found, value = _dig(status, path)
        if found:
            out.append(RawReading(device, key, metric, value, ts, unit, None, labels))
    return out


class Shelly:
    """Gen1 plain numbers and gen2 NotifyStatus frames / component status objects."""

    name = "shelly"
    summary = "Shelly gen1/gen2"
    options = Scaled
    usual_topic = "shellies/{device}/ext_temperature/{sensor}"

    def parse(
        self, topic: str, payload: bytes, source: SourceSettings, fields: dict[str, str]
    ) -> list[RawReading]:
        device, sensor, metric, labels = base_names(source, fields)
        if payload.lstrip()[:1] != b"{":
            value = plain_value(payload) * source.options_as(Scaled).scale
            return [
                RawReading(
                    need_device(device, source), FALLBACK_SENSOR if sensor is None else sensor, metric, value,
                    None, source.defaults.unit, None, labels,
                )
            ]
        frame = load_json(payload)
        if type(frame) is not dict:
            raise Refusal("schema", f"expected a JSON object, got {type(frame).__name__}")
        if "method" not in frame:
            return self._status_object(frame, device, sensor, labels, source)
        method = frame["method"]
        if type(method) is not str:
            raise Refusal("schema", f"method: expected a string, got {type(method).__name__}")
        if method not in _STATUS_METHODS:
            return []
        params = frame.get("params")
        if type(params) is not dict:
            raise Refusal("schema", f"{method}: params must be an object")
        src = frame.get("src")
        if device is None:
            if type(src) is not str:
                raise Refusal("schema", "no device: the frame has no src and the topic has no {device}")
            device = src
        ts = read_ts(params["ts"], "params.ts") if "ts" in params else None
        out = []
        for key, status in params.items():
            out += _component(device, key, status, ts, labels)
        if not out and method == "NotifyStatus":
            # A partial status without measurements (a switch turned on) is no error.
            return []
        if not out:
            raise Refusal("no_readings", f"{method}: no component with a measurement (temperature:0, ...)")
        return out

    def _status_object(
        self,
        status: dict[str, Any],
        device: Optional[str],
        sensor: Optional[str],
        labels: tuple[tuple[str, str], ...],
        source: SourceSettings,
    ) -> list[RawReading]:
        if sensor is None and _GEN1_INFO_KEYS & status.keys():
            return self._gen1_info(status, need_device(device, source), labels)
        # <prefix>/status/temperature:0 -> the component is the last topic level, captured as {sensor}.
        if not sensor or (":" not in sensor and sensor not in COMPONENT_FIELDS):
            raise Refusal(
                "schema", "a component status needs its component (temperature:0) captured as {sensor}"
            )
        out = _component(need_device(device, source), sensor, status, None, labels)
        if not out:
            raise Refusal("no_readings", f"component {sensor!r} has no measurement this format knows")
        return out

    @staticmethod
    def _gen1_info(info: dict[str, Any], device: str, labels: tuple[tuple[str, str], ...]) -> list[RawReading]:
        out = []
        for path, sensor, metric, unit in GEN1_INFO:
            found, value = _dig(info, path)
            if found:
                out.append(RawReading(device, sensor, metric, value, None, unit, None, labels))
        if not out:
            raise Refusal("no_readings", "gen1 info: no wifi_sta.rssi, uptime or bat.value")
        return out
