"""Start, stop and query a local Prefect server bound to 127.0.0.1.

Usage::

    python -m pipeline.flows.server start [--port 4200]   # UI at http://127.0.0.1:4200
    python -m pipeline.flows.server status
    python -m pipeline.flows.server stop

State lives in the project (``.prefect/``, from ``prefect.toml``); ``start`` writes
``.env`` with ``PREFECT_API_URL`` so every flow run started from the project root
reports to this server, and ``stop`` removes it again.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

STATE_DIR = Path(".prefect")
PID_FILE = STATE_DIR / "server.json"
ENV_FILE = Path(".env")


class ServerError(RuntimeError):
    """The server could not be started, reached or stopped."""


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def api_url(port: int, host: str = "127.0.0.1") -> str:
    return f"http://{host}:{port}/api"


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, TimeoutError):
        return False


@dataclass
class ServerProcess:
    """A running ``prefect server start`` child."""

    process: subprocess.Popen
    url: str
    log_path: Path

    def stop(self, timeout: float = 20.0) -> None:
        _terminate(self.process.pid, timeout)


def _terminate(pid: int, timeout: float) -> None:
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def launch(port: int | None = None, home: Path | None = None, timeout: float = 90.0,
           cwd: Path | None = None) -> ServerProcess:
    """Start a server on 127.0.0.1 and wait (bounded) until its API answers."""
    port = port or free_port()
    cwd = Path(cwd or Path.cwd())
    home = Path(home or cwd / STATE_DIR)
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / f"server-{port}.log"
    env = dict(os.environ, PREFECT_HOME=str(home))
    env.pop("PREFECT_API_URL", None)
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    log = open(log_path, "ab")
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    url = api_url(port)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(f"prefect server exited with {proc.returncode}; see {log_path}")
        if healthy(url):
            return ServerProcess(proc, url, log_path)
        time.sleep(0.5)
    _terminate(proc.pid, 10)
    raise ServerError(f"prefect server did not answer on {url} within {timeout:.0f}s; see {log_path}")


def start(port: int) -> str:
    if PID_FILE.is_file():
        info = json.loads(PID_FILE.read_text())
        if healthy(info["url"]):
            return info["url"]
    server = launch(port)
    STATE_DIR.mkdir(exist_ok=True)
    PID_FILE.write_text(json.dumps({"pid": server.process.pid, "url": server.url}))
    ENV_FILE.write_text(f"PREFECT_API_URL={server.url}\n")
    return server.url


def stop() -> bool:
    if not PID_FILE.is_file():
        return False
    info = json.loads(PID_FILE.read_text())
    _terminate(int(info["pid"]), 20)
    PID_FILE.unlink(missing_ok=True)
    if ENV_FILE.is_file() and "PREFECT_API_URL" in ENV_FILE.read_text():
        ENV_FILE.unlink()
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--port", type=int, default=4200)
    args = parser.parse_args(argv)
    if args.action == "start":
        url = start(args.port)
        print(f"Prefect server running: UI http://127.0.0.1:{url.split(':')[-1].split('/')[0]}  API {url}")
        print("Flow runs started from this directory report to it (.env sets PREFECT_API_URL).")
    elif args.action == "stop":
        print("stopped" if stop() else "no server started from this project")
    else:
        if PID_FILE.is_file():
            url = json.loads(PID_FILE.read_text())["url"]
            print(f"{url}: {'healthy' if healthy(url) else 'not answering'}")
        else:
            print("no server started from this project")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
