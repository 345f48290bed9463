"""What handlers.py works with, and the SDK adapter that feeds it.

This file follows the template (`copier update` refreshes it). It fills two gaps of the
nexoai SDK (0.4.x):

- The daemon deserializes every published event into its broker `Event` and drops those
  without an `id` (UUID) and a `timestamp` (RFC 3339): the SDK's `Event` has neither, so
  `PluginContext.publish` stamps both, with `source` = the plugin id and a `session_id`.
- The SDK's `Event` also drops `id`, `timestamp` and `session_id` of incoming events, so
  handlers get an `InboundEvent` built from the daemon's frame instead.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field
from typing import IO, Any

from nexo_plugin_sdk import BrokerSender, Event, PluginAdapter

INBOUND_PREFIX = "plugin.inbound."
OUTBOUND_PREFIX = "plugin.outbound."


@dataclass(slots=True)
class InboundEvent:
    """A broker event the daemon delivered on plugin.outbound.<kind>[.<rest>]."""

    topic: str
    source: str
    payload: Any
    id: str | None = None
    timestamp: str | None = None
    session_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_wire(cls, event: Any, topic: str) -> InboundEvent:
        if not isinstance(event, dict):
            raise ValueError(f"broker.event on {topic}: `event` is not an object: {event!r}")
        get = event.get
        return cls(
            get("topic", topic),
            get("source", ""),
            get("payload", {}),
            get("id"),
            get("timestamp"),
            get("session_id"),
            event,
        )


def new_event_id() -> str:
    """A random (version 4) UUID string, as uuid.uuid4() but without its per-call overhead."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40
    raw[8] = (raw[8] & 0x3F) | 0x80
    hexed = raw.hex()
    return f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"


_second = -1
_second_text = ""


def utc_timestamp() -> str:
    """Now, in RFC 3339 UTC with microseconds; the date part is formatted once a second."""
    global _second, _second_text
    now = time.time()
    second = int(now)
    if second != _second:
        _second, _second_text = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
    return f"{_second_text}.{int((now - second) * 1_000_000):06d}+00:00"


class StampedEvent(Event):
    """An SDK `Event` serialized the way the daemon's broker `Event` deserializes."""

    def __init__(self, topic: str, source: str, payload: Any, session_id: str | None) -> None:
        self.topic, self.source, self.payload = topic, source, payload
        self.correlation_id, self.metadata = None, {}
        self.session_id = session_id
        self.id = new_event_id()
        self.timestamp = utc_timestamp()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "timestamp": self.timestamp,
            "topic": self.topic,
            "source": self.source,
            "session_id": self.session_id,
            "payload": self.payload,
        }


class PluginContext:
    """The plugin as handlers see it: identity from the manifest, a logger, publishing."""

    def __init__(self, manifest: dict[str, Any]) -> None:
        plugin = manifest["plugin"]
        self.manifest = manifest
        self.id: str = plugin["id"]
        self.version: str = plugin["version"]
        self.kinds: tuple[str, ...] = tuple(
            channel["kind"] for channel in plugin.get("channels", {}).get("register", [])
        )
        self.log = logging.getLogger(self.id)
        self._inbound = tuple(f"{INBOUND_PREFIX}{kind}" for kind in self.kinds)
        self._outbound = tuple(f"{OUTBOUND_PREFIX}{kind}" for kind in self.kinds)
        #: The SDK's host handle (memory_recall, llm_complete, llm_complete_stream), set
        #: once the adapter exists.
        self.broker: BrokerSender | None = None

    @staticmethod
    def _declared(topic: str, prefixes: tuple[str, ...]) -> bool:
        """topic is one of prefixes, or one of them followed by ".<rest>"."""
        for prefix in prefixes:
            if topic == prefix or (topic.startswith(prefix) and topic[len(prefix)] == "."):
                return True
        return False

    def inbound_topic(self, outbound_topic: str) -> str:
        """plugin.outbound.<kind>[.<rest>] -> plugin.inbound.<kind>[.<rest>]."""
        if not self._declared(outbound_topic, self._outbound):
            raise ValueError(
                f"{outbound_topic!r} is not plugin.outbound.<kind>[.<rest>] for a declared "
                f"channel kind {list(self.kinds)}"
            )
        return INBOUND_PREFIX + outbound_topic[len(OUTBOUND_PREFIX) :]

    async def publish(self, topic: str, payload: Any, *, session_id: str | None = None) -> None:
        """Publish `payload` on `topic` as a daemon-valid broker event."""
        if not self._declared(topic, self._inbound):
            # The daemon would drop it with nothing but a warning in its own log.
            raise ValueError(
                f"cannot publish on {topic!r}: the daemon only accepts "
                f"plugin.inbound.<kind>[.<rest>] for the declared kinds {list(self.kinds)}"
            )
        if self.broker is None:
            raise RuntimeError("publish() needs the running adapter: call it from a handler")
        await self.broker.publish(topic, StampedEvent(topic, self.id, payload, session_id))


class _Adapter(PluginAdapter):
    """The SDK adapter, handing broker events to handlers.on_event as InboundEvent."""

    def __init__(self, *, plugin: PluginContext, on_event: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_inbound = on_event
        self.plugin = plugin
        plugin.broker = self._broker

    async def _dispatch_event(self, params: dict[str, Any]) -> None:
        # Replaces the SDK's own dispatch, which keeps only topic, source and payload.
        topic = params.get("topic")
        try:
            if not isinstance(topic, str):
                raise ValueError(f"broker.event without a string topic: {params!r}")
            event = InboundEvent.from_wire(params.get("event"), topic)
            await self._on_inbound(self.plugin, topic, event)
        except Exception:
            self.plugin.log.exception("on_event failed for a broker.event on %s", topic)

    async def serve(self, first_line: str) -> None:
        """Run the SDK loop, after handling the frame main.py read to answer initialize early."""
        if first_line.strip() and await self._handle_line(first_line.strip()):
            return  # it was a shutdown request
        await self.run()


# The SDK internals this file builds on (and its `_broker` attribute); an SDK without them
# needs a newer template.
if not all(hasattr(PluginAdapter, name) for name in ("_dispatch_event", "_handle_line")):
    raise ImportError(
        "this nexoai version lacks PluginAdapter._dispatch_event or _handle_line, which "
        "runtime.py uses; update the plugin from its template (`copier update`) or pin the "
        "nexoai version the template names"
    )


def build_adapter(manifest_text: str, manifest: dict[str, Any], frames: IO[str]) -> PluginAdapter:
    """The SDK adapter for this plugin (`manifest` is `manifest_text` parsed; the SDK checks
    it again), writing JSON-RPC frames to `frames` only."""
    from . import handlers

    plugin = PluginContext(manifest)
    hooks: dict[str, Any] = {}
    tools = handlers.tools(plugin) if hasattr(handlers, "tools") else []
    if tools:
        hooks["tools"] = tools
        hooks["on_tool"] = lambda invocation: handlers.on_tool(plugin, invocation)
    if hasattr(handlers, "on_shutdown"):
        hooks["on_shutdown"] = lambda: handlers.on_shutdown(plugin)
    # With its guard off, the SDK writes frames to whatever sys.stdout is while it is
    # built: hand it the real stdout, then send everything else to stderr.
    sys.stdout = frames
    try:
        return _Adapter(
            plugin=plugin,
            on_event=handlers.on_event,
            manifest_toml=manifest_text,
            server_version=f"{plugin.id}-{plugin.version}",
            enable_stdout_guard=False,
            **hooks,
        )
    finally:
        sys.stdout = sys.stderr
