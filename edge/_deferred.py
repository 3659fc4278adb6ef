"""Standard-library modules that paho-mqtt imports at its top but the agent never uses: load them on first use.

paho-mqtt 2 imports ``urllib.request`` (for proxies, and only when PySocks is installed) and
``hashlib`` (for the WebSocket handshake) when ``paho.mqtt.client`` is imported. The agent
speaks MQTT over TCP or TLS, never through a proxy or WebSockets, yet ``urllib.request`` pulls
in ``http.client``, ``email``, ``tempfile`` and more, and ``hashlib`` initialises OpenSSL's
digests: together most of what deferring saves of the agent's peak RSS (docs/edge.md, Footprint,
measured with ``bench/edge_footprint/run.py``).

``defer(name)`` puts an empty module for ``name`` into ``sys.modules`` (with the real
``__spec__``, ``__file__``...), so ``import name`` binds it without running the module. The
first attribute looked up that the empty module lacks runs the module's code, in that very
module object, and answers from it. Nothing changes for code that uses the module, only when
its code runs; ``sys.modules[name]`` stays the same object.

Why not ``importlib.util.LazyLoader``: its module loads on *any* attribute access, and every
``import`` statement of an already-imported module reads ``__spec__`` (to check that it is not
still initialising), so paho's own ``import urllib.request`` loaded it at once (measured, on
Python 3.11). Here ``__spec__`` and the other dunders are real attributes, so only a real use
loads the module.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
import types
from typing import Any

__all__ = ["PAHO_UNUSED", "defer", "is_deferred"]

# Imported by paho.mqtt.client, used by it only for proxies through PySocks and for WebSockets.
PAHO_UNUSED = ("urllib.request", "hashlib")

_LOCK = threading.RLock()
_LOADING = "__vigil_deferred_loading__"


class _DeferredModule(types.ModuleType):
    """A module whose code has not run yet; the first missing attribute runs it."""

    def __getattr__(self, attr: str) -> Any:
        # Only called for attributes the module does not have (yet): __spec__, __name__, __file__
        # are real, so neither an import statement nor importlib's checks load the module.
        with _LOCK:
            if type(self) is _DeferredModule and not self.__dict__.get(_LOADING):
                self.__dict__[_LOADING] = True
                try:
                    spec = self.__spec__
                    assert spec is not None and spec.loader is not None
                    spec.loader.exec_module(self)
                    object.__setattr__(self, "__class__", types.ModuleType)
                finally:
                    self.__dict__.pop(_LOADING, None)
        return types.ModuleType.__getattribute__(self, attr)


def defer(name: str) -> bool:
    """Make ``import name`` cheap until the module is used; False if it is imported already."""
    with _LOCK:
        if name in sys.modules:
            return False
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return False
        module = importlib.util.module_from_spec(spec)
        module.__class__ = _DeferredModule
        sys.modules[name] = module
        parent, _, child = name.rpartition(".")
        if parent:
            # What the import system does once a submodule is loaded: ``import urllib.request``
            # finds it in sys.modules and then reads it as the attribute ``urllib.request``.
            setattr(importlib.import_module(parent), child, module)
        return True


def is_deferred(name: str) -> bool:
    """True while ``name`` is imported but its code has not run."""
    return type(sys.modules.get(name)) is _DeferredModule
