"""A bare number as the whole payload: Shelly gen1 (``shellies/<id>/ext_temperature/0`` -> ``47.69``),
ESPHome state topics (``<node>/sensor/<name>/state`` -> ``21.5``) and anything alike.

Everything else comes from the topic pattern and the source's defaults; ``options.scale``
multiplies the value (``0.001`` for millidegrees).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._base import FALLBACK_SENSOR, FormatError, RawReading, base_names, need_device, number_text

if TYPE_CHECKING:
    from broker_bridge.settings import SourceSettings

__all__ = ["Plain"]


def plain_value(payload: bytes) -> float:
    """The number a plain payload holds; FormatError ``encoding`` or ``value``."""
    try:
        text = payload.decode("ascii")
    except UnicodeDecodeError as exc:
        raise FormatError(
            "encoding", f"expected a plain number in ASCII, got a non-ASCII byte at {exc.start}"
        ) from exc
    if not text.strip():
        raise FormatError("value", "the payload is empty; expected a number such as 21.5")
    return number_text(text)


class Plain:
    """The payload is the value; names from the topic (``{device}``, ``{sensor}``, ``{metric}``)."""

    name = "plain"

    def parse(
        self, topic: str, payload: bytes, source: SourceSettings, fields: dict[str, str]
    ) -> list[RawReading]:
        value = plain_value(payload) * source.options.scale
        device, sensor, metric, labels = base_names(source, fields)
        return [
            RawReading(
                device=need_device(device, source),
                sensor=FALLBACK_SENSOR if sensor is None else sensor,
                metric=metric,
                value=value,
                unit=source.defaults.unit,
                labels=labels,
            )
        ]
