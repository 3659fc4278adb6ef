"""JSON with the value at a configured path (Home Assistant style ``value_json.temperature``).

``options.value_path`` names one value (its metric from the topic or ``defaults.metric``);
``options.paths`` maps several metrics to paths. A path is keys joined by ``.`` with ``[n]`` for
list items, optionally after ``$.`` or ``value_json.``: ``sensors.probe[0].temp``.
Numbers given as strings (``"21.5"``) are read as numbers.
"""

from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING, Annotated, Any, Optional, Union

from pydantic import AfterValidator, Field, model_validator

from vigil.core.errors import VigilError
from vigil.core.refusal import Refusal

from ._base import (
    FALLBACK_SENSOR,
    MetricName,
    RawReading,
    Scaled,
    base_names,
    load_json,
    need_device,
    number_text,
    read_ts,
)

if TYPE_CHECKING:
    from broker_bridge.settings import SourceSettings

__all__ = ["JsonPath", "JsonPathOptions", "PathError", "compile_path"]

_STEP = re.compile(r"([^.\[\]]+)|\[(\d{1,6})\]|(\.)")
_MISSING = object()


class PathError(VigilError):
    """A json path cannot be read."""


@lru_cache(maxsize=256)
def compile_path(path: str) -> tuple[Union[str, int], ...]:
    """``a.b[0].c`` -> ``("a", "b", 0, "c")``; PathError when it is not a path."""
    text = path
    for prefix in ("$.", "value_json."):
        if text.startswith(prefix):
            text = text[len(prefix) :]
    steps: list[Union[str, int]] = []
    pos = 0
    expect_key = True
    while pos < len(text):
        m = _STEP.match(text, pos)
        if m is None:
            raise PathError(f"path {path!r}: cannot read it at {text[pos:]!r}")
        if m.group(1) is not None:
            if not expect_key:
                raise PathError(f"path {path!r}: a '.' must come between keys")
            steps.append(m.group(1))
            expect_key = False
        elif m.group(2) is not None:
            if expect_key and steps:
                raise PathError(f"path {path!r}: '[n]' must follow a key")
            steps.append(int(m.group(2)))
            expect_key = False
        else:
            if expect_key:
                raise PathError(f"path {path!r}: empty key")
            expect_key = True
        pos = m.end()
    if not steps or expect_key:
        raise PathError(f"path {path!r}: it is empty or ends with '.'")
    return tuple(steps)


def _get(data: Any, steps: tuple[Union[str, int], ...]) -> Any:
    node = data
    for step in steps:
        if isinstance(step, int):
            if type(node) is not list or step >= len(node):
                return _MISSING
        elif type(node) is not dict or step not in node:
            return _MISSING
        node = node[step]
    return node


def _readable(path: str) -> str:
    try:
        compile_path(path)
    except PathError as exc:
        raise ValueError(str(exc)) from None
    return path


def _all_readable(paths: dict[str, str]) -> dict[str, str]:
    for path in paths.values():
        _readable(path)
    return paths


PathText = Annotated[str, AfterValidator(_readable)]


class JsonPathOptions(Scaled):
    """The options of format ``json_path``."""

    value_path: Optional[PathText] = Field(
        None, description="where the value is, such as `value_json.temperature` or `sensors.air[0].t`."
    )
    paths: Annotated[dict[MetricName, str], AfterValidator(_all_readable)] = Field(
        default_factory=dict, description="several values, metric -> path (`{humidity: hum}`)."
    )
    ts_path: Optional[PathText] = Field(None, description="where the source time is (epoch or RFC 3339).")
    unit_path: Optional[PathText] = Field(None, description="where the unit is.")

    @model_validator(mode="after")
    def _some_value(self) -> JsonPathOptions:
        if not (self.value_path or self.paths):
            raise ValueError("format json_path needs options.value_path or options.paths")
        return self


class JsonPath:
    """Values found at configured paths of a JSON document."""

    name = "json_path"
    summary = "JSON at a path"
    options = JsonPathOptions
    usual_topic = None  # its options say where the values are: a source must be configured

    def parse(
        self, topic: str, payload: bytes, source: SourceSettings, fields: dict[str, str]
    ) -> list[RawReading]:
        opts = source.options_as(JsonPathOptions)
        try:
            wanted = dict(opts.paths)
            device, sensor, metric, labels = base_names(source, fields)
            if opts.value_path:
                wanted[metric] = opts.value_path
            compiled = {m: compile_path(p) for m, p in wanted.items()}
            ts_steps = compile_path(opts.ts_path) if opts.ts_path else None
            unit_steps = compile_path(opts.unit_path) if opts.unit_path else None
        except PathError as exc:
            raise Refusal("schema", f"source {source.name!r}: {exc}") from exc
        data = load_json(payload)
        ts: Optional[float] = None
        if ts_steps is not None:
            raw_ts = _get(data, ts_steps)
            if raw_ts is not _MISSING:
                ts = read_ts(raw_ts, str(opts.ts_path))
        unit = source.defaults.unit
        if unit_steps is not None:
            raw_unit = _get(data, unit_steps)
            if raw_unit is not _MISSING:
                if type(raw_unit) is not str or len(raw_unit) > 16:
                    raise Refusal("schema", f"{opts.unit_path}: expected a unit string")
                unit = raw_unit
        device = need_device(device, source)
        sensor = FALLBACK_SENSOR if sensor is None else sensor
        out = []
        for name, steps in compiled.items():
            value = _get(data, steps)
            if value is _MISSING:
                continue
            if type(value) is str:
                value = number_text(value, wanted[name])
            if type(value) in (int, float) and opts.scale != 1.0:
                value = value * opts.scale
            # Anything else (null, an object...) goes on for normalization to refuse by its type.
            out.append(RawReading(device, sensor, name, value, ts, unit, None, labels))
        if not out:
            raise Refusal("no_readings", f"nothing at {', '.join(sorted(set(wanted.values())))}")
        return out
