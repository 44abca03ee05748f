"""Containment of paths built from data.

A name taken from dataset metadata (a VOC list id, an XML ``<filename>``, a COCO
``file_name``) or from an annotation table's ``file_name`` column is joined to its
root only through :func:`inside`, which resolves the result (``..`` and symbolic
links included) and refuses anything that leaves the root.  The root itself may be
a link (e.g. ``JPEGImages`` on another disk): it is resolved first.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

from pipeline.errors import PipelineError


class ContainmentError(PipelineError, ValueError):
    """A path built from data would leave its root; the message names the value and the root."""


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
    win = PureWindowsPath(name)
    if PurePosixPath(name).is_absolute() or win.drive or win.root:
        raise ContainmentError(f"file name {name!r} is absolute; it must be relative to {root}")
    base = Path(root).resolve()
    target = (base / name).resolve()
    if target == base or not target.is_relative_to(base):
        raise ContainmentError(f"file name {name!r} resolves to {target}, outside {base}")
    return target
