"""`python -m pipeline.flows.server start|status|stop` in a project directory."""

import subprocess
import sys

import pytest

from pipeline.flows.server import free_port, healthy

from .conftest import prefect_env

pytestmark = pytest.mark.slow


def test_start_writes_env_serves_ui_and_stop_cleans_up(tmp_path):
    env = prefect_env(tmp_path / "home")
    env.pop("PREFECT_HOME")  # the CLI uses the project's ./.prefect
    port = free_port()

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "pipeline.flows.server", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=180)

    try:
        started = cli("start", "--port", str(port))
        assert started.returncode == 0, started.stderr[-3000:]
        url = f"http://127.0.0.1:{port}/api"
        assert (tmp_path / ".env").read_text().strip() == f"PREFECT_API_URL={url}"
        assert healthy(url)
        assert (tmp_path / ".prefect").is_dir()  # project-local state, not ~/.prefect
        assert "healthy" in cli("status").stdout
    finally:
        stopped = cli("stop")
    assert "stopped" in stopped.stdout
    assert not (tmp_path / ".env").exists()
    assert not healthy(f"http://127.0.0.1:{port}/api", timeout=1.0)
