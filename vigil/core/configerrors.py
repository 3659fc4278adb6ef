"""Configuration problems as sentences with a file, a line and a key, for any configuration model.

:func:`describe_errors` turns pydantic's errors into :class:`ConfigIssue` objects. It takes the root
model the data was validated against (``VigilConfig`` for vigil.yaml, a rules file's models, a rules
test file's), so that an unknown key is answered with the keys known *there*::

    rules/freezer_test.yaml:1: rule_file: unknown key; did you mean 'rule_files'? (known keys: rule_files, tests)
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping
from typing import Any, Optional, Union

from pydantic import BaseModel, ValidationError

from vigil.core._yaml import ConfigIssue, Positions, line_of
from vigil.core.errors import ConfigError

__all__ = ["ConfigError", "ConfigIssue", "describe_errors"]

KeyPath = tuple[Union[str, int], ...]

_TYPE_WORDS = {
    "int_parsing": "expected an integer",
    "int_type": "expected an integer",
    "int_from_float": "expected an integer",
    "float_parsing": "expected a number",
    "float_type": "expected a number",
    "bool_parsing": "expected true or false",
    "bool_type": "expected true or false",
    "string_type": "expected a string",
    "dict_type": "expected a mapping (key: value lines)",
    "model_type": "expected a mapping (key: value lines)",
    "model_attributes_type": "expected a mapping (key: value lines)",
    "list_type": "expected a list",
    "missing": "this key is required",
}


def describe_errors(
    exc: ValidationError,
    root: type[BaseModel],
    positions: Positions,
    file: str,
    *,
    prefix: KeyPath = (),
    flags: Optional[Mapping[KeyPath, str]] = None,
    also_known: Collection[str] = (),
) -> list[ConfigIssue]:
    """Turn pydantic's errors from validating ``root`` into ConfigIssues with file, line and a sentence each.

    ``prefix`` is where the validated data stands in the file (for the line and the key shown);
    ``flags`` names the command-line flag that set a key (its issue names the flag, not the file);
    ``also_known`` are keys the file may hold at the top besides ``root``'s own.
    """
    issues = []
    for err in exc.errors(include_url=False):
        loc = tuple(p for p in err["loc"] if not (isinstance(p, str) and p.startswith("function-")))
        path = (*prefix, *loc)
        key = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in path).replace(".[", "[")
        kind = err["type"]
        if kind == "extra_forbidden":
            known = sorted({*_known_keys(root, loc[:-1]), *(also_known if len(loc) == 1 else ())})
            guess = difflib.get_close_matches(str(loc[-1]), known, n=1)
            hint = f"; did you mean {guess[0]!r}?" if guess else ""
            message = f"unknown key{hint} (known keys: {', '.join(known)})" if known else "unknown key"
        else:
            message = _TYPE_WORDS.get(kind) or err["msg"].removeprefix("Value error, ").replace(
                "Input should be", "expected"
            )
            given = err.get("input")
            if (kind != "missing" and isinstance(given, (str, int, float, bool))
                    and "got" not in message and str(given) not in message):
                shown = given if not isinstance(given, str) or len(given) < 80 else given[:77] + "..."
                message += f", got {shown!r}" if isinstance(given, str) else f", got {shown}"
        flag = (flags or {}).get(path)
        if flag:
            issues.append(ConfigIssue(flag, None, "", message))
        else:
            issues.append(ConfigIssue(file, line_of(positions, path), key, message))
    return issues


def _known_keys(root: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The keys (aliases where a field has one) of the model at ``loc`` under ``root``; [] if none."""
    model: Any = root
    for part in loc:
        if isinstance(part, int):
            continue
        if not (isinstance(model, type) and issubclass(model, BaseModel)):
            return []
        field = model.model_fields.get(part) or next(
            (f for f in model.model_fields.values() if f.alias == part), None)
        if field is None:
            return []
        model = _inner_model(field.annotation)
    if isinstance(model, type) and issubclass(model, BaseModel):
        return [f.alias or name for name, f in model.model_fields.items()]
    return []


def _inner_model(annotation: Any) -> Any:
    """The model in an annotation such as ``Optional[Model]`` or ``list[Model]``, else the annotation."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        inner = _inner_model(arg)
        if isinstance(inner, type) and issubclass(inner, BaseModel):
            return inner
    return annotation
