"""Polling a feed (poll.py) against a real HTTP server on 127.0.0.1: conditional requests,
backoff and Retry-After, items handled once, per-item isolation, durable state."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from nexo_plugin_runtime import ConfigError, PluginContext, Secret, poll_feed
from nexo_plugin_runtime.http import client_for, retry_after
from nexo_plugin_runtime.poll import FeedPoller
from nexo_plugin_runtime.testing import LocalHTTPServer

MANIFEST = {"plugin": {"id": "poller", "version": "1.0.0"}}


@pytest.fixture
def plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> PluginContext[None]:
    monkeypatch.setenv("POLLER_STATE_DIR", str(tmp_path / "state"))
    return PluginContext(MANIFEST, None)


@pytest.fixture
def feed() -> Iterator[LocalHTTPServer]:
    with LocalHTTPServer() as server:
        yield server


class Items:
    """on_item: records each item; raises for the ones named in `failing`."""

    def __init__(self, failing: set[str] | None = None) -> None:
        self.handled: list[Any] = []
        self.failing = failing or set()

    async def __call__(self, plugin: PluginContext[None], item: Any) -> None:
        if str(item["id"]) in self.failing:
            raise RuntimeError(f"cannot handle {item['id']}")
        self.handled.append(item)


def poller(
    plugin: PluginContext[None], feed: LocalHTTPServer, items: Items, **options: Any
) -> FeedPoller:
    settings = {"every": 10.0, "token": None, "items": lambda d: d, "key": lambda i: str(i["id"]),
                "attempts_per_item": 3, "timeout": 2.0, "max_backoff": 100.0, "remember": 100}  # fmt: skip
    return FeedPoller(
        plugin, feed.url("/feed"), items, plugin.state("poll-feed", {}), **{**settings, **options}
    )


def polls(plugin: PluginContext[None], target: FeedPoller, count: int = 1) -> list[float]:
    """Run `count` polls; the wait after each."""

    async def run() -> list[float]:
        try:
            return [await target.poll() for _ in range(count)]
        finally:
            await (await client_for(plugin)).aclose()

    return asyncio.run(run())


def test_new_items_are_handled_once_and_the_feed_asked_conditionally(
    plugin: PluginContext[None], feed: LocalHTTPServer
) -> None:
    feed.respond(
        "GET",
        "/feed",
        json=[{"id": 1}, {"id": 2}],
        headers={"ETag": '"v1"', "Last-Modified": "Mon, 01 Dec 2026 10:00:00 GMT"},
    )
    items = Items()
    assert polls(plugin, poller(plugin, feed, items), 2) == [10.0, 10.0]
    assert items.handled == [{"id": 1}, {"id": 2}]
    first, second = feed.requests_to("GET", "/feed")
    assert first.header("If-None-Match") is None
    assert second.header("If-None-Match") == '"v1"'
    assert second.header("If-Modified-Since") == "Mon, 01 Dec 2026 10:00:00 GMT"
    # A new poller (a restart) remembers what was handled and the feed's validators.
    feed.respond("GET", "/feed", status=304)
    restarted = Items()
    assert polls(plugin, poller(plugin, feed, restarted)) == [10.0]
    assert restarted.handled == []
    assert feed.requests[-1].header("If-None-Match") == '"v1"'


def test_failures_back_off_and_honour_retry_after(
    plugin: PluginContext[None], feed: LocalHTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    later = email.utils.formatdate(time.time() + 65, usegmt=True)
    feed.respond_once("GET", "/feed", status=503)
    feed.respond_once("GET", "/feed", status=500)
    feed.respond_once("GET", "/feed", status=429, headers={"Retry-After": "77"})
    feed.respond_once("GET", "/feed", status=503, headers={"Retry-After": later})
    feed.respond_once("GET", "/feed", status=429, headers={"Retry-After": "100000"})
    feed.respond("GET", "/feed", json=[])
    waits = polls(plugin, poller(plugin, feed, Items()), 6)
    assert waits[:3] == [10.0, 20.0, 77.0]
    assert 60 <= waits[3] <= 80
    assert waits[4:] == [100.0, 10.0]  # capped by max_backoff, then back to normal
    assert caplog.text.count("next try in") == 5


def test_an_unreachable_feed_backs_off(plugin: PluginContext[None]) -> None:
    unreachable = FeedPoller(
        plugin, "http://127.0.0.1:9/feed", Items(), plugin.state("poll-x", {}), every=1.0,
        token=None, items=lambda d: d, key=str, attempts_per_item=3, timeout=1.0,
        max_backoff=60.0, remember=10,
    )  # fmt: skip
    assert polls(plugin, unreachable, 3) == [1.0, 2.0, 4.0]


def test_a_request_that_cannot_be_made_backs_off_instead_of_crashing(
    plugin: PluginContext[None], feed: LocalHTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    target = poller(plugin, feed, Items(), token=Secret("tøken-no-header-takes"))
    assert polls(plugin, target, 2) == [10.0, 20.0]
    assert "UnicodeEncodeError" in caplog.text
    assert "tøken" not in caplog.text


def test_one_bad_item_never_blocks_the_others_nor_the_record(
    plugin: PluginContext[None], feed: LocalHTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    feed.respond(
        "GET",
        "/feed",
        json=[{"id": 1}, {"id": "bad"}, {"no-id": True}, {"id": 3}],
        headers={"ETag": '"e"'},
    )
    items = Items(failing={"bad"})
    target = poller(plugin, feed, items)
    polls(plugin, target, 1)
    assert items.handled == [{"id": 1}, {"id": 3}]
    # While an item is still to retry, the feed is fetched whole (no validators sent).
    polls(plugin, target, 2)
    assert all(request.header("If-None-Match") is None for request in feed.requests)
    assert "item bad failed 3 times, given up" in caplog.text
    assert "an item skipped" in caplog.text
    # Given up, it is remembered: the next poll asks conditionally and handles nothing.
    polls(plugin, target, 1)
    assert feed.requests[-1].header("If-None-Match") == '"e"'
    assert items.handled == [{"id": 1}, {"id": 3}]


def test_what_was_handled_survives_a_poll_that_stops_half_way(
    plugin: PluginContext[None], feed: LocalHTTPServer
) -> None:
    feed.respond("GET", "/feed", json=[{"id": 1}, {"id": 2}, {"id": 3}])

    class Interrupted(Items):
        async def __call__(self, plugin: PluginContext[None], item: Any) -> None:
            if item["id"] == 3:
                raise asyncio.CancelledError  # the plugin stops in the middle
            self.handled.append(item)

    with pytest.raises(asyncio.CancelledError):
        polls(plugin, poller(plugin, feed, Interrupted()))
    items = Items()
    polls(plugin, poller(plugin, feed, items))
    assert items.handled == [{"id": 3}]


def test_only_the_newest_keys_are_remembered(
    plugin: PluginContext[None], feed: LocalHTTPServer
) -> None:
    feed.respond("GET", "/feed", json=[{"id": number} for number in range(50)])
    polls(plugin, poller(plugin, feed, Items(), remember=10))
    assert plugin.state("poll-feed", {}).load()["seen"] == [str(n) for n in range(40, 50)]


def test_a_corrupt_state_file_is_set_aside_not_a_refused_start(
    plugin: PluginContext[None], feed: LocalHTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    (plugin.state_dir / "poll-feed.json").write_text("")
    feed.respond("GET", "/feed", json=[{"id": 1}])
    with caplog.at_level(logging.WARNING):
        items = Items()
        polls(plugin, poller(plugin, feed, items))
    assert items.handled == [{"id": 1}]
    assert "cannot be read" in caplog.text


def test_a_feed_that_is_not_json_or_not_a_list_is_logged(
    plugin: PluginContext[None], feed: LocalHTTPServer, caplog: pytest.LogCaptureFixture
) -> None:
    feed.respond_once("GET", "/feed", body=b"<html>")
    feed.respond_once("GET", "/feed", json={"items": "no"})
    feed.respond("GET", "/feed", status=404)
    target = FeedPoller(
        plugin, feed.url("/feed"), Items(), plugin.state("poll-y", {}), every=5.0, token=Secret("feed-token-1"),
        items=__import__("nexo_plugin_runtime.poll", fromlist=["json_items"]).json_items,
        key=str, attempts_per_item=1, timeout=1.0, max_backoff=60.0, remember=10,
    )  # fmt: skip
    assert polls(plugin, target, 3) == [5.0, 5.0, 5.0]
    assert feed.requests[0].header("Authorization") == "Bearer feed-token-1"
    assert "not a JSON list" in caplog.text
    assert "HTTP 404, not a feed" in caplog.text


def test_poll_feed_refuses_bad_settings_at_start(plugin: PluginContext[None]) -> None:
    with pytest.raises(ConfigError, match="is not an http"):
        poll_feed(plugin, "ftp://x/feed", Items())
    with pytest.raises(ValueError, match="positive interval"):
        poll_feed(plugin, "http://x/feed", Items(), every=0)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [(None, None), ("", None), ("12", 12.0), ("soon", None), ("Wed, 21 Oct 2015 07:28:00", None)],
)
def test_retry_after_is_read_as_seconds_or_a_date(
    header: str | None, seconds: float | None
) -> None:
    assert retry_after(header) == seconds
