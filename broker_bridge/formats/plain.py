"""A bare number as the whole payload: Shelly gen1 (``shellies/<id>/ext_temperature/0`` -> ``47.69``),
ESPHome state topics (``<node>/sensor/<name>/state`` -> ``21.5``) and anything alike.

Everything else comes from the topic pattern and the source's defaults; ``options.scale``
multiplies the value (``0.001`` for millidegrees). The Linux 1-wire ``w1_slave`` text, as a script
publishes it, is understood too: a CRC line ending in YES (NO is refused), then ``t=`` millidegrees.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Optional

from vigil.core.refusal import Refusal

from ._base import FALLBACK_SENSOR, RawReading, Scaled, base_names, need_device, number_text

if TYPE_CHECKING:
    from broker_bridge.settings import SourceSettings

__all__ = ["Plain"]


_W1 = re.compile(r"[0-9a-fA-F ]+: crc=[0-9a-fA-F]{2} (YES|NO)\s*\n[0-9a-fA-F ]+ t=(-?\d{1,7})\s*")


def w1_slave(text: str) -> Optional[float]:
    """Degrees Celsius from the text of a 1-wire ``w1_slave`` file, None when it is not one."""
    match = _W1.fullmatch(text)
    if match is None:
        if "crc=" in text:
            raise Refusal("value", "w1_slave: expected a CRC line ending in YES, then t=<millidegrees>")
        return None
    if match.group(1) != "YES":
        raise Refusal("value", "w1_slave: the CRC check failed (NO): the reading is corrupt")
    return int(match.group(2)) / 1000.0


def plain_value(payload: bytes) -> float:
    """The number a plain payload holds; Refusal ``encoding`` or ``value``."""
    try:
        text = payload.decode("ascii")
    except UnicodeDecodeError as exc:
        raise Refusal(
            "encoding", f"expected a plain number in ASCII, got a non-ASCII byte at {exc.start}"
        ) from exc
    if not text.strip():
        raise Refusal("value", "the payload is empty; expected a number such as 21.5")
    return number_text(text)


class Plain:
    """The payload is the value; names from the topic (``{device}``, ``{sensor}``, ``{metric}``)."""

    name = "plain"
    summary = "a plain number (ESPHome, Shelly gen1, w1_slave text)"
    options = Scaled
    usual_topic = "{device}/{sensor}"

    def parse(
        self, topic: str, payload: bytes, source: SourceSettings, fields: dict[str, str]
    ) -> list[RawReading]:
        unit = source.defaults.unit
        celsius = w1_slave(payload.decode("ascii", "replace")) if b"crc=" in payload else None
        if celsius is not None:
            value, unit = celsius, "°C"
        else:
            value = plain_value(payload) * source.options_as(Scaled).scale
        device, sensor, metric, labels = base_names(source, fields)
        return [
            RawReading(
                device=need_device(device, source),
                sensor=FALLBACK_SENSOR if sensor is None else sensor,
                metric=metric,
                value=value,
                unit=unit,
                labels=labels,
            )
        ]
