"""Vigil's own reading JSON (the contract, ``vigil/schema/reading.schema.json``) on ``readings/{device}/{sensor}``.

Checked by hand rather than through the pydantic ``Reading`` model because it is the hot path;
``tests/unit/bridge/test_vigil_json.py`` holds the two to the same verdicts.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from vigil.event import MAX_ABS_VALUE
from vigil.topics import invisible_character

from ._base import FALLBACK_SENSOR, FormatError, RawReading, base_names, load_json, need_device, read_ts

if TYPE_CHECKING:
    from broker_bridge.settings import SourceSettings

__all__ = ["VigilJson"]

_KEYS = frozenset({"value", "ts", "unit", "metric", "seq", "labels"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_MAX_SEQ = 2**53 - 1


def _schema(detail: str) -> FormatError:
    return FormatError("schema", detail)


class VigilJson:
    """``{"value": 21.5, "ts": 1700000000.0, "unit": "°C", "metric": "temperature", "seq": 7}``."""

    name = "vigil_json"

    def parse(
        self, topic: str, payload: bytes, source: SourceSettings, fields: dict[str, str]
    ) -> list[RawReading]:
        data: Any = load_json(payload)
        if type(data) is not dict:
            raise _schema(f"expected a JSON object, got {type(data).__name__}")
        if not data.keys() <= _KEYS:
            extra = sorted(str(k) for k in data.keys() - _KEYS)
            raise _schema(f"unknown field {', '.join(repr(k) for k in extra)} (allowed: {', '.join(sorted(_KEYS))})")
        try:
            value = data["value"]
            ts = data["ts"]
            unit = data["unit"]
        except KeyError as exc:
            raise _schema(f"{exc.args[0]}: this field is required") from None
        kind = type(value)
        if kind is not float and kind is not int:
            raise FormatError("value", f"value: expected a number, got {_shown(value)}")
        if not -MAX_ABS_VALUE <= value <= MAX_ABS_VALUE:  # NaN fails this too
            raise FormatError("value", f"value must be a finite number within ±{MAX_ABS_VALUE:g}, got {_shown(value)}")
        if type(unit) is not str or not 1 <= len(unit) <= 16:
            raise _schema(f"unit: expected a string of 1-16 characters, got {_shown(unit)}")
        metric = data.get("metric", "temperature")
        if type(metric) is not str or not _NAME.fullmatch(metric):
            raise _schema(f"metric: expected a name of letters, digits and _ (at most 64), got {_shown(metric)}")
        seq = data.get("seq")
        if seq is not None and (type(seq) is not int or not 0 <= seq <= _MAX_SEQ):
            raise _schema(f"seq: expected an integer 0-{_MAX_SEQ}, got {_shown(seq)}")
        labels = data.get("labels")
        pairs: tuple[tuple[str, str], ...] = ()
        if labels is not None:
            pairs = _labels(labels)
        device, sensor, _, captured = base_names(source, fields)
        return [
            RawReading(
                device=need_device(device, source),
                sensor=FALLBACK_SENSOR if sensor is None else sensor,
                metric=metric,
                value=value,
                ts=read_ts(ts),
                unit=unit,
                seq=seq,
                labels=captured + pairs if captured else pairs,
            )
        ]


def _labels(labels: Any) -> tuple[tuple[str, str], ...]:
    if type(labels) is not dict:
        raise _schema(f"labels: expected an object, got {type(labels).__name__}")
    if len(labels) > 16:
        raise _schema(f"labels: at most 16, got {len(labels)}")
    out = []
    for key, text in labels.items():
        if not _NAME.fullmatch(key):
            raise _schema(f"labels: name {_shown(key)} must be letters, digits and _ (at most 64)")
        if type(text) is not str or len(text) > 128:
            raise _schema(f"labels.{key}: expected a string of at most 128 characters, got {_shown(text)}")
        problem = invisible_character(text)
        if problem:
            raise _schema(f"labels.{key}: {problem}")
        out.append((key, text))
    return tuple(out)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
