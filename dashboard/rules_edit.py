"""The Rules page's form: read a rule's common keys from a rules file and change them in place.

An edit rewrites only the bytes of the values it changes (a key it adds is one new line, a key it
removes is its own line): comments, key order, quoting, indentation and every other rule stay as
they were, byte for byte. PyYAML's composer gives each value's exact start and end in the text;
a round-trip dump (ruamel.yaml) re-indents sequences and moves comments, which this avoids.
"""

from __future__ import annotations

import math
import re
from typing import Any, Callable, Optional

import yaml

from vigil.core.durations import parse_duration
from vigil.core.errors import VigilError

__all__ = ["FIELDS", "EditError", "Hostile", "apply_edits", "rule_fields"]

# The rule engine's own bounds (RuleChecker.hostile): (line, reason) when a text is refused before parsing.
Hostile = Callable[[str], Optional[tuple[Optional[int], str]]]

# The keys the form edits: (path in the rule, kind of value).
FIELDS: dict[str, str] = {
    "above": "number", "below": "number", "clear_below": "number", "clear_above": "number",
    "for": "duration", "nodata": "duration", "offline": "bool", "severity": "severity",
    "rate.window": "duration", "rate.above": "number", "rate.below": "number", "enabled": "bool",
}
_SEVERITIES = ("info", "warning", "critical")
_PLAIN = re.compile(r"[0-9A-Za-z.+-]+")


class EditError(VigilError):
    """The form's change cannot be made to this text; the message says why and what to do."""


def _compose(text: str, hostile: Hostile) -> yaml.MappingNode:
    # The rule engine's own bounds (size, aliases) before any parsing: a large file costs much CPU
    # (docs/proof.md, YAML loading).
    refused = hostile(text)
    if refused is not None:
        line, reason = refused
        raise EditError((f"line {line}: " if line else "") + reason)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark
        where = f"line {mark.line + 1}: " if mark else ""
        raise EditError(f"{where}not valid YAML ({exc.problem}); fix it in the editor first") from None
    except RecursionError:
        raise EditError("the YAML is nested too deeply; fix it in the editor first") from None
    if not isinstance(node, yaml.MappingNode):
        raise EditError("the file is not a mapping with a 'rules:' list; fix it in the editor first")
    return node


def _get(mapping: yaml.MappingNode, key: str) -> Optional[tuple[yaml.Node, yaml.Node]]:
    for k, v in mapping.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return k, v
    return None


def _rules(root: yaml.MappingNode) -> list[yaml.MappingNode]:
    found = _get(root, "rules")
    if found is None or not isinstance(found[1], yaml.SequenceNode):
        return []
    return [n for n in found[1].value if isinstance(n, yaml.MappingNode)]


def _name(rule: yaml.MappingNode) -> Optional[str]:
    found = _get(rule, "name")
    return found[1].value if found and isinstance(found[1], yaml.ScalarNode) else None


def _find_rule(root: yaml.MappingNode, name: str) -> yaml.MappingNode:
    for rule in _rules(root):
        if _name(rule) == name:
            return rule
    raise EditError(f"no rule named {name!r} in this file; it may have been renamed in the editor")


def _lookup(rule: yaml.MappingNode, path: str) -> Optional[yaml.Node]:
    node: Optional[yaml.Node] = rule
    for part in path.split("."):
        if not isinstance(node, yaml.MappingNode):
            return None
        found = _get(node, part)
        node = found[1] if found else None
    return node


def rule_fields(text: str, hostile: Hostile) -> list[dict[str, Any]]:
    """Every rule of ``text`` with the form's keys as written (``"20s"`` stays ``"20s"``)."""
    try:
        root = _compose(text, hostile)
    except EditError:
        return []
    out = []
    for rule in _rules(root):
        name = _name(rule)
        if name is None:
            continue
        values: dict[str, Optional[str]] = {}
        for path in FIELDS:
            node = _lookup(rule, path)
            values[path] = node.value if isinstance(node, yaml.ScalarNode) else None
        match = _lookup(rule, "match")
        shown = ({k.value: v.value for k, v in match.value if isinstance(v, yaml.ScalarNode)}
                 if isinstance(match, yaml.MappingNode) else {})
        out.append({"name": name, "line": rule.start_mark.line + 1, "fields": values, "match": shown,
                    "kind": _kind(values)})
    return out


def _kind(values: dict[str, Optional[str]]) -> str:
    if values["offline"] not in (None, "false"):
        return "offline"
    if values["nodata"] is not None:
        return "nodata"
    if any(values[k] is not None for k in ("rate.window", "rate.above", "rate.below")):
        return "rate"
    if values["above"] is not None or values["below"] is not None:
        return "threshold"
    return "other"


def _checked_value(path: str, raw: str) -> str:
    """The YAML text for a form value, or EditError saying what was expected."""
    kind = FIELDS[path]
    value = raw.strip()
    if kind == "number":
        try:
            ok = math.isfinite(float(value))
        except ValueError:
            ok = False
        if not ok or not _PLAIN.fullmatch(value):
            raise EditError(f"{path}: expected a number such as -15 or 2.5, got {raw!r}")
    elif kind == "duration":
        try:
            parse_duration(value)
        except ValueError as exc:
            raise EditError(f"{path}: {exc}") from None
        if not _PLAIN.fullmatch(value):
            raise EditError(f"{path}: expected a duration such as 30s, 5m or 1h30m, got {raw!r}")
    elif kind == "severity":
        if value not in _SEVERITIES:
            raise EditError(f"severity: expected one of {', '.join(_SEVERITIES)}, got {raw!r}")
    elif value not in ("true", "false"):
        raise EditError(f"{path}: expected true or false, got {raw!r}")
    return value


def apply_edits(text: str, rule: str, fields: dict[str, Optional[str]], hostile: Hostile) -> str:
    """``text`` with ``rule``'s form keys set (a string) or removed (None or empty); nothing else changes."""
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise EditError(f"the form cannot edit {', '.join(unknown)}; known keys: {', '.join(FIELDS)}")
    for path, raw in fields.items():
        value = None if raw is None or not raw.strip() else _checked_value(path, raw)
        # One change at a time, each on a freshly composed text: every position stays exact.
        node = _find_rule(_compose(text, hostile), rule)
        current = _lookup(node, path)
        if value is None:
            if current is not None:
                text = _remove(text, node, path)
        elif isinstance(current, yaml.ScalarNode):
            text = text[:current.start_mark.index] + value + text[current.end_mark.index:]
        elif current is None:
            text = _insert(text, node, path, value)
        else:
            raise EditError(f"{path} of rule {rule!r} is not a single value; edit it in the raw editor")
    return text


def _parent(rule: yaml.MappingNode, path: str) -> tuple[Optional[yaml.Node], str]:
    head, _, key = path.rpartition(".")
    return (_lookup(rule, head) if head else rule), key


def _last(node: yaml.Node) -> yaml.Node:
    """The last value inside ``node`` (a block mapping's own end mark lies past the comments after it)."""
    while isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and not node.flow_style and node.value:
        last = node.value[-1]
        node = last[1] if isinstance(last, tuple) else last
    return node


def _end_of(text: str, node: yaml.Node) -> int:
    """The start of the line after ``node``'s value.

    A block scalar's end mark lies past the blank lines after it: those stay after the new line,
    unless its header keeps them (``|+``), when they are part of the value.
    """
    last = _last(node)
    i = int(last.end_mark.index)
    if not (i > 0 and text[i - 1] == "\n"):
        j = text.find("\n", i)
        return len(text) if j < 0 else j + 1
    header = text[last.start_mark.index:text.find("\n", last.start_mark.index)]
    if isinstance(last, yaml.ScalarNode) and "+" in header.split("#")[0]:
        return i
    while i > 1:
        start = text.rfind("\n", 0, i - 1) + 1
        if text[start:i].strip():
            break
        i = start
    return i


def _insert(text: str, rule: yaml.MappingNode, path: str, value: str) -> str:
    parent, key = _parent(rule, path)
    if parent is None:  # rate.* on a rule without rate: a new flow mapping
        return _insert(text, rule, path.split(".")[0], "{" + f"{key}: {value}" + "}")
    if not isinstance(parent, yaml.MappingNode):
        raise EditError(f"{path.rpartition('.')[0]} is not a mapping; edit it in the raw editor")
    if parent.flow_style:
        close = int(parent.end_mark.index) - 1  # the closing brace
        sep = (" " if text[:close].rstrip().endswith(",") else ", ") if parent.value else ""
        return text[:close] + f"{sep}{key}: {value}" + text[close:]
    at = _end_of(text, parent)
    column = int(parent.value[0][0].start_mark.column)
    line = " " * column + f"{key}: {value}\n"
    if at == len(text) and text and not text.endswith("\n"):
        line = "\n" + line
    return text[:at] + line + text[at:]


def _remove(text: str, rule: yaml.MappingNode, path: str) -> str:
    parent, key = _parent(rule, path)
    assert isinstance(parent, yaml.MappingNode)
    found = _get(parent, key)
    assert found is not None
    k, v = found
    if parent is not rule and len(parent.value) == 1:  # its last key: the whole ``rate:`` goes
        return _remove(text, rule, path.rpartition(".")[0])
    if parent.flow_style:
        start, end = k.start_mark.index, v.end_mark.index
        rest = text[end:]
        if rest.lstrip(" ").startswith(","):
            end += len(rest) - len(rest.lstrip(" ")) + 1
            end += len(text[end:]) - len(text[end:].lstrip(" "))
        else:
            before = text[:start].rstrip(" ")
            if before.endswith(","):
                start = len(before) - 1
        return text[:start] + text[end:]
    line_start = text.rfind("\n", 0, k.start_mark.index) + 1
    if text[line_start:k.start_mark.index].strip():
        raise EditError(f"{path} shares its line with another key; remove it in the raw editor")
    return str(text[:line_start] + text[_end_of(text, v):])
