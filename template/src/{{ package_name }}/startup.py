"""Everything that must hold before the plugin answers `initialize`.

This file follows the template (`copier update` refreshes it). A plugin that cannot serve
must say so before the handshake and exit non-zero: after a reply, the daemon would see a
crash loop instead of a refused start. So, in order: handlers.py is imported, its hooks
have the right form, the manifest and the handlers agree (tools and configuration
variables, both ways), the Config is read from the environment, and on_start succeeds.
`bin/<id> --check` runs the same checks without the environment and on_start.

Nothing here loads asyncio or the SDK: when on_start is a plain function (or missing),
main.py answers `initialize` as soon as these checks pass, and loads them after.
"""

from __future__ import annotations

import importlib
import os
from importlib.machinery import PathFinder

from . import config
from .api import PluginContext

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from typing import Any

    from nexo_plugin_sdk import ToolDef

    Hook = Callable[..., Awaitable[Any]]

# The daemon kills a plugin that has not answered `initialize` 5 s after its start.
START_TIMEOUT_SECONDS = 4.0
ASYNC_HOOKS = ("on_event", "on_tool", "on_shutdown")
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
    """handlers.py, checked against the manifest."""

    def __init__(self, plugin: PluginContext, manifest: dict[str, Any],
                 config_class: type | None) -> None:  # fmt: skip
        self.plugin = plugin
        self.manifest = manifest
        self.config_class = config_class
        self.on_start: Callable[..., Any] | None = None
        self.on_event: Hook | None = None
        self.on_tool: Hook | None = None
        self.on_shutdown: Hook | None = None
        self.tools: list[ToolDef] = []

    @property
    def tool_names(self) -> frozenset[str]:
        return frozenset(tool.name for tool in self.tools)

    @property
    def starts_in_the_loop(self) -> bool:
        """on_start is `async def`: asyncio must run before the plugin can answer."""
        return self.on_start is not None and is_async(self.on_start)

    def initialize_result(self) -> dict[str, Any]:
        """The result of the `initialize` reply, as the SDK builds it."""
        plugin = self.manifest["plugin"]
        result: dict[str, Any] = {
            "manifest": self.manifest,
            "server_version": f"{plugin['id']}-{plugin['version']}",
        }
        if self.tools:
            result["tools"] = [tool.to_json() for tool in self.tools]
        return result


def load(manifest: dict[str, Any], root: str) -> LoadedPlugin:
    """Import handlers.py and check it against the manifest; StartError lists every problem."""
    package = __name__.rsplit(".", 1)[0]
    # The session loads the SDK after an early answer to initialize: it must be there.
    if PathFinder.find_spec("nexo_plugin_sdk") is None:
        raise StartError([
            "the nexoai SDK (nexo_plugin_sdk) is not installed: in a checkout, install the "
            "dependencies (`uv sync`); an installed plugin vendors it in lib/"
        ])  # fmt: skip
    try:
        handlers = importlib.import_module(f"{package}.handlers")
    except Exception as error:
        raise StartError([f"cannot import handlers.py: {type(error).__name__}: {error}"]) from None
    try:
        plugin = PluginContext(manifest, root)
    except config.ConfigError as error:
        raise StartError(error.problems) from None
    loaded = LoadedPlugin(plugin, manifest, getattr(handlers, "Config", None))
    problems = []
    for name in ASYNC_HOOKS:
        hook = getattr(handlers, name, None)
        if hook is not None and not is_async(hook):
            problems.append(f"handlers.{name} must be an `async def` function")
        setattr(loaded, name, hook)
    loaded.on_start = getattr(handlers, "on_start", None)
    if loaded.on_start is not None and not callable(loaded.on_start):
        problems.append("handlers.on_start must be a function")
    problems += _tool_problems(handlers, loaded)
    problems += _config_problems(loaded)
    if problems:
        raise StartError(problems)
    return loaded


def _tool_problems(handlers: Any, loaded: LoadedPlugin) -> list[str]:
    declared = loaded.manifest["plugin"].get("extends", {}).get("tools", [])
    tools_hook = getattr(handlers, "tools", None)
    if tools_hook is not None:
        from nexo_plugin_sdk import ToolDef

        try:
            loaded.tools = list(tools_hook(loaded.plugin))
        except Exception as error:
            return [f"handlers.tools() failed: {type(error).__name__}: {error}"]
        if not all(isinstance(tool, ToolDef) for tool in loaded.tools):
            return ["handlers.tools() must return a list of nexo_plugin_sdk.ToolDef"]
    served = [tool.name for tool in loaded.tools]
    problems = []
    if missing := sorted(set(declared) - set(served)):
        problems.append(
            f"nexo-plugin.toml declares tools {missing} in [plugin.extends].tools that "
            "handlers.tools() does not serve: serve them, or remove them from the manifest"
        )
    if undeclared := sorted(set(served) - set(declared)):
        problems.append(
            f"handlers.tools() serves {undeclared}, which [plugin.extends].tools in "
            "nexo-plugin.toml does not declare (the daemon refuses such tools): declare them"
        )
    if served and loaded.on_tool is None:
        problems.append("handlers.tools() declares tools but handlers.py has no on_tool")
    return problems


def _config_problems(loaded: LoadedPlugin) -> list[str]:
    requires_env = loaded.manifest["plugin"].get("requires", {}).get("env", [])
    prefix = f"{loaded.plugin.env_prefix}_"
    if loaded.config_class is None:
        variables: list[config.Variable] = []
    else:
        try:
            variables = config.variables(loaded.config_class, loaded.plugin.env_prefix)
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
        if name.startswith(prefix) and name not in names
    ]
    return problems


def prepare(loaded: LoadedPlugin) -> None:
    """Read the configuration, and run on_start when it is a plain function; StartError
    when the plugin cannot serve."""
    if loaded.config_class is not None:
        try:
            loaded.plugin.config = config.load(
                loaded.config_class, loaded.plugin.env_prefix, os.environ
            )
        except config.ConfigError as error:
            raise StartError(error.problems) from None
    if loaded.on_start is not None and not loaded.starts_in_the_loop:
        try:
            loaded.on_start(loaded.plugin)
        except Exception as error:
            raise _start_failure(error) from None


async def start_in_the_loop(loaded: LoadedPlugin) -> None:
    """Run an `async def` on_start, within the time the daemon allows."""
    import asyncio

    assert loaded.on_start is not None
    try:
        await asyncio.wait_for(loaded.on_start(loaded.plugin), START_TIMEOUT_SECONDS)
    except asyncio.TimeoutError:
        raise StartError(
            [
                f"on_start did not finish within {START_TIMEOUT_SECONDS:g} s, and the daemon "
                "stops a plugin that has not answered initialize after 5 s: move slow work into "
                "a task started with plugin.run_background()"
            ]
        ) from None
    except Exception as error:
        raise _start_failure(error) from None


def _start_failure(error: Exception) -> StartError:
    if isinstance(error, config.ConfigError):  # settings on_start found wrong, all together
        return StartError(error.problems)
    return StartError([f"on_start failed: {type(error).__name__}: {error}"])
