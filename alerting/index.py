"""Rules indexed by metric, and each series' matching rules cached, so an event costs only the rules it can match."""

from __future__ import annotations

import fnmatch
from collections import defaultdict
from dataclasses import dataclass
from typing import Optional

from alerting.conditions import Condition, build_condition
from alerting.conditions.status import Offline
from alerting.partition import owns, parse_partition
from alerting.rules import Rule, RuleSet

__all__ = ["CompiledRule", "RuleIndex", "owns", "parse_partition"]

_GLOB_CHARS = set("*?[")


@dataclass(frozen=True)
class CompiledRule:
    """A rule with its condition built and what it reads."""

    rule: Rule
    condition: Condition
    refs: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.rule.name

    @property
    def cross(self) -> bool:
        """Watches named series (difference, all/any with series:) rather than what ``match`` selects."""
        return bool(self.refs)

    @property
    def offline(self) -> bool:
        return isinstance(self.condition, Offline)

    def matches(self, device: str, sensor: str, metric: str, labels: dict[str, str]) -> bool:
        m = self.rule.spec.match
        if not (fnmatch.fnmatchcase(metric, m.metric) and fnmatch.fnmatchcase(device, m.device)
                and fnmatch.fnmatchcase(sensor, m.sensor)):
            return False
        return all(k in labels and fnmatch.fnmatchcase(labels[k], g) for k, g in m.labels.items())


class RuleIndex:
    """Finds the rules an event can concern without looking at the others."""

    def __init__(self, ruleset: RuleSet) -> None:
        self.rules: dict[str, CompiledRule] = {}
        self.by_metric: dict[str, list[CompiledRule]] = defaultdict(list)
        self.any_metric: list[CompiledRule] = []
        self.status_rules: list[CompiledRule] = []
        self.store_rules: list[CompiledRule] = []
        self.by_ref: dict[str, list[CompiledRule]] = defaultdict(list)
        self._cache: dict[str, tuple[CompiledRule, ...]] = {}
        for rule in ruleset.rules:
            if not rule.spec.enabled:
                continue
            cond = build_condition(rule.spec)
            c = CompiledRule(rule, cond, tuple(dict.fromkeys(cond.series_refs())))
            self.rules[c.name] = c
            if rule.spec.source == "store":
                self.store_rules.append(c)
            elif c.cross:
                for ref in c.refs:
                    self.by_ref[ref].append(c)
            elif c.offline:
                self.status_rules.append(c)
            elif _GLOB_CHARS & set(rule.spec.match.metric):
                self.any_metric.append(c)
            else:
                self.by_metric[rule.spec.match.metric].append(c)

    def for_series(self, series_id: str, device: str, sensor: str, metric: str,
                   labels: dict[str, str] | tuple[tuple[str, str], ...]) -> tuple[CompiledRule, ...]:
        """The event rules that watch this series (cached per series id)."""
        hit = self._cache.get(series_id)
        if hit is not None:
            return hit
        labels = dict(labels)
        candidates = [*self.by_metric.get(metric, ()), *self.any_metric]
        found = tuple(c for c in candidates if c.matches(device, sensor, metric, labels))
        self._cache[series_id] = found
        return found

    def forget(self, series_id: str) -> None:
        """Drop the cached match (the series' labels changed)."""
        self._cache.pop(series_id, None)

    def status_for(self, device: str) -> list[CompiledRule]:
        return [c for c in self.status_rules if fnmatch.fnmatchcase(device, c.rule.spec.match.device)]

    def get(self, name: str) -> Optional[CompiledRule]:
        return self.rules.get(name)
