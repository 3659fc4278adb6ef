"""replace_file: the rules file and the admin's hash are rewritten whole, durable, and as they were."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from dashboard.files import replace_file


@pytest.fixture(autouse=True)
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


def leftovers(folder: Path, keep: str) -> list[str]:
    return [p.name for p in folder.iterdir() if p.name != keep]


@pytest.mark.parametrize("mode", [0o600, 0o640, 0o644])
def test_the_mode_is_kept(tmp_path: Path, mode: int) -> None:
    f = tmp_path / "rules.yaml"
    f.write_text("old\n")
    f.chmod(mode)
    replace_file(f, "new\n")
    assert f.read_text() == "new\n" and f.stat().st_mode & 0o777 == mode
    assert leftovers(tmp_path, f.name) == []


def test_a_new_file_gets_the_mode_asked_for_whatever_the_umask(tmp_path: Path) -> None:
    f = tmp_path / "dashboard-admin.hash"
    replace_file(f, "x\n")
    assert f.stat().st_mode & 0o777 == 0o600
    g = tmp_path / "other"
    replace_file(g, "y\n", new_mode=0o644)
    assert g.stat().st_mode & 0o777 == 0o644


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="only root may give a file away")
def test_the_owner_is_kept_where_allowed(tmp_path: Path) -> None:
    f = tmp_path / "rules.yaml"
    f.write_text("old\n")
    os.chown(f, 4242, 4343)
    replace_file(f, "new\n")
    assert (f.stat().st_uid, f.stat().st_gid) == (4242, 4343)


def test_a_failed_write_leaves_the_old_file_and_no_temporary_one(tmp_path: Path) -> None:
    f = tmp_path / "rules.yaml"
    f.write_text("old\n")
    with pytest.raises(UnicodeEncodeError):
        replace_file(f, "half \udc80 written")
    assert f.read_text() == "old\n" and leftovers(tmp_path, f.name) == []
