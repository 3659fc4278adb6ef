"""The root of Vigil's own errors. Standard library only (the edge imports it).

Every error Vigil raises on purpose derives from :class:`VigilError`; anything else that escapes is a
bug. The tree below the root is documented in docs/architecture.md ("Errors").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # a dataclass of the standard library; _yaml itself needs PyYAML
    from vigil.core._yaml import ConfigIssue

__all__ = ["BadRequest", "ConfigError", "VigilError"]


class VigilError(Exception):
    """An error Vigil raises on purpose, with a message a person can act on."""


class BadRequest(VigilError):
    """The caller's request is wrong: the HTTP layer answers it with ``status`` (422 unless said).

    Only this error (and request validation) becomes a 4xx answer; any other exception in a handler
    is a 500 that is logged, because it is Vigil's mistake, not the caller's.
    """

    def __init__(self, detail: str, status: int = 422) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status


class ConfigError(VigilError):
    """A configuration has one or more problems; ``issues`` lists them all (each ``file:line: key: message``)."""

    def __init__(self, issues: Sequence[ConfigIssue]) -> None:
        self.issues = list(issues)
        super().__init__("\n".join(str(i) for i in self.issues))
