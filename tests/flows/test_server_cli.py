"""`python -m pipeline.flows.server start|status|stop` in a project directory."""

import subprocess
import sys

import pytest

from pipeline.flows.server import ENV_BEGIN, ENV_END, free_port, healthy

from .conftest import prefect_env

pytestmark = pytest.mark.slow

USER_ENV = b"# my settings\nFOO=bar\nPREFECT_LOGGING_LEVEL=DEBUG"  # no trailing newline: kept as is


def test_start_writes_env_serves_ui_and_stop_cleans_up(tmp_path):
    env = prefect_env(tmp_path / "home")
    env.pop("PREFECT_HOME")  # the CLI uses the project's ./.prefect
    port = free_port()
    (tmp_path / ".env").write_bytes(USER_ENV)

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "pipeline.flows.server", *args], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=180)

    try:
        started = cli("start", "--port", str(port))
        assert started.returncode == 0, started.stderr[-3000:]
        url = f"http://127.0.0.1:{port}/api"
        text = (tmp_path / ".env").read_bytes()
        assert text == USER_ENV + f"\n{ENV_BEGIN}\nPREFECT_API_URL={url}\n{ENV_END}\n".encode()
        assert healthy(url)
        assert (tmp_path / ".prefect").is_dir()  # project-local state, not ~/.prefect
        assert "healthy" in cli("status").stdout
        again = cli("start", "--port", str(port))  # the project's own server is reused, not refused
        assert again.returncode == 0 and url in again.stdout, again.stderr
        assert (tmp_path / ".env").read_bytes() == text
    finally:
        stopped = cli("stop")
    assert "stopped" in stopped.stdout
    assert (tmp_path / ".env").read_bytes() == USER_ENV  # the user's lines, byte for byte
    assert not healthy(f"http://127.0.0.1:{port}/api", timeout=1.0)
    assert cli("stop").stdout.strip() == "no server started from this project"
