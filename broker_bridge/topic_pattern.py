"""Topic patterns such as ``shellies/{device}/ext_temperature/{sensor}``.

Each ``{name}`` takes one whole topic level: ``device``, ``sensor`` and ``metric`` name the reading,
any other name becomes a label. ``+`` matches one level and ``#`` (last only) the rest, without
capturing. The MQTT subscription filter is the pattern with every capture turned into ``+``.
"""

from __future__ import annotations

import re
from typing import Optional

from vigil.core.errors import VigilError

__all__ = ["PatternError", "TopicPattern", "filters_overlap"]

_CAPTURE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]{0,63})\}")


class PatternError(VigilError):
    """A topic pattern cannot be used; ``pattern`` is the text and the message says why."""

    def __init__(self, pattern: str, reason: str) -> None:
        self.pattern = pattern
        self.reason = reason
        super().__init__(f"topic pattern {pattern!r}: {reason}")


class TopicPattern:
    """A compiled pattern: ``match(topic)`` gives the captured levels by name, or None."""

    __slots__ = ("_levels", "_multi", "fields", "filter", "text")

    def __init__(self, text: str) -> None:
        if not isinstance(text, str) or not text:
            raise PatternError(str(text), "it is empty")
        if text.startswith("$"):
            raise PatternError(text, "topics starting with '$' belong to the broker")
        parts = text.split("/")
        levels: list[tuple[Optional[str], Optional[str]]] = []  # (literal, capture name); both None = '+'
        names: list[str] = []
        multi = False
        for i, part in enumerate(parts):
            capture = _CAPTURE.fullmatch(part)
            if capture:
                name = capture.group(1)
                if name in names:
                    raise PatternError(text, f"{{{name}}} appears twice")
                names.append(name)
                levels.append((None, name))
            elif part == "+":
                levels.append((None, None))
            elif part == "#":
                if i != len(parts) - 1:
                    raise PatternError(text, "'#' may only be the last level")
                multi = True
            elif any(c in part for c in "{}+#"):
                raise PatternError(text, f"level {part!r}: a {{name}}, '+' or '#' must be a whole level")
            elif "\x00" in part:
                raise PatternError(text, "it contains a NUL character")
            else:
                levels.append((part, None))
        self.text = text
        self._levels = tuple(levels)
        self._multi = multi
        self.fields = tuple(names)
        self.filter = "/".join([lit if lit is not None else "+" for lit, _ in levels] + (["#"] if multi else []))

    def match(self, topic: str) -> Optional[dict[str, str]]:
        """The captured levels of ``topic``, or None when it does not fit the pattern."""
        parts = topic.split("/")
        n = len(self._levels)
        if len(parts) != n and not (self._multi and len(parts) >= n):
            return None
        out: dict[str, str] = {}
        for part, (literal, name) in zip(parts, self._levels):
            if literal is not None:
                if part != literal:
                    return None
            elif name is not None:
                out[name] = part
        return out

    def __repr__(self) -> str:
        return f"TopicPattern({self.text!r})"


def filters_overlap(a: str, b: str) -> bool:
    """Whether some topic would match both subscription filters."""
    fa = a.split("/")
    fb = b.split("/")
    for i in range(max(len(fa), len(fb))):
        la = fa[i] if i < len(fa) else None
        lb = fb[i] if i < len(fb) else None
        if la == "#" or lb == "#":
            return True
        if la is None or lb is None:
            return False
        if la != "+" and lb != "+" and la != lb:
            return False
    return True
