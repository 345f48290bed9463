"""Outbound delivery: send an event's payload to an HTTP API, with retries that cannot
deliver twice.

    result = await deliver(plugin, plugin.config.delivery_url, event.payload,
                           idempotency_key=event.id, token=plugin.config.delivery_token)
    await plugin.publish(plugin.inbound_topic(topic) + ".delivery", result.to_json())

The payload is POSTed as strict JSON with an `Idempotency-Key` header that stays the same
across the retries of one delivery (so an API that honours it acts once). Timeouts,
connection failures and the answers in http.RETRIED_STATUSES are retried, up to `attempts`
in all, after an exponential backoff or the server's Retry-After, whichever is longer
(both capped by `max_backoff`); any other answer is final. The result says what happened,
with every secret masked before it can reach a log or the daemon.
"""

from __future__ import annotations

from dataclasses import dataclass

from .frames import encode
from .http import (
    RETRIED_STATUSES,
    client_for,
    describe,
    require_http_url,
    require_httpx,
    retry_after,
)

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .config import Secret
    from .context import PluginContext


@dataclass
class DeliveryResult:
    """What became of one delivery."""

    idempotency_key: str | None
    delivered: bool = False
    attempts: int = 0
    http_status: int | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """As a payload to publish (on the event's `.delivery` topic, say)."""
        return {
            "idempotency_key": self.idempotency_key,
            "status": "delivered" if self.delivered else "failed",
            "attempts": self.attempts,
            "http_status": self.http_status,
            "error": self.error,
        }


async def deliver(
    plugin: PluginContext[Any],
    url: str,
    payload: Any,
    *,
    idempotency_key: str | None,
    token: Secret | None = None,
    attempts: int = 3,
    timeout: float = 10.0,
    backoff: float = 0.5,
    max_backoff: float = 30.0,
    headers: dict[str, str] | None = None,
) -> DeliveryResult:
    """POST `payload` to `url` until it is delivered or `attempts` are spent (see the
    module's docstring). `token` goes as `Authorization: Bearer <token>`."""
    require_httpx("deliver")
    require_http_url("the delivery URL", url)
    if attempts < 1:
        raise ValueError(f"attempts={attempts}: at least one is needed")
    import asyncio

    body = encode(payload).encode()
    sent_headers = {"Content-Type": "application/json", **(headers or {})}
    if idempotency_key:
        sent_headers["Idempotency-Key"] = idempotency_key
    if token is not None:
        sent_headers["Authorization"] = f"Bearer {token.reveal()}"
    result = DeliveryResult(idempotency_key)
    client = await client_for(plugin)
    import httpx  # the client raises its errors (imported by now)

    wait = 0.0
    while result.attempts < attempts:
        if wait:
            await asyncio.sleep(wait)
        result.attempts += 1
        pause = min(backoff * 2.0 ** (result.attempts - 1), max_backoff)
        try:
            response = await client.post(url, content=body, headers=sent_headers, timeout=timeout)
        except httpx.TransportError as error:  # worth another try
            result.http_status, result.error = None, describe(error)
            wait = pause
            continue
        except Exception as error:  # no request can be made: an invalid URL or header
            result.error = describe(error)
            break
        result.http_status = response.status_code
        if response.is_success:
            result.delivered, result.error = True, None
            break
        result.error = f"HTTP {response.status_code} {response.reason_phrase}".strip()
        if response.status_code not in RETRIED_STATUSES:
            break
        asked = retry_after(response.headers.get("retry-after"))
        wait = min(max(pause, asked or 0.0), max_backoff)
    if not result.delivered:
        plugin.log.warning(
            "delivery to %s failed after %d attempt(s): %s", url, result.attempts, result.error
        )
    return result
