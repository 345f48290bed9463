"""A scripted nexo host: spawns the plugin the way the daemon does and plays the daemon's
side of the protocol. Follows the template; use it in your own tests.

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
strict-JSON object: anything else fails the test, since the daemon would drop it.
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
from typing import Any

from nexo_plugin_sdk import read_manifest as parse_manifest

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MANIFEST_PATH = PROJECT_ROOT / "nexo-plugin.toml"
NEXO_VERSION = "0.1.5"
# What the daemon answers for a method it does not serve.
METHOD_NOT_FOUND = -32601


def read_manifest() -> dict[str, Any]:
    """nexo-plugin.toml, read as the SDK reads it."""
    return parse_manifest(MANIFEST_PATH.read_text(encoding="utf-8"))


def plugin_id() -> str:
    plugin_id: str = read_manifest()["plugin"]["id"]
    return plugin_id


def launcher_path() -> Path:
    return PROJECT_ROOT / "bin" / plugin_id()


def env_prefix() -> str:
    """The prefix of the plugin's environment variables: its id in capitals."""
    return plugin_id().upper()


def strict_json(line: bytes | str) -> Any:
    """Parse JSON the way the daemon (serde_json) does: no NaN, no infinities. Written apart
    from the plugin's frames.py on purpose: the host must not share what it checks."""

    def reject(constant: str) -> None:
        raise ValueError(f"{constant} is not JSON")

    def finite(text: str) -> float:
        value = float(text)
        if not math.isfinite(value):
            raise ValueError(f"{text} is out of range")
        return value

    return json.loads(line, parse_constant=reject, parse_float=finite)


def run_plugin(
    *args: str,
    input: bytes | None = b"",
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    timeout: float = 10.0,
) -> subprocess.CompletedProcess[bytes]:
    """One run of bin/<id> with `args`, `input` on stdin (None: /dev/null), to the end."""
    return subprocess.run(
        [str(launcher_path()), *args],
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


def broker_event(topic: str, payload: Any, *, session_id: str | None = None) -> dict[str, Any]:
    """broker.event params the way the daemon sends them."""
    return {
        "topic": topic,
        "event": {
            "id": str(uuid.uuid4()),
            "timestamp": datetime.now(timezone.utc).isoformat(),
            "topic": topic,
            "source": "test-agent",
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


class PluginHost:
    """One plugin process, its three pipes, and the daemon's side of the conversation."""

    def __init__(
        self,
        command: list[str] | None = None,
        *,
        cwd: str | os.PathLike[str] | None = None,
        env: Mapping[str, str] | None = None,
        host_timeout: float | None = None,
        timeout: float = 5.0,
    ) -> None:
        """`env` is added to this process's environment; `host_timeout` shortens how long
        the plugin waits for the host's answers (<ID>_HOST_TIMEOUT)."""
        self.timeout = timeout
        self.notifications: list[dict[str, Any]] = []
        self._script: dict[str, deque[HostReply]] = {}
        self._asked: list[dict[str, Any]] = []
        self._next_id = 1
        self._frames: queue.Queue[dict[str, Any] | str | None] = queue.Queue()
        self._stderr_lines: list[str] = []
        self._write_lock = threading.Lock()
        environment = {**os.environ, **(env or {})}
        if host_timeout is not None:
            environment[f"{env_prefix()}_HOST_TIMEOUT"] = str(host_timeout)
        self.process = subprocess.Popen(
            command or [str(launcher_path())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            # The daemon does not choose the plugin's working directory.
            cwd=cwd or tempfile.gettempdir(),
            env=environment,
        )
        self._readers = [
            threading.Thread(target=self._pump_stdout, daemon=True),
            threading.Thread(target=self._pump_stderr, daemon=True),
        ]
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

    def _pump_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            try:
                frame = strict_json(line)
            except ValueError:
                self._frames.put(f"stdout line is not strict JSON: {line!r}")
                continue
            if not isinstance(frame, dict) or not line.endswith(b"\n"):
                self._frames.put(f"stdout line is not one JSON object: {line!r}")
            elif "method" in frame and "id" in frame:
                # The plugin may have stopped reading: the test sees it exit.
                with contextlib.suppress(BrokenPipeError, ValueError):
                    self._respond(frame)
            else:
                self._frames.put(frame)
        self._frames.put(None)  # end of stream

    def _pump_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
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
        assert self.process.stdin is not None
        with self._write_lock:
            self.process.stdin.write(line + b"\n")
            self.process.stdin.flush()

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
            "plugin_id": plugin_id(),
            "tool_name": tool_name,
            "args": args,
            "agent_id": agent_id,
        }
        return self.request("tool.invoke", params, timeout)

    def close_stdin(self) -> None:
        assert self.process.stdin is not None
        with self._write_lock:
            self.process.stdin.close()

    # -- the process -----------------------------------------------------------------------

    def wait(self, timeout: float | None = None) -> int:
        return self.process.wait(timeout=self.timeout if timeout is None else timeout)

    def stderr(self) -> str:
        for reader in self._readers:
            reader.join(timeout=self.timeout if self.process.poll() is not None else 0)
        return "".join(self._stderr_lines)

    def log(self) -> str:
        return "\n--- plugin stderr ---\n" + "".join(self._stderr_lines)

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
