"""Everything that must hold before the plugin answers `initialize`.

A plugin that cannot serve must say so before the handshake and exit non-zero: after a
reply, the daemon would see a crash loop instead of a refused start. So, in order:
handlers.py is imported, its hooks have the right form, the manifest and the handlers agree
(tools and settings, both ways), the Config is read from the environment, and on_start
succeeds. `bin/<id> --check` runs the first three without the environment or on_start.

Nothing here loads asyncio or the SDK's session: when on_start is a plain function (or
missing), process.py answers `initialize` as soon as these checks pass, and loads them
after.
"""

from __future__ import annotations

import importlib
import os
from importlib.machinery import PathFinder

from . import config
from .context import Lifecycle, PluginContext
from .tools import Tools

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from types import ModuleType
    from typing import Any

    from .manifest import Manifest

    Hook = Callable[..., Awaitable[Any]]

# The daemon kills a plugin that has not answered `initialize` 5 s after its start.
START_TIMEOUT_SECONDS = 4.0
ASYNC_HOOKS = ("on_event", "on_shutdown")
CO_COROUTINE = 0x80  # inspect.CO_COROUTINE, without loading inspect


def is_async(function: object) -> bool:
    """An `async def` function (inspect.iscoroutinefunction, for the plain functions hooks
    are; anything else asks inspect)."""
    code = getattr(function, "__code__", None)
    if code is not None and type(function).__name__ == "function":
        return bool(code.co_flags & CO_COROUTINE)
    import inspect

    return inspect.iscoroutinefunction(function)


class StartError(Exception):
    """The plugin cannot serve; `problems` says why, each with how to fix it."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


class LoadedPlugin:
    """handlers.py, checked against the manifest; `plugin` once prepare() has run."""

    def __init__(self, manifest: Manifest, handlers: ModuleType) -> None:
        self.manifest = manifest
        self.lifecycle = Lifecycle()
        self.config_class: type | None = getattr(handlers, "Config", None)
        on_start = getattr(handlers, "on_start", None)
        self.on_start: Callable[..., Any] | None = on_start if callable(on_start) else None
        self.on_start_is_not_a_function = on_start is not None and not callable(on_start)
        self.on_event: Hook | None = getattr(handlers, "on_event", None)
        self.on_shutdown: Hook | None = getattr(handlers, "on_shutdown", None)
        tools = getattr(handlers, "tools", None)
        self.tools: Tools = tools if isinstance(tools, Tools) else Tools()
        self.plugin: PluginContext[Any] | None = None

    @property
    def tool_names(self) -> list[str]:
        return self.tools.names(self.manifest.id)

    @property
    def starts_in_the_loop(self) -> bool:
        """on_start is `async def`: asyncio must run before the plugin can answer."""
        return self.on_start is not None and is_async(self.on_start)

    def running(self) -> PluginContext[Any]:
        if self.plugin is None:
            raise RuntimeError("the plugin is not prepared: run startup.prepare() first")
        return self.plugin

    def initialize_result(self) -> dict[str, Any]:
        """The result of the `initialize` reply, as the SDK builds it."""
        result: dict[str, Any] = {
            "manifest": self.manifest.data,
            "server_version": f"{self.manifest.id}-{self.manifest.version}",
        }
        if self.tool_names:
            result["tools"] = [tool.to_json() for tool in self.tools.definitions(self.manifest.id)]
        return result


def load(manifest: Manifest) -> LoadedPlugin:
    """Import handlers.py and check it against the manifest; StartError lists every problem."""
    # The session loads the SDK after an early answer to initialize: it must be there.
    if PathFinder.find_spec("nexo_plugin_sdk") is None:
        raise StartError([
            "the nexoai SDK (nexo_plugin_sdk) is not installed: in a checkout, install the "
            "dependencies (`uv sync`); an installed plugin vendors it in lib/"
        ])  # fmt: skip
    try:
        handlers = importlib.import_module(f"{manifest.package}.handlers")
    except Exception as error:
        raise StartError([f"cannot import handlers.py: {type(error).__name__}: {error}"]) from None
    loaded = LoadedPlugin(manifest, handlers)
    problems = [
        f"handlers.{name} must be an `async def` function"
        for name in ASYNC_HOOKS
        if getattr(loaded, name) is not None and not is_async(getattr(loaded, name))
    ]
    if loaded.on_start_is_not_a_function:
        problems.append("handlers.on_start must be a function")
    tools = getattr(handlers, "tools", None)
    if tools is not None and not isinstance(tools, Tools):
        problems.append(
            "handlers.tools must be a Tools registry (`tools = Tools()`, then @tools.tool(...) "
            "on each tool function)"
        )
    problems += _tool_problems(loaded)
    problems += _config_problems(loaded)
    if problems:
        raise StartError(problems)
    return loaded


def _tool_problems(loaded: LoadedPlugin) -> list[str]:
    declared = loaded.manifest.data["plugin"].get("extends", {}).get("tools", [])
    served = loaded.tool_names
    problems = []
    if missing := sorted(set(declared) - set(served)):
        problems.append(
            f"nexo-plugin.toml declares tools {missing} in [plugin.extends].tools that "
            "handlers.tools does not serve: serve them, or remove them from the manifest"
        )
    if undeclared := sorted(set(served) - set(declared)):
        problems.append(
            f"handlers.tools serves {undeclared}, which [plugin.extends].tools in "
            "nexo-plugin.toml does not declare (the daemon refuses such tools): declare them"
        )
    return problems


def _config_problems(loaded: LoadedPlugin) -> list[str]:
    requires_env = loaded.manifest.data["plugin"].get("requires", {}).get("env", [])
    prefix = loaded.manifest.id.upper()
    if loaded.config_class is None:
        variables: list[config.Variable] = []
    else:
        try:
            variables = config.variables(loaded.config_class, prefix)
        except config.ConfigError as error:
            return error.problems
    names = {variable.name for variable in variables}
    problems = [
        f"Config.{variable.field} is required, but {variable.name} is not in "
        "[plugin.requires].env of nexo-plugin.toml (the daemon checks those before starting "
        "the plugin): add it there, or give the field a default"
        for variable in variables
        if variable.required and variable.name not in requires_env
    ]
    problems += [
        f"[plugin.requires].env lists {name}, which no field of handlers.Config reads: "
        "add the field, or remove the variable from the manifest"
        for name in requires_env
        if name.startswith(f"{prefix}_") and name not in names
    ]
    return problems


def prepare(loaded: LoadedPlugin) -> PluginContext[Any]:
    """Read the configuration, make the plugin's context, and run on_start when it is a
    plain function; StartError when the plugin cannot serve."""
    try:
        settings = (
            None
            if loaded.config_class is None
            else config.load(loaded.config_class, loaded.manifest.id.upper(), os.environ)
        )
        loaded.plugin = PluginContext(
            loaded.manifest.data, settings, root=loaded.manifest.root, lifecycle=loaded.lifecycle
        )
    except config.ConfigError as error:
        raise StartError(error.problems) from None
    if loaded.on_start is not None and not loaded.starts_in_the_loop:
        try:
            loaded.on_start(loaded.plugin)
        except Exception as error:
            raise start_failure(error) from None
    return loaded.plugin


async def start_in_the_loop(loaded: LoadedPlugin) -> None:
    """Run an `async def` on_start, within the time the daemon allows."""
    import asyncio

    assert loaded.on_start is not None
    try:
        await asyncio.wait_for(loaded.on_start(loaded.running()), START_TIMEOUT_SECONDS)
    except asyncio.TimeoutError:
        raise StartError(
            [
                f"on_start did not finish within {START_TIMEOUT_SECONDS:g} s, and the daemon "
                "stops a plugin that has not answered initialize after 5 s: move slow work into "
                "a task started with plugin.run_background()"
            ]
        ) from None
    except Exception as error:
        raise start_failure(error) from None


def start_failure(error: Exception) -> StartError:
    """The StartError for an exception of on_start: a ConfigError's problems, all of them."""
    from .redaction import redact

    if isinstance(error, config.ConfigError):
        return StartError(error.problems)
    return StartError([redact(f"on_start failed: {type(error).__name__}: {error}")])
