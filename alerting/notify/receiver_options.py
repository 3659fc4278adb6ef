"""A receiver's options beside its URLs: where its messages go when it keeps failing (``fallback:``).

A receiver in a rules file is a URL, a list of URLs, or a mapping::

    kitchen-staff:
      urls: ["ntfy://ntfy.sh/${NTFY_TOPIC}"]
      fallback: [manager-sms]
      after: 2m

:class:`~alerting.notify.config.NotifyConfig` keeps the URLs in ``receivers`` and these options in
``fallbacks``; the helpers here split the mapping form and keep the user's paths in error messages.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional, Union

from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_core import InitErrorDetails

from vigil.core.configtypes import STRICT, Duration

__all__ = ["Fallback", "fallback_problem", "relocated", "split_receivers"]

Loc = tuple[Union[str, int], ...]


class Fallback(BaseModel):
    """A receiver's message whose delivery keeps failing goes to ``fallback`` receivers instead.

    It falls back once no URL of the receiver delivered it and the receiver has been failing for
    ``after`` (2m when neither bound is given), or after ``attempts`` failed attempts, whichever comes
    first. ``keep_trying`` also delivers it to the first receiver once that recovers.
    """

    model_config = STRICT

    fallback: list[str] = Field(min_length=1)
    after: Optional[Duration] = None
    attempts: Optional[int] = Field(None, ge=1)
    keep_trying: bool = False

    @field_validator("fallback", mode="before")
    @classmethod
    def _one_name(cls, v: Any) -> Any:
        return [v] if isinstance(v, str) else v

    @property
    def wait(self) -> Optional[float]:
        """How long a receiver must have been failing before its messages fall back (None: attempts only)."""
        if self.after is None and self.attempts is None:
            return 120.0
        return self.after


def split_receivers(receivers: Mapping[Any, Any], fallbacks: Any) -> tuple[dict[Any, Any], dict[Any, Any], set[Any]]:
    """The URLs of each receiver, the options of those written as mappings, and those names."""
    urls: dict[Any, Any] = {}
    options_of: dict[Any, Any] = dict(fallbacks) if isinstance(fallbacks, dict) else {}
    forms = set()
    for name, value in receivers.items():
        if not isinstance(value, dict):
            urls[name] = value
            continue
        forms.add(name)
        options = dict(value)
        if "urls" not in options:
            raise ValidationError.from_exception_data("NotifyConfig", [_error(
                ("receivers", name), value, "a receiver written as a mapping needs urls: [...], its apprise "
                "URLs, beside fallback:, after:, attempts: and keep_trying:")])
        urls[name] = options.pop("urls")
        if options:
            options_of[name] = options
    return urls, options_of, forms


def fallback_problem(receivers: Mapping[str, Any], fallbacks: Mapping[str, Fallback]) -> Optional[InitErrorDetails]:
    """An unknown fallback name or a cycle of fallbacks, as an error at the receiver's ``fallback:``."""
    for name, spec in fallbacks.items():
        unknown = [n for n in spec.fallback if n not in receivers]
        if name not in receivers or unknown:
            missing = name if name not in receivers else unknown[0]
            known = ", ".join(sorted(receivers)) or "none are defined under receivers:"
            return _error(("receivers", name, "fallback"), spec.fallback,
                          f"unknown receiver {missing!r} (known: {known})")
    for name in fallbacks:
        cycle = _cycle(fallbacks, [name])
        if cycle:
            return _error(("receivers", name, "fallback"), fallbacks[name].fallback,
                          f"fallback cycle {' -> '.join(cycle)}: a receiver's fallbacks must not lead back "
                          "to it (a message that fails everywhere keeps retrying; it needs no loop)")
    return None


def _cycle(fallbacks: Mapping[str, Fallback], path: list[str]) -> Optional[list[str]]:
    spec = fallbacks.get(path[-1])
    for nxt in spec.fallback if spec else ():
        if nxt in path:
            return [*path[path.index(nxt):], nxt]
        found = _cycle(fallbacks, [*path, nxt])
        if found:
            return found
    return None


def _error(loc: Loc, given: Any, message: str) -> InitErrorDetails:
    return {"type": "value_error", "loc": loc, "input": given, "ctx": {"error": ValueError(message)}}


def relocated(exc: ValidationError, forms: set[Any]) -> ValidationError:
    """``fallbacks.<name>.x`` back to ``receivers.<name>.x``, and a mapping form's URLs to ``...urls[i]``."""
    details: list[InitErrorDetails] = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        if loc[:1] == ("fallbacks",) and len(loc) > 1:
            loc = ("receivers", *loc[1:])
            if err["type"] == "extra_forbidden":
                known = ", ".join(["urls", *Fallback.model_fields])
                details.append(_error(loc, loc[-1], f"unknown key {loc[-1]!r} (a receiver's keys are {known})"))
                continue
        elif loc[:1] == ("receivers",) and len(loc) > 1 and loc[1] in forms:
            loc = ("receivers", loc[1], "urls", *loc[2:])
        detail: InitErrorDetails = {"type": err["type"], "loc": loc, "input": err["input"]}
        if "ctx" in err:
            detail["ctx"] = err["ctx"]
        details.append(detail)
    return ValidationError.from_exception_data(exc.title, details)
