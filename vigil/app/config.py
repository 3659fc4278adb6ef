"""vigil.yaml: one file, a section per part, validated once into typed objects.

Errors carry the file, the line, the key and what was expected::

    vigil.yaml:12: mqtt.port: expected an integer 1-65535, got '18a3'

Secrets come from the environment (``VIGIL_MQTT_PASSWORD``, ``VIGIL_INFLUXDB_TOKEN``,
``VIGIL_INFLUXDB_PASSWORD``) or the file, and are never printed in full.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import yaml
from pydantic import BaseModel, Field, ValidationError

from alerting.settings import AlertingSettings
from broker_bridge.settings import BridgeSettings
from dashboard.settings import DashboardSettings
from vigil.core._yaml import Positions, YamlError, load_yaml
from vigil.core.configerrors import ConfigError, ConfigIssue, describe_errors
from vigil.core.configtypes import STRICT
from vigil.core.settings import MqttSettings, StoreSettings

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
        raise ConfigError(describe_errors(exc, VigilConfig, positions, file, flags=flags)) from exc
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


def _mask(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _mask(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_mask(v) for v in value]
    if isinstance(value, str):
        from vigil.core.urls import mask_url

        if "://" in value:
            return mask_url(value)
    return value

