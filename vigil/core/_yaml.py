"""YAML loading that remembers where every key and value stood (PyYAML only; the edge uses it).

``load_yaml`` returns the plain data and a map from a key path, such as ``("mqtt", "port")``
or ``("rules", 2, "for")``, to its 1-based line, so that every configuration error can
name the file and the line.

The YAML is composed by libyaml (``yaml.CSafeLoader``) where PyYAML was built with it, several
times faster than the pure-Python composer (docs/proof.md, YAML loading), and by the pure-Python one
otherwise; both give the same nodes, so the same data and lines. libyaml refuses nesting deeper
than 1,000 levels itself; the pure-Python composer is bounded by the recursion limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional, Union

import yaml

from vigil.core.errors import VigilError

__all__ = ["HAVE_LIBYAML", "MAX_NODES", "Positions", "YamlError", "line_of", "load_yaml"]

MAX_NODES = 100_000
HAVE_LIBYAML = bool(getattr(yaml, "__with_libyaml__", False)) and hasattr(yaml, "CSafeLoader")
Path = tuple[Union[str, int], ...]
Positions = dict[Path, int]


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in a configuration: where it is and what was expected."""

    file: str
    line: Optional[int]
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class YamlError(VigilError):
    """The text is not YAML we accept; ``file`` and ``line`` say where."""

    def __init__(self, file: str, line: Optional[int], message: str) -> None:
        self.file = file
        self.line = line
        self.message = message
        where = f"{file}:{line}" if line else file
        super().__init__(f"{where}: {message}")


class _NodeLimit(VigilError):
    def __init__(self, line: int) -> None:
        self.line = line


def _counting_loader(max_nodes: int) -> type[yaml.SafeLoader]:
    """A SafeLoader that stops composing after ``max_nodes`` nodes (so a huge file costs little)."""

    class Loader(yaml.SafeLoader):
        _left = max_nodes

        def compose_node(self, parent: Any, index: Any) -> Any:
            self._left -= 1
            if self._left < 0:
                raise _NodeLimit(self.peek_event().start_mark.line + 1)  # type: ignore[no-untyped-call]
            return super().compose_node(parent, index)

    return Loader


def _compose(text: str, max_nodes: int, fast: bool) -> Optional[yaml.Node]:
    """The document's node graph, composed by libyaml when there is one (and ``fast``), else in Python."""
    if not (fast and HAVE_LIBYAML):
        return yaml.compose(text, Loader=_counting_loader(max_nodes))
    node: Optional[yaml.Node] = yaml.compose(text, Loader=yaml.CSafeLoader)
    # libyaml composes without a hook per node: count afterwards, as the Python composer counts (each node
    # and each alias once, in document order), and stop at the same node with the same line.
    left, seen = max_nodes, set()
    stack = [node] if node is not None else []
    while stack:
        n = stack.pop()
        left -= 1
        if left < 0:
            raise _NodeLimit(n.start_mark.line + 1)
        if id(n) in seen:  # an alias: counted, not composed again
            continue
        seen.add(id(n))
        if isinstance(n, yaml.MappingNode):
            stack.extend(child for pair in reversed(n.value) for child in reversed(pair))
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(reversed(n.value))
    return node


def _too_many(max_nodes: int) -> str:
    return f"more than {max_nodes:,} values (the limit of this file); split it into several files"


def load_yaml(text: str, file: str = "<string>", max_nodes: int = MAX_NODES, *,
              fast: bool = True) -> tuple[Any, Positions]:
    """Parse ``text`` into plain Python data and the line of every path in it; at most ``max_nodes`` values.

    ``fast=False`` composes with the pure-Python loader even where libyaml is there (tests, measurements)."""
    try:
        node = _compose(text, max_nodes, fast)
    except _NodeLimit as exc:
        raise YamlError(file, exc.line, _too_many(max_nodes)) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        if "maximum nesting depth" in str(exc.problem):  # libyaml's bound: the same words as the recursion limit's
            raise YamlError(file, line, "not valid YAML for us: nested too deeply") from None
        if fast and HAVE_LIBYAML:  # PyYAML's words say what it found instead ("but got '<stream end>'"): ask it
            return load_yaml(text, file, max_nodes, fast=False)
        message = f"not valid YAML: {exc.problem or exc.context}"
        if exc.context and exc.context_mark and exc.problem_mark and exc.context_mark.line != exc.problem_mark.line:
            message += f" ({exc.context} that starts on line {exc.context_mark.line + 1})"
        raise YamlError(file, line, message) from exc
    except RecursionError:
        raise YamlError(file, None, "not valid YAML for us: nested too deeply") from None
    except yaml.YAMLError as exc:
        if fast and HAVE_LIBYAML:
            return load_yaml(text, file, max_nodes, fast=False)
        raise YamlError(file, None, f"not valid YAML: {exc}") from exc
    positions: Positions = {}
    if node is None:
        return None, positions
    budget = [max_nodes, max_nodes]  # left, limit
    try:
        # one constructor for the document's scalars: a loader per scalar was a large part of a large
        # file's load (docs/proof.md, YAML loading)
        data = _build(node, (), positions, file, budget, yaml.constructor.SafeConstructor())
    except RecursionError:
        raise YamlError(file, None, "not valid YAML for us: nested too deeply") from None
    return data, positions


def _build(node: yaml.Node, path: Path, positions: Positions, file: str, budget: list[int],
           constructor: yaml.constructor.SafeConstructor) -> Any:
    # Aliases make a graph: a few lines can name billions of nodes ("billion laughs"). Count them.
    budget[0] -= 1
    if budget[0] < 0:
        raise YamlError(file, node.start_mark.line + 1,
                        f"more than {budget[1]:,} values once aliases are expanded; write the values out")
    positions.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise YamlError(file, key_node.start_mark.line + 1, "merge keys (<<) are not supported")
            key = _scalar(key_node, file, constructor)
            if isinstance(key, (list, dict)):
                raise YamlError(file, key_node.start_mark.line + 1, "a key must be a plain value")
            if key in out:
                raise YamlError(file, key_node.start_mark.line + 1, f"duplicate key {key!r}")
            positions[(*path, key)] = key_node.start_mark.line + 1
            out[key] = _build(value_node, (*path, key), positions, file, budget, constructor)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            positions[(*path, index)] = item.start_mark.line + 1
            items.append(_build(item, (*path, index), positions, file, budget, constructor))
        return items
    return _scalar(node, file, constructor)


def _scalar(node: yaml.Node, file: str, constructor: yaml.constructor.SafeConstructor) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        raise YamlError(file, node.start_mark.line + 1, "a key must be a plain value")
    try:
        return constructor.construct_object(node, deep=True)
    except yaml.MarkedYAMLError as exc:
        raise YamlError(file, node.start_mark.line + 1, f"cannot read value {node.value!r}: {exc.problem}") from exc


def line_of(positions: Positions, path: Sequence[Union[str, int]]) -> Optional[int]:
    """The line of ``path``, or of its nearest ancestor that has one."""
    p: Path = tuple(path)
    while p:
        if p in positions:
            return positions[p]
        p = p[:-1]
    return positions.get(())
