"""What the outgoing HTTP helpers share (poll.py, delivery.py): one httpx client per plugin,
closed when it stops, and the rules for waiting before a retry.

httpx is a dependency of the runtime's `http` extra: a plugin that polls or delivers names
`nexo-plugin-runtime[http]` in its pyproject.toml. It is imported when first used, after
the plugin answered `initialize`, in a thread.
"""

from __future__ import annotations

import importlib.util
import time
import weakref

from .config import ConfigError
from .redaction import redact

TYPE_CHECKING = False
if TYPE_CHECKING:
    import asyncio
    from typing import Any

    import httpx

    from .context import PluginContext

# Answers worth another try: a timeout, "too early", "too many requests", the server's and
# the gateways' temporary failures.
RETRIED_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})

_clients: weakref.WeakKeyDictionary[PluginContext[Any], asyncio.Future[httpx.AsyncClient]] = (
    weakref.WeakKeyDictionary()
)


def require_httpx(helper: str) -> None:
    """ConfigError (refusing the start) when httpx is not installed."""
    if importlib.util.find_spec("httpx") is None:
        raise ConfigError([
            f"{helper} needs httpx: depend on the runtime's http extra "
            "(`nexo-plugin-runtime[http]` in pyproject.toml), then `uv sync`"
        ])  # fmt: skip


def require_http_url(setting: str, url: str) -> None:
    if not url.startswith(("http://", "https://")):
        raise ConfigError([f"{setting} {url!r} is not an http:// or https:// URL"])


async def client_for(plugin: PluginContext[Any]) -> httpx.AsyncClient:
    """The plugin's shared client (connections kept alive between calls), made on first use
    and closed when the plugin stops. Concurrent first users wait for the same client."""
    import asyncio  # here: a plugin's handlers import this module before `initialize`

    making = _clients.get(plugin)
    if making is None or (making.done() and not _usable(making)):
        making = asyncio.ensure_future(_new_client(plugin))
        _clients[plugin] = making
    return await asyncio.shield(making)


def _usable(made: asyncio.Future[httpx.AsyncClient]) -> bool:
    return not made.cancelled() and made.exception() is None and not made.result().is_closed


async def _new_client(plugin: PluginContext[Any]) -> httpx.AsyncClient:
    import asyncio

    # httpx, and the anyio it connects with, take some tenths of a second to import: in a
    # thread, while the loop goes on serving the webhook, tool calls and broker events.
    client_class = await asyncio.to_thread(_client_class)
    client = client_class(follow_redirects=True, headers={"User-Agent": _agent(plugin)})
    plugin.on_stop(client.aclose)
    return client


def _client_class() -> type[httpx.AsyncClient]:
    import anyio  # noqa: F401  (else httpcore imports it on the first connection, in the loop)
    import httpx

    return httpx.AsyncClient


def _agent(plugin: PluginContext[Any]) -> str:
    return f"{plugin.id}/{plugin.version} (nexo plugin)"


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (seconds, or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit() and value.isascii():
        return float(value)
    import email.utils

    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(when.timestamp() - (time.time() if now is None else now), 0.0)


def describe(error: BaseException) -> str:
    """An exception in one line, secrets masked, for a log or a published status."""
    text = redact(str(error)).replace("\n", " ").strip()
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
