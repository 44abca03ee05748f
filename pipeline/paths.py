"""Containment of paths built from data.

A name taken from dataset metadata (a VOC list id, an XML ``<filename>``, a COCO
``file_name``) or from an annotation table's ``file_name`` column is joined to its
root only through :func:`inside`, which resolves the result (``..`` and symbolic
links included) and refuses anything that leaves the root.  The root itself may be
a link (e.g. ``JPEGImages`` on another disk): it is resolved first.
"""

from __future__ import annotations

import functools
import os
import re
import stat
from pathlib import Path

from pipeline.errors import PipelineError

_ABSOLUTE = re.compile(r"^(/|\\|[A-Za-z]:)")  # POSIX root, Windows root/UNC, drive letter


class ContainmentError(PipelineError, ValueError):
    """A path built from data would leave its root; the message names the value and the root."""


@functools.lru_cache(maxsize=256)
def _real_root(root: str) -> str:
    """``realpath`` of an absolute root, once per process (roots are few, names are many)."""
    return os.path.realpath(root)


def _through_link(base: str, parts: list[str]) -> bool:
    """Whether walking ``parts`` down from ``base`` meets a symbolic link (one lstat per existing part)."""
    cur = base
    for part in parts:
        cur = os.path.join(cur, part)
        try:
            if stat.S_ISLNK(os.lstat(cur).st_mode):
                return True
        except (FileNotFoundError, NotADirectoryError):
            return False  # nothing further exists, so no link further down either
    return False


def inside(root: str | os.PathLike[str], relative: str | os.PathLike[str]) -> Path:
    """Resolve ``root / relative`` and return it if it lies strictly inside ``root``.

    Args:
        root: the folder the name must stay in (read: a source root; write: a set folder).
        relative: the name from the data; a relative path, sub-folders allowed.

    Raises:
        ContainmentError: ``relative`` is empty, absolute (POSIX, drive or UNC form), holds a
            NUL byte, or resolves (through ``..`` or a symbolic link) to ``root`` itself or
            to a place outside it.
    """
    name = os.fspath(relative)
    if not name or "\x00" in name:
        raise ContainmentError(f"file name {name!r} is empty or holds a NUL byte (root {root})")
    if _ABSOLUTE.match(name):
        raise ContainmentError(f"file name {name!r} is absolute; it must be relative to {root}")
    base = _real_root(os.path.abspath(root))  # absolute first: a later chdir must not reuse another root
    if _through_link(base, name.split("/")):
        target = os.path.realpath(os.path.join(base, name))
    else:
        target = os.path.normpath(os.path.join(base, name))
    if not target.startswith(base.rstrip(os.sep) + os.sep):
        raise ContainmentError(f"file name {name!r} resolves to {target}, outside {base}")
    return Path(target)
