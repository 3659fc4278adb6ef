"""The deployment docs name files of this repository; each must exist, so the docs cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
DOCS = ["production.md", "backup.md", "upgrading.md", "scaling.md"]


@pytest.mark.parametrize("doc", DOCS)
def test_every_repository_path_a_deployment_doc_names_exists(doc: str) -> None:
    text = (ROOT / "docs" / doc).read_text()
    named = set(re.findall(r"(?<![\w/.])((?:deploy|tests|bench)/[\w./@-]+)", text))
    assert named, f"docs/{doc} names no repository file"
    missing = sorted(p for p in named if not (ROOT / p.rstrip(".")).exists())
    assert not missing, f"docs/{doc} names files that do not exist: {missing}"
