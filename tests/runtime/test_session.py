"""The session with the daemon (session.py), in process over real pipes: the handshake,
events both ways, frames the daemon reads, hostile input, host calls, background tasks,
stopping, and the output's backpressure."""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import Start
from harness import STOPS_PROMPTLY, InProcessPlugin
from nexo_plugin_runtime.session import STOP_GRACE_SECONDS
from nexo_plugin_runtime.testing import (
    NEXO_VERSION,
    assert_daemon_accepts,
    broker_event,
    wait_until,
)
from nexo_plugin_sdk import read_manifest, wire

ECHO = """
from nexo_plugin_runtime import InboundEvent, PluginContext

async def on_event(plugin: PluginContext[None], topic: str, event: InboundEvent) -> None:
    payload = {"echo": event.payload, "id": event.id, "timestamp": event.timestamp}
    await plugin.publish(plugin.inbound_topic(topic), payload, session_id=event.session_id)
"""
INITIALIZE = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {"nexo_version": NEXO_VERSION},
}


def rest(plugin: InProcessPlugin) -> list[dict[str, Any]]:
    """Every frame the plugin writes from now until its stdout closes."""
    frames = plugin.received()
    plugin.notifications.clear()
    while (frame := plugin.next_frame()) is not None:
        frames.append(frame)
    return frames


def published(plugin: InProcessPlugin, count: int = 1) -> list[dict[str, Any]]:
    """The next `count` events the plugin published, checked as the daemon reads them."""
    return [
        assert_daemon_accepts(
            plugin.next_notification("broker.publish")["params"], plugin.plugin_id
        )
        for _ in range(count)
    ]


@pytest.mark.parametrize(
    "on_start", ["", "def on_start(plugin): pass", "async def on_start(plugin): pass"]
)
def test_the_initialize_reply_is_byte_for_byte_the_sdk_s(start: Start, on_start: str) -> None:
    # Without on_start or with a plain one, before asyncio and the SDK load; with an async
    # one, from the session once it ran: the same bytes either way.
    plugin = start(ECHO + on_start, initialize=False)
    plugin.send(INITIALIZE)
    manifest = read_manifest(Path(plugin.manifest.path).read_text())
    expected = wire.serialize_frame(
        wire.build_response(
            1, {"manifest": manifest, "server_version": f"{plugin.plugin_id}-1.2.3"}
        )
    )
    assert plugin.next_frame() == json.loads(expected)


def test_an_event_is_published_back_stamped_as_the_daemon_requires(start: Start) -> None:
    plugin = start(ECHO)
    session = str(uuid.uuid4())
    sent = broker_event("plugin.outbound.chan.room", {"text": "hi"}, session_id=session)
    plugin.notify("broker.event", sent)
    (event,) = published(plugin)
    assert event["topic"] == "plugin.inbound.chan.room"
    assert event["session_id"] == session
    # The incoming event keeps its id and time (the SDK's Event drops both).
    assert event["payload"] == {
        "echo": {"text": "hi"},
        "id": sent["event"]["id"],
        "timestamp": sent["event"]["timestamp"],
    }
    assert uuid.UUID(event["id"]).version == 4
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", event["timestamp"])
    assert abs(datetime.fromisoformat(event["timestamp"]).timestamp() - time.time()) < 5


def test_publishes_keep_their_order(start: Start) -> None:
    plugin = start(ECHO)
    for number in range(300):
        plugin.notify("broker.event", broker_event("plugin.outbound.chan", number))
    assert [event["payload"]["echo"] for event in published(plugin, 300)] == list(range(300))


HOSTILE = {
    "not-json": b"this is not json",
    "array": b"[1, 2, 3]",
    "truncated": b'{"jsonrpc": "2.0", "id": 5, "method": "initialize"',
    "not-utf8": b'{"jsonrpc": "2.0", "method": "broker.event", "params": "\xff"}',
    "nan-id": b'{"jsonrpc": "2.0", "id": NaN, "method": "initialize"}',
    "huge-float-id": b'{"jsonrpc": "2.0", "id": 1e400, "method": "initialize"}',
    "huge-integer": b'{"jsonrpc": "2.0", "method": "x", "params": ' + b"9" * 5000 + b"}",
    "lone-surrogate": b'{"jsonrpc": "2.0", "id": "\\ud800", "method": "initialize"}',
    "deep-nesting": b'{"jsonrpc": "2.0", "method": "x", "params": '
    + b"[" * 100_000
    + b"]" * 100_000
    + b"}",
    "over-1-mib": b'{"pad": "' + b"x" * (2 << 20) + b'"}',
    "list-id-response": b'{"jsonrpc": "2.0", "id": [1], "result": {}}',
    "unknown-id-response": b'{"jsonrpc": "2.0", "id": 999, "error": {"code": "x"}}',
    "delta-params-list": b'{"jsonrpc": "2.0", "method": "llm.complete.delta", "params": [1]}',
    "event-params-list": b'{"jsonrpc": "2.0", "method": "broker.event", "params": [1]}',
    "event-without-event": b'{"jsonrpc": "2.0", "method": "broker.event", "params": {"topic": "x"}}',
    "tool-params-list": b'{"jsonrpc": "2.0", "id": 7, "method": "tool.invoke", "params": [1]}',
    "method-not-a-string": b'{"jsonrpc": "2.0", "id": 8, "method": 5}',
    "empty-line": b"",
}


def test_hostile_lines_are_survived_and_never_answered_with_a_bad_frame(start: Start) -> None:
    plugin = start(ECHO)
    for line in HOSTILE.values():
        plugin.send_line(line)
    # Each line the plugin writes is read the daemon's way (DaemonSide); the ones it answers
    # carry no id that is not JSON, and the request after them all is served.
    plugin.send({**INITIALIZE, "id": "after"})
    answered = []
    while (frame := plugin.next_frame()) is not None and frame.get("id") != "after":
        answered.append(frame["id"])
    assert frame is not None
    assert frame["result"]["server_version"] == f"{plugin.plugin_id}-1.2.3"
    assert sorted(answered) == [7, 8]


def test_an_unknown_request_gets_method_not_found(start: Start) -> None:
    plugin = start(ECHO)
    assert plugin.request("no.such.method", {})["error"]["code"] == -32601
    plugin.notify("no.such.notification", {})
    assert plugin.request("tool.invoke", {"tool_name": "x"})["error"]["code"] == -32601


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        ('float("nan")', "Out of range float values are not JSON compliant"),
        ('"\\ud800"', "lone UTF-16 surrogate"),
        ("10**400", "beyond what a 64-bit float holds"),
        ("object()", "not JSON serializable"),
    ],
)
def test_a_payload_the_daemon_would_refuse_is_an_error_for_the_handler(
    start: Start, payload: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    plugin = start(
        f"""
from nexo_plugin_runtime import InboundEvent, PluginContext

async def on_event(plugin: PluginContext[None], topic: str, event: InboundEvent) -> None:
    try:
        await plugin.publish("plugin.inbound.chan", {{"value": {payload}}})
    except ValueError as error:
        await plugin.publish("plugin.inbound.chan", {{"refused": str(error)}})
"""
    )
    plugin.notify("broker.event", broker_event("plugin.outbound.chan", {}))
    (event,) = published(plugin)
    assert reason in event["payload"]["refused"]


def test_a_failing_handler_is_logged_and_the_next_event_served(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    plugin = start(
        """
from nexo_plugin_runtime import InboundEvent, PluginContext

async def on_event(plugin: PluginContext[None], topic: str, event: InboundEvent) -> None:
    if event.payload == "fail":
        raise RuntimeError("boom")
    await plugin.publish("plugin.inbound.chan", event.payload)
"""
    )
    plugin.notify("broker.event", broker_event("plugin.outbound.chan", "fail"))
    plugin.notify("broker.event", broker_event("plugin.outbound.chan", "after"))
    assert published(plugin)[0]["payload"] == "after"
    assert "on_event failed" in caplog.text
    assert "RuntimeError: boom" in caplog.text


@pytest.mark.parametrize(
    "topic", ["plugin.inbound.other", "plugin.inbound.chanx", "plugin.outbound.chan"]
)
def test_a_topic_the_daemon_would_drop_is_refused(start: Start, topic: str) -> None:
    plugin = start(
        f"""
from nexo_plugin_runtime import InboundEvent, PluginContext

async def on_event(plugin: PluginContext[None], topic: str, event: InboundEvent) -> None:
    try:
        await plugin.publish({topic!r}, {{}})
    except ValueError as error:
        await plugin.publish("plugin.inbound.chan", {{"refused": str(error)}})
"""
    )
    plugin.notify("broker.event", broker_event("plugin.outbound.chan", {}))
    assert "declared kinds ['chan']" in published(plugin)[0]["payload"]["refused"]


def test_shutdown_replies_then_runs_on_shutdown_once_and_drains_handlers(start: Start) -> None:
    plugin = start(
        """
import asyncio
from nexo_plugin_runtime import InboundEvent, PluginContext

async def on_event(plugin: PluginContext[None], topic: str, event: InboundEvent) -> None:
    await asyncio.sleep(0.2)  # still running when the shutdown comes
    await plugin.publish("plugin.inbound.chan", {"handled": event.payload})

async def on_shutdown(plugin: PluginContext[None]) -> None:
    await plugin.publish("plugin.inbound.chan", {"shutdown": True})
"""
    )
    plugin.notify("broker.event", broker_event("plugin.outbound.chan", 1))
    asked = time.monotonic()
    reply = plugin.request("shutdown")
    assert reply["result"] == {"ok": True}
    assert [event["payload"] for event in published(plugin, 2)] == [
        {"handled": 1},
        {"shutdown": True},
    ]
    assert plugin.wait() == 0
    assert time.monotonic() - asked < STOPS_PROMPTLY
    assert plugin.next_frame() is None  # stdout closed, nothing after


def test_stdin_closing_stops_the_plugin_cleanly(start: Start) -> None:
    plugin = start(ECHO)
    plugin.close_stdin()
    assert plugin.wait() == 0


def test_background_tasks_start_after_the_handshake_and_stop_with_the_plugin(start: Start) -> None:
    plugin = start(
        """
import asyncio
from nexo_plugin_runtime import PluginContext

def on_start(plugin: PluginContext[None]) -> None:
    plugin.run_background(tick, plugin)

async def tick(plugin: PluginContext[None]) -> None:
    try:
        for number in range(1000):
            await plugin.publish("plugin.inbound.chan", number)
            await asyncio.sleep(0.01)
    except asyncio.CancelledError:
        await plugin.publish("plugin.inbound.chan", "cancelled")
        raise
""",
        initialize=False,
    )
    time.sleep(0.3)
    assert plugin.received() == []  # nothing before the handshake
    plugin.initialize()
    assert [event["payload"] for event in published(plugin, 3)] == [0, 1, 2]
    plugin.close_stdin()
    assert plugin.wait() == 0
    assert [frame["params"]["event"]["payload"] for frame in rest(plugin)][-1] == "cancelled"


def test_a_critical_background_crash_stops_the_plugin_with_exit_1(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    plugin = start(
        """
from nexo_plugin_runtime import PluginContext

def on_start(plugin: PluginContext[None]) -> None:
    plugin.run_background(crash, critical=True)

async def crash() -> None:
    raise RuntimeError("the feed went away")
"""
    )
    assert plugin.wait() == 1
    assert "background task crash crashed" in caplog.text


def test_a_publish_waits_while_the_daemon_does_not_read(start: Start) -> None:
    plugin = start(
        """
from nexo_plugin_runtime import PluginContext

published = 0

def on_start(plugin: PluginContext[None]) -> None:
    plugin.run_background(flood, plugin)

async def flood(plugin: PluginContext[None]) -> None:
    global published
    for number in range(1_000_000):
        await plugin.publish("plugin.inbound.chan", {"n": number, "pad": "x" * 1000})
        published += 1
""",
        initialize=False,
    )
    plugin.send(INITIALIZE)
    plugin.next_frame()
    handlers = sys.modules[f"{plugin.plugin_id}.handlers"]
    # The daemon side stops reading: what the plugin writes meanwhile is bounded by the pipe
    # and the transport's buffer (64 KiB each), not by what the task would publish.
    plugin.stop_reading()
    time.sleep(1.0)
    stuck = handlers.published
    assert 50 < stuck < 400, stuck
    time.sleep(0.2)
    assert handlers.published == stuck
    # Reading again lets it go on.
    plugin.resume_reading()
    wait_until(lambda: handlers.published > stuck + 1000, "publishing to go on")


def test_handlers_in_flight_are_bounded_and_the_rest_wait_unlost(start: Start) -> None:
    plugin = start(
        """
import asyncio
import threading

from nexo_plugin_runtime import InboundEvent, PluginContext

gate = threading.Event()
started = 0

def on_start(plugin: PluginContext[None]) -> None:
    plugin.max_handlers = 5

async def on_event(plugin: PluginContext[None], topic: str, event: InboundEvent) -> None:
    global started
    started += 1
    await asyncio.to_thread(gate.wait)
    await plugin.publish(plugin.inbound_topic(topic), event.payload)
"""
    )
    handlers = sys.modules[f"{plugin.plugin_id}.handlers"]
    # One write: the lines beyond the bound are kept, not dispatched, though already read.
    frames = ({"jsonrpc": "2.0", "method": "broker.event", "params": broker_event(
        "plugin.outbound.chan", {"n": n})} for n in range(40))  # fmt: skip
    plugin.send_line(b"\n".join(json.dumps(frame).encode() for frame in frames))
    try:
        wait_until(lambda: handlers.started >= 5, "five handlers to start")
        time.sleep(0.3)
        assert handlers.started == 5
    finally:
        handlers.gate.set()
    numbers = sorted(event["payload"]["n"] for event in published(plugin, 40))
    assert numbers == list(range(40))
    assert handlers.started == 40


def test_a_secret_never_reaches_a_frame(start: Start) -> None:
    plugin = start(
        """
from nexo_plugin_runtime import InboundEvent, PluginContext, Secret

TOKEN = Secret("s3cret-token-value")

async def on_event(plugin: PluginContext[None], topic: str, event: InboundEvent) -> None:
    await plugin.publish("plugin.inbound.chan", {"oops": f"Bearer {TOKEN.reveal()}"})
"""
    )
    plugin.notify("broker.event", broker_event("plugin.outbound.chan", {}))
    assert published(plugin)[0]["payload"] == {"oops": "Bearer ********"}


def test_logging_of_the_session_goes_through_logging(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    plugin = start(ECHO)
    plugin.send_line(b"{bad")
    plugin.request("no.such.method")
    assert "malformed frame skipped" in caplog.text


def test_stopping_cuts_short_what_outlives_the_grace(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    plugin = start(
        """
import asyncio
from nexo_plugin_runtime import InboundEvent, PluginContext

async def on_event(plugin: PluginContext[None], topic: str, event: InboundEvent) -> None:
    await asyncio.sleep(30)  # a handler that would not finish

async def on_shutdown(plugin: PluginContext[None]) -> None:
    raise RuntimeError("cleanup failed")
"""
    )
    plugin.notify("broker.event", broker_event("plugin.outbound.chan", 1))
    plugin.notify("broker.event", {"topic": "plugin.outbound.chan", "event": "not an object"})
    assert plugin.request("shutdown")["result"] == {"ok": True}
    assert plugin.wait() == 0
    assert "1 handler(s) still running at the deadline: cancelled" in caplog.text
    assert "on_shutdown failed" in caplog.text
    assert "`event` is not an object" in caplog.text
    # The daemon kills a plugin 1 s after asking it to stop: the grace leaves time to exit.
    assert STOP_GRACE_SECONDS < 1.0


HOST_CALLS = """
import asyncio
from typing import Any
from nexo_plugin_runtime import PluginContext, RpcError, ToolCall, Tools, text_result
from nexo_plugin_sdk import Event

tools = Tools()

@tools.tool("call", "Calls the host as told.")
async def call(plugin: PluginContext[None], call: ToolCall[Any]) -> Any:
    try:
        if call.args == "unsendable":
            await plugin.broker.memory_recall(agent_id="a", query="\\ud800")
        elif call.args == "bad-final":
            stream = plugin.broker.llm_complete_stream(provider="p", model="m", messages=[])
            await stream.final_result()
        elif call.args == "sdk-publish":
            await plugin.broker.publish("plugin.inbound.chan", Event.new("t", "s", {"via": "sdk"}))
        elif call.args == "odd-details":
            from nexo_plugin_runtime import ToolArgumentInvalid
            raise ToolArgumentInvalid("odd", details={"value": float("nan")})
        elif call.args == "waits":
            await plugin.broker.memory_recall(agent_id="a", query="q", timeout=30)
    except RpcError as error:
        return text_result(f"{type(error).__name__}: {error}")
    return text_result("done")
"""


def text(reply: dict[str, Any]) -> str:
    return str(reply["result"]["content"][0]["text"])


def test_host_calls_that_cannot_go_out_or_come_back_wrong(start: Start) -> None:
    plugin = start(HOST_CALLS, tools=("ID_call",))
    name = f"{plugin.plugin_id}_call"
    assert text(plugin.invoke_tool(name, "unsendable")).startswith("RpcTransportError: cannot send")
    plugin.answer("llm.complete", result={"usage": "not an object"})
    assert text(plugin.invoke_tool(name, "bad-final")).startswith("RpcDecodeError")
    assert text(plugin.invoke_tool(name, "sdk-publish")) == "done"
    event = plugin.next_notification("broker.publish")["params"]["event"]
    assert (event["payload"], event["source"]) == ({"via": "sdk"}, "s")  # stamped, as given
    odd = plugin.invoke_tool(name, "odd-details")["error"]
    assert (odd["code"], "data" in odd) == (-33402, False)
    plugin.request("tool.invoke", {"tool_name": name})  # no id: nothing to answer
    plugin.notify("tool.invoke", {"tool_name": name})


def test_a_host_call_still_waiting_when_the_plugin_stops_is_failed(start: Start) -> None:
    plugin = start(HOST_CALLS, tools=("ID_call",))
    plugin.answer("memory.recall", silent=True)
    plugin.send(
        {"jsonrpc": "2.0", "id": 9, "method": "tool.invoke",
         "params": {"tool_name": f"{plugin.plugin_id}_call", "args": "waits"}}
    )  # fmt: skip
    wait_until(lambda: plugin.asked("memory.recall"), "the host call")
    plugin.close_stdin()
    assert plugin.wait() == 0
    replies = [frame for frame in rest(plugin) if frame.get("id") == 9]
    assert text(replies[0]) == "RpcTransportError: the plugin is stopping"


def test_events_for_a_plugin_without_on_event_are_ignored(
    start: Start, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    plugin = start("def on_start(plugin):\n    pass\n")
    plugin.notify("broker.event", broker_event("plugin.outbound.chan", 1))
    assert plugin.request("no.such")["error"]["code"] == -32601
    assert "handlers.py has no on_event" in caplog.text
