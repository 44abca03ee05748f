"""Atomic file and directory output: write to a temp path, rename into place.

An interrupted writer leaves either the previous output or nothing, never a
half-written file.  Temp paths sit beside their target as
``.<name>.tmp-<pid>-<random><suffix>``.  The next writer into the same folder
removes those whose process is gone (once per folder and process), and
:func:`atomic_dir` a ``.<name>.old`` left mid-swap, so a killed run leaves no litter
inside an output folder.  Files and folders are created with the
usual modes less the umask (0666/0777 & ~umask), like ``open()`` and ``mkdir``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    return True


def _temp_sibling(target: Path, suffix: str) -> Path:
    return target.with_name(f".{target.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}{suffix}")


_TEMP = re.compile(r"\..+\.tmp-(\d+)-[0-9a-f]{8}")
_swept: set[Path] = set()


def sweep_stale(folder: str | os.PathLike[str]) -> list[Path]:
    """Remove the temp files/folders in ``folder`` whose writer process is gone; returns them."""
    removed = []
    for entry in Path(folder).iterdir():
        m = _TEMP.match(entry.name)
        if m is None or _pid_alive(int(m.group(1))):
            continue
        _remove(entry)
        removed.append(entry)
    return removed


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


def _prepare(target: Path) -> None:
    """Create ``target``'s folder; sweep it once per process (a folder may hold 100k images)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    folder = target.parent.resolve()
    if folder not in _swept:
        _swept.add(folder)
        sweep_stale(folder)


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], suffix: str | None = None) -> Iterator[Path]:
    """Yield a temp file path beside ``target``; rename it onto ``target`` on success.

    The temp file lives in the same directory so the final ``os.replace`` is atomic.
    On an exception the temp file is removed and ``target`` is left untouched.
    """
    target = Path(target)
    _prepare(target)
    tmp_path = _temp_sibling(target, suffix or target.suffix or ".tmp")
    os.close(os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))  # 0666 & ~umask
    try:
        yield tmp_path
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def atomic_dir(target: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temp directory beside ``target``; swap it in on success.

    An existing ``target`` is replaced only after the new content is complete.
    """
    target = Path(target)
    _prepare(target)
    old = target.with_name(f".{target.name}.old")
    if old.exists():  # left by a run killed mid-swap
        _remove(old)
    tmp = _temp_sibling(target, ".tmp")
    tmp.mkdir(0o777)  # 0777 & ~umask
    try:
        yield tmp
        if target.exists():
            if old.exists():
                shutil.rmtree(old)
            os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as pretty JSON atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
