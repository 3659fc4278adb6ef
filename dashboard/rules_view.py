"""The rules files the Rules page shows, checks and rewrites (with the rule engine's own loader)."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
from pathlib import Path
from typing import Any, Optional

from vigil.core.errors import VigilError

from .files import replace_file
from .ports import Issue, RuleChecker
from .rules_edit import rule_fields

log = logging.getLogger(__name__)

__all__ = [
    "StalePlaceholder",
    "check_rules",
    "checked",
    "checked_files",
    "mask_result",
    "mask_secrets",
    "rules_files",
    "unmask_secrets",
    "write_rules_file",
]

# Notification URLs (apprise) carry tokens in the user part, the host, the path and the query.
# Schemes in any case: apprise reads Tgram:// as tgram://.
_SCHEME = re.compile(r"(?<![A-Za-z0-9+.-])[A-Za-z][A-Za-z0-9+.-]{1,31}://")
_ENV_REF = re.compile(r"\$\{[^}\s]*\}")
_HOST_ONLY = re.compile(r"[A-Za-z0-9.-]*(:\d{0,5})?")
_SPLIT = re.compile(r"[/:@?&=#,;+\s'\"\[\]{}%]+")
# Placeholders are keyed by a secret of this process, so that nobody can test guesses of a
# short secret (a chat id, a topic) against them.
_MASK_KEY = secrets.token_bytes(32)


class StalePlaceholder(VigilError):
    """Edited text holds a ``hidden-...`` placeholder that the file on disk has no URL for."""

    def __init__(self, placeholders: list[str]) -> None:
        self.placeholders = placeholders
        super().__init__(f"{placeholders[0]} no longer stands for a URL in the file (it changed on disk, or the "
                         "dashboard restarted); reload the page and make your change again")


def rules_files(path: Path) -> dict[str, Path]:
    """Rules files by the name the page shows: the file itself, or every .yaml/.yml in the folder."""
    if path.is_file():
        return {path.name: path}
    if path.is_dir():
        return {p.name: p for p in sorted(path.iterdir()) if p.suffix in (".yaml", ".yml") and p.is_file()}
    return {}


def check_rules(rules: RuleChecker, text: str, file: str) -> dict[str, Any]:
    """What ``vigil rules check`` says about ``text``: ok, the rules' names, warnings and issues."""
    verdict = rules.check(text, file)
    return {"ok": not verdict.issues, "issues": [i.text for i in verdict.issues],
            "warnings": [w.text for w in verdict.warnings], "rules": verdict.rules,
            "issue_lines": _lines(verdict.issues), "warning_lines": _lines(verdict.warnings)}


def _lines(issues: list[Issue]) -> list[Optional[int]]:
    """The line of each issue (None for the file as a whole), for the editor to mark."""
    return [i.line for i in issues]


def checked(rules: RuleChecker, text: str, file: str, original: str) -> dict[str, Any]:
    """check_rules, with no secret of ``original`` in what it says (it quotes values in its messages)."""
    try:
        result = check_rules(rules, text, file)
    except Exception as exc:  # a broken loader: still show the file, and say why
        log.warning("checking %s failed: %s", file, type(exc).__name__)
        result = {"ok": None, "issues": [f"the rules could not be checked: {type(exc).__name__}: {exc}"],
                  "warnings": [], "rules": []}
    masked: dict[str, Any] = mask_result(result, original)
    return masked


# Checked files by path, with the (mtime, size, inode) they were checked at: the loader's time grows
# with the rules (docs/proof.md, YAML loading), and the Rules page asks again on every visit. One
# check at a time, so that visitors arriving during a slow check wait for it instead of each
# starting another.
_CHECKED: dict[Path, tuple[tuple[int, int, int], dict[str, Any]]] = {}
_CHECKING = threading.Lock()


def checked_files(rules: RuleChecker, path: Path) -> list[dict[str, Any]]:
    """Each rules file under ``path``, masked and checked; a file is checked again only when it changed."""
    out = []
    for name, file in rules_files(path).items():
        with _CHECKING:
            try:
                st = file.stat()
            except FileNotFoundError:
                continue
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            hit = _CHECKED.get(file)
            if hit is None or hit[0] != stamp:
                # Read after the stat: a change in between is seen as another stamp next time.
                text = file.read_text("utf-8", errors="replace")
                masked = mask_secrets(text)
                hit = stamp, {"file": name, "text": masked, "forms": rule_fields(masked, rules.hostile),
                              **checked(rules, text, name, text)}
                _CHECKED[file] = hit
        out.append(hit[1])
    return out


def write_rules_file(target: Path, text: str) -> None:
    """Replace ``target`` atomically and durably, so the engine never reads half a file.

    The file keeps its mode and owner: a rules file holds receivers' secrets and is often 0600,
    which a plain rewrite under umask 022 made 0644.
    """
    replace_file(target, text)


_PLACEHOLDER = re.compile(r"(?<![A-Za-z0-9+.-])([A-Za-z][A-Za-z0-9+.-]{1,31})://hidden-[0-9a-f]{16}")


def _masked(url: str) -> str:
    if ("${" in url and _only_references(url)) or _PLACEHOLDER.fullmatch(url):
        return url  # every secret part comes from the environment, or it is hidden already
    scheme = url.partition("://")[0]
    digest = hmac.new(_MASK_KEY, url.encode(), hashlib.sha256).hexdigest()[:16]
    return f"{scheme}://hidden-{digest}"


def _only_references(url: str) -> bool:
    """Whether ``url`` without its ``${VAR}`` references is only a host name and separators."""
    rest = _ENV_REF.sub("", url.partition("://")[2])
    userinfo, at, hostpath = rest.rpartition("@")
    if at and userinfo.strip(":"):
        return False
    host, _, path = hostpath.partition("/")
    return bool(_HOST_ONLY.fullmatch(host)) and not path.strip("/")


def _url_spans(text: str) -> list[tuple[int, int]]:
    """Where the URLs of ``text`` are: from the scheme to the end of the YAML scalar or the word."""
    spans: list[tuple[int, int]] = []
    pos = 0
    while (m := _SCHEME.search(text, pos)) is not None:
        start = m.start()
        quote = text[start - 1] if start > 0 and text[start - 1] in "\"'" else ""
        end = _scalar_end(text, m.end(), quote) if quote else _word_end(text, m.end())
        spans.append((start, end))
        pos = max(end, m.end())
    return spans


def _scalar_end(text: str, i: int, quote: str) -> int:
    """The closing quote of a YAML scalar opened before ``i`` (a URL there may hold spaces, commas...)."""
    while i < len(text):
        c = text[i]
        if quote == '"' and c == "\\":
            i += 2
            continue
        if c == quote:
            if quote == "'" and text[i + 1:i + 2] == "'":
                i += 2
                continue
            return i
        if c == "\n":
            return i
        i += 1
    return i


def _word_end(text: str, i: int) -> int:
    """The end of an unquoted URL: the next space or quote; a trailing , ] } closes a flow collection."""
    j = i
    while j < len(text) and not text[j].isspace() and text[j] not in "\"'`<>":
        j += 1
    while j > i and text[j - 1] in ",]}":
        j -= 1
    return j


def mask_secrets(text: str) -> str:
    """``text`` with every URL after its scheme hidden (``tgram://hidden-1a2b...``), whatever its case.

    A URL whose secrets all come from ``${VAR}`` references is shown as written.
    """
    out, last = [], 0
    for start, end in _url_spans(text):
        out += [text[last:start], _masked(text[start:end])]
        last = end
    return "".join(out) + text[last:]


def unmask_secrets(text: str, original: str) -> str:
    """Put back the URLs of ``original`` that ``text`` still shows hidden, so saving keeps them.

    ApiError 409 when ``text`` holds a placeholder that ``original`` has no URL for (the file
    changed on disk, or the dashboard restarted, since the page was loaded).
    """
    restore = {_masked(original[a:b]): original[a:b] for a, b in _url_spans(original)}
    unknown = sorted({m.group(0) for m in _PLACEHOLDER.finditer(text)} - set(restore))
    if unknown:
        raise StalePlaceholder(unknown)
    return _PLACEHOLDER.sub(lambda m: restore[m.group(0)], text)


def mask_result(value: Any, original: str) -> Any:
    """``value`` (a check result: messages, rule names) with no secret of ``original`` left in any string.

    Error messages quote values, sometimes cut or re-quoted: every URL is masked again, and every
    secret-looking part of the original's URLs (a token, a password, a path segment) is hidden too.
    """
    parts = sorted({p for a, b in _url_spans(original) for p in _secret_parts(original[a:b])}, key=len, reverse=True)

    def clean(s: str) -> str:
        s = mask_secrets(s)
        for p in parts:
            s = s.replace(p, "***")
        return s

    return _map_strings(value, clean)


def _secret_parts(url: str) -> list[str]:
    if "${" in url and _only_references(url):
        return []
    rest = url.partition("://")[2]
    return [url, rest, *(p for p in _SPLIT.split(_ENV_REF.sub("", rest)) if len(p) >= 4)]


def _map_strings(value: Any, fn: Any) -> Any:
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, list):
        return [_map_strings(v, fn) for v in value]
    if isinstance(value, dict):
        return {k: _map_strings(v, fn) for k, v in value.items()}
    return value
