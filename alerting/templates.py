"""Alert messages: Jinja2 templates rendered in a bounded immutable sandbox.

The sandbox refuses attribute access to Python internals (``''.__class__.__mro__``), and values such
as a device name are data: a device called ``{{ 7*7 }}`` is printed as such, never evaluated.
It also bounds the work of one render, since a read-only user may validate any template: no value
built larger than :data:`MAX_VALUE` (``'x' * 300000000``, ``'%300000000d'``, ``9 ** 9 ** 9``), at most
:data:`MAX_STEPS` loop iterations and calls, :data:`MAX_SECONDS` of time; and rendering stops once
the message is longer than :data:`MAX_MESSAGE_CHARS` (it is cut there anyway).
"""

from __future__ import annotations

import functools
import logging
import math
import re
import time
from collections.abc import Sized
from contextvars import ContextVar
from datetime import tzinfo
from typing import Any, Callable, Optional

from jinja2 import Template, TemplateSyntaxError, Undefined, nodes
from jinja2.exceptions import SecurityError, TemplateError
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from vigil.core.durations import format_duration
from vigil.core.errors import VigilError
from vigil.core.sitetime import format_time, format_value, precision_of

__all__ = ["DEFAULT_MESSAGE", "MessageTemplate", "TemplateProblem", "fmt_duration", "fmt_time",
           "render_context_example", "use_zone"]

log = logging.getLogger(__name__)

DEFAULT_MESSAGE = "{{ rule }}: {{ series }} is {{ state }}{% if value is not none %} ({{ value_text }}" \
    "{{ unit }}){% endif %} since {{ since }}"

# Large outputs would travel in every notification and retained MQTT message.
MAX_MESSAGE_CHARS = 4000
# The bounds of one render (see the module's docstring).
MAX_VALUE = 100_000
MAX_STEPS = 100_000
MAX_SECONDS = 1.0
# Filters and str methods whose numeric arguments are widths or counts of what they build.
_WIDTH_FILTERS = frozenset({"center", "indent", "wordwrap", "truncate", "slice", "batch"})
_WIDTH_METHODS = frozenset({"center", "ljust", "rjust", "zfill", "expandtabs"})
# A width or precision in a format string ("%300000000d", "{:>300000000}") builds a string that wide.
_WIDE_FORMAT = re.compile(r"(?:%|\{[^{}]*:)[^a-zA-Z{}%]*?(\d{6,})")


class TemplateProblem(VigilError):
    """A message template cannot be used; ``line`` is within the template, ``reason`` says why."""

    def __init__(self, reason: str, line: Optional[int] = None) -> None:
        self.reason = reason
        self.line = line
        super().__init__(reason)


# The site's time zone for every time a message shows (``since``, ``at``, the ``time`` filter); None: the server's.
# One per process, set where the process learns it (alerting.delivery, the dashboard's start), as a transition's
# message is rendered (alerting.notify.message) deep inside the engine's evaluation, which has no zone of its own.
_ZONE: Optional[tzinfo] = None


def use_zone(zone: Optional[tzinfo]) -> None:
    """Write the times of every message rendered from now on in ``zone`` (None: the server's zone)."""
    global _ZONE
    _ZONE = zone


def fmt_time(ts: Any) -> str:
    """``2026-12-02 21:39:04 CET``: the site's zone, named (vigil.core.sitetime.format_time)."""
    return format_time(ts, _ZONE)


def _value_text(value: Any, labels: Any) -> str:
    """``-11.913`` -> ``-11.9``: the reading at its sensor's precision, as the dashboard and notifications show it."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "" if value is None else str(value)
    return format_value(float(value), precision_of(labels if isinstance(labels, dict) else {}))


def fmt_duration(seconds: Any) -> str:
    """``5m``, ``1h30m``: as long as ``seconds`` (vigil.core.durations.format_duration); anything else as text."""
    try:
        return format_duration(max(0.0, float(seconds)))
    except (TypeError, ValueError):
        return str(seconds)


class TemplateLimit(VigilError, SecurityError):
    """A render went past one of the sandbox's bounds."""


class _Budget:
    def __init__(self) -> None:
        self.steps = 0
        self.deadline = time.monotonic() + MAX_SECONDS


_BUDGET: ContextVar[Optional[_Budget]] = ContextVar("vigil_template_budget", default=None)


def _tick() -> None:
    budget = _BUDGET.get()
    if budget is None:
        return
    budget.steps += 1
    if budget.steps > MAX_STEPS:
        raise TemplateLimit(f"the template does more than {MAX_STEPS:,} loop iterations and calls")
    if budget.steps % 256 == 0 and time.monotonic() > budget.deadline:
        raise TemplateLimit(f"the template takes longer than {MAX_SECONDS:g} s to render")


def _sized(value: Any) -> Any:
    if isinstance(value, Sized) and not isinstance(value, range) and len(value) > MAX_VALUE:
        raise TemplateLimit(f"the template builds a value larger than {MAX_VALUE:,} characters or items")
    return value


def _check_format(text: Any) -> None:
    if isinstance(text, str):
        m = _WIDE_FORMAT.search(text)
        if m:
            raise TemplateLimit(f"the format width {m.group(1)} would build a value larger than {MAX_VALUE:,} "
                                "characters")


def _check_args(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    for a in (*args, *kwargs.values()):
        if isinstance(a, int) and not isinstance(a, bool) and abs(a) > MAX_VALUE:
            raise TemplateLimit(f"the argument {a} is larger than {MAX_VALUE:,}, the largest width or count allowed")


def _check_replace(text: Any, args: tuple[Any, ...]) -> None:
    if isinstance(text, str) and len(args) >= 2 and isinstance(args[0], str) and isinstance(args[1], str):
        grows = len(args[1]) - len(args[0])
        if grows > 0 and len(text) + grows * text.count(args[0] or " ") > MAX_VALUE:
            raise TemplateLimit(f"the template builds a value larger than {MAX_VALUE:,} characters (replace)")


def _check_join(sep: str, items: Any) -> None:
    if isinstance(items, Sized):
        size = sum(len(str(v)) for v in items) if isinstance(items, (list, tuple)) else 0
        if len(items) * len(sep) + size > MAX_VALUE:
            raise TemplateLimit(f"the template builds a value larger than {MAX_VALUE:,} characters (join)")


def _bounded_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0  # context, environment...

    @functools.wraps(func)  # keeps the pass_context/pass_environment marks
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _tick()
        value, rest = (args[skip], args[skip + 1:]) if len(args) > skip else (None, ())
        if name in _WIDTH_FILTERS:
            _check_args(rest, kwargs)
        elif name == "format":
            _check_format(value)
        elif name == "replace":
            _check_replace(value, rest)
        elif name == "join":
            _check_join(rest[0] if rest and isinstance(rest[0], str) else str(kwargs.get("d", "")), value)
        return _sized(func(*args, **kwargs))

    return wrapper


def _steps(iterable: Any) -> Any:
    for item in iterable:
        _tick()
        yield item


class BoundedSandbox(ImmutableSandboxedEnvironment):
    """The immutable sandbox with bounds on size, steps and time (see the module's docstring)."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.globals["_vigil_steps"] = _steps

    def _parse(self, source: str, name: Optional[str], filename: Optional[str]) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        # Every {% for %} counts its iterations, so nested loops cannot run for hours.
        for loop in tree.find_all(nodes.For):
            loop.iter = nodes.Call(nodes.Name("_vigil_steps", "load", lineno=loop.lineno), [loop.iter], [],
                                   None, None, lineno=loop.lineno)
        return tree

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        _tick()
        if operator == "*":
            for seq, n in ((left, right), (right, left)):
                if isinstance(seq, (str, list, tuple)) and isinstance(n, int) and len(seq) * n > MAX_VALUE:
                    raise TemplateLimit(f"the template builds a value larger than {MAX_VALUE:,} characters or "
                                        f"items ({len(seq)} × {n})")
        elif operator == "**" and isinstance(left, int) and isinstance(right, int) and abs(left) > 1 \
                and right * math.log2(abs(left)) > 4096:
            raise TemplateLimit("the template raises a number to a power too large to compute")
        elif operator == "%":
            _check_format(left)
        elif operator == "+" and isinstance(left, Sized) and isinstance(right, Sized) \
                and len(left) + len(right) > MAX_VALUE:
            raise TemplateLimit(f"the template builds a value larger than {MAX_VALUE:,} characters or items")
        return _sized(super().call_binop(context, operator, left, right))

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        _tick()
        receiver = getattr(__obj, "__self__", None) or getattr(getattr(__obj, "__wrapped__", None), "__self__", None)
        if isinstance(receiver, str):  # str methods: ljust(n), center(n), zfill(n), format, replace...
            method = getattr(__obj, "__name__", "")
            if method in _WIDTH_METHODS:
                _check_args(args, kwargs)
            elif method == "replace":
                _check_replace(receiver, args)
            elif method == "join" and args:
                _check_join(receiver, args[0])
            elif method == "translate" and args and isinstance(args[0], dict):
                longest = max((len(v) for v in args[0].values() if isinstance(v, str)), default=1)
                if len(receiver) * longest > MAX_VALUE:
                    raise TemplateLimit(f"the template builds a value larger than {MAX_VALUE:,} characters "
                                        "(translate)")
            _check_format(receiver)
        return _sized(super().call(__context, __obj, *args, **kwargs))


_ENV = BoundedSandbox(autoescape=False, undefined=Undefined)
_ENV.filters["time"] = fmt_time
_ENV.filters["duration"] = fmt_duration
_ENV.filters.update({name: _bounded_filter(name, f) for name, f in _ENV.filters.items()})


@functools.lru_cache(maxsize=512)
def _compile(source: str) -> Template:
    # Compiling costs milliseconds; a rules file repeats the same message in many rules.
    return _ENV.from_string(source)


def _render(template: Template, context: dict[str, Any]) -> str:
    """Render within the bounds (TemplateLimit past one); stops early once the message is too long to keep."""
    token = _BUDGET.set(_Budget())
    out: list[str] = []
    size = 0
    chunks = template.generate(context)
    try:
        for chunk in chunks:
            out.append(chunk)
            size += len(chunk)
            if size > MAX_MESSAGE_CHARS:
                break  # the rest would be cut: do not compute it
    finally:
        getattr(chunks, "close", lambda: None)()  # a generator: ends the template's code now
        _BUDGET.reset(token)
    return "".join(out)


def render_context_example() -> dict[str, Any]:
    """A context with every variable a message may use, for checking templates at load time."""
    return {
        "rule": "freezer-warm",
        "series": "freezer-1/t0/temperature",
        "device": "freezer-1",
        "sensor": "t0",
        "metric": "temperature",
        "value": -12.34,
        "value_text": "-12.3",
        "unit": "°C",
        "state": "firing",
        "previous": "pending",
        "severity": "critical",
        "since": fmt_time(1_700_000_000),
        "since_ts": 1_700_000_000.0,
        "at": fmt_time(1_700_000_300),
        "duration": "5m",
        "labels": {"site": "kitchen"},
        "link": "http://127.0.0.1:8080/alerts/freezer-warm/freezer-1/t0/temperature",
        # what conditions find (Condition.facts): stale's usual interval and limit, stuck's run start
        "interval": 60.0, "limit": 180.0, "stuck_since": 1_699_990_000.0,
        # forecast, jump, noise: the reason in words (their default message) and their numbers
        "reason": "freezer-1/t0 will reach -12.0 °C in about 18 min at the current rate (+0.3 °C/min)",
        "eta": 1080.0, "rate": 0.3, "threshold": -12.0, "jumped_from": -18.1, "elapsed": 10.0, "spread": 1.3,
        "usual": 0.15,
    }


class MessageTemplate:
    """One compiled message template; ``render`` never raises."""

    def __init__(self, source: str) -> None:
        self.source = source
        try:
            self._template = _compile(source)
        except TemplateSyntaxError as exc:
            raise TemplateProblem(f"template syntax error: {exc.message}", exc.lineno) from exc

    def check(self) -> None:
        """Render once with an example context; TemplateProblem if the sandbox refuses it."""
        try:
            _render(self._template, render_context_example())
        except SecurityError as exc:
            raise TemplateProblem(f"the template sandbox refused it: {exc}") from exc
        except TemplateError as exc:
            raise TemplateProblem(f"the template fails: {exc}") from exc
        except Exception as exc:  # a filter on a wrong type: TypeError, ZeroDivisionError...
            raise TemplateProblem(f"the template fails on an example alert: {type(exc).__name__}: {exc}") from exc

    def render(self, context: dict[str, Any]) -> str:
        """The message; on a failure, a plain message that says the template failed."""
        if "value_text" not in context:  # ``value`` stays a number for comparisons and filters
            context = {**context, "value_text": _value_text(context.get("value"), context.get("labels"))}
        try:
            text = _render(self._template, context)
        except Exception as exc:  # a message must go out even when its template breaks
            log.warning("message template of rule %s failed: %s", context.get("rule"), exc)
            text = f"{context.get('rule')}: {context.get('series')} is {context.get('state')} " \
                f"(message template failed: {type(exc).__name__})"
        if len(text) > MAX_MESSAGE_CHARS:
            text = text[: MAX_MESSAGE_CHARS - 3] + "..."
        return text
