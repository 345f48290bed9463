"""The JSON-RPC session with the daemon, built on the nexoai SDK's types and host client.

It uses the SDK for what the SDK defines: the tool errors (codes -33401..-33405), the host
client `BrokerSender` (memory.recall, llm.complete and its llm.complete.delta stream), the
host result types and the Rpc errors. It replaces the SDK's loop (`PluginAdapter.run`),
which cannot give these guarantees:

- Frames written are exactly what the daemon's serde_json reads (frames.py), with every
  secret masked (redaction.py). A value that cannot be sent is an error for the handler,
  or a JSON-RPC error reply for a tool.
- No frame can stop the plugin: malformed JSON, numbers out of range, deep nesting, bad ids
  or params are logged and skipped, and the next frame is served.
- Published events carry the `id` and `timestamp` the daemon's broker requires, and
  incoming events keep theirs (the SDK's `Event` has neither).
- Bounded: when the daemon stops reading, the plugin stops reading stdin and every publish
  waits (from any task), instead of growing its memory; a long run of publishes that never
  waits still lets the loop (and signals) through. At most `plugin.max_handlers` event and
  tool handlers run at once: beyond them stdin waits, and the daemon's queue holds (or, full,
  drops with its own warning) what comes meanwhile.
- Throughput: frames are read in chunks and written in one batch per loop pass instead of
  a flush per frame, and handlers start eagerly where asyncio can (Python 3.12+).
- Background tasks start after the handshake and stop with the plugin; on_shutdown runs
  once however the plugin stops, within a time limit; a second signal ends the process; a
  closed stdout stops the plugin instead of failing each write.

The exact nexoai pin (runtime/pyproject.toml) is why HostClient may build on two names of
the SDK's host module that are not its public API (_STREAM_END, _StreamPending).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import signal
import stat
import time
from typing import TYPE_CHECKING, Any

from nexo_plugin_sdk import (
    BrokerSender,
    Event,
    LlmCompleteResult,
    LlmStream,
    Message,
    RpcDecodeError,
    RpcServerError,
    RpcTimeoutError,
    RpcTransportError,
    ToolExecutionFailed,
    ToolInvocationError,
    ToolNotFound,
)
from nexo_plugin_sdk.host import _STREAM_END, _StreamPending

from .context import BackgroundTask, InboundEvent, published_too_early
from .frames import JSONRPC_VERSION, MAX_FRAME_BYTES, FrameError, decode, encode, initialize_reply
from .redaction import redact

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine

    from .context import PluginContext
    from .startup import LoadedPlugin

log = logging.getLogger(__name__.split(".", 1)[0])

# The daemon reads the `initialize` reply and only then, in another task, starts
# forwarding the plugin's publishes: a publish written right behind the reply can still be
# dropped. Background tasks (whose publishes no request precedes) start this much later.
HANDSHAKE_SETTLE_SECONDS = 0.2
# The daemon waits 1 s after `shutdown` (or its SIGTERM) before it kills the plugin: stopping
# (background tasks, handlers in flight, on_shutdown, the last frames) must fit in it.
STOP_GRACE_SECONDS = 0.8
# Publishes that do not wait in a row before one yields to the loop (so that the flush,
# other tasks and signals get their turn).
PUBLISHES_BETWEEN_YIELDS = 64
# JSON-RPC error codes of the protocol itself (the tool errors come from the SDK).
METHOD_NOT_FOUND, INVALID_PARAMS = -32601, -32602


class _RandomIds:
    """Random (version 4) UUID strings, as uuid.uuid4() but without its per-call overhead:
    the random bytes come from os.urandom 4 KiB at a time."""

    pool = b""
    offset = 0

    @classmethod
    def next(cls) -> str:
        if cls.offset >= len(cls.pool):
            cls.pool, cls.offset = os.urandom(4096), 0
        raw = bytearray(cls.pool[cls.offset : cls.offset + 16])
        cls.offset += 16
        raw[6] = (raw[6] & 0x0F) | 0x40
        raw[8] = (raw[8] & 0x3F) | 0x80
        hexed = raw.hex()
        return f"{hexed[:8]}-{hexed[8:12]}-{hexed[12:16]}-{hexed[16:20]}-{hexed[20:]}"


new_event_id = _RandomIds.next


class _Clock:
    """RFC 3339 UTC timestamps with microseconds; the date part is formatted once a second."""

    second = -1
    text = ""

    @classmethod
    def now(cls) -> str:
        now = time.time()
        second = int(now)
        if second != cls.second:
            cls.second, cls.text = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        return f"{cls.text}.{int((now - second) * 1_000_000):06d}+00:00"


utc_timestamp = _Clock.now
# The JSON of the topics and sources a plugin publishes with: a few strings, sent many times.
_QUOTED: dict[str, str] = {}


def _quoted(text: str) -> str:
    quoted = _QUOTED.get(text)
    if quoted is None:
        quoted = encode(text)
        if len(_QUOTED) < 1024:
            _QUOTED[text] = quoted
    return quoted


class HostClient(BrokerSender):
    """The SDK's host client, writing through the session: strict JSON, batched, and
    `plugin.host_timeout` as the default timeout of memory.recall and llm.complete."""

    def __init__(self, session: Session) -> None:
        super().__init__(asyncio.Lock(), None, session.pending, session.request_ids)
        self.session = session

    async def _write(self, frame: dict[str, Any]) -> None:
        self.session.send(frame)

    async def _request(
        self, method: str, params: dict[str, Any], timeout: float | None
    ) -> dict[str, Any]:
        # The SDK's version turns a cancellation into RpcTransportError, which would keep a
        # cancelled background task running; here cancellation stays cancellation.
        session = self.session
        wait = session.plugin.host_timeout if timeout is None else timeout
        request_id = next(session.request_ids)
        reply: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        session.pending[request_id] = reply
        try:
            session.send(
                {"jsonrpc": JSONRPC_VERSION, "id": request_id, "method": method, "params": params}
            )
            return await asyncio.wait_for(reply, wait)
        except FrameError as error:
            raise RpcTransportError(f"cannot send {method}: {error}") from None
        except asyncio.TimeoutError:
            raise RpcTimeoutError(wait) from None
        finally:
            session.pending.pop(request_id, None)

    def llm_complete_stream(
        self,
        *,
        provider: str,
        model: str,
        messages: list[Message] | list[dict[str, Any]],
        max_tokens: int = 4096,
        temperature: float = 0.7,
        system_prompt: str | None = None,
    ) -> LlmStream:
        """The SDK's streamed completion, bounded (BoundedStream)."""
        session = self.session
        request_id = next(session.request_ids)
        loop = asyncio.get_running_loop()
        entry = _StreamPending(chunks=asyncio.Queue(), final=loop.create_future())
        params = self._llm_params(
            provider, model, messages, max_tokens, temperature, system_prompt, stream=True
        )
        frame = {"jsonrpc": JSONRPC_VERSION, "id": request_id, "method": "llm.complete"}
        try:
            session.send({**frame, "params": params})
        except FrameError as error:
            raise RpcTransportError(f"cannot send llm.complete: {error}") from None
        session.pending[request_id] = entry
        return BoundedStream(entry, session, request_id)

    async def publish(self, topic: str, event: Event) -> None:
        """The SDK's publish, stamped so the daemon accepts it (prefer plugin.publish)."""
        self.session.publish(topic, event.payload, event.source, None)
        if (pause := self.session.pace()) is not None:
            await pause


class BoundedStream(LlmStream):
    """A streamed completion that can neither hang nor grow without bound: each chunk, and
    the final reply, must come within plugin.host_timeout, and the text must stay within
    plugin.max_stream_chars; otherwise RpcTimeoutError or RpcTransportError, and the
    stream is dropped (what the host still sends for it is ignored)."""

    def __init__(self, pending: _StreamPending, session: Session, request_id: int) -> None:
        super().__init__(pending)
        self._session, self._request_id = session, request_id
        self._timeout = session.plugin.host_timeout
        self._limit = session.plugin.max_stream_chars
        self._size = 0

    def _drop(self) -> None:
        self._session.pending.pop(self._request_id, None)

    async def __anext__(self) -> str:
        try:
            chunk = await asyncio.wait_for(super().__anext__(), self._timeout)
        except asyncio.TimeoutError:
            self._drop()
            raise RpcTimeoutError(self._timeout) from None
        self._size += len(chunk)
        if self._size > self._limit:
            self._drop()
            raise RpcTransportError(
                f"the streamed reply is over plugin.max_stream_chars ({self._limit}): dropped"
            )
        return chunk

    async def final_result(self) -> LlmCompleteResult:
        try:
            return await asyncio.wait_for(super().final_result(), self._timeout)
        except asyncio.TimeoutError:
            self._drop()
            raise RpcTimeoutError(self._timeout) from None


class _Input(asyncio.Protocol):
    """stdin: newline-delimited frames, read in chunks and handed to the session."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._pending = b""  # the start of a line whose end has not come yet
        self._skipping = False  # inside a line longer than the frame limit

    def data_received(self, data: bytes) -> None:
        session = self._session
        lines = (self._pending + data if self._pending else data).split(b"\n")
        self._pending = lines.pop()
        for index, line in enumerate(lines):
            if session.closing:
                break
            if session.input_held:  # keep the rest for when reading resumes
                self._pending = b"\n".join([*lines[index:], self._pending])
                return
            if self._skipping:  # the end of a line already reported as too long
                self._skipping = False
            elif len(line) > MAX_FRAME_BYTES:
                log.warning("frame longer than %d bytes skipped", MAX_FRAME_BYTES)
            elif line:
                session.handle_line(line)
        if len(self._pending) > MAX_FRAME_BYTES:  # no end in sight: stop keeping it
            if not self._skipping:
                log.warning("frame longer than %d bytes skipped", MAX_FRAME_BYTES)
                self._skipping = True
            self._pending = b""

    def eof_received(self) -> bool:
        self._session.stop("stdin closed")
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self._session.stop("stdin closed")


class _Output(asyncio.Protocol):
    """stdout as a pipe or socket: its buffer filling holds the plugin back (no more reading,
    publishes wait) instead of growing its memory; its end stops the plugin."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def pause_writing(self) -> None:
        self._session.output_full(True)

    def resume_writing(self) -> None:
        self._session.output_full(False)

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

    def abort(self) -> None:
        self.close()


class Session:
    """One run of the plugin: frames in, frames out, handlers, background tasks, stopping."""

    def __init__(self, loaded: LoadedPlugin) -> None:
        self.loaded = loaded
        self.plugin: PluginContext[Any] = loaded.running()
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
        self._writable = asyncio.Event()
        self._writable.set()
        self._publishes_without_wait = 0
        self._input_held_for: set[str] = set()  # "output" full, too many "handlers"
        self.input_held = False  # frames wait in stdin, and in what was read of it
        self._reader: _Input | None = None
        self._handlers_running = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._tasks_pruned_at = 64  # its size after the last pruning (at least 64)
        self._background: set[asyncio.Task[Any]] = set()
        self._waiting_background = list(loaded.lifecycle.waiting)  # from on_start
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
        self.broker = HostClient(self)
        loaded.lifecycle.runner = self

    # -- running ---------------------------------------------------------------------------

    async def run(
        self,
        frames_fd: int,
        read_before: bytes = b"",
        *,
        stdin_fd: int = 0,
        signals: bool = True,
        received: list[str] | None = None,
    ) -> int:
        """Serve the daemon on `stdin_fd` and `frames_fd` until the plugin stops; the exit
        code. `read_before`: what was already read from stdin, handled first; `received`:
        the signals that came before the session took them over."""
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
            lambda: _Input(self), os.fdopen(stdin_fd, "rb", buffering=0, closefd=False)
        )
        self._reader = reader
        if read_before:
            reader.data_received(read_before)
        if signals:
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(signum, self._on_signal, signal.Signals(signum).name)
        for name in received or []:
            self._on_signal(name)
        return await self._stopped

    def _on_signal(self, name: str) -> None:
        if self.closing:  # a second signal: the operator wants it gone now
            log.warning("%s while stopping: exiting now", name)
            os._exit(self._exit_code or 1)
        self.stop(name)

    def stop(self, reason: str, exit_code: int = 0, reply_id: Any = None) -> None:
        """Stop once: no more frames; then background tasks, handlers and on_shutdown."""
        if self.closing:
            return
        self.closing = True
        self._exit_code = exit_code
        log.debug("stopping: %s", reason)
        if self._input is not None:
            self._input.pause_reading()
        self._writable.set()  # publishes waiting for room fail now instead of hanging
        self._spawn(self._finish(reply_id), "stop")

    async def _finish(self, reply_id: Any) -> None:
        deadline = self._loop.time() + STOP_GRACE_SECONDS
        self._waiting_background.clear()
        await self._settle(self._background, "background task", deadline, cancel=True)
        self._abandon_host_calls()
        await self._settle(self._tasks, "handler", deadline, cancel=False)
        for name, stop in self._stop_steps():
            try:
                await asyncio.wait_for(stop(), max(deadline - self._loop.time(), 0.05))
            except asyncio.TimeoutError:
                log.warning("%s did not finish within the daemon's grace period: cancelled", name)
            except Exception:
                log.exception("%s failed", name)
        if reply_id is not None:
            self._reply(reply_id, {"ok": True})
        self._flush()
        await self._close_output(deadline)
        if self._input is not None:
            self._input.close()
        if not self._stopped.done():
            self._stopped.set_result(self._exit_code)

    def _stop_steps(self) -> list[tuple[str, Callable[[], Awaitable[object]]]]:
        """on_shutdown, then what the plugin registered with plugin.on_stop()."""
        steps: list[tuple[str, Callable[[], Awaitable[object]]]] = []
        on_shutdown = self.loaded.on_shutdown
        if on_shutdown is not None:
            steps.append(("on_shutdown", lambda: on_shutdown(self.plugin)))
        for callback in self.loaded.lifecycle.stop_callbacks:
            steps.append((getattr(callback, "__qualname__", "a stop callback"), callback))
        return steps

    async def _close_output(self, deadline: float) -> None:
        """Close stdout once what is queued is written, or drop it when the daemon no longer
        reads (it kills the plugin after its grace period anyway)."""
        if self._output is None or self._output_closed is None:
            return
        self._output.close()
        try:
            await asyncio.wait_for(
                asyncio.shield(self._output_closed), max(deadline - self._loop.time(), 0.1)
            )
        except asyncio.TimeoutError:
            log.warning("the daemon stopped reading stdout: the last frames are dropped")
            self._output.abort()

    async def _settle(
        self, tasks: set[asyncio.Task[Any]], kind: str, deadline: float, *, cancel: bool
    ) -> None:
        """Wait for `tasks` (handlers may still start tasks meanwhile) until `deadline`, then
        cancel the rest. With `cancel`, cancel from the start, and again every 0.1 s: a task
        may catch one cancellation and carry on."""
        current = asyncio.current_task()
        while pending := {task for task in tasks if task is not current and not task.done()}:
            remaining = deadline - self._loop.time()
            if remaining <= 0:
                log.warning("%d %s(s) still running at the deadline: cancelled", len(pending), kind)
                for task in pending:
                    task.cancel()
                await asyncio.wait(pending, timeout=0.1)
                return
            if cancel:
                for task in pending:
                    task.cancel()
            await asyncio.wait(pending, timeout=min(remaining, 0.1))

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
        """Run a handler as a task, kept (to be awaited or cancelled when the plugin stops)
        while it runs. Finished tasks are let go of in bulk, not one callback each: a
        handler per event is the plugin's hottest path."""
        task = self._loop.create_task(coroutine, name=name)
        if not task.done():  # an eager task (Python 3.12+) may have finished already
            tasks = self._tasks
            if len(tasks) >= self._tasks_pruned_at * 2:
                tasks.difference_update([kept for kept in tasks if kept.done()])
                self._tasks_pruned_at = max(len(tasks), 64)
            tasks.add(task)
        return task

    @property
    def backlogged(self) -> bool:
        return not self._writable.is_set()

    def output_full(self, full: bool) -> None:
        """The daemon reads slower than the plugin writes (or catches up again)."""
        if full:
            self._writable.clear()
        else:
            self._writable.set()
        self._hold_input("output", full)

    def _hold_input(self, reason: str, hold: bool) -> None:
        was_held = self.input_held
        if hold:
            self._input_held_for.add(reason)
        else:
            self._input_held_for.discard(reason)
        self.input_held = bool(self._input_held_for)
        if self._input is None or self._reader is None or self.closing:
            return
        if was_held == self.input_held:
            return
        if hold:
            self._input.pause_reading()
        else:
            self._input.resume_reading()
            self._loop.call_soon(self._reader.data_received, b"")  # the lines it kept

    def _handler_started(self) -> None:
        self._handlers_running += 1
        if self._handlers_running >= self.plugin.max_handlers:
            self._hold_input("handlers", True)

    def _handler_finished(self) -> None:
        self._handlers_running -= 1
        if self.input_held and self._handlers_running < self.plugin.max_handlers:
            self._hold_input("handlers", False)

    def output_lost(self) -> None:
        if self._output_open:
            self._output_open = False
            self._writable.set()
            if not self.closing:
                log.warning("stdout closed: the daemon stopped reading; stopping")
                self.stop("stdout closed")

    # -- writing ---------------------------------------------------------------------------

    def send(self, frame: dict[str, Any]) -> None:
        """Queue one frame; all frames queued in one loop pass go out in one write."""
        self.send_text(encode(frame))

    def send_text(self, text: str) -> None:
        """Queue one frame already encoded, its secrets masked on the way."""
        text = redact(text)
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
        """Send a broker.publish the daemon accepts; its event id. Frames go out in the order
        publish() is called; pace() then says whether the caller must wait."""
        if not self.handshake_done:
            raise published_too_early(topic)
        event_id = new_event_id()
        try:
            # The frame json.dumps would write, with only the payload (and the session id)
            # encoded: the rest is known to be JSON already.
            body = encode(payload)
            session = "null" if session_id is None else encode(session_id)
        except FrameError as error:
            raise FrameError(f"cannot publish on {topic!r}: the payload is {error}") from None
        quoted = _quoted(topic)
        self.send_text(
            '{"jsonrpc": "2.0", "method": "broker.publish", "params": {"topic": '
            f'{quoted}, "event": {{"id": "{event_id}", "timestamp": "{utc_timestamp()}", '
            f'"topic": {quoted}, "source": {_quoted(source)}, "session_id": {session}, '
            f'"payload": {body}}}}}}}'
        )
        self._publishes_without_wait += 1
        return event_id

    def pace(self) -> Awaitable[object] | None:
        """What a publisher waits on before it goes on: the daemon reading again (while its
        pipe is full), or one pass of the loop after a long run of publishes (so that the
        flush, other tasks and signals get their turn); None: go on at once."""
        if not self._writable.is_set():
            self._publishes_without_wait = 0
            return self._writable.wait()
        if self._publishes_without_wait >= PUBLISHES_BETWEEN_YIELDS:
            self._publishes_without_wait = 0
            return asyncio.sleep(0)
        return None

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
        self._handler_started()
        self._spawn(self._run_event(on_event, topic, event), "on_event")

    async def _run_event(
        self, on_event: Callable[..., Awaitable[object]], topic: str, event: InboundEvent
    ) -> None:
        try:
            await on_event(self.plugin, topic, event)
        except Exception:
            log.exception("on_event failed for a broker.event on %s", topic)
        finally:
            self._handler_finished()

    def _on_tool_invoke(self, frame: dict[str, Any]) -> None:
        if "id" not in frame:
            log.warning("tool.invoke without an id skipped: there is nothing to reply to")
            return
        request_id, params = frame["id"], frame.get("params")
        if not self.loaded.tool_names:
            self._error(request_id, METHOD_NOT_FOUND, "method not found: tool.invoke")
            return
        tool_name = params.get("tool_name") if isinstance(params, dict) else None
        if not isinstance(params, dict) or not isinstance(tool_name, str) or not tool_name:
            self._error(request_id, INVALID_PARAMS, "tool.invoke params need a string tool_name")
            return
        if tool_name not in self.loaded.tool_names:
            self._tool_error(request_id, ToolNotFound(tool_name))
            return
        agent_id = params.get("agent_id")
        agent = agent_id if isinstance(agent_id, str) else None
        self._handler_started()
        self._spawn(self._run_tool(request_id, tool_name, params.get("args"), agent), "on_tool")

    async def _run_tool(
        self, request_id: Any, tool_name: str, args: Any, agent_id: str | None
    ) -> None:
        try:
            result = await self.loaded.tools.invoke(self.plugin, tool_name, args, agent_id)
        except ToolInvocationError as error:
            self._tool_error(request_id, error)
            return
        except Exception as error:
            log.exception("tool %s failed", tool_name)
            self._tool_error(request_id, ToolExecutionFailed(f"{type(error).__name__}: {error}"))
            return
        finally:
            self._handler_finished()
        try:
            self._reply(request_id, result)
        except FrameError as error:
            log.error("tool %s returned a result that cannot be sent: %s", tool_name, error)
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

    def run_background(self, task: BackgroundTask) -> None:
        if self.closing:
            raise RuntimeError(f"cannot start background task {task.name}: the plugin is stopping")
        self._waiting_background.append(task)
        if self.handshake_done:
            self._loop.call_soon(self._start_background)

    def _start_background(self) -> None:
        waiting, self._waiting_background = self._waiting_background, []
        for background in waiting:
            task = self._loop.create_task(self._run_background(background), name=background.name)
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _run_background(self, background: BackgroundTask) -> None:
        try:
            await background.func(*background.args)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background task %s crashed", background.name)
            if background.critical:
                self.stop(f"background task {background.name} crashed", exit_code=1)
