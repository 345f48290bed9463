"""An independent scripted nexo host for the template's own tests.

It plays the daemon's side of the plugin contract byte by byte: it writes frames on the
plugin's stdin and reads its stdout with explicit deadlines, insisting that every byte on
stdout belongs to one newline-terminated JSON object. It shares no code with the harness the
template generates (tests/host.py in a plugin), so one cannot hide the other's mistakes.
"""

from __future__ import annotations

import json
import math
import os
import re
import selectors
import subprocess
import time
from pathlib import Path
from typing import Any

INIT = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"nexo_version": "0.1.5"}}


def _not_json(constant: str) -> None:
    raise AssertionError(f"{constant} on stdout: the daemon's JSON parser rejects the line")


def _finite(text: str) -> float:
    value = float(text)
    assert math.isfinite(value), f"{text} on stdout: out of range for the daemon's JSON parser"
    return value


class ScriptedHost:
    def __init__(self, argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self._pending = b""
        self.last_line = b""  # the bytes of the last frame read
        self.stderr = b""
        self._selector = selectors.DefaultSelector()
        for stream in (self.proc.stdout, self.proc.stderr):
            assert stream is not None
            os.set_blocking(stream.fileno(), False)
            self._selector.register(stream, selectors.EVENT_READ)
        self.stdout_open = True

    def write(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, frame: dict[str, Any]) -> None:
        self.write(json.dumps(frame).encode() + b"\n")

    def _pump(self, deadline: float) -> bool:
        """Read whatever is ready before the deadline; False when nothing came."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        events = self._selector.select(remaining)
        for key, _ in events:
            chunk = os.read(key.fileobj.fileno(), 65536)
            if key.fileobj is self.proc.stdout:
                if not chunk:
                    self.stdout_open = False
                    self._selector.unregister(key.fileobj)
                self._pending += chunk
            else:
                if not chunk:
                    self._selector.unregister(key.fileobj)
                self.stderr += chunk
        return bool(events)

    def logged(self, pattern: bytes, timeout: float = 10.0) -> re.Match[bytes]:
        """Wait until stderr holds `pattern` (a regular expression); the match."""
        deadline = time.monotonic() + timeout
        while not (found := re.search(pattern, self.stderr)):
            if not self._pump(deadline) and time.monotonic() >= deadline:
                raise AssertionError(f"{pattern!r} not logged in {timeout}s\n{self.stderr_text()}")
        return found

    def frame(self, timeout: float = 5.0) -> dict[str, Any]:
        """The next stdout line, which must be exactly one JSON object."""
        deadline = time.monotonic() + timeout
        while b"\n" not in self._pending:
            if not self.stdout_open:
                raise AssertionError(f"stdout closed; left {self._pending!r}\n{self.stderr_text()}")
            if not self._pump(deadline):
                raise AssertionError(f"no frame within {timeout}s\n{self.stderr_text()}")
        line, self._pending = self._pending.split(b"\n", 1)
        self.last_line = line
        frame = json.loads(line, parse_constant=_not_json, parse_float=_finite)
        assert isinstance(frame, dict), line
        return frame

    def call(self, frame: dict[str, Any]) -> dict[str, Any]:
        """Send a request; the very next frame must be its response."""
        self.send(frame)
        reply = self.frame()
        assert reply.get("jsonrpc") == "2.0", reply
        assert reply.get("id") == frame["id"], reply
        return reply

    def rest(self, timeout: float = 5.0) -> list[dict[str, Any]]:
        """Every frame left until the plugin closes stdout."""
        deadline = time.monotonic() + timeout
        frames = []
        while self.stdout_open or b"\n" in self._pending:
            if b"\n" in self._pending:
                frames.append(self.frame(timeout=max(deadline - time.monotonic(), 0.1)))
            elif not self._pump(deadline) and time.monotonic() >= deadline:
                raise AssertionError(f"stdout still open after {timeout}s\n{self.stderr_text()}")
        return frames

    def no_more_output(self, timeout: float = 5.0) -> None:
        """Drain until stdout closes; anything left on stdout is a failure."""
        deadline = time.monotonic() + timeout
        while self.stdout_open and self._pump(deadline):
            pass
        assert self._pending == b"", f"unexpected stdout: {self._pending!r}"

    def exit_code(self, timeout: float = 5.0) -> int:
        self.no_more_output(timeout)
        return self.proc.wait(timeout=timeout)

    def stderr_text(self) -> str:
        return "--- plugin stderr ---\n" + self.stderr.decode("utf-8", "replace")

    def __enter__(self) -> ScriptedHost:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._selector.close()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
