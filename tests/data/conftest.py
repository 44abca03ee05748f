"""A real loopback HTTP server (Range support, injectable faults) serving in-memory files."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class ServerState:
    """What the server serves and how it misbehaves; ``log`` records (path, Range header, status)."""

    files: dict[str, bytes] = field(default_factory=dict)
    drop_once: set[str] = field(default_factory=set)  # first GET sends half the body, then closes
    no_range: bool = False  # ignore Range, always answer 200 with the whole file
    fail_first: dict[str, int] = field(default_factory=dict)  # path -> number of 503s to send first
    log: list[tuple[str, str | None, int]] = field(default_factory=list)


class _Handler(BaseHTTPRequestHandler):
    state: ServerState

    def log_message(self, *args) -> None:  # keep test output quiet
        pass

    def do_GET(self) -> None:  # noqa: N802
        st = self.state
        rng = self.headers.get("Range")
        if self.path not in st.files:
            st.log.append((self.path, rng, 404))
            self.send_error(404)
            return
        if st.fail_first.get(self.path, 0) > 0:
            st.fail_first[self.path] -= 1
            st.log.append((self.path, rng, 503))
            self.send_error(503)
            return
        data = st.files[self.path]
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", rng or "")
        if m and not st.no_range:
            start = int(m.group(1))
            if start >= len(data):
                st.log.append((self.path, rng, 416))
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            status = 206
        else:
            self.send_response(200)
            status = 200
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        if not st.no_range:
            self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        st.log.append((self.path, rng, status))
        if self.path in st.drop_once:
            st.drop_once.discard(self.path)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def http_server() -> Iterator[tuple[str, ServerState]]:
    """(base URL on 127.0.0.1 with a free port, mutable server state)."""
    state = ServerState()
    handler = type("Handler", (_Handler,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
