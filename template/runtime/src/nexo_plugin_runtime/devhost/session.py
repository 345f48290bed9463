"""One dev session: the plugin spawned as the daemon spawns it, the daemon's side of the
protocol, and a log of everything that crosses the pipes, read by the prompt, the web
inspector and the recorder alike.

The session keeps its log across restarts of the plugin. It sends what the author asks
(broker events, tool calls checked against the tool's input_schema, shutdown), answers the
plugin's requests (answers.py), and notes what the daemon would drop (checks.py).
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from nexo_plugin_runtime.testing.host import (
    NEXO_VERSION,
    broker_event,
    launcher,
    read_manifest,
    strict_json,
)

from .answers import Chunk, Reply
from .checks import HOST_METHODS, frame_problems
from .settings import DevSettings
from .stub import HttpStub

# How long the daemon waits for the initialize reply before it kills the plugin.
INITIALIZE_TIMEOUT = 5.0
# What the log keeps of a frame in its one-line text (the frame itself is kept whole).
TEXT_LIMIT = 240


class UsageError(ValueError):
    """What the author asked cannot be sent; the message says why and what would do."""


class Answerer(Protocol):
    def answer(self, method: str, params: Any, on_chunk: Chunk) -> Reply: ...


@dataclass(frozen=True)
class Entry:
    """One line of the session's log.

    kind: "host" (the host's request or event), "plugin" (the plugin's reply or publish),
    "call" (the plugin's request to the host), "answer" (the host's answer to one),
    "stderr", "flag" (what the daemon would drop or refuse), "note", "restart"."""

    seq: int
    at: float  # seconds since the session began
    kind: str
    text: str
    frame: Any = None
    latency: float | None = None  # a reply's time since its request, a publish's since the event

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "at": self.at,
            "kind": self.kind,
            "text": self.text,
            "frame": self.frame,
            "latency": self.latency,
        }


def compact(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False)
    return text if len(text) <= TEXT_LIMIT else text[: TEXT_LIMIT - 3] + "..."


def summary(frame: dict[str, Any]) -> str:
    """A frame in one readable line: method, topic or tool, payload."""
    method, params = frame.get("method"), frame.get("params")
    if method is None:
        if "error" in frame:
            error = frame["error"] if isinstance(frame["error"], dict) else {}
            return f"error #{frame.get('id')}: {error.get('code')} {error.get('message')}"
        return f"result #{frame.get('id')}: {compact(frame.get('result'))}"
    if not isinstance(params, dict):
        return method if params is None else f"{method} {compact(params)}"
    if method in ("broker.event", "broker.publish"):
        event = params["event"] if isinstance(params.get("event"), dict) else {}
        return f"{method} {params.get('topic')} {compact(event.get('payload'))}"
    if method == "tool.invoke":
        return f"tool.invoke {params.get('tool_name')} {compact(params.get('args'))}"
    if method == "llm.complete.delta":
        return f"llm.complete.delta {compact(params.get('chunk'))}"
    number = f" #{frame['id']}" if "id" in frame else ""
    return f"{method}{number} {compact(params)}"


def argument_problems(schema: Any, args: Any) -> list[str]:
    """Where `args` breaks the tool's input_schema, each said once."""
    from jsonschema import validators

    validator = validators.validator_for(schema)(schema)
    problems = []
    for error in sorted(validator.iter_errors(args), key=lambda error: list(error.path)):
        where = "/".join(str(part) for part in error.absolute_path) or "arguments"
        problems.append(f"{where}: {error.message}")
    return problems


@dataclass
class _Waiter:
    method: str
    sent: float
    done: threading.Event = field(default_factory=threading.Event)
    reply: dict[str, Any] | None = None


class DevSession:
    """The plugin of `project` (or `command`, such as an installed copy's launcher) under
    the dev host. `env` is added to the plugin's environment."""

    def __init__(
        self,
        project: Path,
        answers: Answerer,
        *,
        command: list[str] | None = None,
        env: Mapping[str, str] | None = None,
        agent: str = "dev-agent",
    ) -> None:
        self.project = project
        self.answers = answers
        self.agent = agent
        self.manifest = read_manifest(project)
        self.plugin_id: str = self.manifest["plugin"]["id"]
        channels = self.manifest["plugin"].get("channels", {}).get("register", [])
        self.kinds: list[str] = [channel["kind"] for channel in channels]
        self.command = command or [str(launcher(project))]
        self.env = dict(env or {})
        self.entries: list[Entry] = []
        self.listeners: list[Callable[[Entry], None]] = []
        self.tools: list[dict[str, Any]] = []
        self.process: subprocess.Popen[bytes] | None = None
        self._began = time.monotonic()
        self._log_lock = threading.RLock()
        self._write_lock = threading.Lock()
        self._pending: dict[int, _Waiter] = {}
        self._ids = itertools.count(1)
        self._initialize_id: int | None = None
        self._initialized = False
        self._last_event = 0.0
        self._readers: list[threading.Thread] = []

    # -- the log ----------------------------------------------------------------------------

    def add(self, kind: str, text: str, frame: Any = None, latency: float | None = None) -> Entry:
        with self._log_lock:
            at = round(time.monotonic() - self._began, 3)
            entry = Entry(len(self.entries), at, kind, text, frame, latency)
            self.entries.append(entry)
            for listener in list(self.listeners):
                listener(entry)
        return entry

    def since(self, seq: int, *kinds: str) -> list[Entry]:
        """The entries from number `seq` on, of the given kinds (all when none given)."""
        with self._log_lock:
            return [entry for entry in self.entries[seq:] if not kinds or entry.kind in kinds]

    def wait_quiet(self, quiet: float = 0.3, timeout: float = 5.0) -> None:
        """Return once nothing was logged for `quiet` seconds (or after `timeout`)."""
        deadline = time.monotonic() + timeout
        seen = len(self.entries)
        calm_since = time.monotonic()
        while time.monotonic() < deadline:
            time.sleep(0.02)
            if len(self.entries) != seen:
                seen, calm_since = len(self.entries), time.monotonic()
            elif time.monotonic() - calm_since >= quiet:
                return

    # -- the plugin process ----------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> bool:
        """Spawn the plugin and do the handshake; False when it does not come up (the log
        says why: its stderr, its exit code, or the daemon's timeout)."""
        self._initialized = False
        self.process = subprocess.Popen(
            self.command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            # The daemon does not choose the plugin's working directory.
            cwd=tempfile.gettempdir(),
            env={**os.environ, **self.env},
        )
        process = self.process
        assert process.stdout is not None
        assert process.stderr is not None
        self._readers = [
            threading.Thread(target=self._read_stdout, args=(process,), daemon=True),
            threading.Thread(target=self._read_stderr, args=(process.stderr,), daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        self.add("note", f"started {' '.join(self.command)} (pid {process.pid})")
        self._initialize_id = None
        reply = self.request(
            "initialize", {"nexo_version": NEXO_VERSION}, timeout=INITIALIZE_TIMEOUT
        )
        if reply is None:
            if self.running:
                self.add(
                    "flag", f"no initialize reply in {INITIALIZE_TIMEOUT:g} s: the daemon kills it"
                )
                self.stop()
            return False
        result = reply.get("result")
        if not isinstance(result, dict):
            self.add("flag", "initialize failed: the daemon stops the plugin")
            self.stop()
            return False
        plugin = (
            result.get("manifest", {}).get("plugin", {})
            if isinstance(result.get("manifest"), dict)
            else {}
        )
        if plugin.get("id") != self.plugin_id:
            self.add(
                "flag",
                f"initialize names the plugin {plugin.get('id')!r}, not {self.plugin_id!r}: "
                "the daemon refuses it",
            )
        self.tools = [tool for tool in result.get("tools") or [] if isinstance(tool, dict)]
        return True

    def stop(self, grace: float = 2.0) -> None:
        """Stop the plugin the daemon's gentle way, closing its stdin; kill it after `grace`."""
        process = self.process
        if process is None:
            return
        with self._write_lock, contextlib.suppress(OSError):
            if process.stdin is not None:
                process.stdin.close()
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.add(
                "flag", f"the plugin did not stop within {grace:g} s of its stdin closing: killed"
            )
            process.kill()
            process.wait()
        for reader in self._readers:
            reader.join(timeout=grace)

    def restart(self, reason: str) -> bool:
        self.add("restart", f"{reason}: restarting the plugin")
        self.stop()
        return self.start()

    def shutdown(self) -> int | None:
        """The daemon's shutdown: the request, then SIGKILL after a second; the exit code."""
        if not self.running:
            return None if self.process is None else self.process.returncode
        self.request("shutdown", timeout=1.0)
        assert self.process is not None
        try:
            return self.process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            self.add("flag", "still running 1 s after shutdown: the daemon kills it")
            self.process.kill()
            return self.process.wait()

    # -- what the author sends -------------------------------------------------------------

    def send(self, frame: dict[str, Any], kind: str = "host") -> None:
        line = json.dumps(frame, ensure_ascii=False).encode("utf-8") + b"\n"
        process = self.process
        if process is None or process.stdin is None:
            raise UsageError("the plugin is not running")
        with self._write_lock:
            try:
                process.stdin.write(line)
                process.stdin.flush()
            except (OSError, ValueError):
                raise UsageError("the plugin is not running (its stdin is closed)") from None
            self.add(kind, summary(frame), frame)

    def notify(self, method: str, params: Any) -> None:
        self.send({"jsonrpc": "2.0", "method": method, "params": params})

    def request(
        self, method: str, params: Any = None, timeout: float = 30.0
    ) -> dict[str, Any] | None:
        """Send a request; its reply frame, or None if none came in `timeout` seconds."""
        request_id = next(self._ids)
        if method == "initialize":
            self._initialize_id = request_id
        waiter = _Waiter(method, time.monotonic())
        self._pending[request_id] = waiter
        frame: dict[str, Any] = {"jsonrpc": "2.0", "id": request_id, "method": method}
        if params is not None:
            frame["params"] = params
        try:
            self.send(frame)
        except UsageError:
            self._pending.pop(request_id, None)
            raise
        if not waiter.done.wait(timeout):
            self._pending.pop(request_id, None)
            if self.running:
                self.add("flag", f"no reply to {method} #{request_id} in {timeout:g} s")
        return waiter.reply

    def event_topics(self) -> list[str]:
        """The topics the daemon sends the plugin events on (and their .more)."""
        return [f"plugin.outbound.{kind}" for kind in self.kinds]

    def publish(self, payload: Any, topic: str | None = None) -> str:
        """A broker.event to the plugin, as the daemon delivers an agent's message; its id."""
        if not self.kinds:
            raise UsageError("the plugin declares no channel, so it takes no events; try its tools")
        topic = topic or f"plugin.outbound.{self.kinds[0]}"
        if not any(
            topic == f"plugin.outbound.{k}" or topic.startswith(f"plugin.outbound.{k}.")
            for k in self.kinds
        ):
            raise UsageError(
                f"the daemon sends the plugin only {', '.join(self.event_topics())} (and .more), "
                f"not {topic!r}"
            )
        params = broker_event(topic, payload, source=self.agent)
        self._last_event = time.monotonic()
        self.notify("broker.event", params)
        event_id: str = params["event"]["id"]
        return event_id

    def tool(self, name: str) -> dict[str, Any]:
        for tool in self.tools:
            if tool.get("name") == name:
                return tool
        names = ", ".join(str(tool.get("name")) for tool in self.tools) or "none"
        raise UsageError(f"the plugin has no tool {name!r} (its tools: {names})")

    def invoke_tool(self, name: str, args: Any, timeout: float = 30.0) -> dict[str, Any] | None:
        """tool.invoke, once `args` fit the tool's input_schema; its reply frame."""
        problems = argument_problems(self.tool(name).get("input_schema") or {}, args)
        if problems:
            raise UsageError(
                f"not sent, the arguments do not fit {name}'s input_schema: " + "; ".join(problems)
            )
        params = {
            "plugin_id": self.plugin_id,
            "tool_name": name,
            "args": args,
            "agent_id": self.agent,
        }
        return self.request("tool.invoke", params, timeout)

    # -- reading the plugin ----------------------------------------------------------------

    def _read_stdout(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            self._read_line(line)
        process.stdout.close()
        code = process.wait()
        self.add("note", f"the plugin exited with {code}")
        for request_id in list(self._pending):
            waiter = self._pending.pop(request_id, None)
            if waiter is not None:
                waiter.done.set()

    def _read_stderr(self, stream: IO[bytes]) -> None:
        for line in stream:
            self.add("stderr", line.decode("utf-8", "replace").rstrip("\r\n"))
        stream.close()

    def _read_line(self, line: bytes) -> None:
        try:
            frame = strict_json(line)
        except ValueError as error:
            self.add("flag", f"the daemon drops this stdout line ({error}): {line[:200]!r}")
            return
        if not isinstance(frame, dict) or not line.endswith(b"\n"):
            self.add(
                "flag", f"the daemon drops this stdout line (not one JSON object): {line[:200]!r}"
            )
            return
        if "method" not in frame:
            self._read_reply(frame)
            return
        method = frame["method"]
        calling = "id" in frame
        latency = None
        if method == "broker.publish" and self._last_event:
            latency = round(time.monotonic() - self._last_event, 4)
        self.add("call" if calling else "plugin", summary(frame), frame, latency)
        for problem in frame_problems(frame, kinds=self.kinds, initialized=self._initialized):
            self.add("flag", problem)
        if calling:
            answering = threading.Thread(target=self._answer, args=(frame,), daemon=True)
            answering.start()

    def _read_reply(self, frame: dict[str, Any]) -> None:
        request_id = frame.get("id")
        waiter = self._pending.pop(request_id, None) if isinstance(request_id, int) else None
        if request_id == self._initialize_id and "result" in frame:
            self._initialized = True  # before the lines that follow are checked
        latency = None if waiter is None else round(time.monotonic() - waiter.sent, 4)
        self.add("plugin", summary(frame), frame, latency)
        if waiter is None:
            self.add(
                "flag",
                f"a reply to no request of the host (id {frame.get('id')!r}): "
                "the daemon ignores it",
            )
            return
        waiter.reply = frame
        waiter.done.set()

    def _answer(self, request: dict[str, Any]) -> None:
        request_id, method = request["id"], request["method"]

        def chunk(text: str) -> None:
            params = {"request_id": request_id, "chunk": text}
            self.send(
                {"jsonrpc": "2.0", "method": "llm.complete.delta", "params": params}, "answer"
            )

        with contextlib.suppress(UsageError):  # the plugin is gone: nothing to answer
            if method not in HOST_METHODS:
                reply = Reply(error=(-32601, f"the daemon serves no method {method!r}"))
            else:
                reply = self.answers.answer(method, request.get("params"), chunk)
            if reply.silent:
                self.add("note", f"the host leaves {method} #{request_id} unanswered")
            elif reply.error is not None:
                code, message = reply.error
                error = {"code": code, "message": message}
                self.send({"jsonrpc": "2.0", "id": request_id, "error": error}, "answer")
            else:
                result = {} if reply.result is None else reply.result
                self.send({"jsonrpc": "2.0", "id": request_id, "result": result}, "answer")


@contextlib.contextmanager
def open_session(
    project: Path,
    answers: Answerer,
    settings: DevSettings,
    *,
    command: list[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Iterator[DevSession]:
    """A session (not started yet) with nexo-dev.toml's settings and HTTP stub; `env`
    adds to, or overrides, its [env], and so does a variable set in this process's
    environment. Stopped, with the stub, on the way out."""
    shown: list[DevSession] = []

    def show(text: str) -> None:
        if shown:
            shown[0].add("http", text)

    stub = HttpStub(settings.http, show)
    try:
        state = Path(tempfile.gettempdir()) / f"nexo-dev-{read_manifest(project)['plugin']['id']}"
        defaults = settings.plugin_env(stub.url, str(state))
        environment = {name: value for name, value in defaults.items() if name not in os.environ}
        environment.update(env or {})
        session = DevSession(
            project, answers, command=command, env=environment, agent=settings.agent
        )
        shown.append(session)
        try:
            yield session
        finally:
            session.stop()
    finally:
        stub.close()
