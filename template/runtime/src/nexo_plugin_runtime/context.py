"""The plugin as its own code sees it: `PluginContext`, the first argument of every hook.

`PluginContext[Config]` is generic in the handlers' Config dataclass, so `plugin.config` has
its type: write `Plugin = PluginContext[Config]` once in handlers.py and annotate hooks with
it. What a running plugin needs from the session (publishing, background tasks, the host
client) goes through a `Lifecycle`, which the session fills in when it starts: before that,
background tasks wait and a publish is refused (the daemon would drop it).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from .config import ConfigError
from .state import StateFile, open_state

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from nexo_plugin_sdk import BrokerSender

ConfigT = TypeVar("ConfigT")
INBOUND_PREFIX = "plugin.inbound."
OUTBOUND_PREFIX = "plugin.outbound."
# The SDK's own default for memory.recall / llm.complete; <ID>_HOST_TIMEOUT overrides it.
DEFAULT_HOST_TIMEOUT = 30.0
# The longest streamed LLM reply a plugin takes, in characters (plugin.max_stream_chars).
MAX_STREAM_CHARS = 1_000_000
# Event and tool handlers running at once (plugin.max_handlers); the next frames wait.
MAX_HANDLERS = 1000


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
            raise ValueError(f"broker.event on {topic}: `event` is not an object")
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


class StateDirError(RuntimeError):
    """plugin.state_dir cannot be used; the message says which folder and how to fix it."""


@dataclass(frozen=True)
class BackgroundTask:
    """A task started with plugin.run_background(), waiting for or run by the session."""

    func: Callable[..., Awaitable[object]]
    args: tuple[object, ...]
    name: str
    critical: bool


class Runner(Protocol):
    """What a running session does for the plugin's context (session.py)."""

    @property
    def broker(self) -> BrokerSender: ...

    @property
    def backlogged(self) -> bool: ...

    def publish(self, topic: str, payload: Any, source: str, session_id: str | None) -> str: ...

    def pace(self) -> Awaitable[object] | None: ...

    def run_background(self, task: BackgroundTask) -> None: ...


class Lifecycle:
    """The link between a PluginContext and the session that runs it."""

    def __init__(self) -> None:
        self.runner: Runner | None = None
        self.waiting: list[BackgroundTask] = []  # run_background() before the session
        self.stop_callbacks: list[Callable[[], Awaitable[object]]] = []


def published_too_early(topic: str) -> RuntimeError:
    return RuntimeError(
        f"cannot publish on {topic!r} before the handshake: the daemon drops it. Publish "
        "from handlers or from a task started with plugin.run_background()"
    )


def _declared(topic: str, prefixes: tuple[str, ...]) -> bool:
    """topic is one of prefixes, or one of them followed by ".<rest>"."""
    for prefix in prefixes:
        if topic == prefix or (topic.startswith(prefix) and topic[len(prefix)] == "."):
            return True
    return False


class PluginContext(Generic[ConfigT]):
    """The plugin as handlers see it: identity, settings, state, logging, publishing."""

    def __init__(
        self,
        manifest: dict[str, Any],
        config: ConfigT,
        *,
        root: str | None = None,
        lifecycle: Lifecycle | None = None,
    ) -> None:
        plugin = manifest["plugin"]
        self.manifest = manifest
        self.id: str = plugin["id"]
        self.version: str = plugin["version"]
        self.kinds: tuple[str, ...] = tuple(
            channel["kind"] for channel in plugin.get("channels", {}).get("register", [])
        )
        self.log = logging.getLogger(self.id)
        #: The handlers' Config instance (config.py); None without a Config class.
        self.config = config
        #: How long host calls without a timeout wait: <ID>_HOST_TIMEOUT, default 30 s.
        self.host_timeout = self._seconds(f"{self.env_prefix}_HOST_TIMEOUT", DEFAULT_HOST_TIMEOUT)
        #: The longest streamed LLM reply taken (llm_complete_stream), in characters.
        self.max_stream_chars = MAX_STREAM_CHARS
        #: How many event and tool handlers run at once; more frames wait in stdin.
        self.max_handlers = MAX_HANDLERS
        self._root = root
        self._lifecycle = lifecycle or Lifecycle()
        self._state_dir: Path | None = None
        self._inbound = tuple(f"{INBOUND_PREFIX}{kind}" for kind in self.kinds)
        self._outbound = tuple(f"{OUTBOUND_PREFIX}{kind}" for kind in self.kinds)

    @property
    def env_prefix(self) -> str:
        """The prefix of the plugin's environment variables: its id in capitals."""
        return self.id.upper()

    def _seconds(self, variable: str, default: float) -> float:
        text = os.environ.get(variable, "")
        try:
            value = float(text) if text else default
        except ValueError:
            value = -1.0
        if not 0 < value < float("inf"):
            raise ConfigError([f"{variable}={text!r} is not a positive number of seconds"])
        return value

    @property
    def broker(self) -> BrokerSender:
        """The SDK's host client: memory_recall, llm_complete, llm_complete_stream. Calls
        without a timeout wait `host_timeout` seconds. It exists while the plugin runs."""
        runner = self._lifecycle.runner
        if runner is None:
            raise RuntimeError(
                "the host client exists once the plugin runs: call the host from handlers or "
                "from a task started with plugin.run_background(), not from on_start"
            )
        return runner.broker

    @property
    def backlogged(self) -> bool:
        """The daemon is not reading what the plugin writes as fast as it comes: publishes
        wait until it does. A listener can answer "busy" meanwhile (the webhook does)."""
        runner = self._lifecycle.runner
        return runner is not None and runner.backlogged

    @property
    def state_dir(self) -> Path:
        """A private folder for the plugin's state (mode 0700, created on first use).

        `<ID>_STATE_DIR` when set; else the daemon's layout, `$NEXO_STATE_ROOT/plugins/<id>/`;
        else `$XDG_DATA_HOME/nexo/state/plugins/<id>/` (default `~/.local/share/...`). Never
        inside the plugin's own folder, which may be read-only and is replaced on upgrade.
        """
        if self._state_dir is None:
            self._state_dir = self._make_state_dir()
        return self._state_dir

    def _make_state_dir(self) -> Path:
        from pathlib import Path

        override = f"{self.env_prefix}_STATE_DIR"
        if os.environ.get(override):
            path = Path(os.environ[override])
        elif os.environ.get("NEXO_STATE_ROOT"):
            path = Path(os.environ["NEXO_STATE_ROOT"]) / "plugins" / self.id
        else:
            data_home = os.environ.get("XDG_DATA_HOME") or "~/.local/share"
            path = Path(data_home) / "nexo" / "state" / "plugins" / self.id
        path = path.expanduser().absolute()
        hint = f"set {override} to a writable folder outside the plugin"
        if self._root is not None and path.resolve().is_relative_to(Path(self._root).resolve()):
            raise StateDirError(
                f"state folder {path} is inside the plugin's folder {self._root}, which may be "
                f"read-only and is replaced on upgrade; {hint}"
            )
        try:
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            probe = path / ".write-test"
            probe.touch()
            probe.unlink()
        except OSError as error:
            raise StateDirError(
                f"cannot use {path} as the state folder: {error.strerror}; {hint}"
            ) from None
        return path

    def state(self, name: str, default: Any = None) -> StateFile[Any]:
        """A JSON document kept in state_dir across restarts, saved atomically and durably
        (state.py): `load()` gives it (or `default`), `save(value)` replaces it."""
        return open_state(self.state_dir, name, default)

    def inbound_topic(self, outbound_topic: str) -> str:
        """plugin.outbound.<kind>[.<rest>] -> plugin.inbound.<kind>[.<rest>]."""
        if not _declared(outbound_topic, self._outbound):
            raise ValueError(
                f"{outbound_topic!r} is not plugin.outbound.<kind>[.<rest>] for a declared "
                f"channel kind {list(self.kinds)}"
            )
        return INBOUND_PREFIX + outbound_topic[len(OUTBOUND_PREFIX) :]

    async def publish(self, topic: str, payload: Any, *, session_id: str | None = None) -> str:
        """Publish `payload` on `topic` as an event the daemon accepts; returns its id.

        The event gets the UUID `id`, RFC 3339 `timestamp` and `source` the daemon's broker
        requires. Raises ValueError for a topic the daemon would drop or a payload it would
        refuse (NaN, infinities, lone surrogates, other objects), and RuntimeError before the
        handshake (the daemon drops publishes it gets before the `initialize` reply).
        """
        if not _declared(topic, self._inbound):
            raise ValueError(
                f"cannot publish on {topic!r}: the daemon only accepts "
                f"plugin.inbound.<kind>[.<rest>] for the declared kinds {list(self.kinds)}"
            )
        runner = self._lifecycle.runner
        if runner is None:
            raise published_too_early(topic)
        event_id = runner.publish(topic, payload, self.id, session_id)
        if (pause := runner.pace()) is not None:  # the daemon is behind: wait for it
            await pause
        return event_id

    def run_background(
        self,
        func: Callable[..., Awaitable[object]],
        *args: object,
        name: str | None = None,
        critical: bool = False,
    ) -> None:
        """Run `await func(*args)` as a task once the handshake is done (at once if it is).

        For pollers, listeners and connections, which no event starts. The task is cancelled
        and awaited when the plugin stops (shutdown, stdin closed, SIGTERM/SIGINT). A crash is
        logged; with `critical=True` it also stops the plugin with exit code 1, so that the
        daemon restarts it.
        """
        task = BackgroundTask(
            func, args, name or str(getattr(func, "__qualname__", func)), critical
        )
        runner = self._lifecycle.runner
        if runner is None:
            self._lifecycle.waiting.append(task)
        else:
            runner.run_background(task)

    def on_stop(self, callback: Callable[[], Awaitable[object]]) -> None:
        """Await `callback()` when the plugin stops, after on_shutdown: to close a client
        or a listener (the runtime's helpers register theirs here)."""
        self._lifecycle.stop_callbacks.append(callback)
