"""The dev host's HTTP stub: the APIs a plugin calls, played from nexo-dev.toml's [[http]]
routes on 127.0.0.1, each request shown in the session's log. A poller's feed or an
outbound plugin's delivery API then works on the author's desk with no service running:
`{http}` in a setting of [env] is the stub's address.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from .settings import HttpFixture

MAX_SHOWN = 300


class HttpStub:
    """Serves `routes` until close(); `on_request(text)` hears of each request."""

    def __init__(self, routes: list[HttpFixture], on_request: Callable[[str], None]) -> None:
        by_path = {route.path: route for route in routes}

        class Handler(BaseHTTPRequestHandler):
            def handle_one(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
                route = by_path.get(self.path.split("?", 1)[0])
                if route is None:
                    status = 404
                    known = ", ".join(sorted(by_path)) or "none"
                    document: object = {
                        "error": f"nexo-dev.toml has no [[http]] route {self.path} "
                        f"(routes: {known})"
                    }
                else:
                    status, document = route.status, route.json
                shown = f" {body[:MAX_SHOWN]}" if body else ""
                on_request(f"{self.command} {self.path} -> {status}{shown}")
                payload = json.dumps(document).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = handle_one

            def log_message(self, format: str, *args: object) -> None:
                """The session's log shows each request; nothing on stderr."""

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
