"""A scripted nexo host: spawns the plugin the way the daemon does and plays the daemon's
side of the protocol.

    with PluginHost(env={"MY_PLUGIN_TOKEN": "x"}, host_timeout=0.5) as host:
        host.initialize()
        host.answer("memory.recall", result={"entries": []})
        host.answer("llm.complete", stream=["Hel", "lo"], result={"finish_reason": "stop"})
        reply = host.invoke_tool("my_plugin_ask", {"question": "hi"})
        assert host.asked("memory.recall")[0]["query"] == "hi"
        host.notify("broker.event", broker_event("plugin.outbound.my_plugin", {"text": "hi"}))
        publish = host.next_notification("broker.publish")

The plugin's own requests (memory.recall, llm.complete, ...) are answered from the script
given to `answer()`, in order (the last answer repeats); a method with no script gets -32601,
as from a daemon that does not serve it. Every line the plugin writes on stdout must be one
JSON object the daemon's serde_json reads: anything else fails the test, since the daemon
would drop it. That check (`strict_json`) is written apart from the runtime's frames.py on
purpose: the host must not share what it checks.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import queue
import subprocess
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

from nexo_plugin_sdk import read_manifest as parse_manifest

NEXO_VERSION = "0.1.5"
# What the daemon answers for a method it does not serve.
METHOD_NOT_FOUND = -32601


def find_project(start: Path | None = None) -> Path:
    """The plugin project around `start` (default: the working directory): the nearest
    folder holding nexo-plugin.toml."""
    here = (start or Path.cwd()).resolve()
    for folder in [here, *here.parents]:
        if (folder / "nexo-plugin.toml").is_file():
            return folder
    raise FileNotFoundError(f"no nexo-plugin.toml in {here} or above: run from the plugin")


def read_manifest(project: Path) -> dict[str, Any]:
    """nexo-plugin.toml, read as the SDK reads it."""
    return parse_manifest((project / "nexo-plugin.toml").read_text(encoding="utf-8"))


def launcher(project: Path) -> Path:
    """bin/<id> of the project."""
    plugin_id: str = read_manifest(project)["plugin"]["id"]
    return project / "bin" / plugin_id


def _check_values(value: Any) -> None:
    """ValueError for what serde_json refuses that Python's json reads: a lone surrogate in
    a string, an integer beyond f64."""
    if isinstance(value, str):
        value.encode("utf-8")  # a lone surrogate cannot be encoded: UnicodeEncodeError
    elif isinstance(value, bool):
        return
    elif isinstance(value, int):
        float(value)  # OverflowError beyond f64
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_values(key)
            _check_values(item)
    elif isinstance(value, list):
        for item in value:
            _check_values(item)


def strict_json(line: bytes | str) -> Any:
    """Parse JSON the way the daemon (serde_json) does, or raise ValueError: no NaN or
    infinities, no number beyond a 64-bit float, no lone UTF-16 surrogate."""

    def reject(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    def finite(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"{text[:20]} is out of range")
        return value

    value = json.loads(line, parse_constant=reject, parse_float=finite)
    try:
        _check_values(value)
    except (UnicodeEncodeError, OverflowError) as error:
        raise ValueError(f"serde_json refuses it: {error}") from None
    return value


def run_plugin(
    project: Path,
    *args: str,
    input: bytes | None = b"",
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 10.0,
) -> subprocess.CompletedProcess[bytes]:
    """One run of bin/<id> with `args`, `input` on stdin (None: /dev/null), to the end."""
    return subprocess.run(
        [str(launcher(project)), *args],
        input=input,
        stdin=subprocess.DEVNULL if input is None else None,
        capture_output=True,
        cwd=cwd or tempfile.gettempdir(),
        env={**os.environ, **(env or {})},
        timeout=timeout,
    )


def wait_until(condition: Callable[[], object], what: str, timeout: float = 5.0) -> None:
    """Poll `condition` until it holds; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def broker_event(
    topic: str, payload: Any, *, session_id: str | None = None, source: str = "test-agent"
) -> dict[str, Any]:
    """broker.event params the way the daemon sends them, from the agent `source`."""
    return {
        "topic": topic,
        "event": {
            "id": str(uuid.uuid4()),
            "timestamp": datetime.now(timezone.utc).isoformat(),
            "topic": topic,
            "source": source,
            "session_id": session_id or str(uuid.uuid4()),
            "payload": payload,
        },
    }


def assert_daemon_accepts(params: dict[str, Any], plugin_id: str) -> dict[str, Any]:
    """Check broker.publish params the way the daemon deserializes them; return the event."""
    event: dict[str, Any] = params["event"]
    assert set(event) >= {"id", "timestamp", "topic", "source", "session_id", "payload"}, event
    uuid.UUID(event["id"])
    offset = datetime.fromisoformat(event["timestamp"]).utcoffset()
    assert offset is not None, event["timestamp"]
    assert offset.total_seconds() == 0, event["timestamp"]
    assert event["source"] == plugin_id
    assert event["topic"] == params["topic"]
    assert params["topic"].startswith("plugin.inbound.")
    return event


@dataclass
class HostReply:
    """What the host answers to one request of the plugin."""

    result: Any = None
    error: tuple[int, str] | None = None
    stream: list[str] = field(default_factory=list)
    silent: bool = False


class DaemonSide:
    """The daemon's side of a conversation with a plugin over two byte streams: what it
    sends, what it reads (each line checked the way the daemon reads it), and its answers
    to the plugin's own requests. PluginHost runs it against a plugin process."""

    def __init__(
        self,
        to_plugin: IO[bytes],
        from_plugin: IO[bytes],
        stderr: IO[bytes] | None,
        *,
        plugin_id: str,
        timeout: float = 5.0,
    ) -> None:
        self.plugin_id = plugin_id
        self.timeout = timeout
        self.notifications: list[dict[str, Any]] = []
        self._to_plugin = to_plugin
        self._script: dict[str, deque[HostReply]] = {}
        self._asked: list[dict[str, Any]] = []
        self._next_id = 1
        self._frames: queue.Queue[dict[str, Any] | str | None] = queue.Queue()
        self._stderr_lines: list[str] = []
        self._write_lock = threading.Lock()
        self._reading = threading.Event()
        self._reading.set()
        self._readers = [
            threading.Thread(target=self._pump_stdout, args=(from_plugin,), daemon=True)
        ]
        if stderr is not None:
            self._readers.append(
                threading.Thread(target=self._pump_stderr, args=(stderr,), daemon=True)
            )
        for reader in self._readers:
            reader.start()

    # -- the daemon's answers to the plugin's requests ------------------------------------

    def answer(
        self,
        method: str,
        *,
        result: Any = None,
        error: tuple[int, str] | None = None,
        stream: list[str] | None = None,
        silent: bool = False,
    ) -> None:
        """Script the next answer to `method`: a result, a JSON-RPC error (code, message),
        llm.complete.delta chunks before the result, or silence (the plugin times out)."""
        reply = HostReply(result, error, list(stream or []), silent)
        self._script.setdefault(method, deque()).append(reply)

    def asked(self, method: str) -> list[Any]:
        """The params of every `method` request the plugin made so far, in order."""
        return [frame.get("params") for frame in list(self._asked) if frame["method"] == method]

    def _respond(self, request: dict[str, Any]) -> None:
        self._asked.append(request)
        script = self._script.get(request["method"])
        if not script:
            reply = HostReply(error=(METHOD_NOT_FOUND, "method not found"))
        else:
            reply = script.popleft() if len(script) > 1 else script[0]
        if reply.silent:
            return
        request_id = request["id"]
        for chunk in reply.stream:
            self.notify("llm.complete.delta", {"request_id": request_id, "chunk": chunk})
        if reply.error is not None:
            code, message = reply.error
            self.send(
                {"jsonrpc": "2.0", "id": request_id, "error": {"code": code, "message": message}}
            )
        else:
            result = {} if reply.result is None else reply.result
            self.send({"jsonrpc": "2.0", "id": request_id, "result": result})

    # -- reading the plugin ----------------------------------------------------------------

    def _pump_stdout(self, stream: IO[bytes]) -> None:
        for line in iter(self._next_line(stream), b""):
            try:
                frame = strict_json(line)
            except ValueError as error:
                self._frames.put(f"stdout line the daemon would drop ({error}): {line[:200]!r}")
                continue
            if not isinstance(frame, dict) or not line.endswith(b"\n"):
                self._frames.put(f"stdout line is not one JSON object: {line[:200]!r}")
            elif "method" in frame and "id" in frame:
                # The plugin may have stopped reading: the test sees it exit.
                with contextlib.suppress(BrokenPipeError, ValueError):
                    self._respond(frame)
            else:
                self._frames.put(frame)
        stream.close()
        self._frames.put(None)  # end of stream

    def _next_line(self, stream: IO[bytes]) -> Callable[[], bytes]:
        def next_line() -> bytes:
            self._reading.wait()
            return stream.readline()

        return next_line

    def stop_reading(self) -> None:
        """Stop reading the plugin's stdout, as a daemon that is stuck does (lines already
        read stay readable); resume_reading() goes on."""
        self._reading.clear()

    def resume_reading(self) -> None:
        self._reading.set()

    def _pump_stderr(self, stream: IO[bytes]) -> None:
        for line in stream:
            self._stderr_lines.append(line.decode("utf-8", "replace"))

    def next_frame(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next notification or response from the plugin, or None once stdout closes."""
        try:
            frame = self._frames.get(timeout=self.timeout if timeout is None else timeout)
        except queue.Empty:
            raise AssertionError(f"no frame from the plugin in time{self.log()}") from None
        if isinstance(frame, str):
            raise AssertionError(frame + self.log())
        return frame

    def received(self) -> list[dict[str, Any]]:
        """Every notification received and not taken yet, without waiting for more."""
        while True:
            try:
                frame = self._frames.get_nowait()
            except queue.Empty:
                break
            if frame is None:  # stdout closed: keep saying so to next_frame()
                self._frames.put(None)
                break
            if isinstance(frame, str):
                raise AssertionError(frame + self.log())
            self.notifications.append(frame)
        return list(self.notifications)

    def next_notification(self, method: str, timeout: float | None = None) -> dict[str, Any]:
        for index, kept in enumerate(self.notifications):
            if kept.get("method") == method:
                return self.notifications.pop(index)
        while (frame := self.next_frame(timeout)) is not None:
            if frame.get("method") == method:
                return frame
            self.notifications.append(frame)
        raise AssertionError(f"stdout closed before a {method} notification{self.log()}")

    # -- writing to the plugin -------------------------------------------------------------

    def send_line(self, line: bytes) -> None:
        """Write raw bytes plus a newline: for malformed-input tests."""
        with self._write_lock:
            self._to_plugin.write(line + b"\n")
            self._to_plugin.flush()

    def send(self, frame: dict[str, Any]) -> None:
        self.send_line(json.dumps(frame).encode("utf-8"))

    def notify(self, method: str, params: Any) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def request(
        self, method: str, params: Any = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """Send a request and return its response frame (result or error); notifications
        that arrive meanwhile are kept for next_notification()."""
        request_id = self._next_id
        self._next_id += 1
        frame: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            frame["params"] = params
        self.send(frame)
        while True:
            reply = self.next_frame(timeout)
            if reply is None:
                raise AssertionError(f"plugin closed stdout before answering {method}{self.log()}")
            if "method" in reply:
                self.notifications.append(reply)
            elif reply.get("id") == request_id:
                return reply
            else:
                raise AssertionError(f"unexpected frame while waiting for {method}: {reply}")

    def initialize(self) -> dict[str, Any]:
        reply = self.request("initialize", {"nexo_version": NEXO_VERSION})
        assert "result" in reply, reply
        result: dict[str, Any] = reply["result"]
        return result

    def invoke_tool(
        self,
        tool_name: str,
        args: Any,
        *,
        agent_id: str = "test-agent",
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """A tool.invoke the way the daemon sends it; the response frame."""
        params = {
            "plugin_id": self.plugin_id,
            "tool_name": tool_name,
            "args": args,
            "agent_id": agent_id,
        }
        return self.request("tool.invoke", params, timeout)

    def close_stdin(self) -> None:
        """End the plugin's input, as a daemon that stops it does."""
        with self._write_lock, contextlib.suppress(BrokenPipeError):
            if not self._to_plugin.closed:
                self._to_plugin.close()

    def log(self) -> str:
        return "\n--- plugin stderr ---\n" + "".join(self._stderr_lines)

    def logged_url(self, words: str) -> str:
        """The first URL the plugin logged after `words` (such as "listening on")."""
        import re

        wait_until(lambda: words in "".join(self._stderr_lines), f"the log line {words!r}")
        found = re.search(re.escape(words) + r" (https?://\S+)", "".join(self._stderr_lines))
        assert found, self.log()
        return found.group(1).rstrip(".,;")


class PluginHost(DaemonSide):
    """One plugin process, spawned the way the daemon does, and the daemon's side of the
    conversation with it (DaemonSide)."""

    def __init__(
        self,
        command: list[str] | None = None,
        *,
        project: Path | None = None,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        host_timeout: float | None = None,
        timeout: float = 5.0,
    ) -> None:
        """Run `command` (default: the project's bin/<id>). `env` is added to this process's
        environment; `host_timeout` shortens how long the plugin waits for the host's
        answers (<ID>_HOST_TIMEOUT)."""
        self.project = project or find_project()
        self.manifest = read_manifest(self.project)
        plugin_id: str = self.manifest["plugin"]["id"]
        environment = {**os.environ, **(env or {})}
        if host_timeout is not None:
            environment[f"{plugin_id.upper()}_HOST_TIMEOUT"] = str(host_timeout)
        self.process = subprocess.Popen(
            command or [str(launcher(self.project))],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            # The daemon does not choose the plugin's working directory.
            cwd=cwd or tempfile.gettempdir(),
            env=environment,
        )
        stdin, stdout, stderr = self.process.stdin, self.process.stdout, self.process.stderr
        assert stdin is not None
        assert stdout is not None
        super().__init__(
            stdin,
            stdout,
            stderr,
            plugin_id=plugin_id,
            timeout=timeout,
        )

    def wait(self, timeout: float | None = None) -> int:
        return self.process.wait(timeout=self.timeout if timeout is None else timeout)

    def stderr(self) -> str:
        """Everything the plugin wrote on stderr (all of it once it has exited)."""
        for reader in self._readers:
            reader.join(timeout=self.timeout if self.process.poll() is not None else 0)
        return "".join(self._stderr_lines)

    def __enter__(self) -> PluginHost:
        return self

    def __exit__(self, *exc_info: object) -> None:
        # Stop it the daemon's gentle way first (closing stdin), so the plugin can finish
        # what it does on stop, coverage data included; kill only what does not stop.
        if self.process.poll() is None:
            try:
                self.close_stdin()
                self.process.wait(timeout=self.timeout)
            except (OSError, ValueError, subprocess.TimeoutExpired):
                self.process.kill()
        self.process.wait()
        for reader in self._readers:
            reader.join(timeout=self.timeout)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None and not stream.closed:
                stream.close()
