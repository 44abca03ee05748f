"""Hostile inputs for the Prefect server helper: a busy port, a foreign answering service,
a recycled pid in the state file, and a user's own ``.env`` lines.

The full start/stop with a real server on a user's ``.env`` is in
tests/flows/test_server_cli.py (one real server start for both); these need none.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from dotenv import dotenv_values

from pipeline.flows import server
from pipeline.flows.server import owns_port, port_in_use, set_env_block

REPO_ROOT = Path(__file__).resolve().parents[2]
USER_ENV = "# mine\r\nFOO=bar\r\nPREFECT_API_URL=http://example.invalid/api\n\xe9=1".encode("latin-1")


class _Any200(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args) -> None:  # noqa: ANN002 - silence
        pass


@pytest.fixture
def foreign_server():
    """A plain HTTP server on 127.0.0.1 answering 200 on every path (/api/health too)."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Any200)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd.server_address[1]
    httpd.shutdown()
    httpd.server_close()


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PYTHONPATH"] = str(REPO_ROOT)
    return subprocess.run([sys.executable, "-m", "pipeline.flows.server", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=60)


def test_busy_port_is_refused_and_env_untouched(tmp_path, foreign_server):
    port = foreign_server
    assert server.healthy(server.api_url(port))  # it does answer /api/health
    (tmp_path / ".env").write_bytes(USER_ENV)
    out = _cli(tmp_path, "start", "--port", str(port))
    assert out.returncode == 2
    assert out.stderr.strip() == f"error: port {port} on 127.0.0.1 is already in use by another process"
    assert "Traceback" not in out.stderr and "running" not in out.stdout
    assert (tmp_path / ".env").read_bytes() == USER_ENV
    assert not (tmp_path / ".prefect" / "server.json").exists()


def test_port_probe_and_ownership(foreign_server):
    assert port_in_use(foreign_server)
    assert owns_port(os.getpid(), foreign_server)  # this process serves it
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert not owns_port(sleeper.pid, foreign_server)  # alive, but not the one answering
    finally:
        sleeper.kill()
        sleeper.wait()
    assert not port_in_use(server.free_port())


def test_recycled_pid_is_not_signalled_and_foreign_server_not_trusted(tmp_path, foreign_server):
    """A state file naming a live process that is no Prefect server (a recycled pid) on a port a foreign
    service answers: ``status`` does not call it healthy and ``stop`` leaves the process alone."""
    port = foreign_server
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True)
    try:
        (tmp_path / ".prefect").mkdir()
        (tmp_path / ".prefect" / "server.json").write_text(
            json.dumps({"pid": sleeper.pid, "port": port, "url": server.api_url(port)}))
        assert "not answering" in _cli(tmp_path, "status").stdout
        assert _cli(tmp_path, "stop").returncode == 0
        assert sleeper.poll() is None  # not killed
        assert not (tmp_path / ".prefect" / "server.json").exists()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_env_block_keeps_user_bytes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    env = tmp_path / ".env"
    env.write_bytes(USER_ENV)
    set_env_block("PREFECT_API_URL=http://127.0.0.1:4321/api\n")
    assert env.read_bytes().startswith(USER_ENV)
    assert dotenv_values(env, encoding="latin-1")["PREFECT_API_URL"] == "http://127.0.0.1:4321/api"  # ours wins
    set_env_block("PREFECT_API_URL=http://127.0.0.1:4322/api\n")  # a restart replaces, never stacks
    assert env.read_bytes().count(server.ENV_BEGIN.encode()) == 1
    set_env_block(None)
    assert env.read_bytes() == USER_ENV
    set_env_block(None)  # nothing of ours: untouched
    assert env.read_bytes() == USER_ENV


def test_env_file_created_by_start_is_removed_by_stop(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    set_env_block("PREFECT_API_URL=http://127.0.0.1:4321/api\n")
    assert dotenv_values(tmp_path / ".env") == {"PREFECT_API_URL": "http://127.0.0.1:4321/api"}
    set_env_block(None)
    assert not (tmp_path / ".env").exists()
