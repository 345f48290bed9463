"""Inbound polling: fetch a JSON feed on a timer and hand each new item to the plugin once.

    def on_start(plugin: Plugin) -> None:
        poll_feed(plugin, plugin.config.feed_url, on_item, every=plugin.config.poll_seconds)

    async def on_item(plugin: Plugin, item: Any) -> None:
        await plugin.publish(TOPIC, item)

- Conditional requests: the feed's ETag and Last-Modified are sent back (If-None-Match,
  If-Modified-Since) and a 304 costs nothing.
- Backoff: a failure (no connection, a timeout, 429, 5xx) waits longer each time, doubling
  from `every` up to `max_backoff`, or what the server's Retry-After asks if that is
  longer; the first success goes back to `every`.
- Per-item isolation: an item whose handling raises is logged and tried again at the next
  polls, up to `attempts_per_item` times, then given up (logged as an error); the other
  items, and the record of what was handled, move on regardless. The feed's validators are
  kept only once nothing is left to retry, so a 304 never hides a failed item.
- Durable: what was handled (the newest `remember` keys), the failures and the validators
  are saved after every poll in plugin.state("poll-<name>"), atomically, even when a poll
  stops half-way; a restart neither repeats nor skips items. Delivery to the daemon is at
  most once: a publish is a notification it does not acknowledge.
"""

from __future__ import annotations

import json
import logging
from typing import Any

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
    from collections.abc import Awaitable, Callable

    import httpx

    from .config import Secret
    from .context import PluginContext
    from .state import StateFile

    ItemHandler = Callable[[PluginContext[Any], Any], Awaitable[object]]

log = logging.getLogger(__name__.split(".", 1)[0])
EMPTY_STATE: dict[str, Any] = {"seen": [], "failures": {}, "etag": None, "last_modified": None}


def json_items(document: Any) -> list[Any]:
    """The items of a feed: a JSON list, or an object with an "items" list."""
    items = document.get("items") if isinstance(document, dict) else document
    if not isinstance(items, list):
        raise ValueError('the feed is not a JSON list, nor an object with an "items" list')
    return items


def item_id(item: Any) -> str:
    """An item's key: its "id"."""
    if not isinstance(item, dict) or "id" not in item:
        raise ValueError('the item is not an object with an "id"')
    return str(item["id"])


def poll_feed(
    plugin: PluginContext[Any],
    url: str,
    on_item: ItemHandler,
    *,
    every: float = 60.0,
    token: Secret | None = None,
    items: Callable[[Any], list[Any]] = json_items,
    key: Callable[[Any], str] = item_id,
    name: str = "feed",
    attempts_per_item: int = 3,
    timeout: float = 10.0,
    max_backoff: float = 900.0,
    remember: int = 10_000,
) -> None:
    """Poll `url` every `every` seconds once the handshake is done, calling `on_item` for
    each item not handled before (see the module's docstring). Call it from on_start: a
    bad setting or an unreadable state folder refuses the start."""
    require_httpx("poll_feed")
    require_http_url("the feed URL", url)
    if not every > 0:
        raise ValueError(f"every={every}: polling needs a positive interval")
    poller = FeedPoller(
        plugin, url, on_item, plugin.state(f"poll-{name}", EMPTY_STATE), every=every,
        token=token, items=items, key=key, attempts_per_item=attempts_per_item,
        timeout=timeout, max_backoff=max_backoff, remember=remember,
    )  # fmt: skip
    log.info("polling %s every %gs; %d item(s) handled before", url, every, len(poller.seen))
    plugin.run_background(poller.run, name=f"poll {name}", critical=True)


class FeedPoller:
    """The loop behind poll_feed, one poll at a time."""

    def __init__(
        self,
        plugin: PluginContext[Any],
        url: str,
        on_item: ItemHandler,
        state: StateFile[Any],
        *,
        every: float,
        token: Secret | None,
        items: Callable[[Any], list[Any]],
        key: Callable[[Any], str],
        attempts_per_item: int,
        timeout: float,
        max_backoff: float,
        remember: int,
    ) -> None:
        self.plugin, self.url, self.on_item, self.state = plugin, url, on_item, state
        self.every, self.token, self.items, self.key = every, token, items, key
        self.attempts_per_item, self.timeout = attempts_per_item, timeout
        self.max_backoff, self.remember = max_backoff, remember
        saved = {**EMPTY_STATE, **(state.load() or {})}
        self.seen: dict[str, None] = dict.fromkeys(saved["seen"])  # ordered, oldest first
        self.failures: dict[str, int] = dict(saved["failures"])
        self.etag: str | None = saved["etag"]
        self.last_modified: str | None = saved["last_modified"]
        self.failed_polls = 0

    async def run(self) -> None:
        import asyncio

        while True:
            wait = await self.poll()
            await asyncio.sleep(wait)

    def _backoff(self, asked: float | None = None) -> float:
        self.failed_polls += 1
        pause = min(self.every * 2.0 ** (self.failed_polls - 1), self.max_backoff)
        return max(pause, min(asked or 0.0, self.max_backoff))

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        if self.token is not None:
            headers["Authorization"] = f"Bearer {self.token.reveal()}"
        return headers

    async def poll(self) -> float:
        """Fetch the feed once and handle its new items; the seconds until the next poll."""
        try:
            client = await client_for(self.plugin)
            response = await client.get(self.url, headers=self._headers(), timeout=self.timeout)
        except Exception as error:  # no connection, a timeout, or no request could be made
            wait = self._backoff()
            log.warning("polling %s failed (%s): next try in %gs", self.url, describe(error), wait)
            return wait
        if response.status_code == 304:
            self.failed_polls = 0
            return self.every
        if response.status_code in RETRIED_STATUSES:
            wait = self._backoff(retry_after(response.headers.get("retry-after")))
            log.warning(
                "polling %s: HTTP %d, next try in %gs", self.url, response.status_code, wait
            )
            return wait
        if not response.is_success:
            log.warning("polling %s: HTTP %d, not a feed", self.url, response.status_code)
            return self._backoff()
        self.failed_polls = 0
        try:
            found = self.items(json.loads(response.content, parse_constant=_reject_constant))
        except ValueError as error:
            log.warning("polling %s: %s", self.url, describe(error))
            return self.every
        try:
            await self._handle(found)
        finally:
            self._keep_validators(response)
            self._save()
        return self.every

    async def _handle(self, found: list[Any]) -> None:
        for item in found:
            try:
                item_key = self.key(item)
            except (ValueError, TypeError, KeyError) as error:
                log.warning("polling %s: an item skipped: %s", self.url, describe(error))
                continue
            if item_key in self.seen:
                continue
            try:
                await self.on_item(self.plugin, item)
            except Exception as error:
                self._failed(item_key, error)
                continue
            self.failures.pop(item_key, None)
            self.seen[item_key] = None

    def _failed(self, item_key: str, error: Exception) -> None:
        tries = self.failures.get(item_key, 0) + 1
        if tries >= self.attempts_per_item:
            log.error("item %s failed %d times, given up: %s", item_key, tries, describe(error))
            self.failures.pop(item_key, None)
            self.seen[item_key] = None
        else:
            self.failures[item_key] = tries
            log.warning("item %s failed (try %d), tried again at the next poll: %s",
                        item_key, tries, describe(error))  # fmt: skip

    def _keep_validators(self, response: httpx.Response) -> None:
        if self.failures:  # a 304 would hide the items still to retry
            self.etag = self.last_modified = None
        else:
            self.etag = response.headers.get("etag")
            self.last_modified = response.headers.get("last-modified")

    def _save(self) -> None:
        keys = list(self.seen)[-self.remember :]
        self.seen = dict.fromkeys(keys)
        self.state.save({
            "seen": keys,
            "failures": self.failures,
            "etag": self.etag,
            "last_modified": self.last_modified,
        })  # fmt: skip


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not JSON")
