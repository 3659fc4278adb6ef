"""The edge agent's exceptions.

::

    EdgeError
     ├── EdgeConfigError   the configuration is wrong (``issues``: file, line, key, message)
     ├── SensorError       one sensor could not be read (``sensor``, ``reason``, ``detail``)
     └── QueueError        the on-disk queue cannot be opened or written (``path``, ``detail``)
"""

from __future__ import annotations

from collections.abc import Sequence

# One shape for configuration problems everywhere: the foundation's (standard library + PyYAML only).
from vigil.core._yaml import ConfigIssue

__all__ = ["ConfigIssue", "EdgeConfigError", "EdgeError", "QueueError", "SensorError"]


class EdgeError(Exception):
    """The root of the edge agent's exceptions."""


class EdgeConfigError(EdgeError):
    """The configuration has one or more problems; each prints as ``file:line: key: message``."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))


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
