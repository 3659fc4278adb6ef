"""Vigil: IoT sensor alerting over MQTT.

``vigil.core`` is what every part stands on: the contract (topics, the reading payload, the
normalized event), the settings sections every server part shares, the clock, the retry backoff,
the store interface and its implementations, errors. ``vigil.app`` is the application layer on top
of the parts: the assembled vigil.yaml, the ``vigil`` command line and ``vigil up``. The layers are
drawn in docs/architecture.md and enforced by the import contract in pyproject.toml.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
