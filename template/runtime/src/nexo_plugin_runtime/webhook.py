"""Inbound webhooks: an HTTP listener whose authenticated requests the plugin handles.

    def on_start(plugin: Plugin) -> None:
        serve_webhook(plugin, on_webhook, listen=plugin.config.webhook_listen,
                      auth=HmacSignature(plugin.config.webhook_secret))

    async def on_webhook(plugin: Plugin, request: WebhookRequest) -> WebhookReply:
        event_id = await plugin.publish(TOPIC, request.json())
        return WebhookReply.accepted(event_id)

The socket is bound in on_start, so a busy port refuses the start; requests are served
once the handshake is done (the daemon drops publishes made before it). HTTP/1.1 is parsed
by h11 (strict, sans-I/O; the parser httpx and uvicorn use), and the listener adds what a
server facing the internet needs: authentication before the handler runs (`HmacSignature`
over the raw body with a replay window, or `BearerToken`; both compare in constant time),
a body limit, a read deadline, no request with both Content-Length and Transfer-Encoding
(request smuggling), a bound on the handlers in flight and 503 with Retry-After while the
daemon is not keeping up, idle keep-alive connections closed quietly, and a quiet, prompt
close of every connection when the plugin stops.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field

from .config import ConfigError, Secret

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    import socket
    from collections.abc import Awaitable, Callable
    from typing import Any, Protocol

    import h11

    from .context import PluginContext

    class Auth(Protocol):
        def verify(self, request: WebhookRequest, now: float) -> str | None:
            """None when the request is authentic, else why not (said in a 401)."""


log = logging.getLogger(__name__.split(".", 1)[0])

MAX_BODY_BYTES = 1 << 20
READ_TIMEOUT_SECONDS = 10.0
IDLE_TIMEOUT_SECONDS = 30.0
MAX_IN_FLIGHT = 64
RETRY_AFTER_SECONDS = 1


class BadRequest(Exception):
    """Raise it from a webhook handler to answer 400 with this message."""


@dataclass(frozen=True)
class WebhookRequest:
    """One authenticated request."""

    method: str
    path: str  # the target, query string included
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        """The body as strict JSON (what the daemon accepts), or BadRequest (a 400)."""

        def reject(constant: str) -> None:
            raise ValueError(f"{constant} is not JSON")

        try:
            return json.loads(self.body, parse_constant=reject)
        except (ValueError, UnicodeDecodeError) as error:
            raise BadRequest(f"the body is not a JSON document: {error}") from None


@dataclass(frozen=True)
class WebhookReply:
    """The answer to a request: a status and a JSON body (none for 204)."""

    status: int = 200
    body: Any = field(default_factory=dict)

    @classmethod
    def accepted(cls, event_id: str) -> WebhookReply:
        """202, with the id of the event the request became."""
        return cls(202, {"accepted": True, "event_id": event_id})


class BearerToken:
    """`Authorization: Bearer <token>`, compared in constant time."""

    def __init__(self, token: Secret) -> None:
        self._expected = f"Bearer {token.reveal()}".encode()

    def verify(self, request: WebhookRequest, now: float) -> str | None:
        given = request.headers.get("authorization", "").encode("latin-1")
        return None if hmac.compare_digest(given, self._expected) else "missing or wrong token"


class HmacSignature:
    """An HMAC of the raw body, with a replay window.

    The sender puts the time (Unix seconds) in `timestamp_header` and
    `prefix + hex(HMAC(secret, "<time>." + body))` in `header`. A request is refused when
    the signature does not match (compared in constant time), when its time is more than
    `tolerance_seconds` away from now, or when the same signature came already within that
    window (a replay). With `timestamp_header=None` the HMAC covers the body alone (as
    GitHub signs) and only the replay memory applies. `sign()` gives a sender's headers.
    """

    def __init__(
        self,
        secret: Secret,
        *,
        header: str = "X-Signature-256",
        prefix: str = "sha256=",
        algorithm: str = "sha256",
        timestamp_header: str | None = "X-Signature-Timestamp",
        tolerance_seconds: float = 300.0,
    ) -> None:
        hashlib.new(algorithm)  # ValueError now for an unknown algorithm
        self._key = secret.reveal().encode()
        self.header, self.prefix, self.algorithm = header, prefix, algorithm
        self.timestamp_header, self.tolerance = timestamp_header, tolerance_seconds
        self._seen: OrderedDict[str, float] = OrderedDict()  # signature -> when it expires

    def _signature(self, body: bytes, timestamp: str | None) -> str:
        message = body if timestamp is None else f"{timestamp}.".encode() + body
        return self.prefix + hmac.new(self._key, message, self.algorithm).hexdigest()

    def sign(self, body: bytes, now: float | None = None) -> dict[str, str]:
        """The headers a sender adds to a request with this body."""
        timestamp = None if self.timestamp_header is None else str(int(now or time.time()))
        headers = {self.header: self._signature(body, timestamp)}
        if self.timestamp_header is not None and timestamp is not None:
            headers[self.timestamp_header] = timestamp
        return headers

    def verify(self, request: WebhookRequest, now: float) -> str | None:
        given = request.headers.get(self.header.lower())
        if not given:
            return f"no {self.header} header"
        timestamp = None
        if self.timestamp_header is not None:
            timestamp = request.headers.get(self.timestamp_header.lower(), "")
            if not timestamp.isdigit() or not timestamp.isascii():
                return f"no {self.timestamp_header} header with the time in Unix seconds"
            if abs(now - int(timestamp)) > self.tolerance:
                return "the signed time is outside the replay window"
        expected = self._signature(request.body, timestamp)
        if not hmac.compare_digest(given.encode("latin-1"), expected.encode()):
            return "the signature does not match"
        while self._seen and next(iter(self._seen.values())) < now:
            self._seen.popitem(last=False)
        if given in self._seen:
            return "this signed request came already (a replay)"
        self._seen[given] = now + 2 * self.tolerance
        return None


if TYPE_CHECKING:
    WebhookHandler = Callable[[PluginContext[Any], WebhookRequest], Awaitable[WebhookReply | None]]


def parse_listen(listen: str) -> tuple[str, int]:
    """(host, port) of "host:port" (IPv6 in brackets); ConfigError otherwise."""
    host, _, port = listen.rpartition(":")
    if host and port.isdigit() and port.isascii() and int(port) <= 65535:
        return host.strip("[]"), int(port)
    raise ConfigError(
        [f"webhook listen address {listen!r} is not host:port, such as 127.0.0.1:8787"]
    )


def serve_webhook(
    plugin: PluginContext[Any],
    handler: WebhookHandler,
    *,
    listen: str,
    auth: Auth | None,
    methods: tuple[str, ...] = ("POST",),
    max_body_bytes: int = MAX_BODY_BYTES,
    max_in_flight: int = MAX_IN_FLIGHT,
) -> None:
    """Bind `listen` now and serve `handler` once the handshake is done (see the module).
    `auth=None` serves unauthenticated requests (say so on purpose: only behind a proxy
    that authenticates). ConfigError when the address cannot be used."""
    import importlib.util
    import socket

    if importlib.util.find_spec("h11") is None:
        raise ConfigError([
            "serve_webhook needs h11: depend on the runtime's webhook extra "
            "(`nexo-plugin-runtime[webhook]` in pyproject.toml), then `uv sync`"
        ])  # fmt: skip
    host, port = parse_listen(listen)
    try:
        sock = socket.create_server((host, port), family=_family(host), backlog=1024)
    except OSError as error:
        raise ConfigError([f"cannot listen on {listen}: {error.strerror or error}"]) from None
    bound_host, bound_port = sock.getsockname()[:2]
    url = f"http://{bound_host if ':' not in bound_host else f'[{bound_host}]'}:{bound_port}/"
    if auth is None:
        log.warning("the webhook on %s takes requests without authentication", url)
    listener = Listener(plugin, handler, auth, sock, methods, max_body_bytes, max_in_flight)
    log.info("webhook bound to %s; serving once the daemon has the handshake", url)
    plugin.run_background(listener.serve, url, name="webhook", critical=True)
    plugin.on_stop(listener.close)


def _family(host: str) -> int:
    import socket

    return socket.AF_INET6 if ":" in host else socket.AF_INET


class Listener:
    """The server side of serve_webhook: connections, requests, answers."""

    def __init__(
        self,
        plugin: PluginContext[Any],
        handler: WebhookHandler,
        auth: Auth | None,
        sock: socket.socket,
        methods: tuple[str, ...],
        max_body_bytes: int,
        max_in_flight: int,
    ) -> None:
        self.plugin, self.handler, self.auth, self.sock = plugin, handler, auth, sock
        self.methods, self.max_body_bytes = methods, max_body_bytes
        self.max_in_flight = max_in_flight
        self.in_flight = 0
        self.server: asyncio.Server | None = None
        self.connections: set[asyncio.StreamWriter] = set()

    async def serve(self, url: str) -> None:
        import asyncio

        self.server = await asyncio.start_server(self._connection, sock=self.sock, limit=65536)
        log.info("webhook listening on %s", url)
        await self.server.serve_forever()

    async def close(self) -> None:
        """Stop taking connections and close the open ones, quietly."""
        import asyncio

        if self.server is not None:
            self.server.close()
        else:
            self.sock.close()
        for writer in list(self.connections):
            writer.transport.abort()
        await asyncio.sleep(0)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        import asyncio

        self.connections.add(writer)
        try:
            await self._serve_connection(reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass  # the client went away, or the plugin is stopping: nothing to say
        finally:
            self.connections.discard(writer)
            writer.close()

    async def _serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        import asyncio

        import h11

        connection = h11.Connection(h11.SERVER, max_incomplete_event_size=16 * 1024)
        while True:
            try:
                request = await self._read(connection, reader)
            except (h11.RemoteProtocolError, RequestProblem) as error:
                status = error.status if isinstance(error, RequestProblem) else 400
                if connection.our_state in (h11.IDLE, h11.SEND_RESPONSE):
                    await self._send(
                        connection, writer, WebhookReply(status, {"error": str(error)})
                    )
                return
            except asyncio.TimeoutError:
                return  # idle, or too slow: close without a word
            if request is None:
                return
            reply = await self._answer(request)
            await self._send(connection, writer, reply)
            if connection.our_state is not h11.DONE or connection.their_state is not h11.DONE:
                return
            connection.start_next_cycle()

    async def _read(
        self, connection: h11.Connection, reader: asyncio.StreamReader
    ) -> WebhookRequest | None:
        """The next request; None when the client closes between requests. Waiting for a
        request to start is the idle timeout; once it has, it must arrive in time."""
        import asyncio

        import h11

        head: h11.Request | None = None
        body = bytearray()
        deadline: float | None = None
        loop = asyncio.get_running_loop()
        while True:
            event = connection.next_event()
            if event is h11.NEED_DATA:
                wait = IDLE_TIMEOUT_SECONDS if deadline is None else deadline - loop.time()
                data = await asyncio.wait_for(reader.read(65536), max(wait, 0))
                if deadline is None and data:
                    deadline = loop.time() + READ_TIMEOUT_SECONDS
                connection.receive_data(data)
            elif isinstance(event, h11.Request):
                head = event
                names = {name for name, _ in event.headers}
                if b"content-length" in names and b"transfer-encoding" in names:
                    raise RequestProblem(400, "Content-Length and Transfer-Encoding together")
                if event.method.decode("ascii", "replace") not in self.methods:
                    raise RequestProblem(405, f"use {' or '.join(self.methods)}")
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > self.max_body_bytes:
                    raise RequestProblem(413, f"the body is over {self.max_body_bytes} bytes")
            elif isinstance(event, h11.EndOfMessage) and head is not None:
                headers = {
                    name.decode("latin-1"): value.decode("latin-1") for name, value in head.headers
                }
                target = head.target.decode("ascii", "replace")
                return WebhookRequest(head.method.decode("ascii"), target, headers, bytes(body))
            elif isinstance(event, h11.ConnectionClosed):
                return None

    async def _answer(self, request: WebhookRequest) -> WebhookReply:
        if self.auth is not None and (refused := self.auth.verify(request, time.time())):
            return WebhookReply(401, {"error": refused})
        if self.plugin.backlogged or self.in_flight >= self.max_in_flight:
            return WebhookReply(503, {"error": "busy: retry later"})
        self.in_flight += 1
        try:
            reply = await self.handler(self.plugin, request)
        except BadRequest as error:
            return WebhookReply(400, {"error": str(error)})
        except Exception:
            log.exception("the webhook handler failed for %s %s", request.method, request.path)
            return WebhookReply(500, {"error": "the plugin failed to handle the request"})
        finally:
            self.in_flight -= 1
        return reply if reply is not None else WebhookReply(204, None)

    async def _send(
        self, connection: h11.Connection, writer: asyncio.StreamWriter, reply: WebhookReply
    ) -> None:
        import h11

        body = b"" if reply.status == 204 else json.dumps(reply.body).encode()
        headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
        if reply.status == 503:
            headers.append(("Retry-After", str(RETRY_AFTER_SECONDS)))
        events: list[h11.Response | h11.Data] = [
            h11.Response(status_code=reply.status, headers=headers)
        ]
        if body:
            events.append(h11.Data(data=body))
        for event in [*events, h11.EndOfMessage()]:
            writer.write(connection.send(event) or b"")
        await writer.drain()


class RequestProblem(Exception):
    """A request the listener answers itself, with this status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
