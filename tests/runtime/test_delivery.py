"""Outbound delivery (delivery.py) against a real HTTP server on 127.0.0.1: retries under one
idempotency key, Retry-After, final answers, and no secret in what it reports."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from conftest import Start
from nexo_plugin_runtime import ConfigError, DeliveryResult, PluginContext, Secret, deliver
from nexo_plugin_runtime.http import client_for
from nexo_plugin_runtime.testing import LocalHTTPServer, broker_event

MANIFEST = {"plugin": {"id": "outbound", "version": "2.0.0"}}


@pytest.fixture
def plugin() -> PluginContext[None]:
    return PluginContext(MANIFEST, None)


@pytest.fixture
def api() -> Iterator[LocalHTTPServer]:
    with LocalHTTPServer() as server:
        yield server


def send(plugin: PluginContext[None], url: str, payload: Any, **options: Any) -> DeliveryResult:
    async def run() -> DeliveryResult:
        try:
            return await deliver(plugin, url, payload, **{"backoff": 0.01, **options})
        finally:
            await (await client_for(plugin)).aclose()

    return asyncio.run(run())


def test_a_delivery_posts_strict_json_with_its_key(
    plugin: PluginContext[None], api: LocalHTTPServer
) -> None:
    api.respond("POST", "/in", status=201)
    result = send(
        plugin, api.url("/in"), {"text": "hé"}, idempotency_key="key-1", token=Secret("api-token-1")
    )
    assert result.to_json() == {
        "idempotency_key": "key-1", "status": "delivered", "attempts": 1, "http_status": 201, "error": None,
    }  # fmt: skip
    (request,) = api.requests_to("POST", "/in")
    assert json.loads(request.body) == {"text": "hé"}
    assert request.header("Idempotency-Key") == "key-1"
    assert request.header("Authorization") == "Bearer api-token-1"
    assert request.header("User-Agent") == "outbound/2.0.0 (nexo plugin)"


def test_temporary_failures_are_retried_under_the_same_key(
    plugin: PluginContext[None], api: LocalHTTPServer
) -> None:
    for status in (503, 429, 502):
        api.respond_once("POST", "/in", status=status, headers={"Retry-After": "0"})
    api.respond("POST", "/in", status=200)
    result = send(plugin, api.url("/in"), [1], idempotency_key="k", attempts=5)
    assert (result.delivered, result.attempts) == (True, 4)
    assert {request.header("Idempotency-Key") for request in api.requests} == {"k"}


def test_retry_after_is_honoured_up_to_the_cap(
    plugin: PluginContext[None], api: LocalHTTPServer
) -> None:
    api.respond_once("POST", "/in", status=503, headers={"Retry-After": "1"})
    api.respond_once("POST", "/in", status=503, headers={"Retry-After": "3600"})
    api.respond("POST", "/in", status=200)
    started = time.monotonic()
    result = send(plugin, api.url("/in"), {}, idempotency_key=None, attempts=3, max_backoff=1.2)
    elapsed = time.monotonic() - started
    assert result.delivered
    assert 2.0 < elapsed < 60  # 1 s asked, then 3600 s asked but 1.2 s at most
    assert api.requests[0].header("Idempotency-Key") is None


def test_other_answers_are_final(plugin: PluginContext[None], api: LocalHTTPServer) -> None:
    api.respond("POST", "/in", status=422)
    result = send(plugin, api.url("/in"), {}, idempotency_key="k", attempts=5)
    assert (result.delivered, result.attempts, result.http_status) == (False, 1, 422)
    assert result.error == "HTTP 422 Unprocessable Entity"


def test_attempts_run_out(
    plugin: PluginContext[None], api: LocalHTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    api.respond("POST", "/in", status=500)
    result = send(plugin, api.url("/in"), {}, idempotency_key="k", attempts=3)
    assert (result.delivered, result.attempts, result.http_status) == (False, 3, 500)
    assert "failed after 3 attempt(s): HTTP 500" in caplog.text


def test_an_unreachable_api_is_retried_then_reported(plugin: PluginContext[None]) -> None:
    result = send(plugin, "http://127.0.0.1:9/in", {}, idempotency_key="k", attempts=2)
    assert (result.delivered, result.attempts, result.http_status) == (False, 2, None)
    assert result.error is not None
    assert result.error.startswith("ConnectError")


def test_a_token_that_breaks_the_request_never_shows_in_the_report(
    plugin: PluginContext[None], api: LocalHTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    # A secret file read with its trailing newline: httpx refuses the header, and its error
    # text carries the header's value.
    result = send(
        plugin,
        api.url("/in"),
        {},
        idempotency_key="k",
        token=Secret("leaky-token-42\n"),
        attempts=1,
    )
    assert not result.delivered
    assert "leaky-token-42" not in json.dumps(result.to_json())
    assert "leaky-token-42" not in caplog.text
    assert api.requests == []


def test_a_request_that_cannot_be_made_is_reported_not_raised(
    plugin: PluginContext[None], api: LocalHTTPServer
) -> None:
    # A header cannot carry this token (not ASCII): no request, no retry, the reason masked.
    token = Secret("tøken-that-no-header-takes")
    result = send(plugin, api.url("/in"), {}, idempotency_key="k", token=token, attempts=3)
    assert (result.delivered, result.attempts, result.http_status) == (False, 1, None)
    assert result.error is not None
    assert result.error.startswith("UnicodeEncodeError")
    assert "tøken" not in result.error
    assert api.requests == []


def test_settings_that_cannot_work_are_refused(plugin: PluginContext[None]) -> None:
    with pytest.raises(ConfigError, match="is not an http"):
        send(plugin, "mailto:x@y", {}, idempotency_key=None)
    with pytest.raises(ValueError, match="at least one"):
        send(plugin, "http://x/", {}, idempotency_key=None, attempts=0)


def test_a_payload_the_daemon_would_refuse_is_not_sent(
    plugin: PluginContext[None], api: LocalHTTPServer
) -> None:
    with pytest.raises(ValueError, match="not strict JSON"):
        send(plugin, api.url("/in"), {"x": float("inf")}, idempotency_key=None)
    assert api.requests == []


def test_the_shared_client_is_closed_when_the_plugin_stops(
    start: Start, api: LocalHTTPServer
) -> None:
    api.respond("POST", "/in", status=200)
    plugin = start(
        f"""
from nexo_plugin_runtime import InboundEvent, PluginContext, deliver
from nexo_plugin_runtime.http import client_for

clients = []

async def on_event(plugin: PluginContext[None], topic: str, event: InboundEvent) -> None:
    result = await deliver(plugin, {api.url("/in")!r}, event.payload, idempotency_key=event.id)
    clients.append(await client_for(plugin))
    await plugin.publish("plugin.inbound.chan", result.to_json())
"""
    )
    plugin.notify("broker.event", broker_event("plugin.outbound.chan", {"n": 1}))
    assert (
        plugin.next_notification("broker.publish")["params"]["event"]["payload"]["status"]
        == "delivered"
    )
    (client,) = sys.modules[f"{plugin.plugin_id}.handlers"].clients
    assert not client.is_closed
    assert plugin.request("shutdown")["result"] == {"ok": True}
    assert plugin.wait() == 0
    assert client.is_closed


def test_first_users_at_once_share_one_client(plugin: PluginContext[None]) -> None:
    async def run() -> list[object]:
        clients = await asyncio.gather(*(client_for(plugin) for _ in range(3)))
        await clients[0].aclose()
        again = await client_for(plugin)  # a closed client is replaced
        await again.aclose()
        return [*clients, again]

    first, second, third, again = asyncio.run(run())
    assert first is second is third
    assert again is not first
