"""Files the dashboard rewrites (rules files, the admin's password hash): atomically, durably, as they were."""

from __future__ import annotations

import contextlib
import logging
import os
import stat
import tempfile
from pathlib import Path

__all__ = ["replace_file"]

log = logging.getLogger(__name__)


def replace_file(path: Path, text: str, new_mode: int = 0o600) -> None:
    """Replace ``path`` with ``text``, keeping its mode and (where allowed) its owner and group.

    The text goes to a temporary file in the same folder (a rename cannot cross file systems),
    which is fsynced, renamed over ``path``, and then the folder is fsynced so that the rename
    itself survives a power cut: a reader sees the old file or the new one, never half of one.
    A file that does not exist yet gets ``new_mode``.
    """
    try:
        st = os.stat(path)
        mode, owner = stat.S_IMODE(st.st_mode), (st.st_uid, st.st_gid)
    except FileNotFoundError:
        mode, owner = new_mode, None
    # mkstemp makes the file 0600, so a secret is never readable by others, not even for a moment.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            if owner is not None:
                _keep_owner(f.fileno(), owner, path)
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_folder(path.parent)


def _keep_owner(fd: int, owner: tuple[int, int], path: Path) -> None:
    uid, gid = owner
    if (os.fstat(fd).st_uid, os.fstat(fd).st_gid) == owner:
        return
    try:
        os.fchown(fd, uid, gid)  # root may; others may keep the group when they are in it
    except PermissionError:
        try:
            os.fchown(fd, -1, gid)
        except PermissionError:
            pass
        log.info("%s now belongs to this process's user: only root may keep another owner", path)


def _fsync_folder(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
