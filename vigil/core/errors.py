"""The root of Vigil's own errors. Standard library only (the edge imports it).

Every error Vigil raises on purpose derives from :class:`VigilError`; anything else that escapes is a
bug. The tree (module in brackets; ``*``: also a ``ValueError``, because it is raised inside pydantic
validators, or inside a JSON decoder whose callers catch ``ValueError``)::

    VigilError
     ├── ConfigError            a configuration is wrong; ``issues``: each with file, line, key, message
     │    ├── RulesError        a rules file (alerting.rules)
     │    └── EdgeConfigError   edge.yaml, or vigil.yaml's edge: section (edge.errors; also an EdgeError)
     ├── YamlError              not YAML we accept: ``file``, ``line`` (vigil.core._yaml)
     ├── Refusal                input refused with ``reason`` and ``detail``: a reading, a payload of a
     │                          format, a value the normalizer refuses (vigil.core.refusal)
     ├── JsonRefused*           JSON too large, too deep, or with a number JSON has not (vigil.core.jsonlimits)
     ├── TopicError*            a name that cannot stand in a topic (vigil.core.topics)
     ├── UrlError*              a broker or store URL that cannot be used (vigil.core.urls)
     ├── EventDecodeError       a payload that is not an event (vigil.core.event)
     ├── StoreError             a store operation failed: ``store`` (vigil.core.stores)
     │    ├── StoreUnavailable  not reachable now: try again later
     │    └── StoreRejected     the request is refused: do not retry as is
     │         └── EventsRefused   some events of a batch: ``refused``
     ├── BadRequest             the caller's request is wrong: the HTTP layer answers 4xx
     ├── BrokerError            the managed Mosquitto of ``vigil up`` (vigil.app.broker)
     ├── the bridge's           LinkError (lost connection: reconnect), UnitError, PathError, PatternError
     ├── the rule engine's      StateError (the state file), TemplateProblem, TemplateLimit (also jinja2's
     │                          SecurityError), MissingSecret > SecretNotAllowed (a receiver URL's ${VAR})
     ├── EdgeError              the edge agent's (edge.errors): EdgeConfigError, SensorError, QueueError
     └── the dashboard's        ApiError > IngestError (answers with a status and problems), AuthError,
                                BrokerUnavailable, DenyListFull, EditError, PreviewError, StalePlaceholder,
                                RulesInvalid (dashboard.ports)

Exit statuses of the commands are in :mod:`vigil.core.exitcodes`; configuration problems are worded by
:mod:`vigil.core.configerrors`.
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

    With request validation and the dashboard's own API and authentication errors, the only 4xx
    answers; any other exception in a handler is a 500 that is logged, because it is Vigil's mistake,
    not the caller's.
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
