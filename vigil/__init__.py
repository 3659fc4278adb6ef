"""Vigil: IoT sensor alerting over MQTT.

This package holds the contract that the parts keep with each other (topics, the reading
payload, the normalized event), the configuration and the ``vigil`` command line. Its
``topics`` and ``_yaml`` modules use only the standard library and PyYAML, so that the edge
agent may import them on a Pi Zero; everything else here is for the server parts.
"""

__version__ = "0.1.0"
__all__ = ["__version__"]
