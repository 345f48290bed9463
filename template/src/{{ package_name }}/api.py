"""What handlers.py is written against: the plugin as its own code sees it.

This file follows the template (`copier update` refreshes it). Its `__all__` is a contract:
a handlers.py written for an earlier template version keeps working after an update.

handlers.py may define, all optional (`bin/<id> --check` checks them against the manifest):

    Config                             a dataclass of settings read from the environment
                                       (config.py); the instance is `plugin.config`
    on_start(plugin)                   runs before the plugin answers `initialize`: check
                                       settings, open clients, `plugin.run_background(...)`.
                                       Raising refuses the start: no reply, exit 1, the
                                       reason on one line of stderr. A plain `def` lets
                                       the plugin answer before asyncio and the SDK load
                                       (main.py); `async def` when it must await
    async on_event(plugin, topic, event)   each broker event on plugin.outbound.<kind>[.<rest>]
    tools(plugin) -> list[ToolDef]     the agent tools served: exactly [plugin.extends].tools
    async on_tool(plugin, invocation)  answers tool.invoke: a result, or a ToolInvocationError
    async on_shutdown(plugin)          runs once when the plugin stops, however it stops
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field

from .config import ConfigError, Secret

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path
    from typing import Any

    from nexo_plugin_sdk import (
        BrokerSender,
        LlmCompleteResult,
        LlmStream,
        MemoryEntry,
        Message,
        RpcDecodeError,
        RpcError,
        RpcServerError,
        RpcTimeoutError,
        RpcTransportError,
        ToolArgumentInvalid,
        ToolDef,
        ToolDenied,
        ToolExecutionFailed,
        ToolInvocation,
        ToolInvocationError,
        ToolNotFound,
        ToolUnavailable,
        text_result,
    )

    from .sdk_adapter import BackgroundTask, Session

__all__ = [
    "ConfigError",
    "InboundEvent",
    "LlmCompleteResult",
    "LlmStream",
    "MemoryEntry",
    "Message",
    "PluginContext",
    "RpcDecodeError",
    "RpcError",
    "RpcServerError",
    "RpcTimeoutError",
    "RpcTransportError",
    "Secret",
    "StateDirError",
    "ToolArgumentInvalid",
    "ToolDef",
    "ToolDenied",
    "ToolExecutionFailed",
    "ToolInvocation",
    "ToolInvocationError",
    "ToolNotFound",
    "ToolUnavailable",
    "text_result",
]

# The SDK's names above load with the SDK (and asyncio) on first use, not with this module:
# a plugin that needs neither before its handshake answers it sooner (main.py).
_FROM_THE_SDK = frozenset(__all__) - {"ConfigError", "InboundEvent", "PluginContext", "Secret",
                                      "StateDirError"}  # fmt: skip


def __getattr__(name: str) -> object:
    if name not in _FROM_THE_SDK:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import nexo_plugin_sdk

    value = getattr(nexo_plugin_sdk, name)
    globals()[name] = value
    return value


INBOUND_PREFIX = "plugin.inbound."
OUTBOUND_PREFIX = "plugin.outbound."
# The SDK's own default for memory.recall / llm.complete; <ID>_HOST_TIMEOUT overrides it.
DEFAULT_HOST_TIMEOUT = 30.0


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


class StateDirError(RuntimeError):
    """plugin.state_dir cannot be used; the message says which folder and how to fix it."""


def _declared(topic: str, prefixes: tuple[str, ...]) -> bool:
    """topic is one of prefixes, or one of them followed by ".<rest>"."""
    for prefix in prefixes:
        if topic == prefix or (topic.startswith(prefix) and topic[len(prefix)] == "."):
            return True
    return False


class PluginContext:
    """The plugin as handlers see it: identity, settings, state, logging, publishing."""

    def __init__(self, manifest: dict[str, Any], root: str | None = None) -> None:
        plugin = manifest["plugin"]
        self.manifest = manifest
        self.id: str = plugin["id"]
        self.version: str = plugin["version"]
        self.kinds: tuple[str, ...] = tuple(
            channel["kind"] for channel in plugin.get("channels", {}).get("register", [])
        )
        self.log = logging.getLogger(self.id)
        #: The handlers' Config instance (see config.py), None without a Config class.
        self.config: Any = None
        #: The SDK's host client (memory_recall, llm_complete, llm_complete_stream), set
        #: when the plugin runs; calls without a timeout wait `host_timeout` seconds.
        self.broker: BrokerSender | None = None
        self.host_timeout = self._seconds(f"{self.env_prefix}_HOST_TIMEOUT", DEFAULT_HOST_TIMEOUT)
        self._root = root
        self._state_dir: Path | None = None
        self._session: Session | None = None
        self._before_session: list[BackgroundTask] = []  # run_background() from on_start
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
        requires. Raises ValueError for a topic the daemon would drop or a payload that is not
        strict JSON (NaN, infinities, other objects), and RuntimeError before the handshake
        (the daemon drops publishes it gets before the `initialize` reply).
        """
        if not _declared(topic, self._inbound):
            raise ValueError(
                f"cannot publish on {topic!r}: the daemon only accepts "
                f"plugin.inbound.<kind>[.<rest>] for the declared kinds {list(self.kinds)}"
            )
        return self._running().publish(topic, payload, self.id, session_id)

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
        logged; with `critical=True` it also stops the plugin with exit code 1.
        """
        task_name = name or str(getattr(func, "__qualname__", func))
        if self._session is None:  # from a plain on_start: the session takes them over
            self._before_session.append((func, args, task_name, critical))
        else:
            self._session.run_background(func, args, task_name, critical)

    def _running(self) -> Session:
        if self._session is None:
            raise RuntimeError(
                "cannot publish before the handshake: the daemon drops it. Publish from "
                "handlers or from a task started with plugin.run_background()"
            )
        return self._session
