"""Real HTTP servers on loopback that play the services the runner talks to.

Each fake is a ``ThreadingHTTPServer`` on 127.0.0.1 and a free port, served from a
daemon thread, so the clients under test make real requests over real sockets.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Self


def refused_port() -> int:
    """A loopback port nothing listens on: bound once to pick it, then closed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def refused_url() -> str:
    """An http URL on loopback whose connections are refused."""
    return f"http://127.0.0.1:{refused_port()}"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: LoopbackServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (its timeout) closes the socket under a slow handler.
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    """Request handler base: quiet, one request per connection, JSON helpers."""

    protocol_version = "HTTP/1.1"
    server: _Server

    @property
    def fake(self) -> Any:
        return self.server.fake

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def read_body(self) -> bytes:
        """The whole request body (always read, so the connection stays in step)."""
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def reply(
        self,
        status: int,
        body: bytes | str | dict[str, Any] | list[Any] = b"",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Send a complete response and close the connection."""
        content_type = "text/plain; charset=utf-8"
        if isinstance(body, dict | list):
            body, content_type = json.dumps(body), "application/json; charset=utf-8"
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)
        self.close_connection = True


class LoopbackServer:
    """Base of the fakes: start/stop a server thread; use as a context manager."""

    handler_class: ClassVar[type[Handler]]

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._server = _Server(("127.0.0.1", 0), self.handler_class)
        self._server.fake = self
        # A short poll interval keeps shutdown() (and so each test's teardown) quick.
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def url(self) -> str:
        """Base URL of the running server, e.g. ``http://127.0.0.1:54321``."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> Self:
        """Serve from a daemon thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, wake slow handlers and free the port."""
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()

    def pause(self, seconds: float) -> None:
        """Sleep in a handler, cut short when the server stops."""
        self.stopping.wait(seconds)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
