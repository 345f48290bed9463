"""The webhook listener (webhook.py), in process, with real HTTP on 127.0.0.1: signatures
and tokens, the requests it refuses itself, backpressure, and a quiet stop."""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import socket
import time

import pytest
from conftest import Start
from harness import STOPS_PROMPTLY, InProcessPlugin
from nexo_plugin_runtime import (
    BearerToken,
    ConfigError,
    HmacSignature,
    Secret,
    WebhookRequest,
    webhook,
)
from nexo_plugin_runtime.testing import assert_daemon_accepts, http_post, wait_until

SECRET = "webhook-secret-value"
HANDLERS = """
from nexo_plugin_runtime import (BadRequest, BearerToken, HmacSignature, PluginContext, Secret,
    WebhookReply, WebhookRequest, serve_webhook)

def on_start(plugin: PluginContext[None]) -> None:
    auth = {AUTH}
    serve_webhook(plugin, receive, listen="127.0.0.1:0", auth=auth, max_in_flight=2)

async def receive(plugin: PluginContext[None], request: WebhookRequest) -> WebhookReply | None:
    if request.path == "/slow":
        import asyncio
        await asyncio.sleep(1)
    if request.path == "/crash":
        raise RuntimeError("handler bug")
    if request.path == "/bad":
        raise BadRequest("no thanks")
    if request.path == "/nothing":
        return None
    event_id = await plugin.publish("plugin.inbound.chan", {"path": request.path, "body": request.json()})
    return WebhookReply.accepted(event_id)
"""


def listening(caplog: pytest.LogCaptureFixture) -> str:
    wait_until(lambda: "webhook listening on" in caplog.text, "the webhook to listen")
    found = re.search(r"webhook listening on (http://\S+)", caplog.text)
    assert found
    return found.group(1)


@pytest.fixture
def signed(start: Start, caplog: pytest.LogCaptureFixture) -> tuple[InProcessPlugin, str]:
    plugin = start(HANDLERS.replace("{AUTH}", f"HmacSignature(Secret({SECRET!r}))"))
    return plugin, listening(caplog)


def test_a_signed_request_becomes_an_event(signed: tuple[InProcessPlugin, str]) -> None:
    plugin, url = signed
    body = b'{"ref": "main"}'
    status, answer = http_post(f"{url}hook?x=1", body, HmacSignature(Secret(SECRET)).sign(body))
    assert status == 202
    event = assert_daemon_accepts(
        plugin.next_notification("broker.publish")["params"], plugin.plugin_id
    )
    assert event["id"] == answer["event_id"]
    assert event["payload"] == {"path": "/hook?x=1", "body": {"ref": "main"}}


def test_signatures_are_checked_with_a_replay_window(signed: tuple[InProcessPlugin, str]) -> None:
    plugin, url = signed
    body = b"{}"
    signer = HmacSignature(Secret(SECRET))
    good = signer.sign(body)
    old = signer.sign(body, now=time.time() - 600)
    cases = {
        "no signature": ({}, "no X-Signature-256 header"),
        "no time": ({"X-Signature-256": good["X-Signature-256"]}, "no X-Signature-Timestamp"),
        "too old": (old, "outside the replay window"),
        "other secret": (HmacSignature(Secret("another-secret")).sign(body), "does not match"),
        "other time": (
            {**good, "X-Signature-Timestamp": str(int(time.time()) + 1)},
            "does not match",
        ),
    }
    for case, (headers, reason) in cases.items():
        status, answer = http_post(url, body, headers)
        assert (status, reason in answer["error"]) == (401, True), case
    assert http_post(url, body, good)[0] == 202
    status, answer = http_post(url, body, good)
    assert (status, answer["error"]) == (401, "this signed request came already (a replay)")
    plugin.next_notification("broker.publish")
    assert plugin.received() == []


def test_a_bearer_token_is_checked(start: Start, caplog: pytest.LogCaptureFixture) -> None:
    plugin = start(HANDLERS.replace("{AUTH}", f"BearerToken(Secret({SECRET!r}))"))
    url = listening(caplog)
    assert http_post(url, b"{}", {"Authorization": f"Bearer {SECRET}x"})[0] == 401
    assert http_post(url, b"{}", {"Authorization": f"Bearer {SECRET}"})[0] == 202
    assert plugin.next_notification("broker.publish")


def test_the_handler_s_answers(
    signed: tuple[InProcessPlugin, str], caplog: pytest.LogCaptureFixture
) -> None:
    _, url = signed

    def post(path: str, data: bytes) -> tuple[int, object]:
        headers = HmacSignature(Secret(SECRET)).sign(data)
        return http_post(url.rstrip("/") + path, data, headers)

    assert post("/bad", b"[1]") == (400, {"error": "no thanks"})
    assert post("/nothing", b"[2]") == (204, None)
    assert post("/crash", b"[3]") == (500, {"error": "the plugin failed to handle the request"})
    assert "RuntimeError: handler bug" in caplog.text
    status, answer = post("/", b"{NaN}")
    assert status == 400
    assert "not a JSON document" in answer["error"]  # type: ignore[index]


def raw_request(url: str, request: bytes, *, wait: float = 2.0) -> bytes:
    host, port = url.removeprefix("http://").rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=wait) as connection:
        # The listener may answer and close before all of it is sent.
        with contextlib.suppress(ConnectionError):
            connection.sendall(request)
        chunks = []
        try:
            while chunk := connection.recv(65536):
                chunks.append(chunk)
        except (TimeoutError, ConnectionError):
            pass
        return b"".join(chunks)


def test_requests_the_listener_refuses_itself(signed: tuple[InProcessPlugin, str]) -> None:
    _, url = signed
    smuggled = (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\n"
    )
    assert raw_request(url, smuggled).startswith(b"HTTP/1.1 400 ")
    assert b"Content-Length and Transfer-Encoding" in raw_request(url, smuggled)
    get = raw_request(url, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert get.startswith(b"HTTP/1.1 405 ")
    big = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000000\r\n\r\n" + b"x" * 2_000_000
    assert raw_request(url, big).startswith(b"HTTP/1.1 413 ")
    assert raw_request(url, b"NOT HTTP AT ALL\r\n\r\n").startswith(b"HTTP/1.1 400 ")


def test_an_idle_connection_is_closed_without_a_word(
    signed: tuple[InProcessPlugin, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhook, "IDLE_TIMEOUT_SECONDS", 0.3)
    _, url = signed
    assert raw_request(url, b"", wait=2.0) == b""


def signed_post(path: str, number: int, pad: str = "") -> bytes:
    """A signed request, unique by `number` (a repeated one is a replay)."""
    body = json.dumps([number, pad]).encode()
    signature = HmacSignature(Secret(SECRET)).sign(body)
    headers = "".join(f"{name}: {value}\r\n" for name, value in signature.items())
    # Connection: close, so that raw_request reads the answer to its end, not to its timeout.
    head = (
        f"POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
        f"Content-Length: {len(body)}\r\n{headers}\r\n"
    )
    return head.encode() + body


def test_too_many_requests_in_flight_get_503_with_retry_after(
    signed: tuple[InProcessPlugin, str],
) -> None:
    _, url = signed
    host, port = url.removeprefix("http://").rstrip("/").split(":")
    busy = [socket.create_connection((host, int(port))) for _ in range(2)]
    for number, connection in enumerate(busy):
        connection.sendall(signed_post("/slow", number))
    time.sleep(0.3)
    third = raw_request(url, signed_post("/x", 9), wait=1.0)
    assert third.startswith(b"HTTP/1.1 503 ")
    assert b"Retry-After: 1" in third
    for connection in busy:
        assert connection.recv(100).startswith(b"HTTP/1.1 ")  # both were served in the end
        connection.close()


def test_while_the_daemon_does_not_read_the_webhook_answers_503(
    signed: tuple[InProcessPlugin, str],
) -> None:
    plugin, url = signed
    plugin.stop_reading()
    # The daemon side's last read takes one more line.
    assert raw_request(url, signed_post("/x", 1)).startswith(b"HTTP/1.1 202 ")
    host, port = url.removeprefix("http://").rstrip("/").split(":")
    # One event larger than the pipe and the plugin's output buffer together: its publish
    # waits, and from then on the output is full.
    filling = socket.create_connection((host, int(port)))
    filling.sendall(signed_post("/x", 2, pad="x" * 300_000))
    time.sleep(0.5)
    refused = raw_request(url, signed_post("/x", 3), wait=2.0)
    assert refused.startswith(b"HTTP/1.1 503 "), refused[:200]
    assert b"Retry-After: 1" in refused
    plugin.resume_reading()
    assert filling.recv(100).startswith(b"HTTP/1.1 202 ")  # served once the daemon read
    filling.close()
    numbers = itertools.count(4)  # as the Retry-After says: again, later
    wait_until(
        lambda: raw_request(url, signed_post("/x", next(numbers))).startswith(b"HTTP/1.1 202 "),
        "the webhook to accept events again",
    )


def test_stopping_closes_open_connections_quickly_and_quietly(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    plugin = start(HANDLERS.replace("{AUTH}", "None"))
    url = listening(caplog)
    host, port = url.removeprefix("http://").rstrip("/").split(":")
    open_connections = [socket.create_connection((host, int(port))) for _ in range(200)]
    time.sleep(0.2)
    asked = time.monotonic()
    assert plugin.request("shutdown")["result"] == {"ok": True}
    assert plugin.wait() == 0
    assert time.monotonic() - asked < STOPS_PROMPTLY
    assert "ERROR" not in caplog.text
    assert "without authentication" in caplog.text
    for connection in open_connections:
        connection.close()


def test_a_busy_port_refuses_the_start(start: Start, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        plugin = start(
            HANDLERS.replace("{AUTH}", "None").replace("127.0.0.1:0", f"127.0.0.1:{port}"),
            initialize=False,
        )
        assert plugin.wait() == 1  # before reading anything: no initialize is ever answered
    assert f"cannot listen on 127.0.0.1:{port}" in caplog.text


@pytest.mark.parametrize("listen", ["8080", "host:", "host:99999", ":80", "h:\uff18\uff10"])
def test_a_listen_address_that_is_not_host_port_is_refused(listen: str) -> None:
    with pytest.raises(ConfigError, match="is not host:port"):
        webhook.parse_listen(listen)


def test_a_request_body_is_read_as_strict_json() -> None:
    request = WebhookRequest("POST", "/", {}, b'{"a": Infinity}')
    with pytest.raises(webhook.BadRequest):
        request.json()
    assert WebhookRequest("POST", "/", {}, json.dumps({"a": 1}).encode()).json() == {"a": 1}
    assert BearerToken(Secret("tok-1234")).verify(request, 0) == "missing or wrong token"
