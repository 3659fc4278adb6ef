"""The one refusal: a message (or one reading of it) that Vigil will not take, and why.

``reason`` is short and machine-readable (``json``, ``schema``, ``value``, ``unit``...); it is the
``reason`` of a dead letter on ``<root>/deadletter/<source>`` and a label of the refusal counters.
``detail`` says what was wrong in words a person can act on. The contract's reading parser
(:func:`vigil.core.reading.parse_reading`), the bridge's formats and its normalization raise it.
"""

from __future__ import annotations

from vigil.core.errors import VigilError

__all__ = ["Refusal"]


class Refusal(VigilError):
    """A message refused: ``reason`` (machine-readable) and ``detail`` (for a person)."""

    def __init__(self, reason: str, detail: str) -> None:
        self.reason = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")
