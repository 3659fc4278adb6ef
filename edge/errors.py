"""The edge agent's exceptions, under Vigil's root (:mod:`vigil.core.errors`).

::

    VigilError
     └── EdgeError
          ├── EdgeConfigError   the configuration is wrong (``issues``: file, line, key, message); also a ConfigError
          ├── SensorError       one sensor could not be read (``sensor``, ``reason``, ``detail``)
          └── QueueError        the on-disk queue cannot be opened or written (``path``, ``detail``)
"""

from __future__ import annotations

# One shape for configuration problems everywhere: the core's (standard library + PyYAML only).
from vigil.core._yaml import ConfigIssue
from vigil.core.errors import ConfigError, VigilError

__all__ = ["ConfigIssue", "EdgeConfigError", "EdgeError", "QueueError", "SensorError"]


class EdgeError(VigilError):
    """The root of the edge agent's exceptions."""


class EdgeConfigError(ConfigError, EdgeError):
    """The configuration has one or more problems; each prints as ``file:line: key: message``."""


class SensorError(EdgeError):
    """A sensor could not give a value; ``reason`` is a short machine-readable cause."""

    def __init__(self, sensor: str, reason: str, detail: str) -> None:
        self.sensor = sensor
        self.reason = reason
        self.detail = detail
        super().__init__(f"sensor {sensor}: {reason}: {detail}")


class QueueError(EdgeError):
    """The store-and-forward queue failed (disk full, unreadable file...)."""

    def __init__(self, path: str, detail: str) -> None:
        self.path = path
        self.detail = detail
        super().__init__(f"reading queue {path}: {detail}")
