"""A scripted HTTP server on 127.0.0.1, for tests of plugins that talk to HTTP services.
Follows the template.

    with LocalHTTPServer() as api:
        api.respond("GET", "/feed", json=[{"id": 1}])
        api.respond("POST", "/messages", status=503)
        env = {"MY_PLUGIN_FEED_URL": api.url("/feed")}
        ...
        assert api.requests[0].json() == {...}

A response set for a method and path answers every request to it until it is set again;
other requests get 404. Every request is recorded.
"""

from __future__ import annotations

import json as jsonlib
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return jsonlib.loads(self.body)


@dataclass(frozen=True)
class Response:
    status: int = 200
    body: bytes = b""
    content_type: str = "application/json"


class LocalHTTPServer:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._responses: dict[tuple[str, str], Response] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((HOST, 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    def respond(
        self, method: str, path: str, *, status: int = 200, json: Any = None, body: bytes = b""
    ) -> None:
        """Answer `method path` with `status` and a JSON document (or raw `body`)."""
        data = jsonlib.dumps(json).encode() if json is not None else body
        with self._lock:
            self._responses[(method, path)] = Response(status, data)

    def url(self, path: str = "/") -> str:
        return f"http://{HOST}:{self._server.server_port}{path}"

    def requests_to(self, method: str, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if (r.method, r.path) == (method, path)]

    def _answer(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(request)
            return self._responses.get((request.method, request.path), Response(404))

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    self.command, self.path, dict(self.headers.items()), self.rfile.read(length)
                )
                response = server._answer(request)
                self.send_response(response.status)
                self.send_header("Content-Type", response.content_type)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                self.wfile.write(response.body)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _serve

            def log_message(self, format: str, *args: Any) -> None:
                pass  # keep test output quiet

        return Handler

    def __enter__(self) -> LocalHTTPServer:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
