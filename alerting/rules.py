"""Rules files: load one file or a folder of them into a validated :class:`RuleSet`.

A rules file holds ``rules:`` (the engine's) and the notification keys (``receivers``, ``routes``...,
validated by :class:`alerting.notify.config.NotifyConfig`). Every problem is reported with its file,
its line and the rule's name::

    rules/kitchen.yaml:7: rule 'freezer-warm': for: expected a duration such as 30s, 5m, 1h30m or 7d, got '5 minutes'
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Union

import yaml
from pydantic import ValidationError

from alerting.notify.config import NotifyConfig
from alerting.rulespec import ConditionSpec, RuleSpec
from alerting.templates import DEFAULT_MESSAGE, MessageTemplate, TemplateProblem
from vigil.core._yaml import HAVE_LIBYAML, Positions, YamlError, line_of, load_yaml
from vigil.core.configerrors import ConfigError, ConfigIssue, describe_errors
from vigil.core.event import METRIC_UNITS

__all__ = ["Rule", "RuleSet", "RulesBounds", "RulesError", "load_rules_path", "load_rules_text"]

_RULE_FILE_SUFFIXES = (".yaml", ".yml")
# One rules file: ~2,000 rules, checked in about a second. A read-only user can ask for a check.
MAX_RULES_FILE_CHARS = 512 * 1024
MAX_RULES_NODES = 30_000


class RulesError(ConfigError):
    """Rules files have problems; ``issues`` lists every one (``str(issue)`` is ``file:line: ...``)."""


@dataclass(frozen=True)
class Rule:
    """A validated rule with its compiled message template and where it was written."""

    spec: RuleSpec
    template: MessageTemplate
    file: str
    line: Optional[int]

    @property
    def name(self) -> str:
        return self.spec.name


@dataclass(frozen=True)
class RuleSet:
    """All rules (by name, in file order) and the merged notification configuration."""

    rules: tuple[Rule, ...] = ()
    notify: NotifyConfig = field(default_factory=NotifyConfig)
    files: tuple[str, ...] = ()

    def by_name(self) -> dict[str, Rule]:
        return {r.name: r for r in self.rules}


@dataclass(frozen=True)
class RulesBounds:
    """How large one rules file may be: characters, and YAML values (nodes)."""

    chars: int = MAX_RULES_FILE_CHARS
    nodes: int = MAX_RULES_NODES


def load_rules_text(text: str, file: str = "<rules>",
                    bounds: RulesBounds = RulesBounds()) -> tuple[RuleSet, list[ConfigIssue]]:
    """Validate one rules file's text; returns the rules and warnings, raises RulesError.

    ``bounds`` is for benchmarks that load one huge generated file; people's files keep the default.
    """
    return _Loader(bounds).add_text(text, file).finish(whole=False)


def load_rules_path(path: Union[str, Path]) -> tuple[RuleSet, list[ConfigIssue]]:
    """Load a rules file, or every ``*.yaml``/``*.yml`` in a folder (sorted by name), into one RuleSet."""
    p = Path(path)
    loader = _Loader()
    if p.is_dir():
        # rule unit tests (vigil rules test) may sit beside the rules: *_test.yaml, *.test.yaml
        files = sorted(f for f in p.iterdir() if f.suffix in _RULE_FILE_SUFFIXES and f.is_file()
                       and not f.stem.endswith(("_test", ".test")))
        if not files:
            loader.warnings.append(ConfigIssue(str(p), None, "", "no *.yaml rules files in this folder"))
    elif p.exists():
        files = [p]
    else:
        raise RulesError([ConfigIssue(str(p), None, "", "no such file or folder")])
    for f in files:
        try:
            text = f.read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            loader.issues.append(ConfigIssue(str(f), None, "", f"cannot read: {exc}"))
            continue
        loader.add_text(text, str(f))
    return loader.finish()


def refuse_hostile_yaml(text: str, max_chars: int = MAX_RULES_FILE_CHARS) -> Optional[tuple[Optional[int], str]]:
    """(line, reason) when a rules text is too large or uses aliases (which can expand exponentially)."""
    if len(text) > max_chars:
        return None, (f"the file is larger than {max_chars // 1024} KB ({len(text):,} characters, "
                      f"the limit is {max_chars:,}); split it into several files in a rules folder")
    if "*" not in text:
        return None
    try:
        # libyaml's scanner where there is one, several times faster (docs/proof.md, YAML loading)
        for token in yaml.scan(text, Loader=yaml.CSafeLoader if HAVE_LIBYAML else yaml.SafeLoader):
            if isinstance(token, yaml.AliasToken):
                return (token.start_mark.line + 1,
                        "YAML aliases (*name) are not accepted in rules files; write the value out")
    except yaml.YAMLError:
        return None  # load_yaml reports the syntax error with its line
    return None


class _Loader:
    """Collects rules and notification keys from several files, then checks them together."""

    def __init__(self, bounds: RulesBounds = RulesBounds()) -> None:
        self.bounds = bounds
        self.issues: list[ConfigIssue] = []
        self.warnings: list[ConfigIssue] = []
        self.rules: list[Rule] = []
        self.names: dict[str, str] = {}
        self.notify_data: dict[str, Any] = {}
        self.notify_where: dict[str, str] = {}
        self.notify_refused = False  # a file's notification keys were wrong (already reported)
        self.files: list[str] = []

    def add_text(self, text: str, file: str) -> _Loader:
        self.files.append(file)
        refused = refuse_hostile_yaml(text, self.bounds.chars)
        if refused is not None:
            self.issues.append(ConfigIssue(file, refused[0], "", refused[1]))
            return self
        try:
            data, pos = load_yaml(text, file, max_nodes=self.bounds.nodes)
        except YamlError as exc:
            self.issues.append(ConfigIssue(file, exc.line, "", exc.message))
            return self
        if data is None:
            self.warnings.append(ConfigIssue(file, None, "", "the file is empty"))
            return self
        if not isinstance(data, dict):
            self.issues.append(ConfigIssue(file, 1, "", "expected a mapping with rules: and notification keys"))
            return self
        notify_part = {k: v for k, v in data.items() if k != "rules"}
        self._add_notify(notify_part, pos, file)
        rules = data.get("rules", [])
        if rules is None:
            rules = []
        if not isinstance(rules, list):
            self.issues.append(ConfigIssue(file, line_of(pos, ("rules",)), "rules", "expected a list of rules"))
            return self
        for i, raw in enumerate(rules):
            self._add_rule(raw, i, pos, file)
        return self

    def _add_notify(self, part: dict[str, Any], pos: Positions, file: str) -> None:
        if not part:
            return
        try:
            NotifyConfig.model_validate(part)
        except ValidationError as exc:
            self.issues += describe_errors(exc, NotifyConfig, pos, file, also_known=["rules"])
            self.notify_refused = True
            return
        for key, value in part.items():
            prior = self.notify_data.get(key)
            if prior is None:
                self.notify_data[key] = value
                self.notify_where[key] = file
            elif isinstance(prior, dict) and isinstance(value, dict):
                for sub in value:
                    if sub in prior:
                        self.issues.append(ConfigIssue(
                            file, line_of(pos, (key, sub)), f"{key}.{sub}",
                            f"already defined in {self.notify_where[key]}"))
                self.notify_data[key] = {**prior, **value}
            elif isinstance(prior, list) and isinstance(value, list):
                self.notify_data[key] = [*prior, *value]
            else:
                self.issues.append(ConfigIssue(
                    file, line_of(pos, (key,)), key, f"already defined in {self.notify_where[key]}"))

    def _add_rule(self, raw: Any, i: int, pos: Positions, file: str) -> None:
        path: tuple[Union[str, int], ...] = ("rules", i)
        line = line_of(pos, path)
        name = raw.get("name") if isinstance(raw, dict) else None
        label = f"rule {name!r}" if isinstance(name, str) else f"rules[{i}]"
        if not isinstance(raw, dict):
            self.issues.append(ConfigIssue(file, line, label, "expected a mapping (name:, match:, above: ...)"))
            return
        if isinstance(raw.get("name"), bool):
            self.issues.append(ConfigIssue(file, line_of(pos, (*path, "name")), label,
                                           "name: YAML reads this name as true/false; put it in quotes"))
            return
        try:
            spec = RuleSpec.model_validate(raw)
        except ValidationError as exc:
            for issue in describe_errors(exc, RuleSpec, pos, file, prefix=path):
                key = issue.key.split("]", 1)[1].lstrip(".") if issue.key.startswith("rules[") else issue.key
                self.issues.append(ConfigIssue(issue.file, issue.line, f"{label}: {key}" if key else label,
                                               issue.message))
            return
        if spec.name in self.names:
            self.issues.append(ConfigIssue(file, line_of(pos, (*path, "name")), label,
                                           f"a rule with this name is already defined in {self.names[spec.name]}"))
            return
        self.names[spec.name] = f"{file}:{line}"
        try:
            template = MessageTemplate(spec.message or spec.default_message() or DEFAULT_MESSAGE)
            template.check()
        except TemplateProblem as exc:
            mline = line_of(pos, (*path, "message"))
            if mline is not None and exc.line is not None and "\n" in (spec.message or ""):
                mline += exc.line
            self.issues.append(ConfigIssue(file, mline, f"{label}: message", exc.reason))
            return
        self.rules.append(Rule(spec, template, file, line))
        self.warnings += _never_warnings(spec, pos, path, file, label)

    def finish(self, whole: bool = True) -> tuple[RuleSet, list[ConfigIssue]]:
        """Check everything together; ``whole``: these are all the files (not one of a folder)."""
        notify = NotifyConfig()
        # a rule's notify: names cannot be checked against receivers that did not load (no second error)
        notify_ok = not self.notify_refused
        if self.notify_data:
            try:
                notify = NotifyConfig.model_validate(self.notify_data)
            except ValidationError as exc:
                notify_ok = False
                if not self.issues:  # otherwise the per-file errors above already say it
                    where = next(iter(self.notify_where.values()), "<rules>")
                    self.issues += describe_errors(exc, NotifyConfig, {}, where)
        for rule in self.rules if notify_ok else ():
            unknown = notify.unknown_receivers(rule.spec.receivers)
            if unknown:
                known = notify.known_names()
                self.issues.append(ConfigIssue(
                    rule.file, rule.line, f"rule {rule.name!r}: notify",
                    f"unknown receiver {unknown[0]!r} (known: {known})"))
        if self.issues:
            raise RulesError(self.issues)
        if whole and not notify.routes:
            for rule in self.rules:
                if not rule.spec.receivers:
                    self.warnings.append(ConfigIssue(
                        rule.file, rule.line, f"rule {rule.name!r}",
                        "no notify: and no routes: its alerts are published on MQTT, but nobody is told"))
        return RuleSet(tuple(self.rules), notify, tuple(self.files)), self.warnings


def _glob_can_match(glob: str) -> bool:
    """False for a glob that no topic level can match (it needs '/', '+', '#', or is empty)."""
    if not glob:
        return False
    stripped = glob.replace("[/]", "").replace("*", "").replace("?", "")
    return not any(ch in stripped for ch in "/+#\x00")


def _never_warnings(spec: RuleSpec, pos: Positions, path: tuple[Union[str, int], ...], file: str,
                    label: str) -> list[ConfigIssue]:
    """Warnings for rules that can never match a series or never fire."""
    out = []
    for key in ("metric", "device", "sensor"):
        glob = getattr(spec.match, key)
        if not _glob_can_match(glob):
            out.append(ConfigIssue(file, line_of(pos, (*path, "match", key)), f"{label}: match.{key}",
                                   f"the glob {glob!r} can match nothing (a name has no '/', '+' or '#'): "
                                   "this rule never fires"))
    metric = spec.match.metric
    if (_glob_can_match(metric) and not spec.offline and spec.difference is None
            and not any(fnmatch.fnmatchcase(m, metric) for m in METRIC_UNITS)):
        out.append(ConfigIssue(file, line_of(pos, (*path, "match", "metric")), f"{label}: match.metric",
                               f"{metric!r} matches none of the known metrics ({', '.join(METRIC_UNITS)}); "
                               "fine if your devices send it, otherwise this rule never fires"))
    if not spec.enabled:
        out.append(ConfigIssue(file, line_of(pos, (*path, "enabled")), label, "disabled: this rule never fires"))
    for i, sid in enumerate(spec.series or ()):
        device, sensor, metric = sid.split("/")
        m = spec.match
        if not (fnmatch.fnmatchcase(device, m.device) and fnmatch.fnmatchcase(sensor, m.sensor)
                and fnmatch.fnmatchcase(metric, m.metric)):
            out.append(ConfigIssue(file, line_of(pos, (*path, "series", i)), f"{label}: series",
                                   f"{sid!r} is not selected by match: it is never watched"))
    if spec.series and spec.nodata is None:
        out.append(ConfigIssue(file, line_of(pos, (*path, "series")), f"{label}: series",
                               "series: declares series for nodata; this rule has no nodata condition"))
    reason = _contradiction(spec)
    if reason:
        out.append(ConfigIssue(file, line_of(pos, path), label, f"this rule can never fire: {reason}"))
    return out


def _contradiction(spec: ConditionSpec) -> Optional[str]:
    """Why an ``all`` of thresholds on the same value can never hold at once, if it cannot."""
    if spec.all:
        low: dict[Optional[str], float] = {}
        high: dict[Optional[str], float] = {}
        for child in spec.all:
            if child.kinds() != ["threshold"] or child.difference is not None:
                continue
            key = child.series if isinstance(child.series, str) else None
            if child.above is not None and child.below is None:
                low[key] = max(low.get(key, float("-inf")), child.above)
            if child.below is not None and child.above is None:
                high[key] = min(high.get(key, float("inf")), child.below)
        for key in low:
            if key in high and low[key] >= high[key]:
                return f"all: needs a value above {low[key]} and below {high[key]} at once"
    return None
