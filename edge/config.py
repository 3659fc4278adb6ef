"""The edge agent's configuration: typed, validated once, errors as ``file:line: key: message``.

The same keys serve a standalone ``edge.yaml`` and the ``edge:`` section of a ``vigil.yaml``
(where ``mqtt:`` defaults to the file's top-level ``mqtt:`` section). Standard library and
PyYAML only: the agent runs on a Pi Zero.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Optional, Union

import yaml

from vigil.core._yaml import Positions, YamlError, load_yaml
from vigil.core.topics import DEFAULT_ROOT, TopicError, Topics, validate_segment
from vigil.core.urls import BrokerUrl, UrlError, broker_list_text, parse_broker_list

from ._reader import Context, Reader
from .errors import ConfigIssue, EdgeConfigError
from .sensors import KINDS, kind_module
from .sensors.simulated import Fault
from .sensors.simulated import Options as SimulatedOptions

__all__ = [
    "PROTOCOLS",
    "SYNC_MODES",
    "BufferConfig",
    "EdgeConfig",
    "EdgeConfigError",
    "HomeAssistantConfig",
    "MqttConfig",
    "SensorConfig",
    "load_edge_file",
    "parse_edge_section",
    "simulated_sensor",
]

SYNC_MODES = ("always", "batch", "off")
PROTOCOLS = ("auto", "5", "3.1.1")
Path = tuple[Union[str, int], ...]


@dataclass(frozen=True)
class MqttConfig:
    """How the agent reaches the broker."""

    url: str = "mqtt://127.0.0.1:1883"
    username: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)
    root: str = DEFAULT_ROOT
    client_id: Optional[str] = None
    protocol: str = "auto"  # "auto": MQTT 5, or 3.1.1 when the broker does not speak 5; "5"; "3.1.1"
    keepalive: int = 30
    ca_file: Optional[str] = None
    cert_file: Optional[str] = None
    key_file: Optional[str] = None
    tls_insecure: bool = False
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0
    connect_timeout: float = 10.0

    def broker(self, env: Optional[dict[str, str]] = None) -> BrokerUrl:
        """The first (or only) broker, with credentials from the file, the URL or VIGIL_MQTT_PASSWORD."""
        return self.brokers(env)[0]

    def brokers(self, env: Optional[dict[str, str]] = None) -> list[BrokerUrl]:
        """Every broker ``url`` names (one, or several for failover), in the order to try them."""
        return [BrokerUrl(b.host, b.port, b.tls or bool(self.ca_file), self.username or b.username,
                          self.password or b.password) for b in parse_broker_list(self.url, env)]

    @property
    def topics(self) -> Topics:
        return Topics(self.root)


@dataclass(frozen=True)
class BufferConfig:
    """The store-and-forward queue: where, how big, how durable, how fast it drains."""

    # A directory for queue.db; None: the default state directory (edge.queue.default_directory);
    # ":memory:" keeps the queue in memory (demos and tests: what is not sent is lost on stop).
    path: Optional[str] = None
    max_readings: int = 100_000
    max_age: float = 7 * 86400.0
    sync: str = "batch"
    batch_interval: float = 2.0
    drain_rate: float = 20.0
    max_inflight: int = 100
    live_first: bool = False


@dataclass(frozen=True)
class SensorConfig:
    """One sensor: its kind's options and how often and when to publish it."""

    name: str
    kind: str
    options: Any
    metric: str = "temperature"
    unit: str = "°C"
    interval: Optional[float] = None
    deadband: Optional[float] = None
    heartbeat: Optional[float] = None
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HomeAssistantConfig:
    """Home Assistant MQTT discovery: off by default, under ``prefix``."""

    enabled: bool = False
    prefix: str = "homeassistant"


@dataclass(frozen=True)
class EdgeConfig:
    """Everything the agent needs, validated."""

    device: str
    sensors: tuple[SensorConfig, ...]
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    buffer: BufferConfig = field(default_factory=BufferConfig)
    interval: float = 10.0
    labels: Mapping[str, str] = field(default_factory=dict)
    status_interval: float = 60.0
    homeassistant: HomeAssistantConfig = field(default_factory=HomeAssistantConfig)

    def interval_of(self, sensor: SensorConfig) -> float:
        return sensor.interval if sensor.interval is not None else self.interval

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"vigil-edge-{self.device}"


def simulated_sensor(name: str, *, base: float = 4.0, amplitude: float = 1.0, noise: float = 0.05,
                     drift: float = 0.0, faults: Sequence[Fault] = (), metric: str = "temperature",
                     unit: str = "°C", interval: Optional[float] = None, seed: Optional[int] = None,
                     labels: Optional[Mapping[str, str]] = None) -> SensorConfig:
    """A simulated sensor for code that builds an EdgeConfig (``vigil up --demo``, tests)."""
    validate_segment(name, "sensor")
    options = SimulatedOptions(base, amplitude, 86400.0, noise, drift, seed, tuple(faults))
    return SensorConfig(name, "simulated", options, metric, unit, interval, labels=dict(labels or {}))


def parse_edge_section(section: Any, positions: Optional[Positions], file: str,
                       prefix: Sequence[Union[str, int]] = ("edge",),
                       defaults: Optional[Mapping[str, Any]] = None,
                       flags: Optional[Mapping[Path, str]] = None) -> EdgeConfig:
    """Validate the edge keys (a standalone edge.yaml or vigil.yaml's ``edge:``) into an EdgeConfig.

    ``defaults`` may give ``mqtt`` (a vigil.yaml's top-level section); ``flags`` names the command
    line flag that set a key, for errors. Raises EdgeConfigError with every issue found.
    """
    ctx = _FlagContext(file, positions, dict(flags or {}))
    root = Reader(section, tuple(prefix), ctx)
    device = root.text("device", None, segment=True)
    if device is None and not root.has("device") and not ctx.issues:
        device = _hostname_device()
    interval = root.duration("interval", 10.0, minimum=0.05) or 10.0
    labels = root.labels("labels")
    status_interval = root.duration("status_interval", 60.0, minimum=1.0) or 60.0
    mqtt_raw = root.raw("mqtt")
    mqtt_path: Path = (*root.path, "mqtt")
    if mqtt_raw is None and defaults and defaults.get("mqtt") is not None:
        mqtt_raw, mqtt_path = defaults["mqtt"], ("mqtt",)
    mqtt = _mqtt(Reader(mqtt_raw, mqtt_path, ctx))
    buffer = _buffer(root.child("buffer"))
    ha = _homeassistant(root.child("homeassistant"))
    sensors = _sensors(root)
    root.finish()
    if ctx.issues or device is None or mqtt is None or buffer is None:
        raise EdgeConfigError(ctx.issues or [ConfigIssue(file, None, "device", "is required")])
    return EdgeConfig(device, tuple(sensors), mqtt, buffer, interval, labels, status_interval, ha)


def load_edge_file(path: str, overrides: Optional[Mapping[str, Any]] = None) -> EdgeConfig:
    """Load a standalone edge.yaml, or a vigil.yaml's ``edge:`` section, with flag ``overrides``.

    ``overrides`` maps a flag (``--broker``) to ``(key path, value)``; ``--simulate`` appends sensors.
    """
    data: Any = {}
    positions: Positions = {}
    if path:
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as exc:
            raise EdgeConfigError([ConfigIssue(path, None, "", f"cannot read the file: {exc.strerror}")]) \
                from exc
        except UnicodeDecodeError as exc:
            raise EdgeConfigError([ConfigIssue(path, None, "", "the file is not UTF-8 text")]) from exc
        _refuse_aliases(text, path)
        try:
            data, positions = load_yaml(text, path)
        except YamlError as exc:
            raise EdgeConfigError([ConfigIssue(path, exc.line, "", exc.message)]) from exc
    if data is None:
        data = {}
    prefix: Path = ()
    defaults: dict[str, Any] = {}
    if isinstance(data, dict) and "edge" in data:
        # A whole vigil.yaml: the agent reads its edge: section and the shared mqtt: section.
        defaults = {"mqtt": data.get("mqtt")}
        data = data["edge"] if data["edge"] is not None else {}
        prefix = ("edge",)
    return apply_overrides(data, positions, path or "command line", prefix, defaults, overrides or {})


def _refuse_aliases(text: str, path: str) -> None:
    """Aliases (``*name``) can expand a few lines into billions of nodes; an edge config needs none."""
    try:
        for token in yaml.scan(text, Loader=yaml.SafeLoader):
            if isinstance(token, yaml.AliasToken):
                raise EdgeConfigError([ConfigIssue(path, token.start_mark.line + 1, "",
                                                   "YAML aliases (*name) are not supported here; write the value out")])
    except yaml.YAMLError:
        return  # load_yaml reports it, with its line


def apply_overrides(data: Any, positions: Positions, file: str, prefix: Path, defaults: dict[str, Any],
                    overrides: Mapping[str, Any]) -> EdgeConfig:
    """Put flag values into the raw section, then validate it all at once."""
    if not isinstance(data, dict):
        return parse_edge_section(data, positions, file, prefix, defaults)
    data = dict(data)
    flags: dict[Path, str] = {}
    for flag, (keys, value) in overrides.items():
        if value is None:
            continue
        if flag == "--simulate":
            sensors = list(data.get("sensors") or []) if isinstance(data.get("sensors"), list) else []
            for name in value:
                flags[(*prefix, "sensors", len(sensors))] = flag
                sensors.append({"name": name, "type": "simulated"})
            data["sensors"] = sensors
            continue
        node = data
        for key in keys[:-1]:
            if key == "mqtt" and "mqtt" not in data and defaults.get("mqtt") is not None:
                data["mqtt"] = dict(defaults["mqtt"])
            child = node.get(key)
            node[key] = dict(child) if isinstance(child, dict) else {}
            node = node[key]
        node[keys[-1]] = value
        flags[(*prefix, *keys)] = flag
    return parse_edge_section(data, positions, file, prefix, defaults, flags)


class _FlagContext(Context):
    """Issues about a key that a flag set name the flag, not a line of the file."""

    def __init__(self, file: str, positions: Optional[Positions], flags: dict[Path, str]) -> None:
        super().__init__(file, positions)
        self.flags = flags

    def add(self, path: Path, message: str) -> None:
        for flag_path, flag in self.flags.items():
            if path[: len(flag_path)] == flag_path:
                self.issues.append(ConfigIssue("command line", None, flag, message))
                return
        super().add(path, message)


def _hostname_device() -> Optional[str]:
    name = socket.gethostname().split(".")[0]
    try:
        return validate_segment(name, "device")
    except TopicError:
        return None


def _mqtt(r: Reader) -> Optional[MqttConfig]:
    url: Any = r.text("url") if not isinstance(r.data.get("url"), list) else broker_list_text(r.raw("url"))
    if not isinstance(url, (str, type(None))):  # a YAML list of brokers is kept as the comma form
        r.error("url", "expected a list of broker URLs such as mqtt://a:1883")
        url = None
    host = r.text("host")
    port = r.integer("port", 0, minimum=1, maximum=65535)
    tls = r.flag("tls", False)
    if url and (host or port):
        r.error("url", "give either url or host/port, not both")
    if not url:
        url = f"{'mqtts' if tls else 'mqtt'}://{host or '127.0.0.1'}" + (f":{port}" if port else "")
    try:
        parse_broker_list(url, {})
    except UrlError as exc:
        r.error("url", str(exc))
    username = r.text("username")
    password = r.text("password")
    root = r.text("root", DEFAULT_ROOT) or DEFAULT_ROOT
    try:
        Topics(root)
    except TopicError as exc:
        r.error("root", str(exc))
    client_id = r.text("client_id")
    protocol = r.choice("protocol", PROTOCOLS, "auto") or "auto"
    keepalive = r.integer("keepalive", 30, minimum=5, maximum=3600)
    files: dict[str, Optional[str]] = {}
    for key in ("ca_file", "cert_file", "key_file"):
        files[key] = r.text(key)
        if files[key] and not os.path.isfile(str(files[key])):
            r.error(key, f"no such file: {files[key]}")
    if files["key_file"] and not files["cert_file"]:
        r.error("key_file", "needs cert_file (the client certificate) too")
    tls_insecure = r.flag("tls_insecure", False)
    reconnect_min = r.duration("reconnect_min", 1.0, minimum=0.05) or 1.0
    reconnect_max = r.duration("reconnect_max", 60.0, minimum=0.1) or 60.0
    if reconnect_max < reconnect_min:
        r.error("reconnect_max", f"must be at least reconnect_min ({reconnect_min:g}s)")
    connect_timeout = r.duration("connect_timeout", 10.0, minimum=0.5) or 10.0
    r.finish()
    return MqttConfig(url, username, password, root, client_id, protocol, keepalive, files["ca_file"],
                      files["cert_file"], files["key_file"], tls_insecure, reconnect_min, reconnect_max,
                      connect_timeout)


def _buffer(r: Reader) -> Optional[BufferConfig]:
    path = r.text("path")
    if path is not None and not path.strip():
        r.error("path", "is empty: give a directory, or :memory: to keep the queue in memory (lost on stop)")
    max_readings = r.integer("max_readings", 100_000, minimum=10, maximum=100_000_000)
    max_age = r.duration("max_age", 7 * 86400.0, minimum=1.0) or 7 * 86400.0
    sync = r.choice("sync", SYNC_MODES, "batch") or "batch"
    batch_interval = r.duration("batch_interval", 2.0, minimum=0.01) or 2.0
    drain_rate = r.number("drain_rate", 20.0, minimum=0.1, maximum=100_000) or 20.0
    max_inflight = r.integer("max_inflight", 100, minimum=1, maximum=60_000)
    live_first = r.flag("live_first", False)
    r.finish()
    return BufferConfig(path, max_readings, max_age, sync, batch_interval, drain_rate, max_inflight, live_first)


def _homeassistant(r: Reader) -> HomeAssistantConfig:
    enabled = r.flag("enabled", False)
    prefix = r.text("prefix", "homeassistant") or "homeassistant"
    r.finish()
    return HomeAssistantConfig(enabled, prefix)


def _sensors(root: Reader) -> list[SensorConfig]:
    raw = root.raw("sensors")
    if raw is None:
        root.error("sensors", "no sensors: list them under sensors: (or run with --simulate NAME)")
        return []
    if not isinstance(raw, list):
        root.error("sensors", "expected a list of sensors, e.g. - {name: freezer, type: w1, id: 28-...}")
        return []
    if not raw:
        root.error("sensors", "the list is empty: add a sensor (or run with --simulate NAME)")
    out: list[SensorConfig] = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        r = Reader(item, (*root.path, "sensors", index), root.ctx)
        if not r.ok:
            continue
        name = r.text("name", required=True, segment=True)
        if name in seen:
            r.error("name", f"sensor {name!r} is listed twice; names must be unique")
        if r.ok and "type" not in r.data:
            r.error("type", f"is required: one of {', '.join(KINDS)}")
        kind = r.choice("type", tuple(KINDS), None)
        module = kind_module(kind) if kind is not None else None
        metric = r.text("metric", module.DEFAULT_METRIC if module else "value") or "value"
        try:
            if not metric[:1].isalpha() and metric[:1] != "_":
                raise ValueError
            validate_segment(metric, "metric")
            if not metric.replace("_", "a").isalnum() or not metric.isascii() or len(metric) > 64:
                raise ValueError
        except (ValueError, TopicError):
            r.error("metric", f"expected letters, digits and _ (e.g. temperature), got {metric!r}")
        unit = r.text("unit", module.DEFAULT_UNIT if module else "") or ""
        if module is not None and not unit:
            r.error("unit", "is required for this sensor type (e.g. °C, %, hPa)")
        elif len(unit) > 16:
            r.error("unit", "at most 16 characters")
        interval = r.duration("interval", None, minimum=0.05)
        deadband = r.number("deadband", None, minimum=0)
        heartbeat = r.duration("heartbeat", None, minimum=0.05)
        if heartbeat is not None and deadband is None:
            r.error("heartbeat", "only means something with a deadband (publish on change)")
        labels = r.labels("labels")
        options = module.parse_options(r) if module is not None else None
        r.finish()
        if name and module is not None and options is not None:
            seen.add(name)
            out.append(SensorConfig(name, str(kind), options, metric, unit, interval, deadband, heartbeat, labels))
    return out
