"""The web inspector (`nexo-dev --web`): the session in a browser page, served by the
standard library on 127.0.0.1 only.

Every request needs the random token of the URL nexo-dev prints (in the query, or the
X-Nexo-Dev-Token header) and a Host header naming 127.0.0.1 or localhost at this port, so
neither another site in the browser nor a DNS-rebound name can drive the plugin. Actions
are POSTs of JSON, which a page of another origin cannot send without asking first.

    GET  /                 the page (inspector.html: no build step, no external resources)
    GET  /api/state        the plugin, its topics and tools
    GET  /api/log?after=N  the log entries from N on, waiting up to 15 s for one
    POST /api/event        {"payload": ..., "topic": ...}: a broker event
    POST /api/tool         {"name": ..., "args": {...}}: a tool call, checked first
    POST /api/restart, /api/shutdown
"""

from __future__ import annotations

import contextlib
import hmac
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import parse_qs, urlsplit

from .session import DevSession, UsageError

LONG_POLL = 15.0
MAX_BODY = 1 << 20


class Inspector:
    """Serves the page for `session` until close()."""

    def __init__(self, session: DevSession, port: int = 0) -> None:
        self.session = session
        self.token = secrets.token_urlsafe(18)
        self._logged = threading.Condition()
        session.listeners.append(self._wake)
        inspector = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                inspector.handle(self, "GET")

            def do_POST(self) -> None:
                inspector.handle(self, "POST")

            def log_message(self, format: str, *args: object) -> None:
                """Quiet: the terminal shows the session, not the page's requests."""

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port: int = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/?token={self.token}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _wake(self, entry: object) -> None:
        with self._logged:
            self._logged.notify_all()

    # -- requests --------------------------------------------------------------------------

    def allowed(self, request: BaseHTTPRequestHandler) -> bool:
        hosts = {f"127.0.0.1:{self.port}", f"localhost:{self.port}"}
        if request.headers.get("Host") not in hosts:
            return False
        query = parse_qs(urlsplit(request.path).query)
        given = request.headers.get("X-Nexo-Dev-Token") or (query.get("token") or [""])[0]
        return hmac.compare_digest(given.encode(), self.token.encode())

    def handle(self, request: BaseHTTPRequestHandler, method: str) -> None:
        if not self.allowed(request):
            message = "nexo-dev: open the URL nexo-dev printed; it holds this session's token\n"
            self.reply(request, 403, message.encode(), "text/plain; charset=utf-8")
            return
        path = urlsplit(request.path).path
        try:
            if method == "GET" and path == "/":
                page = resources.files(__package__).joinpath("inspector.html").read_bytes()
                self.reply(request, 200, page, "text/html; charset=utf-8")
            elif method == "GET" and path == "/api/state":
                self.send_json(request, 200, self.state())
            elif method == "GET" and path == "/api/log":
                query = parse_qs(urlsplit(request.path).query)
                after = int((query.get("after") or ["0"])[0])
                self.send_json(request, 200, {"entries": self.entries_after(after)})
            elif method == "POST" and path.startswith("/api/"):
                self.send_json(request, 200, self.act(path[len("/api/") :], self.body(request)))
            else:
                self.send_json(request, 404, {"error": f"no {method} {path}"})
        except UsageError as error:
            self.send_json(request, 400, {"error": str(error)})

    def body(self, request: BaseHTTPRequestHandler) -> Any:
        if request.headers.get("Content-Type", "").split(";")[0] != "application/json":
            raise UsageError("send JSON, with Content-Type: application/json")
        length = int(request.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            raise UsageError(f"at most {MAX_BODY} bytes")
        try:
            return json.loads(request.rfile.read(length) or b"{}")
        except json.JSONDecodeError as error:
            raise UsageError(f"not JSON: {error}") from None

    def act(self, action: str, body: Any) -> dict[str, Any]:
        session = self.session
        if not isinstance(body, dict):
            raise UsageError("send a JSON object")
        if action == "event":
            if "payload" not in body:
                raise UsageError('send {"payload": ..., "topic": optional}')
            return {"id": session.publish(body["payload"], body.get("topic") or None)}
        if action == "tool":
            reply = session.invoke_tool(str(body.get("name")), body.get("args", {}))
            if reply is None:
                raise UsageError("the plugin did not answer the tool call")
            return {"reply": reply}
        if action == "restart":
            return {"started": session.restart("asked from the web inspector")}
        if action == "shutdown":
            return {"exit_code": session.shutdown()}
        raise UsageError(f"no action {action!r}")

    def state(self) -> dict[str, Any]:
        session = self.session
        plugin = session.manifest["plugin"]
        return {
            "plugin": session.plugin_id,
            "version": plugin.get("version"),
            "name": plugin.get("name"),
            "topics": session.event_topics(),
            "tools": session.tools,
            "running": session.running,
            "agent": session.agent,
        }

    def entries_after(self, after: int) -> list[dict[str, Any]]:
        deadline = time.monotonic() + LONG_POLL
        with self._logged:
            while len(self.session.entries) <= after and time.monotonic() < deadline:
                self._logged.wait(deadline - time.monotonic())
        return [entry.to_json() for entry in self.session.since(after)]

    @staticmethod
    def send_json(request: BaseHTTPRequestHandler, status: int, document: Any) -> None:
        body = json.dumps(document, ensure_ascii=False).encode("utf-8")
        Inspector.reply(request, status, body, "application/json")

    @staticmethod
    def reply(request: BaseHTTPRequestHandler, status: int, body: bytes, kind: str) -> None:
        request.send_response(status)
        request.send_header("Content-Type", kind)
        request.send_header("Content-Length", str(len(body)))
        request.send_header("Cache-Control", "no-store")
        request.send_header("X-Content-Type-Options", "nosniff")
        request.send_header("Referrer-Policy", "no-referrer")
        request.send_header(
            "Content-Security-Policy",
            "default-src 'self'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
            "connect-src 'self'; frame-ancestors 'none'",
        )
        request.end_headers()
        with contextlib.suppress(ConnectionError):  # the page went away meanwhile
            request.wfile.write(body)
