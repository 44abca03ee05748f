"""Run DVC's command line from this interpreter's environment.

DVC runs every stage ``cmd`` through the shell (``python stages/...``) and its queue worker
starts ``dvc`` by name, so both are looked up on ``PATH``. Started as ``.venv/bin/python -m
pipeline.study`` without activating the environment, a stage would find another Python (or
none) and the queue worker would not start at all: ``dvc queue start`` still says "Started"
and every queued run waits. :func:`dvc_env` puts this interpreter's ``bin`` first on ``PATH``.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Mapping
from pathlib import Path

from pipeline.errors import PipelineError


def bin_dir() -> str:
    """The folder of this interpreter (a virtual environment's ``bin``), not resolved through links."""
    return str(Path(sys.executable).parent)


def dvc_env(base: Mapping[str, str] | None = None) -> dict[str, str]:
    """``base`` (default ``os.environ``) with :func:`bin_dir` first on ``PATH``."""
    env = dict(os.environ if base is None else base)
    here = bin_dir()
    rest = [p for p in env.get("PATH", "").split(os.pathsep) if p and p != here]
    env["PATH"] = os.pathsep.join([here, *rest])
    return env


def dvc_argv(*args: str) -> list[str]:
    """``python -m dvc ARGS`` with this interpreter."""
    return [sys.executable, "-m", "dvc", *args]


def require_dvc_executable(env: Mapping[str, str]) -> str:
    """Path of the ``dvc`` that DVC's queue worker will start under ``env``; a clear error if none."""
    found = shutil.which("dvc", path=env.get("PATH"))
    if not found:
        raise PipelineError(f"DVC's queue worker starts `dvc` from PATH and there is none in {bin_dir()} "
                            f"or on PATH; install DVC into this environment (`pip install dvc`)")
    return found
