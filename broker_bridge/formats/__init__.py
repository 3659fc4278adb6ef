"""Payload formats: one module per format, each a class that describes itself (``name``, ``options``,
``usual_topic``) and parses (``parse()``).

``FORMATS`` maps a source's ``format:`` to its parser; the settings build their ``format:`` and
``options:`` keys from it. The bridge and the dashboard's HTTP ingest use the same ones. A new
format is a module here and one entry below (in the order the configuration reference lists them).
"""

from __future__ import annotations

from ._base import FALLBACK_SENSOR, Format, RawReading
from .json_path import JsonPath
from .line_protocol import LineProtocol
from .plain import Plain
from .shelly import Shelly
from .tasmota import Tasmota
from .vigil_json import VigilJson
from .zigbee2mqtt import Zigbee2Mqtt

__all__ = ["FALLBACK_SENSOR", "FORMATS", "Format", "RawReading"]

FORMATS: dict[str, Format] = {
    f.name: f
    for f in (VigilJson(), Plain(), Tasmota(), Zigbee2Mqtt(), Shelly(), JsonPath(), LineProtocol())
}
