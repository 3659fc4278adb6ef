"""vigil.yaml: one file, a section per part, validated once into typed objects.

Errors carry the file, the line, the key and what was expected::

    vigil.yaml:12: mqtt.port: expected an integer 1-65535, got '18a3'

Secrets come from the environment (``VIGIL_MQTT_PASSWORD``, ``VIGIL_INFLUXDB_TOKEN``,
``VIGIL_INFLUXDB_PASSWORD``) or the file, and are never printed in full.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any, Optional

import yaml
from pydantic import BaseModel, Field, ValidationError

from alerting.settings import AlertingSettings
from broker_bridge.settings import BridgeSettings
from dashboard.settings import DashboardSettings
from vigil.core._yaml import ConfigIssue, Positions, YamlError, line_of, load_yaml
from vigil.core.configtypes import STRICT
from vigil.core.settings import MqttSettings, StoreSettings
from vigil.core.topics import validate_segment

__all__ = [
    "ConfigError",
    "ConfigIssue",
    "MqttSettings",
    "StoreSettings",
    "VigilConfig",
    "dump_config",
    "load_config",
]


class VigilConfig(BaseModel):
    """The whole vigil.yaml."""

    model_config = STRICT

    data_dir: str = "vigil-data"
    mqtt: MqttSettings = Field(default_factory=MqttSettings)
    store: StoreSettings = Field(default_factory=StoreSettings)
    bridge: BridgeSettings = Field(default_factory=BridgeSettings)
    alerting: AlertingSettings = Field(default_factory=AlertingSettings)
    dashboard: DashboardSettings = Field(default_factory=DashboardSettings)
    # Validated by the edge agent's own (pydantic-free) loader; see edge.config.
    edge: Optional[dict[str, Any]] = None


class ConfigError(ValueError):
    """The configuration has one or more problems; ``issues`` lists them all."""

    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


_TYPE_WORDS = {
    "int_parsing": "expected an integer",
    "int_type": "expected an integer",
    "int_from_float": "expected an integer",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected a string",
    "dict_type": "expected a mapping (key: value lines)",
    "model_type": "expected a mapping (key: value lines)",
    "model_attributes_type": "expected a mapping (key: value lines)",
    "list_type": "expected a list",
    "missing": "this key is required",
}


def describe_errors(
    exc: ValidationError,
    data: Any,
    positions: Positions,
    file: str,
    prefix: tuple[str | int, ...] = (),
    flags: Optional[dict[tuple[str | int, ...], str]] = None,
) -> list[ConfigIssue]:
    """Turn pydantic's errors into ConfigIssues with file, line and a sentence each."""
    issues = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        path = (*prefix, *loc)
        key = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in path).replace(".[", "[")
        kind = err["type"]
        if kind == "extra_forbidden":
            parent = _model_at(loc[:-1])
            known = sorted(parent.model_fields) if parent else []
            guess = difflib.get_close_matches(str(loc[-1]), known, n=1)
            hint = f"; did you mean {guess[0]!r}?" if guess else ""
            message = f"unknown key{hint} (known keys: {', '.join(known)})" if known else "unknown key"
        else:
            message = _TYPE_WORDS.get(kind) or err["msg"].removeprefix("Value error, ").replace(
                "Input should be", "expected"
            )
            given = err.get("input")
            if (kind != "missing" and isinstance(given, (str, int, float, bool))
                    and "got" not in message and str(given) not in message):
                shown = given if not isinstance(given, str) or len(given) < 80 else given[:77] + "..."
                message += f", got {shown!r}" if isinstance(given, str) else f", got {shown}"
        flag = (flags or {}).get(path)
        if flag:
            issues.append(ConfigIssue(flag, None, "", message))
        else:
            issues.append(ConfigIssue(file, line_of(positions, path), key, message))
    return issues


def _model_at(loc: tuple[Any, ...]) -> Optional[type[BaseModel]]:
    model: Any = VigilConfig
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return None
        model = _unwrap(field.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    for arg in getattr(annotation, "__args__", ()) or ():
        inner = _unwrap(arg)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner
    return annotation


def load_config(
    path: Optional[str | Path] = None,
    *,
    overrides: Optional[dict[str, Any]] = None,
) -> VigilConfig:
    """Read and validate ``path`` (or embedded defaults when None), then apply flag overrides.

    ``overrides`` maps a dotted key to a value and the flag it came from, e.g.
    ``{"mqtt.url": ("mqtt://host:1883", "--broker")}``. Raises ConfigError listing every problem.
    """
    file = str(path) if path is not None else "<defaults>"
    data: Any = {}
    positions: Positions = {}
    if path is not None:
        try:
            if Path(path).stat().st_size > 5 * 1024 * 1024:
                raise ConfigError([ConfigIssue(file, None, "", "larger than 5 MB; is this the right file?")])
            text = Path(path).read_text("utf-8")
        except FileNotFoundError:
            raise ConfigError([ConfigIssue(file, None, "", "no such file")]) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError([ConfigIssue(file, None, "", f"cannot read: {exc}")]) from exc
        try:
            data, positions = load_yaml(text, file)
        except YamlError as exc:
            raise ConfigError([ConfigIssue(file, exc.line, "", exc.message)]) from exc
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise ConfigError([ConfigIssue(file, 1, "", "expected a mapping of sections (mqtt:, store:, ...)")])
    flags: dict[tuple[str | int, ...], str] = {}
    for dotted, (value, flag) in (overrides or {}).items():
        if value is None:
            continue
        keys = dotted.split(".")
        node = data
        for k in keys[:-1]:
            node = node.setdefault(k, {}) if isinstance(node, dict) else node
        if isinstance(node, dict):
            node[keys[-1]] = value
            if keys[-1] == "url" and keys[0] == "mqtt":
                node.pop("host", None)
                node.pop("port", None)
        flags[tuple(keys)] = flag
    try:
        config = VigilConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(describe_errors(exc, data, positions, file, flags=flags)) from exc
    issues: list[ConfigIssue] = []
    if config.edge is not None:
        issues += _check_edge(config.edge, positions, file)
    if issues:
        raise ConfigError(issues)
    return config


def _check_edge(section: dict[str, Any], positions: Positions, file: str) -> list[ConfigIssue]:
    try:
        from edge.config import EdgeConfigError, parse_edge_section
    except ImportError:  # the edge agent's loader is not there: nothing more to check
        return []
    try:
        parse_edge_section(section, positions, file, prefix=("edge",))
    except EdgeConfigError as exc:
        return list(exc.issues)
    return []


def dump_config(config: VigilConfig) -> str:
    """The effective configuration as YAML, secrets masked."""
    data = config.model_dump(mode="json")
    return yaml.safe_dump(_mask(data), sort_keys=False, allow_unicode=True)


_SECRET_KEYS = {"password", "token", "secret", "urls", "url"}


def _mask(value: Any, key: str = "") -> Any:
    if isinstance(value, dict):
        return {k: _mask(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v, key) for v in value]
    if isinstance(value, str):
        from vigil.core.urls import mask_url

        if "://" in value:
            return mask_url(value)
    return value


def validate_name(value: str, what: str) -> str:
    """A device, sensor or metric name as it may appear in topics and the store."""
    return validate_segment(value, what)
