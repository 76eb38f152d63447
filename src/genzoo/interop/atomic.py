"""Atomic directory writes: write everything into a temporary sibling directory, then rename it into
place. A reader (or a resumed run) sees the old directory or the complete new one, never a partial one."""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from pathlib import Path

from ..rundir import OLD_MARK, TMP_MARK
from .files import fsync_dir


def umask() -> int:
    """The process's umask, read without changing it where Linux reports it (os.umask can only set it)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def file_mode() -> int:
    """The mode an ordinary new file gets (0o666 less the umask): what every file genzoo writes ends up with."""
    return 0o666 & ~umask()


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike):
    """`with atomic_dir(p) as tmp:` write files into tmp; on success tmp becomes p (replacing it)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}{TMP_MARK}{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        yield tmp
        for f in tmp.iterdir():
            if f.is_file():
                with open(f, "rb+") as fh:
                    os.fsync(fh.fileno())
        fsync_dir(tmp)
        old = None
        if path.exists():
            old = path.parent / f".{path.name}{OLD_MARK}{uuid.uuid4().hex[:8]}"
            os.rename(path, old)
        os.rename(tmp, path)
        fsync_dir(path.parent)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
