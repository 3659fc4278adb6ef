"""The rules files the Rules page shows, checks and rewrites (with the rule engine's own loader)."""

from __future__ import annotations

import hashlib
import importlib
import os
import re
from pathlib import Path
from typing import Any, Optional

__all__ = [
    "RulesUnavailable",
    "check_rules",
    "configured_quiet",
    "mask_secrets",
    "rule_names",
    "rules_files",
    "unmask_secrets",
    "write_rules_file",
]

# Notification URLs (apprise) carry tokens in the host and path, not only as a password.
_URL = re.compile(r"\b([a-z][a-z0-9+.-]{1,15})://((?:\$\{[^}\s]*\}|[^\s\"'\]\[{},])+)")


class RulesUnavailable(Exception):
    """The rule loader (``alerting.rules``) is not installed in this process."""


def rules_files(path: Path) -> dict[str, Path]:
    """Rules files by the name the page shows: the file itself, or every .yaml/.yml in the folder."""
    if path.is_file():
        return {path.name: path}
    if path.is_dir():
        return {p.name: p for p in sorted(path.iterdir()) if p.suffix in (".yaml", ".yml") and p.is_file()}
    return {}


def _loader() -> Any:
    try:
        return importlib.import_module("alerting.rules")
    except ImportError as exc:
        raise RulesUnavailable(f"the rule loader is not available: {exc}") from exc


def rule_names(ruleset: Any) -> list[str]:
    rules = getattr(ruleset, "rules", ruleset)
    if isinstance(rules, dict):
        return [str(k) for k in rules]
    return [str(getattr(r, "name", r)) for r in rules]


def check_rules(text: str, file: str) -> dict[str, Any]:
    """What ``vigil rules check`` says about ``text``: ok, the rules' names, warnings and issues."""
    loader = _loader()
    try:
        ruleset, warnings = loader.load_rules_text(text, file)
    except Exception as exc:
        issues = getattr(exc, "issues", None)
        if issues is None:
            raise
        return {"ok": False, "issues": [str(i) for i in issues], "warnings": [], "rules": []}
    return {"ok": True, "issues": [], "warnings": [str(w) for w in warnings], "rules": rule_names(ruleset)}


def load_names(path: Path) -> Optional[list[str]]:
    """The rules' names as the engine would load them, or None when they do not load."""
    try:
        loader = _loader()
        result = loader.load_rules_path(path)
    except Exception:
        return None
    ruleset = result[0] if isinstance(result, tuple) else result
    return rule_names(ruleset)


def write_rules_file(target: Path, text: str) -> None:
    """Replace ``target`` atomically, so the engine never reads half a file."""
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    tmp.write_text(text, "utf-8")
    tmp.replace(target)


def configured_quiet(path: Path) -> dict[str, list[dict[str, Any]]]:
    """Mute windows and silences written in the rules files (changed by editing those files)."""
    try:
        ruleset, _ = _loader().load_rules_path(path)
    except Exception:
        return {"mute_windows": [], "silences": []}
    notify = ruleset.notify
    return {"mute_windows": [m.model_dump(mode="json") for m in getattr(notify, "mute_windows", [])],
            "silences": [s.model_dump(mode="json") for s in getattr(notify, "silences", [])]}


def _masked(match: re.Match[str]) -> str:
    scheme, rest = match.group(1), match.group(2)
    if "${" in rest:  # the secret comes from the environment: nothing to hide
        return match.group(0)
    return f"{scheme}://hidden-{hashlib.sha256(match.group(0).encode()).hexdigest()[:10]}"


def mask_secrets(text: str) -> str:
    """``text`` with every literal URL after its scheme hidden (``tgram://hidden-1a2b...``)."""
    return _URL.sub(_masked, text)


def unmask_secrets(text: str, original: str) -> str:
    """Put back the URLs of ``original`` that ``text`` still shows hidden, so saving keeps them."""
    restore = {_masked(m): m.group(0) for m in _URL.finditer(original)}
    return _URL.sub(lambda m: restore.get(m.group(0), m.group(0)), text)
