"""What every format shares: its description, the parsed reading and small strict parsing helpers.

A format describes itself (:class:`Format`): its ``name`` (a source's ``format:``), its
``options`` model (what ``options:`` it takes, checked when the configuration is loaded) and its
``usual_topic``; ``broker_bridge.formats`` builds the registry from them, and the settings their
``format:`` and ``options:`` keys.

A format turns one message into readings; it does not judge names, units, ranges or times
(``broker_bridge.normalize`` does, the same for every format). The reasons of the
:class:`vigil.core.refusal.Refusal` a format raises::

    encoding     the payload is not UTF-8
    json         the payload is not JSON (or nested too deeply)
    schema       the JSON is not shaped as the format says
    value        a value is not a number
    ts           a timestamp cannot be read
    name         the topic and defaults leave a device unnamed
    no_readings  the message holds no reading this format knows
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, Optional, Protocol, Union

from pydantic import AfterValidator, BaseModel, Field

from vigil.core import jsonlimits
from vigil.core.configtypes import STRICT
from vigil.core.jsonlimits import MAX_DEPTH, too_deep
from vigil.core.reading import parse_ts
from vigil.core.refusal import Refusal

if TYPE_CHECKING:
    from broker_bridge.settings import SourceSettings

__all__ = [
    "FALLBACK_SENSOR",
    "Format",
    "Labels",
    "MetricKeys",
    "MetricName",
    "Options",
    "RawReading",
    "Scaled",
    "base_names",
    "keys_option",
    "load_json",
    "metric_name",
    "number_text",
    "read_ts",
]

Labels = tuple[tuple[str, str], ...]
# The sensor of a device that has one of each metric (zigbee2mqtt, a json_path source without {sensor}).
FALLBACK_SENSOR = "main"
# ASCII white space only, not \s: float() refuses \x1c-\x1f, which \s counts as space.
_NUMBER = re.compile(r"[ \t\n\r\v\f]*[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?[ \t\n\r\v\f]*")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")


def metric_name(value: str) -> str:
    """A metric name as given (letters, digits and _), lower-cased; ValueError if it is none."""
    if not _NAME.fullmatch(value):
        raise ValueError(f"metric name {value!r} must be a letter or _ then letters, digits or _ (at most 64)")
    return value.lower()


def _scale(value: float) -> float:
    if not math.isfinite(value) or value == 0:
        raise ValueError("scale must be a finite number other than 0")
    return value


MetricName = Annotated[str, AfterValidator(metric_name)]
MetricKeys = dict[str, MetricName]


def keys_option() -> Any:
    """The ``keys`` option of the formats that read known payload keys (more of them: key -> metric)."""
    return Field(default_factory=dict, description="more payload keys to read, key -> metric.")


class Options(BaseModel):
    """The options of a format that takes none; a format's own options model derives from it.

    A field's description says what it does, without the format's name: the configuration reference
    prefixes the names of the formats that take it."""

    model_config = STRICT


class Scaled(Options):
    """The options of a format whose values may need a factor."""

    scale: Annotated[float, AfterValidator(_scale)] = Field(
        1.0, description="multiply every value (`0.001` for millidegrees)."
    )


@dataclass(slots=True)
class RawReading:
    """One reading as a format found it: names not yet checked, value and unit not yet converted.

    A value carrier from a format to the normalizer, never hashed or kept: not frozen, since a frozen dataclass
    takes 1.1 µs to build against 0.4 (the bridge builds one per reading; docs/proof.md, Issue 18)."""

    device: str
    sensor: str
    metric: str
    value: object
    ts: Optional[float] = None
    unit: Optional[str] = None
    seq: Optional[int] = None
    labels: Labels = ()


class Format(Protocol):
    """One payload format; ``fields`` are the topic levels its source's pattern captured."""

    @property
    def name(self) -> str:
        """What a source's ``format:`` says."""

    @property
    def summary(self) -> str:
        """What it reads, in a few words (the configuration reference lists them)."""

    @property
    def options(self) -> type[Options]:
        """The model of the ``options:`` a source of this format takes."""

    @property
    def usual_topic(self) -> Optional[str]:
        """The topic pattern its messages usually come on (for an HTTP ingest with no source), if any."""

    def parse(
        self, topic: str, payload: bytes, source: SourceSettings, fields: dict[str, str]
    ) -> list[RawReading]: ...


def load_json(payload: bytes) -> Any:
    """Decode UTF-8 JSON strictly (no NaN/Infinity, at most MAX_DEPTH levels deep); Refusal
    ``encoding`` or ``json``. Its size is bounded before any format runs (``bridge.max_payload_bytes``)."""
    if too_deep(payload):
        raise Refusal("json", f"payload is nested more than {MAX_DEPTH} levels deep")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Refusal("encoding", f"payload is not UTF-8 ({exc.reason} at byte {exc.start})") from exc
    try:
        return jsonlimits.decode(text)
    except RecursionError as exc:
        raise Refusal("json", "payload is nested too deeply") from exc
    except ValueError as exc:
        raise Refusal("json", f"payload is not JSON: {exc}") from exc


def number_text(text: str, what: str = "payload") -> float:
    """A plain decimal number such as ``21.5`` or ``-1e3``; no NaN, inf, ``1_000`` or hex."""
    if len(text) > 64 or not _NUMBER.fullmatch(text):
        shown = text if len(text) <= 40 else text[:37] + "..."
        raise Refusal("value", f"{what}: expected a number, got {shown!r}")
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise Refusal("value", f"{what}: {text.strip()!r} is out of range")
    return value


def read_ts(value: Union[int, float, str, None], what: str = "ts", millis: bool = False) -> float:
    """Epoch seconds (``millis``: milliseconds) or an RFC 3339 date-time with offset; Refusal ``ts``."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and millis:
        value = value / 1000.0
    try:
        return parse_ts(value)  # type: ignore[arg-type]
    except (ValueError, OverflowError) as exc:
        raise Refusal("ts", f"{what}: {exc}".replace("ts: ", "", 1)) from exc


def base_names(source: SourceSettings, fields: dict[str, str]) -> tuple[Optional[str], Optional[str], str, Labels]:
    """Device, sensor and metric from the topic, else the source's defaults; other captures as labels."""
    d = source.defaults
    # A captured level wins even when empty: normalization then refuses it by name.
    device = fields.get("device", d.device)
    sensor = fields.get("sensor", d.sensor)
    metric = fields.get("metric", d.metric or "temperature")
    labels = tuple((k, v) for k, v in fields.items() if k not in ("device", "sensor", "metric"))
    return device, sensor, metric, labels


def need_device(device: Optional[str], source: SourceSettings) -> str:
    """The device name, or a Refusal saying how to give one."""
    if device is None:
        raise Refusal(
            "name", f"source {source.name!r}: no device; put {{device}} in its topic pattern or set defaults.device"
        )
    return device
