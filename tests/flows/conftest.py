"""Prefect test isolation: every flow runs in a subprocess with its own PREFECT_HOME;
they can share the session's ``prefect_server`` (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]


def prefect_env(home: Path, api_url: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    for k in list(env):
        if k.startswith("PREFECT_"):
            env.pop(k)
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_RESULTS_LOCAL_STORAGE_PATH=str(home / "storage"),
        PREFECT_RESULTS_PERSIST_BY_DEFAULT="true",
        PREFECT_LOGGING_LEVEL="WARNING",
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS="120",
        PYTHONPATH=str(REPO_ROOT) + os.pathsep + env.get("PYTHONPATH", ""),
    )
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


@pytest.fixture
def run_py(tmp_path):
    """Run a Python snippet in a subprocess with an isolated Prefect home; returns stdout."""
    home = tmp_path / "prefect-home"

    def _run(code: str, cwd: Path | None = None, timeout: float = 240, api_url: str | None = None) -> str:
        proc = subprocess.run([sys.executable, "-c", code], cwd=cwd or tmp_path, env=prefect_env(home, api_url),
                              capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise AssertionError(f"subprocess failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}")
        return proc.stdout

    return _run
