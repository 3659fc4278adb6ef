"""vigil.core._yaml composes with libyaml where PyYAML has it: the same data, the same line of every key, and the
same error with the same line as the pure-Python composer; without libyaml it still loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bench.yaml_load import rules_text
from vigil.core import _yaml
from vigil.core._yaml import YamlError, load_yaml

ROOT = Path(__file__).resolve().parents[4]

MIXED = """\
# a comment
mqtt: {url: "mqtt://127.0.0.1:1883", qos: 1}
store:
  url: sqlite:///vigil.db   # trailing comment
  retention: 30d
shared: &s {site: lab, room: "cold store"}
again: *s
values: [1, -2.5, 0x1f, 1e3, .inf, -.nan, ~, null, true, off, 2026-12-03, 2026-12-03T09:00:00Z, "é Ω", '']
text: |
  two lines
  of text
folded: >-
  one
  line
? complex key
: value
rules:
  - name: freezer
    match: {metric: temperature, device: "freezer-*"}
    above: -15
    for: 5m
  -   name: second
      labels:
        - a
        - [b, c]
"""

BROKEN = [
    "mqtt: [1, 2\n",
    "a: 1\na: 2\n",
    "a:\n  b: 1\n c: 2\n",
    "a: \"unclosed\n",
    "a:\tb\n\t- x\n",
    "<<: {a: 1}\n",
    "a: *nowhere\n",
    "- a\nb: c\n",
    "a: !!python/object:os.system x\n",
    "{[1]: 2}\n",
    "\x00a: 1\n",
]


def both(text: str, **kw: int) -> tuple[object, object]:
    out = []
    for fast in (True, False):
        try:
            out.append(load_yaml(text, "f.yaml", fast=fast, **kw))
        except YamlError as exc:
            out.append((exc.file, exc.line, exc.message))
    return out[0], out[1]


pytestmark = pytest.mark.skipif(not _yaml.HAVE_LIBYAML, reason="this PyYAML has no libyaml")


@pytest.mark.parametrize("text", [MIXED, rules_text(300), *(p.read_text() for p in sorted(
    [*ROOT.glob("vigil/app/demo/**/*.yaml"), *ROOT.glob("deploy/**/*.yaml")]))])
def test_the_same_data_and_lines_both_ways(text: str) -> None:
    fast, slow = both(text)
    assert fast == slow  # the data and every key's line; or (compose.yaml's merge keys) the same refusal
    assert isinstance(fast, tuple) and (len(fast[1]) > 3 if isinstance(fast[1], dict) else fast[1])


@pytest.mark.parametrize("text", BROKEN)
def test_the_same_error_and_line_both_ways(text: str) -> None:
    fast, slow = both(text)
    assert fast == slow
    assert isinstance(fast, tuple) and fast[0] == "f.yaml" and isinstance(fast[2], str)


def test_the_node_limits_stop_at_the_same_line_both_ways() -> None:
    text = "rules:\n" + "".join(f"  - {{name: r{i}, above: {i}}}\n" for i in range(40))
    fast, slow = both(text, max_nodes=50)
    assert fast == slow == ("f.yaml", 11, "more than 50 values (the limit of this file); split it into several files")
    bomb = "a: &a [x, x, x, x]\nb: &b [*a, *a, *a, *a]\nc: [*b, *b, *b, *b]\n"
    fast, slow = both(bomb, max_nodes=40)
    assert fast == slow and "once aliases are expanded" in str(fast)


def test_deep_nesting_is_refused_in_words_both_ways() -> None:
    # libyaml stops at 1,000 levels and knows the line; Python's recursion limit does not
    for text in ("a: " + "[" * 50_000 + "]" * 50_000, "a: [" * 2000):
        fast, slow = both(text)
        assert fast == ("f.yaml", 1, "not valid YAML for us: nested too deeply")
        assert slow == ("f.yaml", None, "not valid YAML for us: nested too deeply")


def test_without_libyaml_the_python_composer_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    def unavailable(*args: object, **kwargs: object) -> None:
        raise AssertionError("libyaml used")

    monkeypatch.setattr(_yaml, "HAVE_LIBYAML", False)
    monkeypatch.setattr(yaml, "CSafeLoader", unavailable)
    data, lines = load_yaml(MIXED)
    assert data["rules"][1]["name"] == "second" and lines[("rules", 1, "labels")] == 23
