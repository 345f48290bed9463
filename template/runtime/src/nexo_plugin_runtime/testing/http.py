"""HTTP for tests: a scripted server on 127.0.0.1 standing in for the services a plugin calls,
and a client for the plugin's own webhook.

    with LocalHTTPServer() as api:
        api.respond("GET", "/feed", json=[{"id": 1}], headers={"ETag": '"v1"'})
        api.respond_once("POST", "/messages", status=503, headers={"Retry-After": "0"})
        api.respond("POST", "/messages", status=200)   # every request after the 503
        env = {"MY_PLUGIN_FEED_URL": api.url("/feed")}
        ...
        assert api.requests_to("POST", "/messages")[0].json() == {...}

`respond` sets the answer to a method and path from now on; `respond_once` adds one that
comes first, once (several come in order). Other requests get 404. Every request is
recorded.
"""

from __future__ import annotations

import json as jsonlib
import threading
import urllib.error
import urllib.request
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    headers: dict[str, str]  # as sent (use .get() on lower-case names through header())
    body: bytes

    def json(self) -> Any:
        return jsonlib.loads(self.body)

    def header(self, name: str) -> str | None:
        wanted = name.lower()
        return next((value for key, value in self.headers.items() if key.lower() == wanted), None)


@dataclass(frozen=True)
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


def _response(status: int, json: Any, body: bytes, headers: dict[str, str] | None) -> Response:
    data = jsonlib.dumps(json).encode() if json is not None else body
    return Response(status, data, {"Content-Type": "application/json", **(headers or {})})


class LocalHTTPServer:
    """A threaded HTTP server on 127.0.0.1 answering from a script (see the module)."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._once: dict[tuple[str, str], deque[Response]] = {}
        self._standing: dict[tuple[str, str], Response] = {}
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((HOST, 0), self._handler_class())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )

    def respond(
        self,
        method: str,
        path: str,
        *,
        status: int = 200,
        json: Any = None,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer `method path` with `status` and a JSON document (or raw `body`) from now on."""
        with self._lock:
            self._standing[(method, path)] = _response(status, json, body, headers)

    def respond_once(
        self,
        method: str,
        path: str,
        *,
        status: int = 200,
        json: Any = None,
        body: bytes = b"",
        headers: dict[str, str] | None = None,
    ) -> None:
        """Answer the next `method path` request so, once, before the standing answer."""
        with self._lock:
            once = self._once.setdefault((method, path), deque())
            once.append(_response(status, json, body, headers))

    def url(self, path: str = "/") -> str:
        return f"http://{HOST}:{self._server.server_port}{path}"

    def requests_to(self, method: str, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if (r.method, r.path) == (method, path)]

    def _answer(self, request: Request) -> Response:
        with self._lock:
            self.requests.append(request)
            key = (request.method, request.path)
            if once := self._once.get(key):
                return once.popleft()
            return self._standing.get(key, Response(404))

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = Request(
                    self.command, self.path, dict(self.headers.items()), self.rfile.read(length)
                )
                response = server._answer(request)
                self.send_response(response.status)
                for name, value in response.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(response.body)))
                self.end_headers()
                if self.command != "HEAD" and response.status not in (204, 304):
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


def http_post(
    url: str, body: bytes, headers: dict[str, str] | None = None, *, method: str = "POST"
) -> tuple[int, Any]:
    """(status, JSON answer or None) of one request to `url`, such as the plugin's webhook."""
    sent = {"Content-Type": "application/json", **(headers or {})}
    request = urllib.request.Request(url, data=body, headers=sent, method=method)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            data = response.read()
            return response.status, jsonlib.loads(data) if data else None
    except urllib.error.HTTPError as error:
        data = error.read()
        return error.code, jsonlib.loads(data) if data else None
