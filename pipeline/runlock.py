"""An inter-process lock so overlapping pipeline runs never interleave.

``fcntl.flock`` on a file: released by the OS when the holder dies, so a
crashed run never leaves a stale lock behind.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path

from pipeline.errors import PipelineError


class OutputBusyError(PipelineError, RuntimeError):
    """Another process is writing the same output."""


@contextlib.contextmanager
def run_lock(path: str | os.PathLike[str], wait_s: float = 0.0, poll_s: float = 0.5) -> Iterator[bool]:
    """Yield True once the lock at ``path`` is held, or False if not acquired within ``wait_s``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    acquired = False
    try:
        deadline = time.monotonic() + wait_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                acquired = True
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    break
                time.sleep(poll_s)
        yield acquired
    finally:
        if acquired:
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


@contextlib.contextmanager
def output_lock(out: str | os.PathLike[str], what: str) -> Iterator[None]:
    """Hold the lock of output ``out`` (file ``.<name>.lock`` beside it) while writing it.

    Raises:
        OutputBusyError: another process holds it, e.g. a second ``ingest`` into the same set.
    """
    out = Path(out)
    lock = out.parent / f".{out.name}.lock"
    with run_lock(lock) as held:
        if not held:
            raise OutputBusyError(f"{out}: another {what} is writing this output right now (lock {lock})")
        yield
