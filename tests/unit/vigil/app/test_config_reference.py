"""docs/configuration.md is generated from the typed configuration and must match it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Literal, Optional

from pydantic import BaseModel, Field

from vigil.app.config import VigilConfig
from vigil.app.config_reference import FALLBACK, iter_keys, markdown_table, render
from vigil.core.configtypes import STRICT, Duration, Port

ROOT = Path(__file__).resolve().parents[4]
DOC = ROOT / "docs" / "configuration.md"


def test_committed_reference_is_what_the_code_generates() -> None:
    out = subprocess.run([sys.executable, "-m", "vigil.app.config_reference"], cwd=ROOT, capture_output=True,
                         text=True, check=True)
    assert out.stdout == DOC.read_text(encoding="utf-8"), (
        "docs/configuration.md is out of date: run "
        "`.venv/bin/python -m vigil.app.config_reference > docs/configuration.md` and commit it"
    )


def test_every_key_of_every_section_is_in_the_reference() -> None:
    text = render()
    for section, field in VigilConfig.model_fields.items():
        model = field.default_factory() if field.default_factory else None  # type: ignore[call-arg]
        if isinstance(model, BaseModel):
            assert f"## `{section}:`" in text
            for name in type(model).model_fields:
                assert f"| `{section}.{name}` |" in text, f"{section}.{name} is missing"
        else:
            assert f"| `{section}` |" in text or f"## `{section}:`" in text, f"{section} is missing"


def test_fallback_descriptions_name_existing_keys() -> None:
    paths = {k.path for k in iter_keys(VigilConfig)}
    stale = sorted(set(FALLBACK) - paths)
    assert not stale, f"config_reference.FALLBACK describes keys that no longer exist: {stale}"


class _Item(BaseModel):
    """One thing in a list."""

    model_config = STRICT

    name: str = Field(min_length=1, max_length=8)


class _Section(BaseModel):
    """A section for the test."""

    model_config = STRICT

    # How long to wait.
    wait: Duration = 90.0
    port: Optional[Port] = None
    mode: Literal["fast", "safe"] = "safe"
    size: int = Field(10, ge=1, le=20_000, description="How many at once.")
    items: list[_Item] = Field(default_factory=list)
    limits: dict[str, _Item] = Field(default_factory=dict)
    label: str = "x"
    """The label shown."""
    flag: bool = True  # turns it on
    # Kept in <data_dir>/x.db, see `<root>/a`.
    where: str = "x"


class _Top(BaseModel):
    model_config = STRICT

    part: _Section = Field(default_factory=_Section)


def test_keys_carry_type_default_and_description_from_the_model() -> None:
    keys = {k.path: k for k in iter_keys(_Top)}
    assert [*keys] == ["part", "part.wait", "part.port", "part.mode", "part.size", "part.items",
                       "part.items[].name", "part.limits", "part.limits.<name>.name", "part.label", "part.flag",
                       "part.where"]
    assert keys["part"].description == "A section for the test."
    assert (keys["part.wait"].type, keys["part.wait"].default, keys["part.wait"].description) == (
        "duration (`90s`, `5m`, `1h30m` or seconds)", "`1m30s`", "How long to wait.")
    assert (keys["part.port"].type, keys["part.port"].default) == ("port (1-65535), or null", "none")
    assert (keys["part.mode"].type, keys["part.mode"].default) == ("`fast` or `safe`", "`safe`")
    assert (keys["part.size"].type, keys["part.size"].description) == ("integer 1-20,000", "How many at once.")
    assert (keys["part.items"].type, keys["part.items"].default) == ("list of mappings", "`[]`")
    assert keys["part.items"].description == "One thing in a list."
    assert (keys["part.items[].name"].type, keys["part.items[].name"].default) == (
        "string, 1-8 characters", "required")
    assert (keys["part.limits"].type, keys["part.limits"].default) == ("mapping of string to mappings", "`{}`")
    assert keys["part.label"].description == "The label shown."
    assert (keys["part.flag"].default, keys["part.flag"].description) == ("`true`", "turns it on")


def test_table_cells_keep_angle_brackets_visible_outside_code() -> None:
    keys = {k.path: k for k in iter_keys(_Top)}
    (row,) = [r for r in markdown_table([keys["part.where"]]) if r.startswith("| `part.where`")]
    assert row.endswith("| Kept in &lt;data_dir&gt;/x.db, see `<root>/a`. |")
