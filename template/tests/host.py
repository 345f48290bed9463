"""A scripted nexo host: spawns the plugin the way the daemon does and speaks
newline-delimited JSON-RPC 2.0 to it. Follows the template; use it in your own tests.

    with PluginHost() as host:
        reply = host.request("initialize", {"nexo_version": "0.1.5"})
        host.notify("broker.event", {"topic": ..., "event": ...})
        publish = host.next_notification("broker.publish")

Every line the plugin writes on stdout must be one JSON object: anything else fails the
test, since the daemon would drop it or lose the next frame.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import tempfile
import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

PROJECT_ROOT = Path(__file__).resolve().parent.parent
MANIFEST_PATH = PROJECT_ROOT / "nexo-plugin.toml"
NEXO_VERSION = "0.1.5"


def read_toml(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text(encoding="utf-8"))


def read_manifest() -> dict[str, Any]:
    return read_toml(MANIFEST_PATH)


def launcher_path() -> Path:
    return PROJECT_ROOT / "bin" / read_manifest()["plugin"]["id"]


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
    event = params["event"]
    assert set(event) >= {"id", "timestamp", "topic", "source", "session_id", "payload"}, event
    uuid.UUID(event["id"])
    offset = datetime.fromisoformat(event["timestamp"]).utcoffset()
    assert offset is not None and offset.total_seconds() == 0, event["timestamp"]
    assert event["source"] == plugin_id
    assert event["topic"] == params["topic"]
    assert params["topic"].startswith("plugin.inbound.")
    return event


class PluginHost:
    """One plugin process and its three pipes."""

    def __init__(
        self,
        command: list[str] | None = None,
        *,
        cwd: str | os.PathLike[str] | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.timeout = timeout
        self.notifications: list[dict[str, Any]] = []
        self._next_id = 1
        self._stdout_lines: queue.Queue[bytes] = queue.Queue()
        self._stderr_lines: list[str] = []
        self.process = subprocess.Popen(
            command or [str(launcher_path())],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            # The daemon does not choose the plugin's working directory.
            cwd=cwd or tempfile.gettempdir(),
            env=env,
        )
        self._readers = [
            threading.Thread(target=self._pump_stdout, daemon=True),
            threading.Thread(target=self._pump_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _pump_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._stdout_lines.put(line)
        self._stdout_lines.put(b"")  # end of stream

    def _pump_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._stderr_lines.append(line.decode("utf-8", "replace"))

    # -- writing -------------------------------------------------------------

    def send_line(self, line: bytes) -> None:
        """Write raw bytes plus a newline: for malformed-input tests."""
        assert self.process.stdin is not None
        self.process.stdin.write(line + b"\n")
        self.process.stdin.flush()

    def send(self, frame: dict[str, Any]) -> None:
        self.send_line(json.dumps(frame).encode("utf-8"))

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def request(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a request and return its response frame (result or error)."""
        request_id = self._next_id
        self._next_id += 1
        frame: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            frame["params"] = params
        self.send(frame)
        while True:
            reply = self.next_frame()
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
        return reply["result"]

    def close_stdin(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()

    # -- reading -------------------------------------------------------------

    def next_frame(self, timeout: float | None = None) -> dict[str, Any] | None:
        """The next stdout frame, or None once stdout is closed."""
        try:
            line = self._stdout_lines.get(timeout=self.timeout if timeout is None else timeout)
        except queue.Empty:
            raise AssertionError(f"no frame from the plugin in time{self.log()}") from None
        if line == b"":
            return None
        try:
            frame = json.loads(line)
        except ValueError:
            raise AssertionError(f"non-JSON line on stdout: {line!r}{self.log()}") from None
        assert isinstance(frame, dict), f"stdout frame is not a JSON object: {line!r}"
        assert line.endswith(b"\n"), f"frame not newline-terminated: {line!r}"
        return frame

    def next_notification(self, method: str) -> dict[str, Any]:
        for index, frame in enumerate(self.notifications):
            if frame.get("method") == method:
                return self.notifications.pop(index)
        while True:
            frame = self.next_frame()
            if frame is None:
                raise AssertionError(f"stdout closed before a {method} notification{self.log()}")
            if frame.get("method") == method:
                return frame
            self.notifications.append(frame)

    def wait(self, timeout: float | None = None) -> int:
        return self.process.wait(timeout=self.timeout if timeout is None else timeout)

    def stderr(self) -> str:
        for reader in self._readers:
            reader.join(timeout=self.timeout if self.process.poll() is not None else 0)
        return "".join(self._stderr_lines)

    def log(self) -> str:
        return "\n--- plugin stderr ---\n" + "".join(self._stderr_lines)

    # -- lifecycle -----------------------------------------------------------

    def __enter__(self) -> PluginHost:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for reader in self._readers:
            reader.join(timeout=self.timeout)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
