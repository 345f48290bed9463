"""Agent tools with checked arguments: a `Tools` registry, one decorated function per tool.

    tools = Tools()

    @dataclass(frozen=True)
    class Ask:
        question: str = field(metadata={"description": "what to answer"})
        stream: bool = False

    @tools.tool("ask", "Answer a question from what the agent remembers.")
    async def ask(plugin: Plugin, call: ToolCall[Ask]) -> dict[str, Any]:
        return text_result(call.args.question)

The tool's name is `<plugin id>_<name>` (the daemon's rule), and nexo-plugin.toml lists it in
`[plugin.extends].tools` (the start checks both ways). Its arguments are a dataclass (str,
int, float, bool, list[...], dict[str, ...], Literal[...], nested dataclasses, `| None`) or,
when the plugin depends on pydantic, a pydantic model: the registry derives the
`input_schema` the daemon advertises from it, and checks every call against it before the
function runs, answering `ToolArgumentInvalid` (-33402) with every problem at once. A host
call that fails inside the tool (timeout, host error) becomes `ToolUnavailable` (-33404).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar, Union

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from nexo_plugin_sdk import ToolDef

    from .context import PluginContext

ArgsT = TypeVar("ArgsT")
ToolFunction = TypeVar("ToolFunction", bound="Callable[..., Awaitable[Any]]")
# How long the daemon's agent is asked to wait before calling a tool whose host timed out.
RETRY_AFTER_MS = 1000
_JSON_TYPES: dict[object, str] = {str: "string", int: "integer", float: "number", bool: "boolean"}


@dataclass(frozen=True)
class ToolCall(Generic[ArgsT]):
    """One tool.invoke: the checked arguments, and who called."""

    name: str
    args: ArgsT
    agent_id: str | None
    raw_args: Any = dataclasses.field(default=None, repr=False)


@dataclass(frozen=True)
class Tool:
    name: str  # without the plugin id
    description: str
    args_type: Any
    func: Callable[..., Awaitable[Any]]

    def input_schema(self) -> dict[str, Any]:
        if _is_pydantic(self.args_type):
            schema: dict[str, Any] = self.args_type.model_json_schema()
            return schema
        if self.args_type is None:
            return {"type": "object", "properties": {}, "additionalProperties": False}
        return json_schema(self.args_type)

    def check(self, raw: Any) -> Any:
        """The arguments as args_type, or ToolArgumentInvalid listing every problem."""
        problems: list[tuple[str, str]] = []
        if _is_pydantic(self.args_type):
            try:
                return self.args_type.model_validate({} if raw is None else raw)
            except ValueError as error:  # pydantic's ValidationError is a ValueError
                errors: list[dict[str, Any]] = getattr(error, "errors", list)()
                problems = [
                    (".".join(map(str, item.get("loc", ()))) or "arguments", item.get("msg", ""))
                    for item in errors
                ] or [("arguments", str(error))]
        elif self.args_type is None:
            if raw not in (None, {}):
                problems.append(("arguments", "this tool takes none"))
        else:
            value = check(raw, self.args_type, "", problems)
            if not problems:
                return value
        if not problems:
            return None
        from nexo_plugin_sdk import ToolArgumentInvalid

        listed = "; ".join(f"{path}: {message}" for path, message in problems)
        raise ToolArgumentInvalid(
            f"{len(problems)} problem(s): {listed}",
            details={"problems": [{"path": path, "message": msg} for path, msg in problems]},
        )


class Tools:
    """The plugin's agent tools (see the module's docstring). handlers.py names an instance
    `tools`; the runtime advertises and serves what it holds."""

    def __init__(self) -> None:
        self._tools: dict[str, Tool] = {}

    def tool(
        self, name: str, description: str, *, args: type | None = None
    ) -> Callable[[ToolFunction], ToolFunction]:
        """Register `async def f(plugin, call: ToolCall[Args])` as the tool `<id>_<name>`.
        `args` is read from the ToolCall[...] annotation unless given."""

        def register(func: ToolFunction) -> ToolFunction:
            if name in self._tools:
                raise ValueError(f"tool {name!r} is registered twice")
            if not name or not name.replace("_", "a").isalnum() or not name.isascii():
                raise ValueError(f"tool name {name!r}: use letters, digits and underscores")
            args_type = args if args is not None else _args_type_of(func)
            self._tools[name] = Tool(name, description, args_type, func)
            return func

        return register

    def names(self, plugin_id: str) -> list[str]:
        """The full tool names: <plugin id>_<name>."""
        return [f"{plugin_id}_{name}" for name in self._tools]

    def definitions(self, plugin_id: str) -> list[ToolDef]:
        from nexo_plugin_sdk import ToolDef

        return [
            ToolDef(f"{plugin_id}_{tool.name}", tool.description, tool.input_schema())
            for tool in self._tools.values()
        ]

    def get(self, plugin_id: str, full_name: str) -> Tool | None:
        prefix = f"{plugin_id}_"
        return self._tools.get(full_name[len(prefix) :]) if full_name.startswith(prefix) else None

    async def invoke(
        self, plugin: PluginContext[Any], full_name: str, raw_args: Any, agent_id: str | None
    ) -> Any:
        """Check the arguments, run the tool; a failed host call becomes ToolUnavailable."""
        import asyncio

        from nexo_plugin_sdk import (
            RpcServerError,
            RpcTimeoutError,
            RpcTransportError,
            ToolNotFound,
            ToolUnavailable,
        )

        tool = self.get(plugin.id, full_name)
        if tool is None:
            raise ToolNotFound(full_name)
        call = ToolCall(full_name, tool.check(raw_args), agent_id, raw_args)
        try:
            return await tool.func(plugin, call)
        except (RpcTimeoutError, asyncio.TimeoutError):
            raise ToolUnavailable(
                "the host did not answer in time", retry_after_ms=RETRY_AFTER_MS
            ) from None
        except RpcServerError as error:
            raise ToolUnavailable(f"the host refused: {error.message} ({error.code})") from None
        except RpcTransportError as error:
            raise ToolUnavailable(f"the host cannot be reached: {error}") from None


def _is_pydantic(kind: Any) -> bool:
    return (
        isinstance(kind, type)
        and hasattr(kind, "model_validate")
        and hasattr(kind, "model_json_schema")
    )


def _args_type_of(func: Callable[..., Any]) -> Any:
    hints = typing.get_type_hints(func)
    for hint in hints.values():
        if typing.get_origin(hint) is ToolCall:
            (args_type,) = typing.get_args(hint)
            return None if args_type is type(None) else args_type
    raise TypeError(
        f"{getattr(func, '__qualname__', func)}: annotate its call parameter as "
        "ToolCall[Args] (Args a dataclass or a pydantic model), or pass args=Args"
    )


def _optional_member(kind: Any) -> Any | None:
    """X for `X | None`, else None."""
    origin = typing.get_origin(kind)
    if origin in (Union, types.UnionType):
        members = [member for member in typing.get_args(kind) if member is not type(None)]
        if len(members) == 1 and len(typing.get_args(kind)) == 2:
            return members[0]
    return None


def _fields(kind: type) -> list[tuple[dataclasses.Field[Any], Any]]:
    hints = typing.get_type_hints(kind)
    return [(item, hints[item.name]) for item in dataclasses.fields(kind) if item.init]


def _has_default(item: dataclasses.Field[Any]) -> bool:
    return (
        item.default is not dataclasses.MISSING or item.default_factory is not dataclasses.MISSING
    )


def json_schema(kind: Any) -> dict[str, Any]:
    """The JSON Schema of a type the registry checks (see the module's docstring)."""
    if kind is Any:
        return {}
    if kind in _JSON_TYPES:
        return {"type": _JSON_TYPES[kind]}
    if (member := _optional_member(kind)) is not None:
        return {"anyOf": [json_schema(member), {"type": "null"}]}
    origin, params = typing.get_origin(kind), typing.get_args(kind)
    if origin is Literal:
        return {"enum": list(params)}
    if origin is list:
        return {"type": "array", "items": json_schema(params[0])}
    if origin is dict and params[0] is str:
        return {"type": "object", "additionalProperties": json_schema(params[1])}
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        properties: dict[str, Any] = {}
        required = []
        for item, hint in _fields(kind):
            schema = json_schema(hint)
            if "description" in item.metadata:
                schema["description"] = item.metadata["description"]
            if item.default is not dataclasses.MISSING:
                schema["default"] = item.default
            properties[item.name] = schema
            if not _has_default(item):
                required.append(item.name)
        schema = {"type": "object", "properties": properties, "additionalProperties": False}
        if required:
            schema["required"] = required
        if kind.__doc__ and not kind.__doc__.startswith(f"{kind.__name__}("):
            schema["description"] = " ".join(kind.__doc__.split())
        return schema
    raise TypeError(f"tool arguments of type {kind!r} are not supported")


def _kind_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    return {str: "string", int: "integer", float: "number", list: "array", dict: "object"}.get(
        type(value), type(value).__name__
    )


def check(value: Any, kind: Any, path: str, problems: list[tuple[str, str]]) -> Any:
    """`value` (decoded JSON) as `kind`; each mismatch appended to `problems` as (path, why)."""
    where = path or "arguments"
    if kind is Any:
        return value
    if (member := _optional_member(kind)) is not None:
        return None if value is None else check(value, member, path, problems)
    if kind in _JSON_TYPES:
        fits = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if not fits:
            problems.append((where, f"expected {_JSON_TYPES[kind]}, got {_kind_name(value)}"))
        return value
    origin, params = typing.get_origin(kind), typing.get_args(kind)
    if origin is Literal:
        if not any(value == choice and type(value) is type(choice) for choice in params):
            problems.append((where, f"expected one of {list(params)}, got {value!r}"))
        return value
    if origin is list:
        if not isinstance(value, list):
            problems.append((where, f"expected array, got {_kind_name(value)}"))
            return value
        return [
            check(item, params[0], f"{path}[{index}]", problems) for index, item in enumerate(value)
        ]
    if origin is dict:
        if not isinstance(value, dict):
            problems.append((where, f"expected object, got {_kind_name(value)}"))
            return value
        return {key: check(item, params[1], f"{path}.{key}" if path else key, problems)
                for key, item in value.items()}  # fmt: skip
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        if not isinstance(value, dict):
            problems.append((where, f"expected object, got {_kind_name(value)}"))
            return value
        fields = _fields(kind)
        known = {item.name for item, _ in fields}
        problems += [
            (f"{path}.{key}" if path else key, "unknown argument")
            for key in value
            if key not in known
        ]
        values = {}
        for item, hint in fields:
            name = f"{path}.{item.name}" if path else item.name
            if item.name in value:
                values[item.name] = check(value[item.name], hint, name, problems)
            elif not _has_default(item):
                problems.append((name, "required"))
        return kind(**values) if not problems else value
    raise TypeError(f"tool arguments of type {kind!r} are not supported")
