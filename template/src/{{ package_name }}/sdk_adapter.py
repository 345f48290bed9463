"""The JSON-RPC session with the daemon, built on the nexoai SDK's types and host client.

This file follows the template (`copier update` refreshes it). It uses the SDK for what the
SDK defines: the tool types and errors (codes -33401..-33405), the host client
`BrokerSender` (memory.recall, llm.complete and its llm.complete.delta stream), the host
result types and the Rpc errors. It replaces the SDK's loop (`PluginAdapter.run`), which
cannot give these guarantees:

- Frames written are strict JSON, always: the SDK writes NaN and Infinity, which the
  daemon's parser (serde_json) rejects, losing the event or hanging the tool call. A value
  that cannot be sent is an error for the handler, or a JSON-RPC error reply for a tool.
- No frame can stop the plugin: malformed JSON, numbers out of range, huge integers, deep
  nesting, bad ids or params are logged and skipped, and the next frame is served.
- Published events carry the `id` and `timestamp` the daemon's broker requires, and
  incoming events keep theirs (the SDK's `Event` has neither).
- Throughput: frames are read in chunks and written in one batch per loop pass instead of
  a flush per frame, and handlers start eagerly where asyncio can (Python 3.12+); the
  daemon drops events once its 64-frame queue to the plugin is full.
- Background tasks start after the handshake and stop with the plugin; on_shutdown runs
  however the plugin stops; a closed stdout stops the plugin instead of failing each write.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import stat
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any

from nexo_plugin_sdk import (
    BrokerSender,
    Event,
    LlmCompleteResult,
    RpcDecodeError,
    RpcServerError,
    RpcTimeoutError,
    RpcTransportError,
    ToolExecutionFailed,
    ToolInvocation,
    ToolInvocationError,
    ToolNotFound,
)
from nexo_plugin_sdk.host import _STREAM_END, _StreamPending

from .api import InboundEvent, PluginContext
from .frames import JSONRPC_VERSION, MAX_FRAME_BYTES, FrameError, decode, encode, initialize_reply

if TYPE_CHECKING:
    from .startup import LoadedPlugin

log = logging.getLogger(__name__.rsplit(".", 1)[0])

# The daemon reads the `initialize` reply and only then, in another task, starts
# forwarding the plugin's publishes: a publish written right behind the reply can still be
# dropped. Background tasks (whose publishes no request precedes) start this much later.
HANDSHAKE_SETTLE_SECONDS = 0.2
# How long stopping waits for background tasks and in-flight handlers before giving up.
STOP_GRACE_SECONDS = 5.0
# A background task waiting for the handshake: the function, its arguments, name, critical.
BackgroundTask = tuple[Callable[..., Awaitable[object]], tuple[object, ...], str, bool]
# JSON-RPC error codes of the protocol itself (the tool errors come from the SDK).
METHOD_NOT_FOUND, INVALID_PARAMS = -32601, -32602


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


class HostClient(BrokerSender):
    """The SDK's host client, writing through the session: strict JSON, batched, and
    `plugin.host_timeout` as the default timeout of memory.recall and llm.complete."""

    def __init__(self, session: Session) -> None:
        super().__init__(asyncio.Lock(), None, session.pending, session.request_ids)
        self._session = session

    async def _write(self, frame: dict[str, Any]) -> None:
        self._session.send(frame)

    async def _request(
        self, method: str, params: dict[str, Any], timeout: float | None
    ) -> dict[str, Any]:
        # The SDK's version turns a cancellation into RpcTransportError, which would keep a
        # cancelled background task running; here cancellation stays cancellation.
        wait = self._session.plugin.host_timeout if timeout is None else timeout
        request_id = next(self._session.request_ids)
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._session.pending[request_id] = reply
        try:
            self._session.send(
                {"jsonrpc": JSONRPC_VERSION, "id": request_id, "method": method, "params": params}
            )
            return await asyncio.wait_for(reply, wait)
        except FrameError as error:
            raise RpcTransportError(f"cannot send {method}: {error}") from None
        except asyncio.TimeoutError:
            raise RpcTimeoutError(wait) from None
        finally:
            self._session.pending.pop(request_id, None)

    async def publish(self, topic: str, event: Event) -> None:
        """The SDK's publish, stamped so the daemon accepts it (prefer plugin.publish)."""
        self._session.publish(topic, event.payload, event.source, None)


class _Input(asyncio.Protocol):
    """stdin: newline-delimited frames, read in chunks and handed to the session."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._buffer = bytearray()
        self._skipping = False  # inside a line longer than the frame limit

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        start = 0
        session = self._session
        while not session.closing:
            end = buffer.find(b"\n", start)
            if end < 0:
                break
            if self._skipping:  # the end of a line already reported as too long
                self._skipping = False
            elif end - start > MAX_FRAME_BYTES:
                log.warning("frame longer than %d bytes skipped", MAX_FRAME_BYTES)
            elif end > start:
                session.handle_line(bytes(buffer[start:end]))
            start = end + 1
        del buffer[:start]
        if len(buffer) > MAX_FRAME_BYTES:  # no end in sight: stop keeping it
            if not self._skipping:
                log.warning("frame longer than %d bytes skipped", MAX_FRAME_BYTES)
                self._skipping = True
            buffer.clear()

    def eof_received(self) -> bool:
        self._session.stop("stdin closed")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._session.stop("stdin closed")


class _Output(asyncio.Protocol):
    """stdout as a pipe or socket: its buffer filling pauses reading stdin, so a slow host
    slows the plugin down instead of growing its memory; its end stops the plugin."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def pause_writing(self) -> None:
        self._session.pause_input(True)

    def resume_writing(self) -> None:
        self._session.pause_input(False)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)
        self._session.output_lost()


class _FileOutput:
    """stdout as a regular file (someone capturing a run): plain blocking writes."""

    def __init__(self, session: Session, fd: int) -> None:
        self._session, self._fd = session, fd
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                view = view[os.write(self._fd, view) :]
        except OSError:
            self._session.output_lost()

    def close(self) -> None:
        os.close(self._fd)
        self.closed.set_result(None)


class Session:
    """One run of the plugin: frames in, frames out, handlers, background tasks, stopping."""

    def __init__(self, loaded: LoadedPlugin) -> None:
        self.loaded = loaded
        self.plugin: PluginContext = loaded.plugin
        self.pending: dict[int, Any] = {}
        self.request_ids = itertools.count(1)
        self.closing = False  # no more frames are handled
        self.handshake_done = False
        self._loop = asyncio.get_running_loop()
        self._out: list[str] = []
        self._flush_scheduled = False
        self._input: asyncio.ReadTransport | None = None
        self._output: asyncio.WriteTransport | _FileOutput | None = None
        self._output_closed: asyncio.Future[None] | None = None
        self._output_open = True
        self._tasks: set[asyncio.Task[Any]] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._waiting_background = list(loaded.plugin._before_session)  # from on_start
        self._exit_code = 0
        self._stopped: asyncio.Future[int] = self._loop.create_future()
        self._initialize_result = encode(loaded.initialize_result())
        self._methods: dict[str, Callable[[dict[str, Any]], None]] = {
            "initialize": self._on_initialize,
            "broker.event": self._on_broker_event,
            "tool.invoke": self._on_tool_invoke,
            "llm.complete.delta": self._on_delta,
            "shutdown": self._on_shutdown,
        }
        self.plugin.broker = HostClient(self)
        self.plugin._session = self

    # -- running ---------------------------------------------------------------------------

    async def run(self, frames_fd: int, read_before: bytes = b"") -> int:
        """Serve the daemon on stdin and `frames_fd` until the plugin stops; the exit code.
        `read_before`: what main.py already read from stdin, handled first."""
        loop = self._loop
        if stat.S_ISREG(os.fstat(frames_fd).st_mode):
            self._output = _FileOutput(self, frames_fd)
            self._output_closed = self._output.closed
        else:
            self._output, output = await loop.connect_write_pipe(
                lambda: _Output(self), os.fdopen(frames_fd, "wb", buffering=0)
            )
            self._output_closed = output.closed
        self._input, reader = await loop.connect_read_pipe(
            lambda: _Input(self), os.fdopen(0, "rb", buffering=0, closefd=False)
        )
        if read_before:
            reader.data_received(read_before)
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.stop, signal.Signals(signum).name)
        return await self._stopped

    def stop(self, reason: str, exit_code: int = 0, reply_id: Any = None) -> None:
        """Stop once: no more frames; then background tasks, handlers and on_shutdown."""
        if self.closing:
            return
        self.closing = True
        self._exit_code = exit_code
        log.debug("stopping: %s", reason)
        if self._input is not None:
            self._input.pause_reading()
        self._spawn(self._finish(reply_id), "stop")

    async def _finish(self, reply_id: Any) -> None:
        self._waiting_background.clear()
        await self._settle(self._background, "background task", cancel=True)
        self._abandon_host_calls()
        await self._settle(self._tasks, "handler", cancel=False)
        on_shutdown = self.loaded.on_shutdown
        if on_shutdown is not None:
            try:
                await on_shutdown(self.plugin)
            except Exception:
                log.exception("on_shutdown failed")
        if reply_id is not None:
            self._reply(reply_id, {"ok": True})
        self._flush()
        if self._output is not None and self._output_closed is not None:
            self._output.close()
            await self._output_closed
        if not self._stopped.done():
            self._stopped.set_result(self._exit_code)

    async def _settle(self, tasks: set[asyncio.Task[Any]], kind: str, cancel: bool) -> None:
        """Wait for `tasks` (handlers may still start tasks meanwhile) up to the grace period,
        then cancel the rest. With `cancel`, cancel from the start, and again every half
        second: a task may catch one cancellation and carry on."""
        deadline = self._loop.time() + STOP_GRACE_SECONDS
        current = asyncio.current_task()
        while pending := {task for task in tasks if task is not current and not task.done()}:
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                log.warning(
                    "%d %s(s) still running after %ss: cancelled",
                    len(pending),
                    kind,
                    STOP_GRACE_SECONDS,
                )
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending, timeout=1.0)
                return
            if cancel:
                for task in pending:
                    task.cancel()
            await asyncio.wait(pending, timeout=min(remaining, 0.5))

    def _abandon_host_calls(self) -> None:
        """The host will not answer once the plugin stops: fail every call still waiting."""
        gone = RpcTransportError("the plugin is stopping")
        for pending in list(self.pending.values()):
            if isinstance(pending, _StreamPending):
                pending.chunks.put_nowait(_STREAM_END)
                if not pending.final.done():
                    pending.final.set_exception(gone)
            elif not pending.done():
                pending.set_exception(gone)
        self.pending.clear()

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        task = self._loop.create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def pause_input(self, paused: bool) -> None:
        if self._input is not None and not self.closing:
            (self._input.pause_reading if paused else self._input.resume_reading)()

    def output_lost(self) -> None:
        if self._output_open:
            self._output_open = False
            if not self.closing:
                log.warning("stdout closed: the daemon stopped reading; stopping")
                self.stop("stdout closed")

    # -- writing ---------------------------------------------------------------------------

    def send(self, frame: dict[str, Any]) -> None:
        """Queue one frame; all frames queued in one loop pass go out in one write."""
        text = encode(frame)
        if not self._output_open:
            raise BrokenPipeError("stdout is closed: the daemon stopped reading")
        self._out.append(text)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._out and self._output_open and self._output is not None:
            self._output.write(("\n".join(self._out) + "\n").encode("ascii"))
        self._out.clear()

    def _reply(self, request_id: Any, result: Any) -> None:
        self.send({"jsonrpc": JSONRPC_VERSION, "id": request_id, "result": result})

    def _error(self, request_id: Any, code: int, message: str, data: Any = None) -> None:
        error: dict[str, Any] = {"code": code, "message": message}
        if data is not None:
            error["data"] = data
        self.send({"jsonrpc": JSONRPC_VERSION, "id": request_id, "error": error})

    def publish(self, topic: str, payload: Any, source: str, session_id: str | None) -> str:
        if not self.handshake_done:
            raise RuntimeError(
                f"cannot publish on {topic!r} before the handshake: the daemon drops it. "
                "Publish from handlers or from a task started with plugin.run_background()"
            )
        event_id = new_event_id()
        event = {
            "id": event_id,
            "timestamp": utc_timestamp(),
            "topic": topic,
            "source": source,
            "session_id": session_id,
            "payload": payload,
        }
        params = {"topic": topic, "event": event}
        try:
            self.send({"jsonrpc": JSONRPC_VERSION, "method": "broker.publish", "params": params})
        except FrameError as error:
            raise FrameError(f"cannot publish on {topic!r}: the payload is {error}") from None
        return event_id

    # -- reading ---------------------------------------------------------------------------

    def handle_line(self, line: bytes) -> None:
        """One frame from the daemon. Nothing in it may stop the plugin: a frame that cannot
        be handled is logged and skipped, and the next one is served."""
        try:
            frame = decode(line)
        except (ValueError, RecursionError) as error:
            problem = "nested too deeply" if isinstance(error, RecursionError) else error
            log.warning("malformed frame skipped (%d bytes): %s", len(line), problem)
            return
        if not isinstance(frame, dict):
            log.warning("frame skipped: a JSON-RPC frame must be an object")
            return
        try:
            self._dispatch(frame)
        except Exception:
            log.exception("frame skipped: handling it failed")

    def _dispatch(self, frame: dict[str, Any]) -> None:
        method = frame.get("method")
        if method is None:
            self._on_response(frame)
            return
        handler = self._methods.get(method) if isinstance(method, str) else None
        if handler is not None:
            handler(frame)
        elif "id" in frame:
            self._error(frame["id"], METHOD_NOT_FOUND, "method not found")
        else:
            log.debug("notification %r ignored", method)

    def _on_initialize(self, frame: dict[str, Any]) -> None:
        self._out.append(initialize_reply(frame.get("id"), self._initialize_result))
        self._flush()
        self.handshake_is_done()

    def handshake_is_done(self) -> None:
        """The daemon has (or is about to have) the initialize reply: background tasks may
        publish soon."""
        if not self.handshake_done:
            self.handshake_done = True
            self._loop.call_later(HANDSHAKE_SETTLE_SECONDS, self._start_background)

    def _on_shutdown(self, frame: dict[str, Any]) -> None:
        self.stop("shutdown requested", reply_id=frame.get("id"))

    def _on_broker_event(self, frame: dict[str, Any]) -> None:
        params = frame.get("params")
        topic = params.get("topic") if isinstance(params, dict) else None
        on_event = self.loaded.on_event
        if not isinstance(topic, str):
            log.warning("broker.event skipped: params must be an object with a string topic")
            return
        if on_event is None:
            log.debug("broker.event on %s ignored: handlers.py has no on_event", topic)
            return
        try:
            event = InboundEvent.from_wire(params.get("event"), topic)  # type: ignore[union-attr]
        except ValueError as error:
            log.warning("broker.event skipped: %s", error)
            return
        self._spawn(self._run_event(on_event, topic, event), "on_event")

    async def _run_event(
        self, on_event: Callable[..., Awaitable[object]], topic: str, event: InboundEvent
    ) -> None:
        try:
            await on_event(self.plugin, topic, event)
        except Exception:
            log.exception("on_event failed for a broker.event on %s", topic)

    def _on_tool_invoke(self, frame: dict[str, Any]) -> None:
        if "id" not in frame:
            log.warning("tool.invoke without an id skipped: there is nothing to reply to")
            return
        request_id, params = frame["id"], frame.get("params")
        on_tool = self.loaded.on_tool
        if on_tool is None:
            self._error(request_id, METHOD_NOT_FOUND, "method not found: tool.invoke")
            return
        tool_name = params.get("tool_name") if isinstance(params, dict) else None
        if not isinstance(params, dict) or not isinstance(tool_name, str) or not tool_name:
            self._error(request_id, INVALID_PARAMS, "tool.invoke params need a string tool_name")
            return
        if tool_name not in self.loaded.tool_names:
            self._tool_error(request_id, ToolNotFound(tool_name))
            return
        plugin_id, agent_id = params.get("plugin_id"), params.get("agent_id")
        invocation = ToolInvocation(
            plugin_id=plugin_id if isinstance(plugin_id, str) else self.plugin.id,
            tool_name=tool_name,
            args=params.get("args"),
            agent_id=agent_id if isinstance(agent_id, str) else None,
        )
        self._spawn(self._run_tool(on_tool, request_id, invocation), "on_tool")

    async def _run_tool(
        self, on_tool: Callable[..., Awaitable[object]], request_id: Any, invocation: ToolInvocation
    ) -> None:
        try:
            result = await on_tool(self.plugin, invocation)
        except ToolInvocationError as error:
            self._tool_error(request_id, error)
            return
        except Exception as error:
            log.exception("on_tool failed for %s", invocation.tool_name)
            self._tool_error(request_id, ToolExecutionFailed(repr(error)))
            return
        try:
            self._reply(request_id, result)
        except FrameError as error:
            log.error(
                "tool %s returned a result that cannot be sent: %s", invocation.tool_name, error
            )
            self._tool_error(request_id, ToolExecutionFailed(f"the tool's result is {error}"))

    def _tool_error(self, request_id: Any, error: ToolInvocationError) -> None:
        try:
            self._error(request_id, error.code, str(error), error.error_data())
        except FrameError:  # details that are not JSON: say so without them
            self._error(request_id, error.code, str(error))

    def _on_delta(self, frame: dict[str, Any]) -> None:
        params = frame.get("params")
        request_id = params.get("request_id") if isinstance(params, dict) else None
        chunk = params.get("chunk") if isinstance(params, dict) else None
        stream = self.pending.get(request_id) if isinstance(request_id, int) else None
        if isinstance(stream, _StreamPending) and isinstance(chunk, str):
            stream.chunks.put_nowait(chunk)
        else:
            log.warning("llm.complete.delta skipped: not a text chunk of an open stream")

    def _on_response(self, frame: dict[str, Any]) -> None:
        request_id = frame.get("id")
        pending = self.pending.pop(request_id, None) if type(request_id) is int else None
        if pending is None:
            log.warning(
                "response skipped: id %s is not a request this plugin is waiting on",
                encode(request_id),
            )
            return
        error, result = frame.get("error"), frame.get("result")
        failure: Exception | None = None
        if error is not None:
            code = error.get("code") if isinstance(error, dict) else None
            message = error.get("message") if isinstance(error, dict) else None
            failure = RpcServerError(
                code if type(code) is int else -32603,
                message if isinstance(message, str) else encode(error),
            )
        if isinstance(pending, _StreamPending):
            pending.chunks.put_nowait(_STREAM_END)
            target = pending.final
            if failure is None:
                try:
                    final = LlmCompleteResult.from_json(result if isinstance(result, dict) else {})
                except (TypeError, ValueError, AttributeError):
                    failure = RpcDecodeError(f"llm.complete final result: {encode(result)}")
                else:
                    if not target.done():
                        target.set_result(final)
                    return
        else:
            target = pending
            if failure is None:
                if not target.done():
                    target.set_result(result if isinstance(result, dict) else {})
                return
        if not target.done():
            target.set_exception(failure)

    # -- background tasks ------------------------------------------------------------------

    def run_background(
        self,
        func: Callable[..., Awaitable[object]],
        args: tuple[object, ...],
        name: str,
        critical: bool,
    ) -> None:
        if self.closing:
            raise RuntimeError(f"cannot start background task {name}: the plugin is stopping")
        self._waiting_background.append((func, args, name, critical))
        if self.handshake_done:
            self._loop.call_soon(self._start_background)

    def _start_background(self) -> None:
        waiting, self._waiting_background = self._waiting_background, []
        for func, args, name, critical in waiting:
            task = self._loop.create_task(
                self._run_background(func, args, name, critical), name=name
            )
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _run_background(
        self,
        func: Callable[..., Awaitable[object]],
        args: tuple[object, ...],
        name: str,
        critical: bool,
    ) -> None:
        try:
            await func(*args)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background task %s crashed", name)
            if critical:
                self.stop(f"background task {name} crashed", exit_code=1)
