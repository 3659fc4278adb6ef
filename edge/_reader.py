"""Reads one YAML mapping key by key, collecting ``file:line: key: message`` issues (no pydantic)."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, Optional, TypeVar, Union

from vigil.core._yaml import Positions, line_of
from vigil.core.durations import parse_duration
from vigil.core.topics import TopicError, invisible_character, validate_segment

from .errors import ConfigIssue

__all__ = ["Context", "Reader"]

Path = tuple[Union[str, int], ...]
T = TypeVar("T")
_MISSING = object()
_LABEL = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class Context:
    """Where the mapping came from, and the issues found so far."""

    def __init__(self, file: str, positions: Optional[Positions]) -> None:
        self.file = file
        self.positions = positions or {}
        self.issues: list[ConfigIssue] = []

    def add(self, path: Path, message: str) -> None:
        key = ".".join(str(p) if isinstance(p, str) else f"[{p}]" for p in path).replace(".[", "[")
        self.issues.append(ConfigIssue(self.file, line_of(self.positions, path), key, message))


class Reader:
    """Takes keys out of one mapping; ``finish()`` reports the keys nobody asked for."""

    def __init__(self, data: Any, path: Path, ctx: Context) -> None:
        self.path = path
        self.ctx = ctx
        self.ok = isinstance(data, dict)
        if data is not None and not self.ok:
            ctx.add(path, f"expected a mapping of keys, got {_kind(data)}")
        self.data: dict[Any, Any] = dict(data) if isinstance(data, dict) else {}
        self.known: list[str] = []

    def error(self, key: Union[str, int], message: str) -> None:
        self.ctx.add((*self.path, key), message)

    def raw(self, key: str, default: Any = None) -> Any:
        self.known.append(key)
        return self.data.pop(key, default)

    def has(self, key: str) -> bool:
        return key in self.data

    def child(self, key: str) -> Reader:
        return Reader(self.raw(key), (*self.path, key), self.ctx)

    def text(self, key: str, default: Optional[str] = None, required: bool = False,
            segment: bool = False) -> Optional[str]:
        value = self.raw(key, _MISSING)
        if value is _MISSING or value is None:
            if required:
                self.error(key, "is required" + (", e.g. a short name like pi-1" if segment else ""))
            return default
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.error(key, f"expected a string, got {_kind(value)}")
            return default
        text = str(value)
        if segment:
            try:
                validate_segment(text, key)
            except TopicError as exc:
                self.error(key, exc.reason + " (it becomes one MQTT topic level)")
                return default
        return text

    def number(self, key: str, default: Optional[float] = None, minimum: Optional[float] = None,
               maximum: Optional[float] = None, integer: bool = False) -> Optional[float]:
        value = self.raw(key, _MISSING)
        if value is _MISSING or value is None:
            return default
        kind = "an integer" if integer else "a number"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or (integer and not float(value).is_integer()):
            self.error(key, f"expected {kind}{_range(minimum, maximum)}, got {value!r}")
            return default
        if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            self.error(key, f"expected {kind}{_range(minimum, maximum)}, got {value!r}")
            return default
        return float(value)

    def integer(self, key: str, default: int, minimum: Optional[int] = None,
                maximum: Optional[int] = None) -> int:
        value = self.number(key, None, minimum, maximum, integer=True)
        return default if value is None else int(value)

    def duration(self, key: str, default: Optional[float] = None, minimum: float = 0.0,
                 allow_zero: bool = False) -> Optional[float]:
        value = self.raw(key, _MISSING)
        if value is _MISSING or value is None:
            return default
        try:
            seconds = parse_duration(value)
        except ValueError as exc:
            self.error(key, str(exc))
            return default
        if seconds < minimum or (seconds == 0 and not allow_zero):
            self.error(key, f"expected a duration of at least {minimum:g}s, got {value!r}")
            return default
        return seconds

    def flag(self, key: str, default: bool) -> bool:
        value = self.raw(key, _MISSING)
        if value is _MISSING or value is None:
            return default
        if not isinstance(value, bool):
            self.error(key, f"expected true or false, got {value!r}")
            return default
        return value

    def choice(self, key: str, choices: Sequence[str], default: Optional[str]) -> Optional[str]:
        value = self.raw(key, _MISSING)
        if value is _MISSING or value is None:
            return default
        # YAML 1.1 reads a bare off/on/no/yes as a boolean.
        text = {False: "off", True: "on"}.get(value, str(value)) if isinstance(value, bool) else str(value)
        if text not in choices:
            self.error(key, f"expected one of {', '.join(choices)}, got {value!r}")
            return default
        return text

    def labels(self, key: str) -> dict[str, str]:
        value = self.raw(key, _MISSING)
        if value is _MISSING or value is None:
            return {}
        if not isinstance(value, dict):
            self.error(key, f"expected a mapping of label names to strings, got {_kind(value)}")
            return {}
        out: dict[str, str] = {}
        for name, text in value.items():
            if not (isinstance(name, str) and _LABEL.match(name)):
                self.ctx.add((*self.path, key, str(name)), "a label name is letters, digits and _ "
                             "(starting with a letter or _), at most 64 characters")
            elif isinstance(text, bool) or not isinstance(text, (str, int, float)) or len(str(text)) > 128:
                self.ctx.add((*self.path, key, name), "a label value is a string of at most 128 characters")
            elif (hidden := invisible_character(str(text))) is not None:
                # the bridge refuses such a value (vigil/core/topics.py): say so here, not in a dead letter
                self.ctx.add((*self.path, key, name), f"a label value must be visible text: {hidden}")
            else:
                out[name] = str(text)
        if len(out) > 16:
            self.error(key, "at most 16 labels")
        return out

    def finish(self) -> None:
        """Report every key that was not read as unknown, with a suggestion."""
        if not self.data:
            return
        import difflib  # only when there is a mistake to report (memory: docs/edge.md, Footprint)

        for key in self.data:
            hint = difflib.get_close_matches(str(key), self.known, n=1)
            known = f"did you mean {hint[0]!r}?" if hint else f"known keys: {', '.join(sorted(self.known))}"
            self.error(str(key), f"unknown key; {known}")
        self.data.clear()


def _range(minimum: Optional[float], maximum: Optional[float]) -> str:
    if minimum is not None and maximum is not None:
        return f" from {minimum:g} to {maximum:g}"
    if minimum is not None:
        return f" of at least {minimum:g}"
    if maximum is not None:
        return f" of at most {maximum:g}"
    return ""


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"{type(value).__name__} {value!r}"
