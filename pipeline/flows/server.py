"""Start, stop and query a local Prefect server bound to 127.0.0.1.

Usage::

    python -m pipeline.flows.server start [--port 4200]   # UI at http://127.0.0.1:4200
    python -m pipeline.flows.server status
    python -m pipeline.flows.server stop

State lives in the project (``.prefect/``, from ``prefect.toml``).  ``start`` appends
one marked block to ``.env`` that sets ``PREFECT_API_URL``, so every flow run started
from the project root reports to this server; ``stop`` removes exactly that block and
leaves every other line of ``.env`` as it was.

The server has no authentication: it binds the loopback address only, so only
processes on this machine reach it.  ``start`` refuses a port that something else
already answers on, and trusts a server only when the process it started is alive
and is the one listening on the port.  Telemetry is off for every server started here.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from pipeline.atomic import atomic_path

HOST = "127.0.0.1"
STATE_DIR = Path(".prefect")
PID_FILE = STATE_DIR / "server.json"
ENV_FILE = Path(".env")
ENV_BEGIN = "# >>> pipeline.flows.server start: this block is removed by `stop` >>>"
ENV_END = "# <<< pipeline.flows.server <<<"
# The block as `start` appends it, with its own leading newline, so removing it restores the file byte for byte.
_ENV_BLOCK = re.compile(rb"\n" + re.escape(ENV_BEGIN.encode()) + rb"\n.*?" + re.escape(ENV_END.encode()) + rb"\n",
                        re.S)
# No telemetry calls from temporary or project servers (machines may be offline).
NO_TELEMETRY = {"PREFECT_SERVER_ANALYTICS_ENABLED": "false", "DO_NOT_TRACK": "1"}


class ServerError(RuntimeError):
    """The server could not be started, reached or stopped."""


def free_port(host: str = HOST) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_in_use(port: int, host: str = HOST) -> bool:
    """Whether something listens on ``host:port`` (a connect succeeds, or the address cannot be bound)."""
    with socket.socket() as s:
        s.settimeout(1.0)
        if s.connect_ex((host, port)) == 0:
            return True
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT of a stopped server is no owner
        try:
            s.bind((host, port))
        except OSError as exc:
            return exc.errno == errno.EADDRINUSE
    return False


def api_url(port: int, host: str = HOST) -> str:
    return f"http://{host}:{port}/api"


def healthy(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=timeout) as resp:
            return resp.status == 200
    except (urllib.error.URLError, OSError, TimeoutError):
        return False


def owns_port(pid: int, port: int) -> bool:
    """Whether process ``pid`` or one of its descendants is listening on ``port``."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return False
    for proc in procs:
        try:
            conns = proc.net_connections(kind="tcp")
        except psutil.Error:
            continue
        if any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in conns):
            return True
    return False


@dataclass
class ServerProcess:
    """A running ``prefect server start`` child."""

    process: subprocess.Popen
    url: str
    log_path: Path

    def stop(self, timeout: float = 20.0) -> None:
        _terminate(self.process.pid, timeout, reap=self.process.poll)


def _terminate(pid: int, timeout: float, reap: Callable[[], object] | None = None) -> None:
    """SIGTERM the process group ``pid``, wait until it is gone, SIGKILL it at ``timeout``.
    ``reap``: for our own child (e.g. ``Popen.poll``); an unreaped zombie keeps the group alive."""
    try:
        os.killpg(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if reap is not None:
            reap()
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
    """Start a server on 127.0.0.1 and wait (bounded) until its API answers.

    Raises:
        ServerError: the port is already in use, the server exited, did not answer in
            time, or the process answering on the port is not the one started here.
    """
    if port is not None and port_in_use(port):
        raise ServerError(f"port {port} on {HOST} is already in use by another process")
    port = port or free_port()
    cwd = Path(cwd or Path.cwd())
    home = Path(home or cwd / STATE_DIR)
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / f"server-{port}.log"
    env = dict(os.environ, PREFECT_HOME=str(home), **NO_TELEMETRY)
    env.pop("PREFECT_API_URL", None)
    cmd = [sys.executable, "-m", "prefect", "server", "start", "--host", HOST, "--port", str(port)]
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
    url = api_url(port)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerError(f"prefect server exited with {proc.returncode}; see {log_path}")
        if healthy(url):
            if owns_port(proc.pid, port):
                return ServerProcess(proc, url, log_path)
            _terminate(proc.pid, 10, reap=proc.poll)
            raise ServerError(f"port {port} on {HOST} is answered by another process, not the server started here")
        time.sleep(0.5)
    _terminate(proc.pid, 10, reap=proc.poll)
    raise ServerError(f"prefect server did not answer on {url} within {timeout:.0f}s; see {log_path}")


def _read_pid_file() -> dict | None:
    try:
        info = json.loads(PID_FILE.read_text())
        return {"pid": int(info["pid"]), "port": int(info["port"]), "url": str(info["url"])}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _is_prefect_server(pid: int) -> bool:
    try:
        cmd = psutil.Process(pid).cmdline()
    except psutil.Error:
        return False
    return "prefect" in cmd and "server" in cmd


def _ours(info: dict | None) -> bool:
    """Whether the recorded server is alive, listening on its port and answering."""
    return info is not None and owns_port(info["pid"], info["port"]) and healthy(info["url"])


def set_env_block(text: str | None) -> None:
    """Replace this helper's block in ``.env`` by ``text`` (None: remove it); other bytes stay as they are."""
    old = ENV_FILE.read_bytes() if ENV_FILE.is_file() else b""
    new = _ENV_BLOCK.sub(b"", old)
    if text is not None:
        new += f"\n{ENV_BEGIN}\n{text}{ENV_END}\n".encode()
    if new == old:
        return
    if not new:
        ENV_FILE.unlink()
        return
    with atomic_path(ENV_FILE) as tmp:
        tmp.write_bytes(new)


def start(port: int) -> str:
    """Start the project's server on ``port`` (or return the one already running) and point ``.env`` at it."""
    info = _read_pid_file()
    if _ours(info):
        return info["url"]  # type: ignore[index]
    server = launch(port)
    STATE_DIR.mkdir(exist_ok=True)
    PID_FILE.write_text(json.dumps({"pid": server.process.pid, "port": port, "url": server.url}))
    set_env_block(f"PREFECT_API_URL={server.url}\n")
    return server.url


def stop() -> bool:
    """Stop the project's server (only a process it started) and remove its ``.env`` block."""
    info = _read_pid_file()
    set_env_block(None)
    if info is None:
        PID_FILE.unlink(missing_ok=True)
        return False
    if _is_prefect_server(info["pid"]):  # a recycled pid is never signalled
        _terminate(info["pid"], 20)
    PID_FILE.unlink(missing_ok=True)
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["start", "stop", "status"])
    parser.add_argument("--port", type=int, default=4200)
    args = parser.parse_args(argv)
    if args.action == "start":
        try:
            url = start(args.port)
        except ServerError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        print(f"Prefect server running: UI http://{HOST}:{url.split(':')[-1].split('/')[0]}  API {url}")
        print("Flow runs started from this directory report to it (.env sets PREFECT_API_URL).")
        print("It has no authentication and listens on the loopback address only.")
    elif args.action == "stop":
        print("stopped" if stop() else "no server started from this project")
    else:
        info = _read_pid_file()
        if info is None:
            print("no server started from this project")
        else:
            print(f"{info['url']}: {'healthy' if _ours(info) else 'not answering'}")
    return 0


if __name__ == "__main__":
    from pipeline.cli import run_cli

    run_cli(main)
