"""Alert messages: Jinja2 templates rendered in its immutable sandbox.

The sandbox refuses attribute access to Python internals (``''.__class__.__mro__``), and values such
as a device name are data: a device called ``{{ 7*7 }}`` is printed as such, never evaluated.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Any, Optional

from jinja2 import TemplateSyntaxError, Undefined
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from vigil.durations import format_duration

__all__ = ["DEFAULT_MESSAGE", "MessageTemplate", "TemplateProblem", "render_context_example"]

log = logging.getLogger(__name__)

DEFAULT_MESSAGE = "{{ rule }}: {{ series }} is {{ state }}{% if value is not none %} ({{ value | round(2) }}" \
    "{{ unit }}){% endif %} since {{ since }}"

# Large outputs would travel in every notification and retained MQTT message.
MAX_MESSAGE_CHARS = 4000


class TemplateProblem(ValueError):
    """A message template cannot be used; ``line`` is within the template, ``reason`` says why."""

    def __init__(self, reason: str, line: Optional[int] = None) -> None:
        self.reason = reason
        self.line = line
        super().__init__(reason)


def _fmt_time(ts: Any) -> str:
    try:
        return datetime.fromtimestamp(float(ts), tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    except (TypeError, ValueError, OverflowError, OSError):
        return str(ts)


def _fmt_duration(seconds: Any) -> str:
    try:
        return format_duration(max(0.0, float(seconds)))
    except (TypeError, ValueError):
        return str(seconds)


_ENV = ImmutableSandboxedEnvironment(autoescape=False, undefined=Undefined)
_ENV.filters["time"] = _fmt_time
_ENV.filters["duration"] = _fmt_duration


def render_context_example() -> dict[str, Any]:
    """A context with every variable a message may use, for checking templates at load time."""
    return {
        "rule": "freezer-warm",
        "series": "freezer-1/t0/temperature",
        "device": "freezer-1",
        "sensor": "t0",
        "metric": "temperature",
        "value": -12.34,
        "unit": "°C",
        "state": "firing",
        "previous": "pending",
        "severity": "critical",
        "since": _fmt_time(1_700_000_000),
        "since_ts": 1_700_000_000.0,
        "at": _fmt_time(1_700_000_300),
        "duration": "5m",
        "labels": {"site": "kitchen"},
        "link": "http://127.0.0.1:8080/alerts/freezer-warm/freezer-1/t0/temperature",
    }


class MessageTemplate:
    """One compiled message template; ``render`` never raises."""

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            self._template = _ENV.from_string(source)
        except TemplateSyntaxError as exc:
            raise TemplateProblem(f"template syntax error: {exc.message}", exc.lineno) from exc

    def check(self) -> None:
        """Render once with an example context; TemplateProblem if the sandbox refuses it."""
        try:
            self._template.render(render_context_example())
        except SecurityError as exc:
            raise TemplateProblem(f"the template sandbox refused it: {exc}") from exc
        except TemplateError as exc:
            raise TemplateProblem(f"the template fails: {exc}") from exc
        except Exception as exc:  # a filter on a wrong type: TypeError, ZeroDivisionError...
            raise TemplateProblem(f"the template fails on an example alert: {type(exc).__name__}: {exc}") from exc

    def render(self, context: dict[str, Any]) -> str:
        """The message; on a failure, a plain message that says the template failed."""
        try:
            text = self._template.render(context)
        except Exception as exc:  # a message must go out even when its template breaks
            log.warning("message template of rule %s failed: %s", context.get("rule"), exc)
            text = f"{context.get('rule')}: {context.get('series')} is {context.get('state')} " \
                f"(message template failed: {type(exc).__name__})"
        if len(text) > MAX_MESSAGE_CHARS:
            text = text[: MAX_MESSAGE_CHARS - 3] + "..."
        return text
