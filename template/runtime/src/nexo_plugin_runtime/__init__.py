"""The nexo plugin runtime: what a plugin's handlers.py is written against.

This package follows the template (nexo-python-template): `copier update` replaces it, and
`bin/<id> --check` refuses a modified copy. `__all__` is its contract with plugin authors:
a name in it stays, with its meaning, until the template's next major release.

handlers.py may define, all optional (`bin/<id> --check` checks them against the manifest):

    Config                             a dataclass of settings read from the environment
                                       (config.py); the instance is `plugin.config`
    on_start(plugin)                   runs before the plugin answers `initialize`: check
                                       settings, start the capabilities (serve_webhook,
                                       poll_feed), `plugin.run_background(...)`. Raising
                                       refuses the start: no reply, exit 1, the reason on
                                       one line of stderr. A plain `def` lets the plugin
                                       answer before asyncio and the SDK load; `async def`
                                       when it must await
    async on_event(plugin, topic, event)   each broker event on plugin.outbound.<kind>[.<rest>]
    tools                              a Tools registry: the agent tools it serves, exactly
                                       [plugin.extends].tools
    async on_shutdown(plugin)          runs once when the plugin stops, however it stops

`plugin` is a PluginContext[Config] (context.py). Importing this package is cheap: each name
loads its module (and the SDK's names the SDK) on first use.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from nexo_plugin_sdk import (
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
        ToolDenied,
        ToolExecutionFailed,
        ToolInvocationError,
        ToolNotFound,
        ToolUnavailable,
        text_result,
    )

    from .config import ConfigError, Secret
    from .context import InboundEvent, PluginContext, StateDirError
    from .delivery import DeliveryResult, deliver
    from .poll import poll_feed
    from .state import StateFile
    from .tools import ToolCall, Tools
    from .webhook import (
        BadRequest,
        BearerToken,
        HmacSignature,
        WebhookReply,
        WebhookRequest,
        serve_webhook,
    )

__version__ = "1.0.0"

__all__ = [
    "BadRequest",
    "BearerToken",
    "ConfigError",
    "DeliveryResult",
    "HmacSignature",
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
    "StateFile",
    "ToolArgumentInvalid",
    "ToolCall",
    "ToolDenied",
    "ToolExecutionFailed",
    "ToolInvocationError",
    "ToolNotFound",
    "ToolUnavailable",
    "Tools",
    "WebhookReply",
    "WebhookRequest",
    "deliver",
    "poll_feed",
    "serve_webhook",
    "text_result",
]

# Where each name of __all__ is defined ("nexo_plugin_sdk": the SDK's own names).
_MODULES = {
    ".config": ("ConfigError", "Secret"),
    ".context": ("InboundEvent", "PluginContext", "StateDirError"),
    ".delivery": ("DeliveryResult", "deliver"),
    ".poll": ("poll_feed",),
    ".state": ("StateFile",),
    ".tools": ("ToolCall", "Tools"),
    ".webhook": (
        "BadRequest", "BearerToken", "HmacSignature", "WebhookReply", "WebhookRequest",
        "serve_webhook",
    ),
    "nexo_plugin_sdk": (
        "LlmCompleteResult", "LlmStream", "MemoryEntry", "Message", "RpcDecodeError",
        "RpcError", "RpcServerError", "RpcTimeoutError", "RpcTransportError",
        "ToolArgumentInvalid", "ToolDenied", "ToolExecutionFailed", "ToolInvocationError",
        "ToolNotFound", "ToolUnavailable", "text_result",
    ),
}  # fmt: skip
_HOMES = {name: module for module, names in _MODULES.items() for name in names}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(home, __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
